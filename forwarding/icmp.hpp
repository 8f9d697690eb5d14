// ICMP messages lbd originates, built in place from the frame they answer. Pure, no I/O.
#pragma once

#include <cstddef>
#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

struct IcmpError {
  uint8_t type = icmp_type::kDestUnreachable;
  uint8_t code = icmp_code::kPortUnreachable;
  uint16_t mtu = 0;  // frag-needed: the next-hop MTU (RFC 1191)
  IpAddr src, dst;   // IPv6 ones make it ICMPv6 (port unreachable, frag-needed: Packet Too Big)
  MacAddr eth_src, eth_dst;
};

// Writes an Ethernet/IPv4/ICMP error `e` at the start of `buf` (its whole capacity) quoting
// the datagram that lies in `buf` at [quote_off, quote_off + quote_len); the quote moves
// behind the new headers and is cut so the IP packet fits 576 bytes (RFC 1812). Returns the
// frame length, or 0 (nothing written) if it does not fit.
size_t write_icmp_error(std::span<uint8_t> buf, size_t quote_off, size_t quote_len,
                        const IcmpError& e);

// The destination-unreachable `code` (with `mtu` for frag-needed) that answers the parsed
// datagram in `frame`: from its destination back to its sender and the sender's MAC, out of
// the interface with MAC `our_mac`. Quote it with write_icmp_error(..., p.l3_off, p.ip_len).
IcmpError error_to_sender(std::span<const uint8_t> frame, const ParsedPacket& p, uint8_t code,
                          uint16_t mtu, const MacAddr& our_mac);

// An ICMP error's type and code for a sender of the other family, as RFC 7915 4.2 and 5.2
// translate them: time exceeded keeps its code; unreachable maps onto the nearest
// unreachable (no route, host, port, administratively prohibited). Frag-needed and Packet
// Too Big are not translated here (their MTU is recomputed: IcmpError's frag-needed form is
// written as Packet Too Big for IPv6). False when the error has no counterpart (parameter
// problem, source quench, protocol unreachable): it is not relayed.
bool translate_icmp_error(bool from_v6, uint8_t type, uint8_t code, uint8_t& out_type, uint8_t& out_code);

// Turns `frame` (a parsed IPv4 datagram to a VIP) into the ICMP destination-unreachable
// `code` (3 = port unreachable, as IPVS's ip_vs_leave() sends when no real server is
// available) from the VIP back to the sender, out of the interface with MAC `our_mac`.
// `capacity` is the buffer's size. Returns the new frame length, or 0 if it does not fit.
size_t make_dest_unreachable(std::span<uint8_t> frame, size_t capacity, const ParsedPacket& p,
                             uint8_t code, const MacAddr& our_mac, uint16_t mtu = 0);

// Turns an ICMP echo request into its echo reply in place (addresses and MACs swapped,
// type 0, checksum updated). The payload is returned as received.
void echo_request_to_reply(std::span<uint8_t> frame, const ParsedPacket& p);

}  // namespace lbd

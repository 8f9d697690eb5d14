// Masquerading (LVS NAT, ipvsadm -m): the client's packets to VIP:vport are rewritten to
// RIP:rport on the way in, the real server's replies from RIP:rport back to VIP:vport on the
// way out; ICMP errors about such a connection are translated too, quoted header included.
// Checksums are updated incrementally (RFC 1624), never recomputed over the payload. Pure.
#pragma once

#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

// Which end of the packet changes: inbound packets get a new destination (the real
// server), outbound replies a new source (the virtual service).
enum class NatSide { kDestination, kSource };

// IPv4 or IPv6 alike (NAT66: no header checksum, the pseudo-header's 128-bit address in
// the L4 checksum). Rewrites the TCP/UDP packet's destination or source address and port, in place, with
// its IP and L4 checksums. A UDP checksum of 0 ("none") stays 0. The frame's checksum must
// be complete (see csum::complete_partial) for the result to be valid.
void nat_rewrite(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, const IpAddr& addr,
                 uint16_t port);

// A later IP fragment of a NAT connection: only the address changes (the ports and the
// L4 checksum travel in the first fragment), with the IP header checksum.
void nat_rewrite_address(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, const IpAddr& addr);

// Translates an ICMP error about a NAT connection, in place. Inbound (kDestination: a
// client's error about a reply it got from VIP:vport): the outer destination becomes the
// real server and the quoted source VIP:vport becomes RIP:rport. Outbound (kSource: a real
// server's error about a packet from the client to RIP:rport): the outer source becomes the
// VIP and the quoted destination VIP:vport. The quoted IP checksum and, when quoted, the
// quoted L4 checksum are updated; the ICMP checksum is recomputed over the message.
void nat_rewrite_icmp(std::span<uint8_t> frame, const ParsedPacket& p, const IcmpQuote& q,
                      NatSide side, const IpAddr& addr, uint16_t port);

}  // namespace lbd

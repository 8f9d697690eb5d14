// IPv6 neighbour discovery for virtual IPs not configured on the director (IPv6's ARP,
// RFC 4861): a Neighbour Solicitation for a VIP gets lbd's Neighbour Advertisement, so the
// clients' router finds the VIP. And ICMPv6 echo replies. Pure frame transformations.
#pragma once

#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

// Whether the parsed ICMPv6 type-135 frame is a Neighbour Solicitation lbd may answer
// (RFC 4861 7.1.1: hop limit 255, code 0, at least 24 bytes, a target that is not
// multicast, no extension headers; and a unicast source and Ethernet sender: a duplicate
// address detection probe, from ::, is not answered). Its target in `target`.
bool neighbour_solicitation(std::span<const uint8_t> frame, const ParsedPacket& p, IpAddr& target);

// Writes, over the solicitation in `buf`, the Neighbour Advertisement "target is at `mac`"
// (solicited and override flags, the target link-layer address option) back to its
// sender, from the target; returns the new frame length (86), or 0 if `buf` is smaller.
size_t solicitation_to_advert(std::span<uint8_t> buf, const ParsedPacket& p, const IpAddr& target,
                              const MacAddr& mac);

// Turns an ICMPv6 echo request into its echo reply in place (addresses and MACs swapped,
// type 129, hop limit 64, checksum updated). The payload is returned as received.
void echo6_request_to_reply(std::span<uint8_t> frame, const ParsedPacket& p);

}  // namespace lbd

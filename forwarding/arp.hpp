// ARP replies for virtual IPs that are not configured on the director: without them the
// clients' router could not find the VIP. Pure frame transformation, no I/O.
#pragma once

#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

// True if `frame` (already parsed as ARP) is a request for `target`.
bool is_arp_request_for(std::span<const uint8_t> frame, const ParsedPacket& p, Ipv4 target);

// False if the ARP frame's Ethernet source or sender hardware address is a group (multicast
// or broadcast) address: no host asks from one.
bool arp_sender_unicast(std::span<const uint8_t> frame);

// Turns an ARP request for `vip` into the reply "vip is-at `mac`", in place.
void arp_request_to_reply(std::span<uint8_t> frame, const MacAddr& mac);

}  // namespace lbd

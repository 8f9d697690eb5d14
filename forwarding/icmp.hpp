// ICMP errors lbd originates, built in place from the offending frame. Pure, no I/O.
#pragma once

#include <cstddef>
#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

// Turns `frame` (a parsed IPv4 datagram to a VIP) into the ICMP destination-unreachable
// `code` (3 = port unreachable, as IPVS's ip_vs_leave() sends when no real server is
// available) from the VIP back to the sender, out of the interface with MAC `our_mac`.
// The quoted datagram is truncated so the reply fits 576 bytes (RFC 1812). `capacity` is
// the buffer's size. Returns the new frame length, or 0 if it does not fit.
size_t make_dest_unreachable(std::span<uint8_t> frame, size_t capacity, const ParsedPacket& p,
                             uint8_t code, const MacAddr& our_mac);

}  // namespace lbd

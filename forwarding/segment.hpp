// Software TCP segmentation for super-frames: a local sender with TSO/GSO on a veth (a
// container on the director's host, a lab client) hands over TCP/IPv4 frames of up to
// 64 KB that no link can carry (IPv6 too). Turning GRO off on our side cannot prevent those, so they
// are cut here into MTU-sized segments, as the sender's NIC would have done. Pure.
#pragma once

#include <cstdint>
#include <span>

#include "forwarding/packet.hpp"

namespace lbd {

// Writes segment `index` of the TCP/IPv4 or TCP/IPv6 frame `frame` (already rewritten for its next
// hop) into `dst`, which must hold 14 + mtu bytes, and returns its frame length; 0 past the
// last segment or if the frame cannot be segmented (not TCP, headers alone too big).
// Segments carry at most mtu - headers payload bytes; sequence numbers advance by the
// payload before them, IPv4 ids by one per segment; FIN and PSH stay on the last segment and
// CWR on the first; both checksums are computed in full (the input's may be partial).
size_t tcp_segment_one(std::span<const uint8_t> frame, const ParsedPacket& p, uint16_t mtu,
                       size_t index, uint8_t* dst);

}  // namespace lbd

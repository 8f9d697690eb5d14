// Internet checksums (RFC 1071) and their incremental updates (RFC 1624), in one place.
// Values are the 16-bit field as read big-endian (Be16::host()), so callers never byte-swap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "forwarding/packet.hpp"

namespace lbd::csum {

// One's-complement sum of `data` added to `acc`, not folded. Odd trailing byte padded with 0.
uint64_t accumulate(std::span<const uint8_t> data, uint64_t acc = 0);
uint16_t fold(uint64_t acc);

// The IPv4 header checksum to store, computed with the header's own check field as zero.
uint16_t ipv4_header(std::span<const uint8_t> header);

// Sum of the IPv4 or IPv6 pseudo-header for a TCP/UDP/ICMPv6 segment of `l4_len` bytes,
// unfolded (both addresses of one family).
uint64_t pseudo_header(const IpAddr& saddr, const IpAddr& daddr, uint8_t protocol, uint16_t l4_len);

// The TCP/UDP/ICMPv6 checksum to store for `segment` (its check field is treated as zero).
// For UDP a result of 0 is returned as 0xffff (RFC 768: 0 means "no checksum").
uint16_t l4_full(const IpAddr& saddr, const IpAddr& daddr, uint8_t protocol, std::span<const uint8_t> segment,
                 size_t check_offset);

// RFC 1624 for a changed address of either family (IPv6: its 8 words).
uint16_t replace_addr(uint16_t check, const IpAddr& old_value, const IpAddr& new_value);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a changed 16- or 32-bit field.
uint16_t replace16(uint16_t check, uint16_t old_value, uint16_t new_value);
uint16_t replace32(uint16_t check, uint32_t old_value, uint32_t new_value);

// Locally generated frames (veth with TX offload) can carry CHECKSUM_PARTIAL: the L4 field
// holds only the folded pseudo-header sum and the payload is not summed yet. Such a frame
// forwarded unchanged is dropped by the receiver. If the segment of the parsed IPv4 packet
// has that shape and does not verify as it is, this completes its checksum in place and
// returns true. O(1) unless the field looks partial (then one pass over the segment).
bool complete_partial(std::span<uint8_t> frame, const ParsedPacket& p);

// Whether a parsed, whole IPv4 packet's checksums hold: the IP header's, and the TCP/UDP
// segment's (UDP checksum 0 means none). A segment in the partial form above is accepted:
// it is a local sender's offloaded checksum, which its kernel has not finished yet. One
// pass over the segment: for packets that would create state, not for every packet.
bool packet_valid(std::span<const uint8_t> frame, const ParsedPacket& p);

}  // namespace lbd::csum

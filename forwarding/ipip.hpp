// IP-in-IP tunnelling (RFC 2003, RFC 2473; LVS TUN, ipvsadm -i), its MTU policy and the
// fragmentation of the outer packet. The director encapsulates; the real server's decapsulator (lbd-decap)
// unwraps. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "forwarding/packet.hpp"
#include "forwarding/tunnel.hpp"

namespace lbd {

inline constexpr size_t kIpipOverhead = sizeof(Ipv4Hdr);

// Wraps the parsed IPv4 datagram of `buf` (an Ethernet frame; `buf` spans the whole buffer,
// its capacity) in an outer IPv4 header from `src` to `dst`, in place. As IPVS does, the
// outer TOS and TTL are the inner packet's and DF is copied from it; `id` is the outer IP
// id. Ethernet padding is dropped. Returns the new frame length, or 0 (nothing changed)
// when the buffer is too small or the result would exceed 65535 bytes of IP.
inline size_t ipip_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, const IpAddr& src,
                               const IpAddr& dst, uint16_t id) {
  return tunnel_encapsulate(buf, p, src, dst, id, TunnelSpec{});
}

// How a packet goes into a tunnel whose path MTU (outer IP) is `mtu` and whose headers take
// `overhead` bytes (tunnel_overhead()): IPVS's ip_vs_tunnel_xmit() and its
// ensure_mtu_is_adequate(), with GSO. `superframe`: a TCP super-frame from a local sender
// (larger than its interface), which is segmented first.
enum class TunnelXmit {
  kMtuTooSmall,          // IPv4 outer: below 68 + the tunnel's headers; IPv6: below 1280. Nothing goes
  kSegmentEncapsulate,   // a super-frame: segments of mtu - overhead, each encapsulated
  kFragNeeded,           // too big with DF (IPv6: always): the client is told tunnel_client_mtu(), the packet dropped
  kEncapsulate,          // fits
  kEncapsulateFragment,  // too big without DF, an ICMP error relayed, an IPv6 datagram of at most
                         // 1280 bytes in a narrower tunnel, a later IPv6 fragment: the outer packet fragmented
};
constexpr uint16_t min_tunnel_mtu(size_t overhead, bool outer_v6) {
  return outer_v6 ? kIpv6MinMtu : uint16_t(68 + overhead);
}
TunnelXmit tunnel_xmit(const ParsedPacket& p, uint16_t mtu, size_t overhead, bool outer_v6, bool superframe);
// The MTU a client is told with kFragNeeded: the tunnel's room for its datagram, and for an
// IPv6 client never below 1280 (RFC 8200 5: a smaller tunnel fragments the outer packet).
constexpr uint16_t tunnel_client_mtu(bool client_v6, uint16_t mtu, size_t overhead) {
  const auto room = uint16_t(mtu - overhead);
  return client_v6 && room < kIpv6MinMtu ? kIpv6MinMtu : room;
}

// Writes fragment `index` of the Ethernet/IPv4 frame `frame` (header without options;
// DF clear) into `dst`, which must hold 14 + mtu bytes; returns its length, or 0 past the
// last fragment. Every fragment's IP length is at most `mtu`; payload offsets are multiples
// of 8; MF is set on all but the last (RFC 791). `mtu` must be at least 28.
size_t ipv4_fragment_one(std::span<const uint8_t> frame, uint16_t mtu, size_t index,
                         uint8_t* dst);

// The same for an Ethernet/IPv6 frame whose header has no extension headers (a tunnel's
// outer packet, RFC 2473 7.1): each fragment is the header, a fragment header with
// identification `id`, and the next piece of the payload, at most `mtu` bytes in all
// (RFC 8200 4.5). `mtu` must be at least 56.
size_t ipv6_fragment_one(std::span<const uint8_t> frame, uint16_t mtu, uint32_t id, size_t index,
                         uint8_t* dst);

}  // namespace lbd

// IPv4-in-IPv4 tunnelling (RFC 2003; LVS TUN, ipvsadm -i) and IPv4 fragmentation of the
// outer packet. The director encapsulates; the real server's decapsulator (lbd-decap)
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
inline size_t ipip_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, Ipv4 src, Ipv4 dst,
                               uint16_t id) {
  return tunnel_encapsulate(buf, p, src, dst, id, TunnelSpec{});
}

// How a packet goes into a tunnel whose path MTU (outer IP) is `mtu` and whose headers take
// `overhead` bytes (tunnel_overhead()): IPVS's ip_vs_tunnel_xmit() and its
// ensure_mtu_is_adequate(), with GSO. `superframe`: a TCP super-frame from a local sender
// (larger than its interface), which is segmented first.
enum class TunnelXmit {
  kMtuTooSmall,          // below 68 + the tunnel's headers: nothing can go
  kSegmentEncapsulate,   // a super-frame: segments of mtu - overhead, each encapsulated
  kFragNeeded,           // too big with DF: the client is told mtu - overhead, the packet dropped
  kEncapsulate,          // fits
  kEncapsulateFragment,  // too big without DF, or an ICMP error relayed: the outer packet fragmented
};
constexpr uint16_t min_tunnel_mtu(size_t overhead) { return uint16_t(68 + overhead); }
TunnelXmit tunnel_xmit(const ParsedPacket& p, uint16_t mtu, size_t overhead, bool superframe);

// Writes fragment `index` of the Ethernet/IPv4 frame `frame` (header without options;
// DF clear) into `dst`, which must hold 14 + mtu bytes; returns its length, or 0 past the
// last fragment. Every fragment's IP length is at most `mtu`; payload offsets are multiples
// of 8; MF is set on all but the last (RFC 791). `mtu` must be at least 28.
size_t ipv4_fragment_one(std::span<const uint8_t> frame, uint16_t mtu, size_t index,
                         uint8_t* dst);

}  // namespace lbd

// How a packet leaves for its next hop at layer 2: direct routing (LVS "gatewaying",
// ipvsadm -g) sends the IP packet unchanged to the real server's MAC, and NAT, after its
// rewrite (nat.hpp), leaves the same way. The MTU policy is IPVS's (ip_vs_xmit.c) with
// GSO: a TCP super-frame from a local sender is segmented, a packet without DF fragmented,
// any other packet too big refused. Pure: no I/O, no lookups; the caller supplies the
// resolved next hop and its MTU. (IPIP: ipip.hpp, with the tunnel's own policy.)
#pragma once

#include <span>

#include "forwarding/next_hop.hpp"
#include "forwarding/packet.hpp"

namespace lbd {

enum class XmitStatus {
  kSend,      // as it is
  kSegment,   // a TCP super-frame: cut into segments of `mtu` (segment.hpp)
  kFragment,  // larger than `mtu`, DF clear: sent in IP fragments
  kTooBig,    // larger than `mtu` and DF set: not sent (the frame untouched)
};

// Rewrites destination MAC → hop.dst and source MAC → hop.src, in place (unless kTooBig).
XmitStatus xmit_l2(std::span<uint8_t> frame, const ParsedPacket& p, const NextHop& hop, uint16_t mtu);

}  // namespace lbd

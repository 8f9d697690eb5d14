// Direct routing (LVS "gatewaying", ipvsadm -g): the IP packet is sent unchanged to the
// real server's MAC. Pure: no I/O, no lookups; the caller supplies the resolved next hop.
#pragma once

#include <span>

#include "forwarding/next_hop.hpp"
#include "forwarding/packet.hpp"

namespace lbd {

enum class RewriteStatus { kOk, kNeedsSegmentation, kFrameTooBig };

// Rewrites destination MAC → hop.dst and source MAC → hop.src, in place. An IP datagram
// larger than the egress MTU (a GSO super-frame from a local sender) cannot be sent as is:
// a TCP one is rewritten and reported kNeedsSegmentation (see segment.hpp), anything else
// is refused untouched with kFrameTooBig.
RewriteStatus rewrite_dr(std::span<uint8_t> frame, const ParsedPacket& p, const NextHop& hop);

}  // namespace lbd

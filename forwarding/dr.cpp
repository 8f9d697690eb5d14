// DR rewrite; see dr.hpp.
#include "forwarding/dr.hpp"

namespace lbd {

RewriteStatus rewrite_dr(std::span<uint8_t> frame, const ParsedPacket& p, const NextHop& hop) {
  const bool too_big = p.ip_len > hop.mtu;
  if (too_big && p.protocol != kProtoTcp) return RewriteStatus::kFrameTooBig;
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  eth->dst = hop.dst;
  eth->src = hop.src;
  return too_big ? RewriteStatus::kNeedsSegmentation : RewriteStatus::kOk;
}

}  // namespace lbd

// DR rewrite; see dr.hpp.
#include "forwarding/dr.hpp"

namespace lbd {

RewriteStatus rewrite_dr(std::span<uint8_t> frame, const ParsedPacket& p, const NextHop& hop) {
  if (p.ip_len > hop.mtu) return RewriteStatus::kFrameTooBig;
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  eth->dst = hop.dst;
  eth->src = hop.src;
  return RewriteStatus::kOk;
}

}  // namespace lbd

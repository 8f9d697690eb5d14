// Layer-2 transmission and its MTU policy; see dr.hpp.
#include "forwarding/dr.hpp"

namespace lbd {

XmitStatus xmit_l2(std::span<uint8_t> frame, const ParsedPacket& p, const NextHop& hop, uint16_t mtu) {
  XmitStatus status = XmitStatus::kSend;
  if (p.ip_len > mtu) {
    status = p.protocol == kProtoTcp ? XmitStatus::kSegment  // segmentation computes full checksums
             : !p.dont_fragment      ? XmitStatus::kFragment
                                     : XmitStatus::kTooBig;
    if (status == XmitStatus::kTooBig) return status;
  }
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  eth->dst = hop.dst;
  eth->src = hop.src;
  return status;
}

}  // namespace lbd

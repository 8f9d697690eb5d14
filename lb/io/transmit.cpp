// Transmit; see transmit.hpp.
#include "lb/io/transmit.hpp"

#include <cstring>

#include "forwarding/ipip.hpp"
#include "forwarding/segment.hpp"

namespace lbd {

void transmit(Injector& out, const uint8_t* frame, size_t len, const Verdict& v, bool in_place,
              std::span<uint8_t> scratch) {
  if ((v.segment_mtu || v.fragment_mtu) && in_place) {
    // The pieces are written into the injector's buffers, where this frame lies.
    std::memcpy(scratch.data(), frame, len);
    frame = scratch.data();
  }
  if (v.segment_mtu) {
    ParsedPacket p;
    DropReason why{};
    if (!parse_frame({frame, len}, p, why)) return;
    for (size_t i = 0;; ++i) {
      uint8_t* buf = out.next_buffer();
      size_t n = tcp_segment_one({frame, len}, p, v.segment_mtu, i, buf);
      if (!n) break;
      if (v.encapsulate) {  // TUN: each segment into the tunnel
        ParsedPacket sp;
        if (!parse_frame({buf, n}, sp, why)) break;
        n = tunnel_encapsulate({buf, Injector::kFrameMax}, sp, v.tun_src, v.tun_dst, uint16_t(v.fragment_id + i), v.tun);
        if (!n) break;
      }
      out.commit(n);
    }
    return;
  }
  if (v.fragment_mtu) {
    const bool v6 = len > sizeof(EthHdr) && reinterpret_cast<const EthHdr*>(frame)->type.host() == kEtherTypeIpv6;
    for (size_t i = 0;; ++i) {
      const size_t n = v6 ? ipv6_fragment_one({frame, len}, v.fragment_mtu, v.fragment_id, i, out.next_buffer())
                          : ipv4_fragment_one({frame, len}, v.fragment_mtu, i, out.next_buffer());
      if (!n) break;
      out.commit(n);
    }
    return;
  }
  if (!in_place) std::memcpy(out.next_buffer(), frame, len);
  out.commit(len);  // in place: processed where it is sent from, no copy
}

}  // namespace lbd

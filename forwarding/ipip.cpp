// The tunnel's MTU policy and outer fragmentation; see ipip.hpp.
#include "forwarding/ipip.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {

size_t ipv4_fragment_one(std::span<const uint8_t> frame, uint16_t mtu, size_t index,
                         uint8_t* dst) {
  constexpr size_t l3 = sizeof(EthHdr);
  if (frame.size() < l3 + sizeof(Ipv4Hdr) || mtu < sizeof(Ipv4Hdr) + 8) return 0;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame.data() + l3);
  const size_t hlen = sizeof(Ipv4Hdr);
  const size_t tot = std::min<size_t>(ip->tot_len.host(), frame.size() - l3);
  if (tot <= hlen) return 0;
  const size_t payload = tot - hlen;
  const size_t chunk_max = (mtu - hlen) & ~size_t(7);
  const size_t off = index * chunk_max;
  if (off >= payload) return 0;
  const size_t chunk = std::min(chunk_max, payload - off);
  const bool last = off + chunk == payload;
  std::memcpy(dst, frame.data(), l3 + hlen);
  std::memcpy(dst + l3 + hlen, frame.data() + l3 + hlen + off, chunk);
  auto* f = reinterpret_cast<Ipv4Hdr*>(dst + l3);
  // The original's own offset and MF carry over (fragmenting a fragment), DF is clear.
  const uint16_t orig = ip->frag_off.host();
  const uint16_t frag = uint16_t((orig & 0x1fff) + off / 8) | ((last && !(orig & kIpMf)) ? 0 : kIpMf);
  f->frag_off = Be16::from_host(frag);
  f->tot_len = Be16::from_host(uint16_t(hlen + chunk));
  f->check = Be16{};
  f->check = Be16::from_host(csum::ipv4_header({dst + l3, hlen}));
  return l3 + hlen + chunk;
}

TunnelXmit tunnel_xmit(const ParsedPacket& p, uint16_t mtu, size_t overhead, bool superframe) {
  if (mtu < min_tunnel_mtu(overhead)) return TunnelXmit::kMtuTooSmall;
  if (superframe) return TunnelXmit::kSegmentEncapsulate;
  if (p.ip_len + overhead <= mtu) return TunnelXmit::kEncapsulate;
  // An ICMP error keeps its DF inside; it is never answered with another error, so the
  // outer packet is cut instead.
  const bool relaying_error = p.protocol == kProtoIcmp && is_icmp_error(p.icmp_type);
  return p.dont_fragment && !relaying_error ? TunnelXmit::kFragNeeded : TunnelXmit::kEncapsulateFragment;
}

}  // namespace lbd

// IPIP encapsulation, outer fragmentation, decapsulation; see ipip.hpp.
#include "forwarding/ipip.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {

size_t ipip_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, Ipv4 src, Ipv4 dst,
                        uint16_t id) {
  const size_t outer_len = size_t(p.ip_len) + kIpipOverhead;
  if (outer_len > 65535 || p.l3_off + outer_len > buf.size()) return 0;
  uint8_t* inner = buf.data() + p.l3_off;
  const auto inner_hdr = *reinterpret_cast<const Ipv4Hdr*>(inner);
  std::memmove(inner + kIpipOverhead, inner, p.ip_len);
  Ipv4Hdr outer{};
  outer.ver_ihl = 0x45;
  outer.tos = inner_hdr.tos;
  outer.tot_len = Be16::from_host(uint16_t(outer_len));
  outer.id = Be16::from_host(id);
  outer.frag_off = Be16::from_host(inner_hdr.frag_off.host() & kIpDf);
  outer.ttl = inner_hdr.ttl;
  outer.protocol = kProtoIpip;
  outer.saddr = src;
  outer.daddr = dst;
  std::memcpy(inner, &outer, sizeof outer);
  auto* o = reinterpret_cast<Ipv4Hdr*>(inner);
  o->check = Be16::from_host(csum::ipv4_header({inner, sizeof(Ipv4Hdr)}));
  return p.l3_off + outer_len;
}

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

DecapStatus ipip_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner) {
  if (packet.size() < sizeof(Ipv4Hdr)) return DecapStatus::kTruncatedOuter;
  const auto* o = reinterpret_cast<const Ipv4Hdr*>(packet.data());
  const size_t ohl = (o->ver_ihl & 0x0f) * 4u;
  if ((o->ver_ihl >> 4) != 4 || o->protocol != kProtoIpip) return DecapStatus::kNotIpip;
  const size_t otot = o->tot_len.host();
  if (ohl < sizeof(Ipv4Hdr) || otot < ohl || otot > packet.size())
    return DecapStatus::kTruncatedOuter;
  const auto rest = packet.subspan(ohl, otot - ohl);
  if (rest.size() < sizeof(Ipv4Hdr)) return DecapStatus::kBadInner;
  const auto* i = reinterpret_cast<const Ipv4Hdr*>(rest.data());
  const size_t ihl = (i->ver_ihl & 0x0f) * 4u;
  const size_t itot = i->tot_len.host();
  if ((i->ver_ihl >> 4) != 4 || ihl < sizeof(Ipv4Hdr) || itot < ihl || itot > rest.size())
    return DecapStatus::kBadInner;
  if (csum::fold(csum::accumulate(rest.subspan(0, ihl))) != 0xffff) return DecapStatus::kBadInner;
  inner = rest.subspan(0, itot);
  return DecapStatus::kOk;
}

TunnelXmit tunnel_xmit(const ParsedPacket& p, uint16_t mtu, bool superframe) {
  if (mtu < kMinTunnelMtu) return TunnelXmit::kMtuTooSmall;
  if (superframe) return TunnelXmit::kSegmentEncapsulate;
  if (p.ip_len + kIpipOverhead <= mtu) return TunnelXmit::kEncapsulate;
  // An ICMP error keeps its DF inside; it is never answered with another error, so the
  // outer packet is cut instead.
  const bool relaying_error = p.protocol == kProtoIcmp && is_icmp_error(p.icmp_type);
  return p.dont_fragment && !relaying_error ? TunnelXmit::kFragNeeded : TunnelXmit::kEncapsulateFragment;
}

}  // namespace lbd

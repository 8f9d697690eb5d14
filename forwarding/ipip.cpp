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

size_t ipv6_fragment_one(std::span<const uint8_t> frame, uint16_t mtu, uint32_t id, size_t index,
                         uint8_t* dst) {
  constexpr size_t l3 = sizeof(EthHdr), hlen = sizeof(Ipv6Hdr) + sizeof(Ipv6FragHdr);
  if (frame.size() < l3 + sizeof(Ipv6Hdr) || mtu < hlen + 8) return 0;
  const auto* ip = reinterpret_cast<const Ipv6Hdr*>(frame.data() + l3);
  const size_t payload = std::min<size_t>(ip->payload_len.host(), frame.size() - l3 - sizeof(Ipv6Hdr));
  const size_t chunk_max = (mtu - hlen) & ~size_t(7);
  const size_t off = index * chunk_max;
  if (off >= payload) return 0;
  const size_t chunk = std::min(chunk_max, payload - off);
  std::memcpy(dst, frame.data(), l3 + sizeof(Ipv6Hdr));
  auto* f = reinterpret_cast<Ipv6Hdr*>(dst + l3);
  f->payload_len = Be16::from_host(uint16_t(sizeof(Ipv6FragHdr) + chunk));
  f->next_header = kIp6Fragment;
  Ipv6FragHdr fh{};
  fh.next_header = ip->next_header;
  fh.off_flags = Be16::from_host(uint16_t(off | (off + chunk < payload ? 1 : 0)));  // offset in 8s << 3, M
  fh.id = Be32::from_host(id);
  std::memcpy(dst + l3 + sizeof(Ipv6Hdr), &fh, sizeof fh);
  std::memcpy(dst + l3 + hlen, frame.data() + l3 + sizeof(Ipv6Hdr) + off, chunk);
  return l3 + hlen + chunk;
}

TunnelXmit tunnel_xmit(const ParsedPacket& p, uint16_t mtu, size_t overhead, bool outer_v6, bool superframe) {
  if (mtu < min_tunnel_mtu(overhead, outer_v6) || mtu <= overhead) return TunnelXmit::kMtuTooSmall;
  if (superframe) return TunnelXmit::kSegmentEncapsulate;
  if (p.ip_len + overhead <= mtu) return TunnelXmit::kEncapsulate;
  if (p.v6) {
    // Never an error about an error; a later fragment cannot be answered (its sender learns
    // from the first's); and a datagram within IPv6's minimum must get through whatever the
    // tunnel's MTU: those go in outer fragments.
    if (is_error_message(p) || (p.fragment && !p.first_fragment) || p.ip_len <= tunnel_client_mtu(p.v6, mtu, overhead))
      return TunnelXmit::kEncapsulateFragment;
    return TunnelXmit::kFragNeeded;
  }
  // An ICMP error keeps its DF inside; it is never answered with another error, so the
  // outer packet is cut instead.
  return p.dont_fragment && !is_error_message(p) ? TunnelXmit::kFragNeeded : TunnelXmit::kEncapsulateFragment;
}

}  // namespace lbd

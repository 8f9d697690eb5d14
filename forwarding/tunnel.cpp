// IPIP, GUE and GRE encapsulation and decapsulation; see tunnel.hpp.
#include "forwarding/tunnel.hpp"

#include <cstring>

#include "forwarding/checksum.hpp"
#include "forwarding/xdp/flow_abi.h"

namespace lbd {

uint16_t gue_source_port(const ParsedPacket& p) {
  // Any well-mixed hash of the flow does (the kernel's is the skb's, random per boot); the
  // XDP program's must be this one.
  return lbd_gue_sport(p.saddr.fold(), p.daddr.fold(), p.sport, p.dport, p.protocol);
}

size_t tunnel_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, Ipv4 src, Ipv4 dst,
                          uint16_t id, const TunnelSpec& t) {
  const size_t overhead = tunnel_overhead(t);
  const size_t outer_len = size_t(p.ip_len) + overhead;
  if (outer_len > 65535 || p.l3_off + outer_len > buf.size()) return 0;
  uint8_t* l3 = buf.data() + p.l3_off;
  const auto inner_hdr = *reinterpret_cast<const Ipv4Hdr*>(l3);
  std::memmove(l3 + overhead, l3, p.ip_len);
  Ipv4Hdr outer{};
  outer.ver_ihl = 0x45;
  outer.tos = inner_hdr.tos;
  outer.tot_len = Be16::from_host(uint16_t(outer_len));
  outer.id = Be16::from_host(id);
  outer.frag_off = Be16::from_host(inner_hdr.frag_off.host() & kIpDf);
  outer.ttl = inner_hdr.ttl;
  outer.saddr = src;
  outer.daddr = dst;
  uint8_t* carrier = l3 + sizeof(Ipv4Hdr);  // what follows the outer header
  const size_t carrier_len = outer_len - sizeof(Ipv4Hdr);
  switch (t.type) {
    case TunType::kIpip: outer.protocol = kProtoIpip; break;
    case TunType::kGue: {
      outer.protocol = kProtoUdp;
      UdpHdr udp{};
      udp.sport = Be16::from_host(gue_source_port(p));
      udp.dport = Be16::from_host(t.port);
      udp.len = Be16::from_host(uint16_t(carrier_len));
      const GueHdr gue{0, kProtoIpip, Be16{}};
      std::memcpy(carrier, &udp, sizeof udp);
      std::memcpy(carrier + sizeof udp, &gue, sizeof gue);
      if (t.csum != TunCsum::kNoCsum) {
        auto* u = reinterpret_cast<UdpHdr*>(carrier);
        u->check = Be16::from_host(csum::l4_full(src, dst, kProtoUdp, {carrier, carrier_len}, 6));
      }
      break;
    }
    case TunType::kGre: {
      outer.protocol = kProtoGre;
      const bool with_csum = t.csum == TunCsum::kCsum;
      const Be16 flags = Be16::from_host(with_csum ? kGreFlagCsum : 0);
      const Be16 proto = Be16::from_host(kEtherTypeIpv4);
      std::memcpy(carrier, &flags, 2);
      std::memcpy(carrier + 2, &proto, 2);
      if (with_csum) {  // RFC 2784: over the GRE header and its payload, the field as zero
        std::memset(carrier + 4, 0, 4);
        const Be16 sum = Be16::from_host(uint16_t(~csum::fold(csum::accumulate({carrier, carrier_len}))));
        std::memcpy(carrier + 4, &sum, 2);
      }
      break;
    }
  }
  std::memcpy(l3, &outer, sizeof outer);
  auto* o = reinterpret_cast<Ipv4Hdr*>(l3);
  o->check = Be16::from_host(csum::ipv4_header({l3, sizeof(Ipv4Hdr)}));
  return p.l3_off + outer_len;
}

namespace {

// The IPv4 datagram at the start of `rest`, whole and with a valid header.
DecapStatus whole_ipv4(std::span<const uint8_t> rest, std::span<const uint8_t>& inner) {
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

// The payload of an outer IPv4 packet of protocol `proto`, as far as its total length says.
DecapStatus outer_payload(std::span<const uint8_t> packet, uint8_t proto, std::span<const uint8_t>& payload) {
  if (packet.size() < sizeof(Ipv4Hdr)) return DecapStatus::kTruncatedOuter;
  const auto* o = reinterpret_cast<const Ipv4Hdr*>(packet.data());
  const size_t ohl = (o->ver_ihl & 0x0f) * 4u;
  if ((o->ver_ihl >> 4) != 4 || o->protocol != proto) return DecapStatus::kNotIpip;
  const size_t otot = o->tot_len.host();
  if (ohl < sizeof(Ipv4Hdr) || otot < ohl || otot > packet.size()) return DecapStatus::kTruncatedOuter;
  payload = packet.subspan(ohl, otot - ohl);
  return DecapStatus::kOk;
}

uint16_t be16_at(std::span<const uint8_t> s, size_t off) { return uint16_t(s[off] << 8 | s[off + 1]); }

}  // namespace

DecapStatus ipip_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner) {
  std::span<const uint8_t> payload;
  if (const DecapStatus st = outer_payload(packet, kProtoIpip, payload); st != DecapStatus::kOk) return st;
  return whole_ipv4(payload, inner);
}

DecapStatus gre_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner) {
  std::span<const uint8_t> gre;
  if (const DecapStatus st = outer_payload(packet, kProtoGre, gre); st != DecapStatus::kOk) return st;
  if (gre.size() < 4) return DecapStatus::kTruncatedOuter;
  const uint16_t flags = be16_at(gre, 0);
  if (flags & (kGreFlagRouting | kGreVersionMask) || be16_at(gre, 2) != kEtherTypeIpv4)
    return DecapStatus::kBadInner;
  const size_t hlen = 4 + (flags & kGreFlagCsum ? 4 : 0) + (flags & kGreFlagKey ? 4 : 0) +
                      (flags & kGreFlagSeq ? 4 : 0);
  if (gre.size() < hlen) return DecapStatus::kTruncatedOuter;
  if ((flags & kGreFlagCsum) && csum::fold(csum::accumulate(gre)) != 0xffff) return DecapStatus::kBadInner;
  return whole_ipv4(gre.subspan(hlen), inner);
}

DecapStatus gue_decapsulate(std::span<uint8_t> payload, std::span<const uint8_t>& inner) {
  if (payload.size() < sizeof(GueHdr)) return DecapStatus::kTruncatedOuter;
  const uint8_t first = payload[0];
  // Version 0, a data message (not control), IPv4 inside: what IPVS sends.
  if ((first >> 6) != 0 || (first & 0x20) || payload[1] != kProtoIpip) return DecapStatus::kNotIpip;
  const size_t optlen = (first & 0x1f) * 4u;
  if (payload.size() < sizeof(GueHdr) + optlen) return DecapStatus::kTruncatedOuter;
  // fou's validate_gue_flags(): only the private flags word is known, in it only remote
  // checksum offload; the fields they announce must fit in hlen.
  const uint16_t flags = be16_at(payload, 2);
  if (flags & ~kGueFlagPriv) return DecapStatus::kBadInner;
  size_t need = 0;
  bool remcsum = false;
  if (flags & kGueFlagPriv) {
    need += 4;
    if (need > optlen) return DecapStatus::kBadInner;
    const uint32_t pflags = uint32_t(be16_at(payload, 4)) << 16 | be16_at(payload, 6);
    if (pflags & ~kGuePrivFlagRemCsum) return DecapStatus::kBadInner;
    remcsum = pflags & kGuePrivFlagRemCsum;
    if (remcsum) need += 4;
    if (need > optlen) return DecapStatus::kBadInner;
  }
  const size_t start = remcsum ? be16_at(payload, 8) : 0, offset = remcsum ? be16_at(payload, 10) : 0;
  const std::span<uint8_t> rest = payload.subspan(sizeof(GueHdr) + optlen);
  if (const DecapStatus st = whole_ipv4(rest, inner); st != DecapStatus::kOk) return st;
  if (remcsum) {
    // The sender left the pseudo-header's sum in the checksum field at `offset`: the sum
    // from `start` to the end, that field included, completes it (remcsum_adjust()).
    if (start >= inner.size() || offset < start || offset + 2 > inner.size()) return DecapStatus::kBadInner;
    const uint16_t sum = uint16_t(~csum::fold(csum::accumulate(rest.subspan(start, inner.size() - start))));
    rest[offset] = uint8_t(sum >> 8);
    rest[offset + 1] = uint8_t(sum);
  }
  return DecapStatus::kOk;
}

}  // namespace lbd

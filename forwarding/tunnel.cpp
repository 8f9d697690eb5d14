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

size_t tunnel_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, const IpAddr& src, const IpAddr& dst,
                          uint16_t id, const TunnelSpec& t) {
  const bool outer_v6 = dst.v6();
  const size_t outer_hdr = outer_v6 ? sizeof(Ipv6Hdr) : sizeof(Ipv4Hdr);
  const size_t overhead = tunnel_overhead(t, outer_v6);
  const size_t outer_len = size_t(p.ip_len) + overhead;
  if (outer_len > 65535 || p.l3_off < 2 || p.l3_off + outer_len > buf.size()) return 0;
  uint8_t* l3 = buf.data() + p.l3_off;
  // What the outer header takes from the inner one (ip_vs_prepare_tunneled_skb): the DS
  // field, the TTL / hop limit, and an IPv4 datagram's DF.
  uint8_t dsfield, ttl;
  uint16_t df = 0;
  if (p.v6) {
    dsfield = uint8_t((l3[0] & 0x0f) << 4 | l3[1] >> 4);
    ttl = reinterpret_cast<const Ipv6Hdr*>(l3)->hop_limit;
  } else {
    const auto* inner = reinterpret_cast<const Ipv4Hdr*>(l3);
    dsfield = inner->tos;
    ttl = inner->ttl;
    df = inner->frag_off.host() & kIpDf;
  }
  std::memmove(l3 + overhead, l3, p.ip_len);
  uint8_t next = p.v6 ? kProtoIpv6 : kProtoIpip;  // what the outer header announces
  uint8_t* carrier = l3 + outer_hdr;              // what follows the outer header
  const size_t carrier_len = outer_len - outer_hdr;
  switch (t.type) {
    case TunType::kIpip: break;
    case TunType::kGue: {
      UdpHdr udp{};
      udp.sport = Be16::from_host(gue_source_port(p));
      udp.dport = Be16::from_host(t.port);
      udp.len = Be16::from_host(uint16_t(carrier_len));
      const GueHdr gue{0, next, Be16{}};
      std::memcpy(carrier, &udp, sizeof udp);
      std::memcpy(carrier + sizeof udp, &gue, sizeof gue);
      next = kProtoUdp;
      if (t.csum != TunCsum::kNoCsum) {
        auto* u = reinterpret_cast<UdpHdr*>(carrier);
        u->check = Be16::from_host(csum::l4_full(src, dst, kProtoUdp, {carrier, carrier_len}, 6));
      }
      break;
    }
    case TunType::kGre: {
      const bool with_csum = t.csum == TunCsum::kCsum;
      const Be16 flags = Be16::from_host(with_csum ? kGreFlagCsum : 0);
      const Be16 proto = Be16::from_host(next == kProtoIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
      std::memcpy(carrier, &flags, 2);
      std::memcpy(carrier + 2, &proto, 2);
      if (with_csum) {  // RFC 2784: over the GRE header and its payload, the field as zero
        std::memset(carrier + 4, 0, 4);
        const Be16 sum = Be16::from_host(uint16_t(~csum::fold(csum::accumulate({carrier, carrier_len}))));
        std::memcpy(carrier + 4, &sum, 2);
      }
      next = kProtoGre;
      break;
    }
  }
  const Be16 ether_type = Be16::from_host(outer_v6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
  std::memcpy(l3 - 2, &ether_type, 2);
  if (outer_v6) {
    Ipv6Hdr outer{};
    outer.ver_tc_flow = Be32::from_host(6u << 28 | uint32_t(dsfield) << 20);
    outer.payload_len = Be16::from_host(uint16_t(carrier_len));
    outer.next_header = next;
    outer.hop_limit = ttl;
    outer.saddr = src.v6addr();
    outer.daddr = dst.v6addr();
    std::memcpy(l3, &outer, sizeof outer);
    return p.l3_off + outer_len;
  }
  Ipv4Hdr outer{};
  outer.ver_ihl = 0x45;
  outer.tos = dsfield;
  outer.tot_len = Be16::from_host(uint16_t(outer_len));
  outer.id = Be16::from_host(id);
  outer.frag_off = Be16::from_host(df);
  outer.ttl = ttl;
  outer.protocol = next;
  outer.saddr = src.v4();
  outer.daddr = dst.v4();
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

// The IPv6 datagram at the start of `rest`, whole (its payload length within `rest`; a
// jumbogram's 0 is refused: no tunnel carries one).
DecapStatus whole_ipv6(std::span<const uint8_t> rest, std::span<const uint8_t>& inner) {
  if (rest.size() < sizeof(Ipv6Hdr)) return DecapStatus::kBadInner;
  const auto* i = reinterpret_cast<const Ipv6Hdr*>(rest.data());
  const size_t len = sizeof(Ipv6Hdr) + i->payload_len.host();
  if ((rest[0] >> 4) != 6 || i->payload_len.host() == 0 || len > rest.size()) return DecapStatus::kBadInner;
  inner = rest.subspan(0, len);
  return DecapStatus::kOk;
}

// The datagram a carrier announced as protocol `proto` (4: IPv4, 41: IPv6).
DecapStatus whole_inner(uint8_t proto, std::span<const uint8_t> rest, std::span<const uint8_t>& inner) {
  if (proto == kProtoIpip) return whole_ipv4(rest, inner);
  if (proto == kProtoIpv6) return whole_ipv6(rest, inner);
  return DecapStatus::kNotIpip;
}

uint16_t be16_at(std::span<const uint8_t> s, size_t off) { return uint16_t(s[off] << 8 | s[off + 1]); }

// A GRE header (RFC 2784/2890, version 0, no routing) and the datagram after it.
DecapStatus gre_inner(std::span<const uint8_t> gre, std::span<const uint8_t>& inner) {
  if (gre.size() < 4) return DecapStatus::kTruncatedOuter;
  const uint16_t flags = be16_at(gre, 0), proto = be16_at(gre, 2);
  if (flags & (kGreFlagRouting | kGreVersionMask) || (proto != kEtherTypeIpv4 && proto != kEtherTypeIpv6))
    return DecapStatus::kBadInner;
  const size_t hlen = 4 + (flags & kGreFlagCsum ? 4 : 0) + (flags & kGreFlagKey ? 4 : 0) +
                      (flags & kGreFlagSeq ? 4 : 0);
  if (gre.size() < hlen) return DecapStatus::kTruncatedOuter;
  if ((flags & kGreFlagCsum) && csum::fold(csum::accumulate(gre)) != 0xffff) return DecapStatus::kBadInner;
  const DecapStatus st = whole_inner(proto == kEtherTypeIpv6 ? kProtoIpv6 : kProtoIpip, gre.subspan(hlen), inner);
  return st == DecapStatus::kNotIpip ? DecapStatus::kBadInner : st;
}

// The payload of an outer IPv4 packet of protocol `proto`, as far as its total length says.
DecapStatus outer_payload(std::span<const uint8_t> packet, uint8_t& proto, std::span<const uint8_t>& payload) {
  if (packet.size() < sizeof(Ipv4Hdr)) return DecapStatus::kTruncatedOuter;
  const auto* o = reinterpret_cast<const Ipv4Hdr*>(packet.data());
  const size_t ohl = (o->ver_ihl & 0x0f) * 4u;
  if ((o->ver_ihl >> 4) != 4) return DecapStatus::kNotIpip;
  const size_t otot = o->tot_len.host();
  if (ohl < sizeof(Ipv4Hdr) || otot < ohl || otot > packet.size()) return DecapStatus::kTruncatedOuter;
  proto = o->protocol;
  payload = packet.subspan(ohl, otot - ohl);
  return DecapStatus::kOk;
}

}  // namespace

DecapStatus ipip_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner) {
  std::span<const uint8_t> payload;
  uint8_t proto = 0;
  if (const DecapStatus st = outer_payload(packet, proto, payload); st != DecapStatus::kOk) return st;
  return whole_inner(proto, payload, inner);
}

DecapStatus gre_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner) {
  std::span<const uint8_t> gre;
  uint8_t proto = 0;
  if (const DecapStatus st = outer_payload(packet, proto, gre); st != DecapStatus::kOk) return st;
  if (proto != kProtoGre) return DecapStatus::kNotIpip;
  return gre_inner(gre, inner);
}

DecapStatus carrier_decapsulate(uint8_t proto, std::span<const uint8_t> payload, std::span<const uint8_t>& inner) {
  if (proto == kProtoGre) return gre_inner(payload, inner);
  return whole_inner(proto, payload, inner);
}

DecapStatus gue_decapsulate(std::span<uint8_t> payload, std::span<const uint8_t>& inner) {
  if (payload.size() < sizeof(GueHdr)) return DecapStatus::kTruncatedOuter;
  const uint8_t first = payload[0];
  // Version 0, a data message (not control), IPv4 or IPv6 inside: what IPVS sends.
  if ((first >> 6) != 0 || (first & 0x20) || (payload[1] != kProtoIpip && payload[1] != kProtoIpv6))
    return DecapStatus::kNotIpip;
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
  if (const DecapStatus st = whole_inner(payload[1], rest, inner); st != DecapStatus::kOk) return st;
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

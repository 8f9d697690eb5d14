// Bounds-checked Ethernet/IPv4/TCP/UDP/ARP parsing; see packet.hpp for the contract.
#include "forwarding/packet.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace lbd {

std::string to_string(Ipv4 a) { return fmt::format("{}", a); }

std::string to_string(const IpAddr& a) { return fmt::format("{}", a); }

std::string to_string(const MacAddr& m) { return fmt::format("{}", m); }

size_t ipv6_text(const Ipv6& a, char (&buf)[46]) {
  static_assert(sizeof buf >= INET6_ADDRSTRLEN);
  return inet_ntop(AF_INET6, a.b.data(), buf, sizeof buf) ? std::strlen(buf) : 0;
}

bool parse_ip(std::string_view s, IpAddr& out) {
  Ipv4 v4;
  if (parse_ipv4(s, v4)) {
    out = v4;
    return true;
  }
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN || s.find(':') == std::string_view::npos) return false;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  Ipv6 a;
  // An IPv4-mapped address (::ffff:198.18.0.1) is how IpAddr holds IPv4: not an IPv6 one.
  if (inet_pton(AF_INET6, buf, a.b.data()) != 1 || IpAddr::mapped(a.b)) return false;
  out = IpAddr(a);
  return true;
}

std::vector<Ipv4> ipv4_only(const std::vector<IpAddr>& v) {
  std::vector<Ipv4> out;
  for (const IpAddr& a : v)
    if (!a.v6()) out.push_back(a.v4());
  return out;
}

std::string addr_port(const IpAddr& a, uint16_t port) {
  return a.v6() ? fmt::format("[{}]:{}", a, port) : fmt::format("{}:{}", a, port);
}

IpAddr masked(const IpAddr& a, unsigned prefix) {
  IpAddr r = a;
  const unsigned skip = a.v6() ? 0 : 96;  // an IPv4 address's bits start at byte 12
  for (unsigned bit = prefix; bit < a.width(); ++bit)
    r.b[(skip + bit) / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  return r;
}

bool parse_ipv4(std::string_view s, Ipv4& out) {
  Ipv4 r;
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (int i = 0; i < 4; ++i) {
    if (p == end || *p < '0' || *p > '9') return false;
    unsigned v = 0;
    auto [q, ec] = std::from_chars(p, end, v);
    if (ec != std::errc{} || v > 255 || q - p > 3) return false;
    r.b[i] = uint8_t(v);
    p = q;
    if (i < 3) {
      if (p == end || *p != '.') return false;
      ++p;
    }
  }
  if (p != end) return false;
  out = r;
  return true;
}

const char* to_string(DropReason r) {
  switch (r) {
    case DropReason::kTruncatedEthernet: return "truncated_ethernet";
    case DropReason::kUnsupportedEtherType: return "unsupported_ethertype";
    case DropReason::kTruncatedIp: return "truncated_ip";
    case DropReason::kBadIpVersion: return "bad_ip_version";
    case DropReason::kBadIhl: return "bad_ihl";
    case DropReason::kBadIpLength: return "bad_ip_length";
    case DropReason::kIpOptions: return "ip_options";
    case DropReason::kFragment: return "fragment";
    case DropReason::kUnsupportedProtocol: return "unsupported_protocol";
    case DropReason::kTruncatedL4: return "truncated_l4";
    case DropReason::kBadTcpOffset: return "bad_tcp_offset";
    case DropReason::kBadUdpLength: return "bad_udp_length";
    case DropReason::kMalformedArp: return "malformed_arp";
    case DropReason::kNoService: return "no_service";
    case DropReason::kNotSyn: return "not_syn";
    case DropReason::kNoRealServer: return "no_real_server";
    case DropReason::kConnTableFull: return "conn_table_full";
    case DropReason::kRealUnavailable: return "real_unavailable";
    case DropReason::kNextHopUnresolved: return "next_hop_unresolved";
    case DropReason::kFrameTooBig: return "frame_too_big";
    case DropReason::kInjectFailed: return "inject_failed";
    case DropReason::kTruncatedIcmpQuote: return "truncated_icmp_quote";
    case DropReason::kUnhandledIcmp: return "unhandled_icmp";
    case DropReason::kIcmpNoConnection: return "icmp_no_connection";
    case DropReason::kOrphanReply: return "orphan_reply";
    case DropReason::kNatTupleBusy: return "nat_tuple_busy";
    case DropReason::kTunnelMtuTooSmall: return "tunnel_mtu_too_small";
    case DropReason::kFragNeeded: return "frag_needed";
    case DropReason::kRealDown: return "real_down";
    case DropReason::kIcmpNotSent: return "icmp_not_sent";
    case DropReason::kFragmentUnmatched: return "fragment_unmatched";
    case DropReason::kBadChecksum: return "bad_checksum";
    case DropReason::kBadArpSender: return "bad_arp_sender";
    case DropReason::kPmtuNotOurs: return "pmtu_not_ours";
    case DropReason::kBackupOnly: return "backup_only";
    case DropReason::kVipArpOff: return "vip_arp_off";
    case DropReason::kBadExtHeader: return "bad_ext_header";
    case DropReason::kRoutingHeader: return "routing_header";
    case DropReason::kMalformedNdp: return "malformed_ndp";
    case DropReason::kMappedAddress: return "mapped_address";
    case DropReason::kCount: break;
  }
  return "unknown";
}

static bool fail(DropReason& why, DropReason r) {
  why = r;
  return false;
}

// TCP/UDP/ICMP/ICMPv6 of a whole datagram, which `datagram` (the frame up to its end) holds
// from out.l4_off: the L4 views are bounded by it, not by the frame (which may be padded).
static bool parse_l4(std::span<const uint8_t> datagram, ParsedPacket& out, DropReason& why) {
  out.sport = out.dport = 0;
  out.tcp_flags = 0;
  if (out.protocol == kProtoTcp) {
    const auto* tcp = header_at<TcpHdr>(datagram, out.l4_off);
    if (!tcp) return fail(why, DropReason::kTruncatedL4);
    const unsigned doff = (tcp->doff_res >> 4) * 4u;
    if (doff < sizeof(TcpHdr) || out.l4_off + doff > datagram.size())
      return fail(why, DropReason::kBadTcpOffset);
    out.sport = tcp->sport.host();
    out.dport = tcp->dport.host();
    out.tcp_flags = tcp->flags;
    return true;
  }
  if (out.protocol == kProtoUdp) {
    const auto* udp = header_at<UdpHdr>(datagram, out.l4_off);
    if (!udp) return fail(why, DropReason::kTruncatedL4);
    const unsigned ulen = udp->len.host();
    if (ulen < sizeof(UdpHdr) || ulen != datagram.size() - out.l4_off) return fail(why, DropReason::kBadUdpLength);
    out.sport = udp->sport.host();
    out.dport = udp->dport.host();
    return true;
  }
  if (out.protocol == (out.v6 ? kProtoIcmpv6 : kProtoIcmp)) {
    const auto* icmp = header_at<IcmpHdr>(datagram, out.l4_off);
    if (!icmp) return fail(why, DropReason::kTruncatedL4);
    out.icmp_type = icmp->type;
    out.icmp_code = icmp->code;
    const bool echo = out.v6 ? icmp->type == icmp6_type::kEchoRequest || icmp->type == icmp6_type::kEchoReply
                             : icmp->type == icmp_type::kEchoRequest || icmp->type == icmp_type::kEchoReply;
    out.sport = echo ? icmp->id.host() : 0;
    return true;
  }
  return fail(why, DropReason::kUnsupportedProtocol);
}

// The first 8 bytes of a first fragment's L4 header, when it holds them: ports and flags.
static void first_fragment_ports(std::span<const uint8_t> frame, size_t end, ParsedPacket& out) {
  if ((out.protocol == kProtoTcp || out.protocol == kProtoUdp) && size_t(out.l4_off) + 8 <= end) {
    const uint8_t* l4 = frame.data() + out.l4_off;
    out.sport = uint16_t(l4[0] << 8 | l4[1]);
    out.dport = uint16_t(l4[2] << 8 | l4[3]);
    if (out.protocol == kProtoTcp && size_t(out.l4_off) + sizeof(TcpHdr) <= end) out.tcp_flags = l4[13];
  } else {
    out.first_fragment = false;  // too short to name a flow: treated like a later one
  }
}

static constexpr int kMaxExtHeaders = 8;

// Where an IPv6 packet's extension headers lead: the upper-layer protocol and its offset,
// and the fragment header's facts (a later fragment's walk stops after it: what follows is
// data, not a header).
struct Ipv6Walk {
  uint8_t protocol = 0;
  size_t l4_off = 0;
  bool fragment = false, first_fragment = false;
  uint32_t id = 0;
};

// Walks the extension headers from `off` (whose type is `next`) within [off, end), in RFC
// 8200's order: hop-by-hop first only, at most kMaxExtHeaders, each within `end`, one
// fragment header (an atomic one is a whole packet), a routing header with segments left
// not for this hop. False with `why` when the chain is not one lbd walks.
static bool walk_ipv6(std::span<const uint8_t> frame, size_t off, size_t end, uint8_t next, Ipv6Walk& w,
                      DropReason& why) {
  for (int n = 0;; ++n) {
    if (next != kIp6HopByHop && next != kIp6Routing && next != kIp6DestOpts && next != kIp6Ah &&
        next != kIp6Fragment)
      break;
    if (n == kMaxExtHeaders || (next == kIp6HopByHop && n != 0) || off + 8 > end)
      return fail(why, DropReason::kBadExtHeader);
    const uint8_t* h = frame.data() + off;
    if (next == kIp6Fragment) {
      if (w.fragment) return fail(why, DropReason::kBadExtHeader);  // two fragment headers
      const auto* f = reinterpret_cast<const Ipv6FragHdr*>(h);
      const uint16_t offset = f->off_flags.host() >> 3;
      const bool more = f->off_flags.host() & 1;
      next = f->next_header;
      off += sizeof(Ipv6FragHdr);
      if (offset == 0 && !more) continue;  // an atomic fragment (RFC 6946): a whole packet
      w.fragment = true;
      w.first_fragment = offset == 0;
      w.id = f->id.host();
      if (!w.first_fragment) break;
      continue;
    }
    const size_t len = next == kIp6Ah ? (size_t(h[1]) + 2) * 4 : (size_t(h[1]) + 1) * 8;
    if (off + len > end) return fail(why, DropReason::kBadExtHeader);
    if (next == kIp6Routing && h[3] != 0) return fail(why, DropReason::kRoutingHeader);
    next = h[0];
    off += len;
  }
  w.protocol = next;
  w.l4_off = off;
  return true;
}

static bool parse_ipv6(std::span<const uint8_t> frame, ParsedPacket& out, DropReason& why) {
  const auto* ip = header_at<Ipv6Hdr>(frame, out.l3_off);
  if (!ip) return fail(why, DropReason::kTruncatedIp);
  if ((ip->ver_tc_flow.b[0] >> 4) != 6) return fail(why, DropReason::kBadIpVersion);
  const size_t payload = ip->payload_len.host();
  // 0 is a jumbogram's (RFC 2675), which no Ethernet frame carries.
  const size_t end = out.l3_off + sizeof(Ipv6Hdr) + payload;
  if (payload == 0 || end > frame.size()) return fail(why, DropReason::kBadIpLength);
  out.v6 = true;
  out.ip_len = uint16_t(sizeof(Ipv6Hdr) + payload);
  out.dont_fragment = true;
  out.saddr = IpAddr(ip->saddr);
  out.daddr = IpAddr(ip->daddr);
  if (!out.saddr.v6() || !out.daddr.v6()) return fail(why, DropReason::kMappedAddress);
  out.sport = out.dport = 0;
  out.tcp_flags = 0;
  Ipv6Walk w;
  if (!walk_ipv6(frame, out.l3_off + sizeof(Ipv6Hdr), end, ip->next_header, w, why)) return false;
  out.fragment = w.fragment;
  out.first_fragment = w.first_fragment;
  out.ip_id = w.id;
  out.protocol = w.protocol;
  out.l4_off = uint16_t(w.l4_off);
  if (out.fragment) {
    if (out.first_fragment) first_fragment_ports(frame, end, out);
    return fail(why, DropReason::kFragment);
  }
  return parse_l4(frame.subspan(0, end), out, why);
}

bool parse_frame(std::span<const uint8_t> frame, ParsedPacket& out, DropReason& why) {
  const auto* eth = header_at<EthHdr>(frame, 0);
  if (!eth) return fail(why, DropReason::kTruncatedEthernet);
  out.ether_type = eth->type.host();
  out.l3_off = sizeof(EthHdr);

  if (out.ether_type == kEtherTypeArp) {
    const auto* arp = header_at<ArpHdr>(frame, out.l3_off);
    if (!arp || arp->htype.host() != 1 || arp->ptype.host() != kEtherTypeIpv4 || arp->hlen != 6 ||
        arp->plen != 4)
      return fail(why, DropReason::kMalformedArp);
    return true;
  }
  if (out.ether_type == kEtherTypeIpv6) return parse_ipv6(frame, out, why);
  if (out.ether_type != kEtherTypeIpv4) return fail(why, DropReason::kUnsupportedEtherType);

  const auto* ip = header_at<Ipv4Hdr>(frame, out.l3_off);
  if (!ip) return fail(why, DropReason::kTruncatedIp);
  if ((ip->ver_ihl >> 4) != 4) return fail(why, DropReason::kBadIpVersion);
  const unsigned ihl = (ip->ver_ihl & 0x0f) * 4u;
  if (ihl < sizeof(Ipv4Hdr)) return fail(why, DropReason::kBadIhl);
  const unsigned tot = ip->tot_len.host();
  if (tot < ihl || out.l3_off + tot > frame.size()) return fail(why, DropReason::kBadIpLength);
  if (ihl != sizeof(Ipv4Hdr)) return fail(why, DropReason::kIpOptions);
  out.v6 = false;
  out.ip_len = uint16_t(tot);
  out.dont_fragment = (ip->frag_off.host() & kIpDf) != 0;
  out.protocol = ip->protocol;
  out.saddr = ip->saddr;
  out.daddr = ip->daddr;
  out.l4_off = uint16_t(out.l3_off + ihl);
  out.ip_id = ip->id.host();
  out.fragment = (ip->frag_off.host() & 0x3fff) != 0;
  out.first_fragment = out.fragment && (ip->frag_off.host() & 0x1fff) == 0;
  out.sport = out.dport = 0;
  out.tcp_flags = 0;
  if (out.fragment) {
    // More-fragments set or a non-zero offset: not a whole packet. A first fragment
    // still names its ports (its first 8 L4 bytes), and a TCP one its flags.
    if (out.first_fragment) first_fragment_ports(frame, out.l3_off + tot, out);
    return fail(why, DropReason::kFragment);
  }
  return parse_l4(frame.subspan(0, out.l3_off + tot), out, why);
}

bool parse_quote(std::span<const uint8_t> frame, size_t off, size_t end, IcmpQuote& q) {
  if (end > frame.size() || off >= end) return false;
  q.sport = q.dport = 0;
  if ((frame[off] >> 4) == 6) {
    // An IPv6 quote: its fixed header, then the extension headers as parse_frame walks them,
    // within the quote.
    if (off + sizeof(Ipv6Hdr) > end) return false;
    const auto* ip = reinterpret_cast<const Ipv6Hdr*>(frame.data() + off);
    q.ip_off = uint16_t(off);
    q.end = uint16_t(end);
    q.saddr = IpAddr(ip->saddr);
    q.daddr = IpAddr(ip->daddr);
    q.tot_len = uint16_t(sizeof(Ipv6Hdr) + ip->payload_len.host());
    q.dont_fragment = true;
    // (A later fragment's quote names no ports: not one lbd can place.)
    Ipv6Walk w;
    DropReason why{};
    if (!walk_ipv6(frame, off + sizeof(Ipv6Hdr), end, ip->next_header, w, why) || (w.fragment && !w.first_fragment))
      return false;
    q.protocol = w.protocol;
    q.l4_off = uint16_t(w.l4_off);
  } else {
    if (off + sizeof(Ipv4Hdr) > end) return false;
    const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame.data() + off);
    const unsigned ihl = (ip->ver_ihl & 0x0f) * 4u;
    if ((ip->ver_ihl >> 4) != 4 || ihl < sizeof(Ipv4Hdr) || off + ihl > end) return false;
    q.ip_off = uint16_t(off);
    q.l4_off = uint16_t(off + ihl);
    q.end = uint16_t(end);
    q.protocol = ip->protocol;
    q.saddr = ip->saddr;
    q.daddr = ip->daddr;
    q.tot_len = ip->tot_len.host();
    q.dont_fragment = (ip->frag_off.host() & kIpDf) != 0;
  }
  if (q.protocol == kProtoTcp || q.protocol == kProtoUdp) {
    if (size_t(q.l4_off) + 8 > end) return false;  // RFC 792/4443 quote at least 8 bytes: the ports
    const uint8_t* l4 = frame.data() + q.l4_off;
    q.sport = uint16_t(l4[0] << 8 | l4[1]);
    q.dport = uint16_t(l4[2] << 8 | l4[3]);
  }
  return true;
}

}  // namespace lbd

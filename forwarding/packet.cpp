// Bounds-checked Ethernet/IPv4/TCP/UDP/ARP parsing; see packet.hpp for the contract.
#include "forwarding/packet.hpp"

#include <charconv>
#include <cstdio>

namespace lbd {

std::string to_string(Ipv4 a) { return fmt::format("{}", a); }

std::string to_string(const MacAddr& m) { return fmt::format("{}", m); }

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
    case DropReason::kCount: break;
  }
  return "unknown";
}

static bool fail(DropReason& why, DropReason r) {
  why = r;
  return false;
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
  if (out.ether_type != kEtherTypeIpv4) return fail(why, DropReason::kUnsupportedEtherType);

  const auto* ip = header_at<Ipv4Hdr>(frame, out.l3_off);
  if (!ip) return fail(why, DropReason::kTruncatedIp);
  if ((ip->ver_ihl >> 4) != 4) return fail(why, DropReason::kBadIpVersion);
  const unsigned ihl = (ip->ver_ihl & 0x0f) * 4u;
  if (ihl < sizeof(Ipv4Hdr)) return fail(why, DropReason::kBadIhl);
  const unsigned tot = ip->tot_len.host();
  if (tot < ihl || out.l3_off + tot > frame.size()) return fail(why, DropReason::kBadIpLength);
  if (ihl != sizeof(Ipv4Hdr)) return fail(why, DropReason::kIpOptions);
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
    if (out.first_fragment && (out.protocol == kProtoTcp || out.protocol == kProtoUdp) &&
        size_t(out.l4_off) + 8 <= out.l3_off + tot) {
      const uint8_t* l4 = frame.data() + out.l4_off;
      out.sport = uint16_t(l4[0] << 8 | l4[1]);
      out.dport = uint16_t(l4[2] << 8 | l4[3]);
      if (out.protocol == kProtoTcp && size_t(out.l4_off) + sizeof(TcpHdr) <= out.l3_off + tot)
        out.tcp_flags = l4[13];
    } else if (out.first_fragment) {
      out.first_fragment = false;  // too short to name a flow: treated like a later one
    }
    return fail(why, DropReason::kFragment);
  }
  // L4 views are bounded by the IP datagram, not the frame (which may be padded).
  const auto datagram = frame.subspan(0, out.l3_off + tot);

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
    if (ulen < sizeof(UdpHdr) || ulen != tot - ihl) return fail(why, DropReason::kBadUdpLength);
    out.sport = udp->sport.host();
    out.dport = udp->dport.host();
    out.tcp_flags = 0;
    return true;
  }
  if (out.protocol == kProtoIcmp) {
    const auto* icmp = header_at<IcmpHdr>(datagram, out.l4_off);
    if (!icmp) return fail(why, DropReason::kTruncatedL4);
    out.icmp_type = icmp->type;
    out.icmp_code = icmp->code;
    const bool echo = icmp->type == icmp_type::kEchoRequest || icmp->type == icmp_type::kEchoReply;
    out.sport = echo ? icmp->id.host() : 0;
    out.dport = 0;
    out.tcp_flags = 0;
    return true;
  }
  return fail(why, DropReason::kUnsupportedProtocol);
}

bool parse_quote(std::span<const uint8_t> frame, size_t off, size_t end, IcmpQuote& q) {
  if (end > frame.size() || off + sizeof(Ipv4Hdr) > end) return false;
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
  q.sport = q.dport = 0;
  if (q.protocol == kProtoTcp || q.protocol == kProtoUdp) {
    if (size_t(q.l4_off) + 8 > end) return false;  // RFC 792 quotes at least 8 bytes: the ports
    const uint8_t* l4 = frame.data() + q.l4_off;
    q.sport = uint16_t(l4[0] << 8 | l4[1]);
    q.dport = uint16_t(l4[2] << 8 | l4[3]);
  }
  return true;
}

}  // namespace lbd

// lbd's traffic, and its renderings; see traffic_model.hpp.
#include "lb/core/traffic_model.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lbd {
namespace {

bool has(const std::vector<IpAddr>& v, const IpAddr& a) { return std::find(v.begin(), v.end(), a) != v.end(); }
Ipv4 ipv4_at(const uint8_t* p) { return Ipv4{{p[0], p[1], p[2], p[3]}}; }
uint16_t u16_at(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
bool icmp_error_type(uint8_t type) { return type == 3 || type == 4 || type == 11; }

}  // namespace

// Pings and ICMP errors to a VIP are lbd's to answer or pass on (the kernel would answer a
// local VIP's ping a second time, or forward the rest); later fragments carry no ports and
// lbd forwards them after their first one. A NAT real's replies and ICMP errors go to
// clients through lbd only (with ip_forward=1 the kernel would otherwise forward them with
// the real's address as source), but not what it sends to the director itself (@local).
const char* const kGuardRules =
    "    ip daddr . meta l4proto . th dport @svc drop\n"
    "    ip daddr . meta l4proto @svc_any drop\n"
    "    ip daddr @vips icmp type { echo-request, destination-unreachable, source-quench, time-exceeded } drop\n"
    "    ip daddr @vips ip frag-off & 0x1fff != 0 drop\n"
    "    ip saddr . meta l4proto . th sport @nat ip daddr != @local drop\n"
    "    ip saddr @nat_addrs ip daddr != @local icmp type { destination-unreachable, source-quench, "
    "time-exceeded } drop\n"
    "    ip saddr @nat_addrs ip daddr != @local ip frag-off & 0x1fff != 0 drop\n"
    // IPv6: the same, with ICMPv6's errors and fragment headers (Neighbour Solicitations
    // for a VIP are answered by lbd; the kernel keeps its copy, as of ARP).
    "    ip6 daddr . meta l4proto . th dport @svc6 drop\n"
    "    ip6 daddr . meta l4proto @svc_any6 drop\n"
    "    ip6 daddr @vips6 icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, "
    "parameter-problem } drop\n"
    "    ip6 daddr @vips6 exthdr frag exists drop\n"
    "    ip6 saddr . meta l4proto . th sport @nat6 ip6 daddr != @local6 drop\n"
    "    ip6 saddr @nat_addrs6 ip6 daddr != @local6 icmpv6 type { destination-unreachable, packet-too-big, "
    "time-exceeded, parameter-problem } drop\n"
    "    ip6 saddr @nat_addrs6 ip6 daddr != @local6 exthdr frag exists drop\n";

TrafficModel traffic_model(const ServiceTable& services, std::vector<IpAddr> local) {
  TrafficModel m;
  services.for_each_service([&](const Service& s) {
    if (s.key.fwmark) {
      (s.key.vip.v6() ? m.fwmarks6 : m.fwmarks).push_back(s.key.fwmark);
      for (uint32_t id : s.reals) {
        const Real& r = services.real(id);
        if (r.fwd == FwdMethod::kMasq && !has(m.fwmark_nat_addrs, r.addr)) m.fwmark_nat_addrs.push_back(r.addr);
      }
    } else {
      m.services.push_back({s.key.protocol, s.key.vip, s.key.port});
    }
    for (uint32_t id : s.reals) {
      const Real& r = services.real(id);
      if (r.fwd != FwdMethod::kTunnel) continue;
      m.tunnels = true;
      if (r.tun.type == TunType::kGue && std::find(m.gue_ports.begin(), m.gue_ports.end(), r.tun.port) == m.gue_ports.end())
        m.gue_ports.push_back(r.tun.port);
    }
  });
  m.service_count = services.service_count();
  m.vips = services.vips();
  for (const auto& e : services.nat_endpoints()) {
    m.nat.push_back({e.protocol, e.addr, e.port});
    if (!has(m.nat_addrs, e.addr)) m.nat_addrs.push_back(e.addr);
  }
  m.local = std::move(local);
  return m;
}

TrafficModel::Claim TrafficModel::classify(std::span<const uint8_t> f) const {
  if (f.size() < sizeof(EthHdr)) return Claim::kNone;
  const uint16_t ether_type = u16_at(f.data() + 12);
  if (ether_type == kEtherTypeArp) {  // a request for a VIP: lbd answers, the kernel ignores it
    if (f.size() < 42 || u16_at(f.data() + 20) != 1) return Claim::kNone;
    return has(vips, ipv4_at(f.data() + 38)) ? Claim::kSeen : Claim::kNone;
  }
  if (ether_type == kEtherTypeIpv6) return classify6(f);
  if (ether_type != kEtherTypeIpv4 || f.size() < sizeof(EthHdr) + sizeof(Ipv4Hdr)) return Claim::kNone;
  const uint8_t* ip = f.data() + sizeof(EthHdr);
  const size_t ihl = (ip[0] & 0x0f) * 4u;
  if ((ip[0] >> 4) != 4 || ihl < sizeof(Ipv4Hdr) || f.size() < sizeof(EthHdr) + ihl) return Claim::kNone;
  const uint8_t protocol = ip[9];
  const Ipv4 saddr = ipv4_at(ip + 12), daddr = ipv4_at(ip + 16);
  const bool later_fragment = u16_at(ip + 6) & 0x1fff;
  const uint8_t* l4 = ip + ihl;
  const size_t l4_len = f.size() - sizeof(EthHdr) - ihl;
  const bool to_local = has(local, daddr);
  if ((protocol == kProtoTcp || protocol == kProtoUdp) && !later_fragment && l4_len >= 4) {
    const uint16_t sport = u16_at(l4), dport = u16_at(l4 + 2);
    for (const Endpoint& s : services)
      if (s.protocol == protocol && s.addr == daddr && (s.port == 0 || s.port == dport)) return Claim::kOwned;
    for (const Endpoint& n : nat)
      if (n.protocol == protocol && n.addr == saddr && n.port == sport && !to_local) return Claim::kOwned;
  }
  if (later_fragment) {
    if (has(vips, daddr) || (has(nat_addrs, saddr) && !to_local)) return Claim::kOwned;
    return Claim::kNone;
  }
  if (protocol == kProtoIcmp && l4_len >= 1) {
    const uint8_t type = l4[0];
    if (has(vips, daddr)) return type == 8 || icmp_error_type(type) ? Claim::kOwned : Claim::kSeen;
    if (has(nat_addrs, saddr) && !to_local) return icmp_error_type(type) ? Claim::kOwned : Claim::kSeen;
    // icmp[17]: the protocol of the datagram an error quotes (8 + 9 bytes in); icmp[30:2]
    // its UDP destination port (a quoted header of 20 bytes: lbd's own).
    if (tunnels && icmp_error_type(type) && l4_len >= 18) {
      if (l4[17] == kProtoIpip || l4[17] == kProtoIpv6 || l4[17] == kProtoGre) return Claim::kSeen;
      if (l4[17] == kProtoUdp && l4_len >= 32 &&
          std::find(gue_ports.begin(), gue_ports.end(), u16_at(l4 + 30)) != gue_ports.end())
        return Claim::kSeen;
    }
  }
  return Claim::kNone;
}

// IPv6 as the guard's rules see it (nft's l4proto and th after the extension headers; a
// fragment header marks a fragment).
TrafficModel::Claim TrafficModel::classify6(std::span<const uint8_t> f) const {
  if (f.size() < sizeof(EthHdr) + sizeof(Ipv6Hdr)) return Claim::kNone;
  const uint8_t* ip = f.data() + sizeof(EthHdr);
  if ((ip[0] >> 4) != 6) return Claim::kNone;
  Ipv6 s6, d6;
  std::copy(ip + 8, ip + 24, s6.b.begin());
  std::copy(ip + 24, ip + 40, d6.b.begin());
  const IpAddr saddr(s6), daddr(d6);
  const bool to_local = has(local, daddr);
  uint8_t next = ip[6];
  size_t off = sizeof(Ipv6Hdr);
  const size_t len = f.size() - sizeof(EthHdr);
  bool fragment = false;
  for (int n = 0; n < 8 && off + 8 <= len; ++n) {
    if (next == kIp6Fragment) {
      fragment = true;
      next = ip[off];
      off += 8;
    } else if (next == kIp6HopByHop || next == kIp6Routing || next == kIp6DestOpts) {
      next = ip[off];
      off += (size_t(ip[off + 1]) + 1) * 8;
    } else {
      break;
    }
  }
  if (fragment) return has(vips, daddr) || (has(nat_addrs, saddr) && !to_local) ? Claim::kOwned : Claim::kNone;
  const uint8_t* l4 = ip + off;
  const size_t l4_len = off < len ? len - off : 0;
  if ((next == kProtoTcp || next == kProtoUdp) && l4_len >= 4) {
    const uint16_t sport = u16_at(l4), dport = u16_at(l4 + 2);
    for (const Endpoint& e : services)
      if (e.protocol == next && e.addr == daddr && (e.port == 0 || e.port == dport)) return Claim::kOwned;
    for (const Endpoint& n : nat)
      if (n.protocol == next && n.addr == saddr && n.port == sport && !to_local) return Claim::kOwned;
  }
  if (next == kProtoIcmpv6 && l4_len >= 1) {
    const uint8_t type = l4[0];
    const bool error = type >= icmp6_type::kDestUnreachable && type <= icmp6_type::kParamProblem;
    if (type == icmp6_type::kNeighbourSolicit && l4_len >= 24) {  // for a VIP: lbd answers, the kernel ignores it
      Ipv6 t;
      std::copy(l4 + 8, l4 + 24, t.b.begin());
      return has(vips, IpAddr(t)) ? Claim::kSeen : Claim::kNone;
    }
    if (has(vips, daddr)) return type == icmp6_type::kEchoRequest || error ? Claim::kOwned : Claim::kSeen;
    if (has(nat_addrs, saddr) && !to_local) return error ? Claim::kOwned : Claim::kSeen;
    // An error about one of lbd's IPv6 tunnel packets (unreachable, too big, time exceeded):
    // the quoted header's next header 8 + 6 bytes in (an ICMPv6 right after the fixed header,
    // quoting a header with no extensions: lbd's own), a GUE port 8 + 40 + 2 bytes in.
    if (tunnels && off == sizeof(Ipv6Hdr) && type <= icmp6_type::kTimeExceeded && type >= 1 && l4_len >= 15) {
      if (l4[14] == kProtoIpip || l4[14] == kProtoIpv6 || l4[14] == kProtoGre) return Claim::kSeen;
      if (l4[14] == kProtoUdp && l4_len >= 52 &&
          std::find(gue_ports.begin(), gue_ports.end(), u16_at(l4 + 50)) != gue_ports.end())
        return Claim::kSeen;
    }
  }
  return Claim::kNone;
}

std::string class_filter(const CaptureFilter& filter, CaptureClass c) {
  // tcp[] matches only an IPv4 TCP first fragment, ip6[53] the flags of an IPv6 TCP segment
  // right after the fixed header: anything else is a connection's.
  constexpr const char* kSyn =
      "((tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or (ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 2))";
  return fmt::format("({}) and {}{}", filter.text, c == CaptureClass::kSyns ? "" : "not ", kSyn);
}

CaptureFilter broad_capture_filter(const MacAddr& mac) {
  return {fmt::format("(arp and arp[6:2] = 1) or (ether dst {} and (ip or ip6)) or (icmp6 and ip6[40] = 135)", mac),
          true};
}

// The solicited-node multicast address a Neighbour Solicitation for `a` is sent to
// (RFC 4291 2.7.1): ff02::1:ff00:0/104 and the address's last 24 bits.
static IpAddr solicited_node(const IpAddr& a) {
  return IpAddr(Ipv6{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a.b[13], a.b[14], a.b[15]}});
}

// ARP requests and Neighbour Solicitations for a VIP, and frames sent to this interface's
// MAC for a VIP:port, from a NAT real's RIP:rport (its replies), ICMP to a VIP or from a
// NAT real, and ICMP / ICMPv6 errors quoting an IPIP, IPv6-in-IP, GRE or GUE packet (about
// our tunnels). IPv6
// packets to a VIP whose first header is not TCP, UDP or ICMPv6 (extension headers,
// fragments) are lbd's to walk. lbd's own frames never match (other destination MAC, and
// the socket ignores outgoing frames).
CaptureFilter capture_filter(const TrafficModel& m, const MacAddr& mac) {
  if (m.service_count > kMaxFilterClauses) return broad_capture_filter(mac);  // not built to be dropped
  std::string arp, ip, ip6, ns;
  size_t clauses = 0;
  auto add = [&ip, &ip6, &clauses](bool v6, const std::string& clause) {
    std::string& to = v6 ? ip6 : ip;
    to += (to.empty() ? "" : " or ") + clause;
    ++clauses;
  };
  for (const auto& s : m.services) {
    if (s.port == 0)
      add(s.addr.v6(), fmt::format("(dst host {} and {})", s.addr, protocol_token(s.protocol)));
    else
      add(s.addr.v6(), fmt::format("(dst host {} and {} dst port {})", s.addr, protocol_token(s.protocol), s.port));
  }
  std::string not_local, not_local6;
  for (const IpAddr& a : m.local) (a.v6() ? not_local6 : not_local) += fmt::format(" and not dst host {}", a);
  // Later IP fragments have no ports: matched by address (the first by its ports above).
  const char* later_fragment = "ip[6:2] & 0x1fff != 0";
  const char* ext_headers = "ip6[6] != 6 and ip6[6] != 17 and ip6[6] != 58";
  for (const auto& n : m.nat)
    add(n.addr.v6(), fmt::format("(src host {} and {} src port {}{})", n.addr, protocol_token(n.protocol), n.port,
                                 n.addr.v6() ? not_local6 : not_local));
  for (const IpAddr& a : m.nat_addrs) {
    if (a.v6()) {
      add(true, fmt::format("(icmp6 and src host {}{})", a, not_local6));
      add(true, fmt::format("(src host {} and {}{})", a, ext_headers, not_local6));
    } else {
      add(false, fmt::format("(icmp and src host {}{})", a, not_local));
      add(false, fmt::format("(src host {} and {}{})", a, later_fragment, not_local));
    }
  }
  for (const IpAddr& vip : m.vips) {
    if (vip.v6()) {
      add(true, fmt::format("(icmp6 and dst host {})", vip));
      add(true, fmt::format("(dst host {} and {})", vip, ext_headers));
      ns += fmt::format("{}dst host {}", ns.empty() ? "" : " or ", solicited_node(vip));
      continue;
    }
    arp += fmt::format("{}arp[24:4] = 0x{:08x}", arp.empty() ? "" : " or ", vip.v4().host());
    add(false, fmt::format("(icmp and dst host {})", vip));
    add(false, fmt::format("(dst host {} and {})", vip, later_fragment));
  }
  if (m.tunnels) {
    std::string quoted = "icmp[17] = 4 or icmp[17] = 41 or icmp[17] = 47";
    for (uint16_t port : m.gue_ports) quoted += fmt::format(" or (icmp[17] = 17 and icmp[30:2] = {})", port);
    add(false, fmt::format("(icmp and (icmp[0] = 3 or icmp[0] = 4 or icmp[0] = 11) and ({}))", quoted));
    // ICMPv6 at ip6[40], the quoted header's next header at ip6[54], its GUE port at ip6[90:2].
    std::string quoted6 = "ip6[54] = 4 or ip6[54] = 41 or ip6[54] = 47";
    for (uint16_t port : m.gue_ports) quoted6 += fmt::format(" or (ip6[54] = 17 and ip6[90:2] = {})", port);
    add(true, fmt::format("(icmp6 and ip6[40] >= 1 and ip6[40] <= 3 and ({}))", quoted6));
  }
  if (ip.empty() && ip6.empty()) return {"less 1"};  // no service: match nothing (no frame is that short)
  if (clauses + m.vips.size() > kMaxFilterClauses) return broad_capture_filter(mac);
  std::vector<std::string> parts;
  if (!arp.empty()) parts.push_back(fmt::format("(arp and arp[6:2] = 1 and ({}))", arp));
  if (!ip.empty()) parts.push_back(fmt::format("(ether dst {} and ip and ({}))", mac, ip));
  if (!ip6.empty()) parts.push_back(fmt::format("(ether dst {} and ip6 and ({}))", mac, ip6));
  // A solicitation for a VIP goes to its solicited-node group, not to this MAC.
  if (!ns.empty()) parts.push_back(fmt::format("(icmp6 and ip6[40] = 135 and ({}))", ns));
  return {fmt::format("{}", fmt::join(parts, " or "))};
}

// The chain's rules are fixed (kGuardRules); a change of services only adds and deletes
// elements, so one `lbadm -A` costs one element whatever the table holds, and a packet
// costs one hash lookup per rule (a rule per service was a linear walk for every packet).
GuardElements guard_elements(const TrafficModel& m) {
  GuardElements e;
  for (const auto& s : m.services) {
    if (s.port == 0)  // a port-zero (persistent) service: every port
      (s.addr.v6() ? e.svc_any6 : e.svc_any).insert(fmt::format("{} . {}", s.addr, protocol_token(s.protocol)));
    else
      (s.addr.v6() ? e.svc6 : e.svc).insert(fmt::format("{} . {} . {}", s.addr, protocol_token(s.protocol), s.port));
  }
  for (const IpAddr& vip : m.vips) (vip.v6() ? e.vips6 : e.vips).insert(to_string(vip));
  for (const auto& n : m.nat)
    (n.addr.v6() ? e.nat6 : e.nat).insert(fmt::format("{} . {} . {}", n.addr, protocol_token(n.protocol), n.port));
  for (const IpAddr& a : m.nat_addrs) (a.v6() ? e.nat_addrs6 : e.nat_addrs).insert(to_string(a));
  if (!e.nat.empty() || !e.nat6.empty())
    for (const IpAddr& a : m.local) (a.v6() ? e.local6 : e.local).insert(to_string(a));
  return e;
}

}  // namespace lbd

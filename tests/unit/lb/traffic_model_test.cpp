// One model of lbd's traffic, two renderings: on crafted frames, libpcap's own compiler and
// matcher run the capture filter (lbd sees every frame the model claims, and no other), and
// the guard's seven rules, read as nftables evaluates them over the rendered sets, drop
// exactly the frames the model owns.
#include <pcap/pcap.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "frames.hpp"
#include "lb/core/traffic_model.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

const Ipv4 kVip = ip("198.18.0.100"), kVip2 = ip("198.18.0.101"), kVip3 = ip("198.18.0.102");
const Ipv4 kClient = ip("198.18.0.1"), kDirector = ip("198.18.0.2");
const Ipv4 kRealDr = ip("198.18.0.11"), kRealNat = ip("198.18.0.12"), kRealTun = ip("198.18.0.13");
const MacAddr kMac = mac(0xd1);

bool pcap_matches(const std::string& filter, const std::vector<uint8_t>& frame) {
  pcap_t* p = pcap_open_dead(DLT_EN10MB, 65535);
  bpf_program prog{};
  REQUIRE(pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0);
  pcap_pkthdr h{};
  h.caplen = h.len = uint32_t(frame.size());
  const bool m = pcap_offline_filter(&prog, &h, frame.data()) != 0;
  pcap_freecode(&prog);
  pcap_close(p);
  return m;
}

// kGuardRules, rule by rule, over the rendered sets (nft's `th` reads no later fragment).
bool guard_drops(const GuardElements& e, const std::vector<uint8_t>& f) {
  if (f.size() < 34 || f[12] != 0x08 || f[13] != 0x00) return false;
  const uint8_t proto = f[23];
  const Ipv4 saddr{{f[26], f[27], f[28], f[29]}}, daddr{{f[30], f[31], f[32], f[33]}};
  const bool later = (uint16_t(f[20] << 8 | f[21]) & 0x1fff) != 0;
  const std::string s = to_string(saddr), d = to_string(daddr);
  const bool ports = !later && (proto == kProtoTcp || proto == kProtoUdp);
  const uint16_t sport = uint16_t(f[34] << 8 | f[35]), dport = uint16_t(f[36] << 8 | f[37]);
  const bool icmp = proto == kProtoIcmp && !later;
  const uint8_t type = f[34];
  const bool error = type == 3 || type == 4 || type == 11;
  const bool to_local = e.local.count(d);
  if (ports && e.svc.count(fmt::format("{} . {} . {}", d, protocol_token(proto), dport))) return true;
  if ((proto == kProtoTcp || proto == kProtoUdp) && e.svc_any.count(fmt::format("{} . {}", d, protocol_token(proto))))
    return true;
  if (e.vips.count(d) && icmp && (type == 8 || error)) return true;
  if (e.vips.count(d) && later) return true;
  if (ports && e.nat.count(fmt::format("{} . {} . {}", s, protocol_token(proto), sport)) && !to_local) return true;
  if (e.nat_addrs.count(s) && !to_local && icmp && error) return true;
  if (e.nat_addrs.count(s) && !to_local && later) return true;
  return false;
}

FrameSpec packet(Ipv4 from, Ipv4 to, uint8_t protocol, uint16_t sport, uint16_t dport) {
  FrameSpec s;
  s.dst = kMac;
  s.saddr = from;
  s.daddr = to;
  s.protocol = protocol;
  s.sport = sport;
  s.dport = dport;
  s.flags = tcp_flag::kAck;
  s.payload = "data";
  return s;
}
std::vector<uint8_t> later_fragment(FrameSpec s) {
  auto f = make_frame(s);
  f[20] = 0x00;
  f[21] = 0x02;  // offset 16 bytes, no DF
  return f;
}
std::vector<uint8_t> icmp(Ipv4 from, Ipv4 to, uint8_t type, uint8_t quoted_protocol = kProtoUdp) {
  IcmpSpec s;
  s.dst = kMac;
  s.saddr = from;
  s.daddr = to;
  s.type = type;
  s.code = type == 3 ? 4 : 0;
  std::vector<uint8_t> quote(28, 0);
  quote[0] = 0x45;
  quote[9] = quoted_protocol;
  if (type == 3 || type == 11) s.payload = quote;
  return make_icmp_frame(s);
}
std::vector<uint8_t> arp_request(Ipv4 target) {
  std::vector<uint8_t> f(42, 0);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  // One MAC: begin() and end() of two temporaries would copy across the stack (clang's
  // builds corrupted the heap with it; ASan names it).
  const MacAddr sender = mac(0xc1);
  std::copy(sender.b.begin(), sender.b.end(), f.begin() + 6);
  f[12] = 0x08, f[13] = 0x06, f[15] = 0x01, f[16] = 0x08, f[18] = 6, f[19] = 4, f[21] = 1;
  std::copy(sender.b.begin(), sender.b.end(), f.begin() + 22);
  std::copy(kClient.b.begin(), kClient.b.end(), f.begin() + 28);
  std::copy(target.b.begin(), target.b.end(), f.begin() + 38);
  return f;
}

}  // namespace

TEST_CASE("traffic model: the capture filter and the guard agree with it on every frame") {
  ServiceTable services;
  REQUIRE(services.add_service({kProtoTcp, kVip, 80}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoTcp, kVip, 80}, {kRealDr, 80, FwdMethod::kRoute, 1}).is_ok());
  REQUIRE(services.add_service({kProtoUdp, kVip, 53}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoUdp, kVip, 53}, {kRealNat, 5353, FwdMethod::kMasq, 1}).is_ok());
  ServiceOptions persistent{"rr"};
  persistent.persistent = 300;
  REQUIRE(services.add_service({kProtoTcp, kVip2, 0}, persistent).is_ok());
  REQUIRE(services.add_real({kProtoTcp, kVip2, 0}, {kRealDr, 0, FwdMethod::kRoute, 1}).is_ok());
  REQUIRE(services.add_service({kProtoTcp, kVip3, 80}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoTcp, kVip3, 80}, {kRealTun, 80, FwdMethod::kTunnel, 1}).is_ok());
  const TrafficModel model = traffic_model(services, {kDirector});
  const CaptureFilter filter = capture_filter(model, kMac);
  REQUIRE_FALSE(filter.broad);
  const GuardElements guard = guard_elements(model);
  using C = TrafficModel::Claim;

  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
    C claim;
  };
  const std::vector<Case> cases = {
      {"TCP to a service", make_frame(packet(kClient, kVip, kProtoTcp, 40000, 80)), C::kOwned},
      {"TCP to another port of its VIP", make_frame(packet(kClient, kVip, kProtoTcp, 40000, 81)), C::kNone},
      {"UDP to a service", make_frame(packet(kClient, kVip, kProtoUdp, 40000, 53)), C::kOwned},
      {"TCP to a port-zero service, any port", make_frame(packet(kClient, kVip2, kProtoTcp, 40000, 1234)), C::kOwned},
      {"UDP to a port-zero TCP service", make_frame(packet(kClient, kVip2, kProtoUdp, 40000, 1234)), C::kNone},
      {"a NAT real's reply", make_frame(packet(kRealNat, kClient, kProtoUdp, 5353, 40000)), C::kOwned},
      {"a NAT real to the director itself", make_frame(packet(kRealNat, kDirector, kProtoUdp, 5353, 40000)), C::kNone},
      {"a NAT real from another port", make_frame(packet(kRealNat, kClient, kProtoUdp, 9999, 40000)), C::kNone},
      {"a DR real's packet", make_frame(packet(kRealDr, kClient, kProtoTcp, 80, 40000)), C::kNone},
      {"a ping to a VIP", icmp(kClient, kVip, 8), C::kOwned},
      {"an echo reply to a VIP", icmp(kClient, kVip, 0), C::kSeen},
      {"an ICMP error to a VIP", icmp(kClient, kVip, 3), C::kOwned},
      {"an ICMP error from a NAT real", icmp(kRealNat, kClient, 3), C::kOwned},
      {"a ping from a NAT real", icmp(kRealNat, kClient, 8), C::kSeen},
      {"an ICMP error from a NAT real to the director", icmp(kRealNat, kDirector, 3), C::kNone},
      {"a later fragment to a VIP", later_fragment(packet(kClient, kVip, kProtoUdp, 1, 2)), C::kOwned},
      {"a later fragment from a NAT real", later_fragment(packet(kRealNat, kClient, kProtoUdp, 1, 2)), C::kOwned},
      {"a later fragment from a NAT real to the director", later_fragment(packet(kRealNat, kDirector, kProtoUdp, 1, 2)),
       C::kNone},
      {"a router's error quoting our IPIP", icmp(ip("198.18.0.254"), kDirector, 3, kProtoIpip), C::kSeen},
      {"a router's error quoting UDP", icmp(ip("198.18.0.254"), kDirector, 3, kProtoUdp), C::kNone},
      {"ARP for a VIP", arp_request(kVip), C::kSeen},
      {"ARP for the director", arp_request(kDirector), C::kNone},
      {"the director's own traffic", make_frame(packet(kClient, kDirector, kProtoTcp, 40000, 22)), C::kNone},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    CHECK(model.classify(c.frame) == c.claim);
    CHECK(pcap_matches(filter.text, c.frame) == (c.claim != C::kNone));
    CHECK(guard_drops(guard, c.frame) == (c.claim == C::kOwned));
    // The two capture classes split the filter: disjoint, and together all of it.
    const bool conns = pcap_matches(class_filter(filter, CaptureClass::kConnections), c.frame);
    const bool syns = pcap_matches(class_filter(filter, CaptureClass::kSyns), c.frame);
    CHECK_FALSE((conns && syns));
    CHECK((conns || syns) == (c.claim != C::kNone));
  }
  // A client's SYN is in the SYN class; its ACK, its FIN, a NAT real's SYN-ACK are not.
  auto tcp_with = [](Ipv4 s, Ipv4 d, uint16_t sp, uint16_t dp, uint8_t flags) {
    FrameSpec f = packet(s, d, kProtoTcp, sp, dp);
    f.flags = flags;
    return make_frame(f);
  };
  const std::string syn_class = class_filter(filter, CaptureClass::kSyns);
  const std::string conn_class = class_filter(filter, CaptureClass::kConnections);
  CHECK(pcap_matches(syn_class, tcp_with(kClient, kVip, 40000, 80, tcp_flag::kSyn)));
  CHECK(pcap_matches(conn_class, tcp_with(kClient, kVip, 40000, 80, tcp_flag::kAck)));
  CHECK(pcap_matches(conn_class, tcp_with(kClient, kVip, 40000, 80, tcp_flag::kFin | tcp_flag::kAck)));
  CHECK(pcap_matches(conn_class, make_frame(packet(kClient, kVip, kProtoUdp, 40000, 53))));
  CHECK(pcap_matches(conn_class, later_fragment(packet(kClient, kVip, kProtoUdp, 1, 2))));
  CHECK(pcap_matches(syn_class, tcp_with(kClient, kVip2, 40000, 1234, tcp_flag::kSyn)));
  CHECK_FALSE(pcap_matches(syn_class, tcp_with(kClient, kVip, 40000, 81, tcp_flag::kSyn)));
  // The broad filter (many services) sees every claimed frame too.
  const CaptureFilter broad = broad_capture_filter(kMac);
  for (const Case& c : cases)
    if (c.claim != C::kNone) CHECK(pcap_matches(broad.text, c.frame));
}

TEST_CASE("traffic model: no service, nothing captured or guarded") {
  ServiceTable services;
  const TrafficModel model = traffic_model(services, {kDirector});
  CHECK_FALSE(pcap_matches(capture_filter(model, kMac).text, make_frame(packet(kClient, kVip, kProtoTcp, 1, 80))));
  CHECK(guard_elements(model) == GuardElements{});
}

TEST_CASE("traffic model, IPv6: the capture filter agrees with it, the guard's IPv6 sets hold the services") {
  const IpAddr vip(v6("2001:db8::100")), nat_vip(v6("2001:db8::101")), real_nat(v6("2001:db8::13"));
  const IpAddr client(v6("2001:db8::1")), director(v6("2001:db8::2"));
  ServiceTable services;
  REQUIRE(services.add_service({kProtoTcp, vip, 80}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoTcp, vip, 80}, {IpAddr(v6("2001:db8::11")), 80, FwdMethod::kRoute, 1}).is_ok());
  REQUIRE(services.add_service({kProtoUdp, nat_vip, 53}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoUdp, nat_vip, 53}, {real_nat, 5353, FwdMethod::kMasq, 1}).is_ok());
  REQUIRE(services.add_service({kProtoTcp, kVip, 80}, {"rr"}).is_ok());  // and an IPv4 one beside them
  REQUIRE(services.add_real({kProtoTcp, kVip, 80}, {kRealDr, 80, FwdMethod::kRoute, 1}).is_ok());
  // IPv6 tunnel reals: IPIP and GUE to port 6080.
  const IpAddr tun_vip(v6("2001:db8::102")), tun_real(v6("2001:db8::21")), gue_real(v6("2001:db8::22"));
  REQUIRE(services.add_service({kProtoTcp, tun_vip, 80}, {"rr"}).is_ok());
  REQUIRE(services.add_real({kProtoTcp, tun_vip, 80}, {tun_real, 80, FwdMethod::kTunnel, 1}).is_ok());
  RealSpec gue{gue_real, 80, FwdMethod::kTunnel, 1};
  gue.tun = TunnelSpec{TunType::kGue, 6080, TunCsum::kNoCsum};
  REQUIRE(services.add_real({kProtoTcp, tun_vip, 80}, gue).is_ok());
  const TrafficModel model = traffic_model(services, {kDirector, director});
  const CaptureFilter filter = capture_filter(model, kMac);
  REQUIRE_FALSE(filter.broad);
  using C = TrafficModel::Claim;
  auto packet6 = [](const IpAddr& from, const IpAddr& to, uint8_t protocol, uint16_t sport, uint16_t dport,
                    uint8_t flags = tcp_flag::kAck) {
    FrameSpec6 s;
    s.dst = kMac;
    s.saddr = from.v6addr();
    s.daddr = to.v6addr();
    s.protocol = protocol;
    s.sport = sport;
    s.dport = dport;
    s.flags = flags;
    s.payload = "data";
    return s;
  };
  auto icmp6 = [&](const IpAddr& from, const IpAddr& to, uint8_t type) {
    FrameSpec6 s = packet6(from, to, kProtoIcmpv6, 0, 0);
    s.icmp = {type, 0, 0, 0, 0, 0, 0, 0};
    return make_frame6(s);
  };
  // A router's ICMPv6 error to the director about a packet from it to `to` whose first
  // header after the fixed one is `next` (UDP: to `port`).
  auto about_tunnel = [&](uint8_t type, const IpAddr& to, uint8_t next, uint16_t port = 0) {
    FrameSpec6 s = packet6(IpAddr(v6("2001:db8::fe")), director, kProtoIcmpv6, 0, 0);
    s.icmp = {type, 0, 0, 0, 0, 0, 0x05, 0x00, 0x60, 0, 0, 0, 0x05, 0xa0, next, 64};
    s.icmp.insert(s.icmp.end(), director.b.begin(), director.b.end());
    s.icmp.insert(s.icmp.end(), to.b.begin(), to.b.end());
    s.icmp.insert(s.icmp.end(), {0xc0, 0x01, uint8_t(port >> 8), uint8_t(port), 0x05, 0xa0, 0, 0});
    return make_frame6(s);
  };
  auto solicitation = [&](const IpAddr& target) {
    FrameSpec6 s = packet6(client, IpAddr(v6("ff02::1:ff00:0")), kProtoIcmpv6, 0, 0);
    s.daddr.b[13] = target.b[13], s.daddr.b[14] = target.b[14], s.daddr.b[15] = target.b[15];
    s.dst = MacAddr{{0x33, 0x33, 0xff, target.b[13], target.b[14], target.b[15]}};
    s.hop_limit = 255;
    s.icmp.assign(24, 0);
    s.icmp[0] = icmp6_type::kNeighbourSolicit;
    std::copy(target.b.begin(), target.b.end(), s.icmp.begin() + 8);
    return make_frame6(s);
  };
  auto with_ext = [&](FrameSpec6 s, uint8_t type, std::vector<uint8_t> h) {
    s.ext = {{type, std::move(h)}};
    return make_frame6(s);
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
    C claim;
  };
  const std::vector<Case> cases = {
      {"TCP to an IPv6 service", make_frame6(packet6(client, vip, kProtoTcp, 40000, 80)), C::kOwned},
      {"TCP to another port of its VIP", make_frame6(packet6(client, vip, kProtoTcp, 40000, 81)), C::kNone},
      {"TCP to the service behind a destination-options header",
       with_ext(packet6(client, vip, kProtoTcp, 40000, 80), kIp6DestOpts, std::vector<uint8_t>(8, 0)), C::kOwned},
      {"a fragment to a VIP",
       with_ext(packet6(client, vip, kProtoUdp, 1, 2), kIp6Fragment, {0, 0, 0, 0x11, 0, 0, 0, 1}), C::kOwned},
      {"a NAT66 real's reply", make_frame6(packet6(real_nat, client, kProtoUdp, 5353, 40000)), C::kOwned},
      {"a NAT66 real to the director itself", make_frame6(packet6(real_nat, director, kProtoUdp, 5353, 40000)),
       C::kNone},
      {"a ping to an IPv6 VIP", icmp6(client, vip, icmp6_type::kEchoRequest), C::kOwned},
      {"a Packet Too Big to a VIP", icmp6(client, vip, icmp6_type::kPacketTooBig), C::kOwned},
      {"an ICMPv6 error from a NAT66 real", icmp6(real_nat, client, icmp6_type::kDestUnreachable), C::kOwned},
      {"a solicitation for a VIP", solicitation(vip), C::kSeen},
      {"a solicitation for the director", solicitation(director), C::kNone},
      {"the director's own IPv6 traffic", make_frame6(packet6(client, director, kProtoTcp, 40000, 22)), C::kNone},
      {"a router's Packet Too Big about IPv6 in IPv6", about_tunnel(icmp6_type::kPacketTooBig, tun_real, kProtoIpv6),
       C::kSeen},
      {"... about IPv4 in IPv6", about_tunnel(icmp6_type::kPacketTooBig, tun_real, kProtoIpip), C::kSeen},
      {"a time exceeded about GRE", about_tunnel(icmp6_type::kTimeExceeded, tun_real, kProtoGre), C::kSeen},
      {"an unreachable about GUE to the tunnel port", about_tunnel(icmp6_type::kDestUnreachable, gue_real, kProtoUdp, 6080),
       C::kSeen},
      {"... about UDP to another port", about_tunnel(icmp6_type::kDestUnreachable, gue_real, kProtoUdp, 6081), C::kNone},
      {"a parameter problem about a tunnel packet", about_tunnel(icmp6_type::kParamProblem, tun_real, kProtoIpv6),
       C::kNone},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    CHECK(model.classify(c.frame) == c.claim);
    CHECK(pcap_matches(filter.text, c.frame) == (c.claim != C::kNone));
    const bool conns = pcap_matches(class_filter(filter, CaptureClass::kConnections), c.frame);
    const bool syns = pcap_matches(class_filter(filter, CaptureClass::kSyns), c.frame);
    CHECK_FALSE((conns && syns));
    CHECK((conns || syns) == (c.claim != C::kNone));
    if (c.claim != C::kNone) CHECK(pcap_matches(broad_capture_filter(kMac).text, c.frame));
  }
  CHECK(pcap_matches(class_filter(filter, CaptureClass::kSyns),
                     make_frame6(packet6(client, vip, kProtoTcp, 40000, 80, tcp_flag::kSyn))));
  CHECK(pcap_matches(class_filter(filter, CaptureClass::kConnections),
                     make_frame6(packet6(client, vip, kProtoTcp, 40000, 80, tcp_flag::kSyn | tcp_flag::kAck))));
  const GuardElements guard = guard_elements(model);
  CHECK(guard.svc6 ==
        std::set<std::string>{"2001:db8::100 . tcp . 80", "2001:db8::101 . udp . 53", "2001:db8::102 . tcp . 80"});
  CHECK(guard.svc == std::set<std::string>{"198.18.0.100 . tcp . 80"});
  CHECK(guard.vips6 == std::set<std::string>{"2001:db8::100", "2001:db8::101", "2001:db8::102"});
  CHECK(guard.nat6 == std::set<std::string>{"2001:db8::13 . udp . 5353"});
  CHECK(guard.nat_addrs6 == std::set<std::string>{"2001:db8::13"});
  CHECK(guard.local6 == std::set<std::string>{"2001:db8::2"});
  CHECK(guard.nat.empty());
}

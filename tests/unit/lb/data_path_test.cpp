// The packet path on crafted frames with an injected clock: scheduling on SYN only, the
// exact bytes sent, IPVS's counters, quiesce, deletion, expiry, ARP and every drop reason.
#include <catch2/catch.hpp>

#include <map>

#include "forwarding/checksum.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

const ServiceKey kSvc{kProtoTcp, ip("198.18.0.100"), 80};
constexpr int kIf = 7;

struct Fixture {
  ServiceTable services;
  ConnTable conns{1024, 99};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};

  explicit Fixture(const char* scheduler = "rr", int nreals = 3) {
    REQUIRE(services.add_service(kSvc, {scheduler}).is_ok());
    for (int i = 1; i <= nreals; ++i) add_real(i);
    dp.set_interfaces({{kIf, mac(0xd1)}});
  }
  void add_real(int i, int weight = 1) {
    const auto addr = Be32::from_host(0xc612000au + uint32_t(i));  // 198.18.0.10+i
    REQUIRE(services.add_real(kSvc, {addr, 80, FwdMethod::kRoute, weight}).is_ok());
    Real& r = real_at(addr);
    r.hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
  }
  Real& real_at(Ipv4 addr) {
    for (uint32_t id : services.find(kSvc)->reals)
      if (services.real(id).addr == addr) return services.real(id);
    throw std::runtime_error("no real");
  }
  // Sends a frame; returns the real index (MAC's last byte - 0xa0) it went to, or 0.
  int send(std::vector<uint8_t> f, uint64_t now_ms = 1000) {
    const Verdict v = dp.process(f, kIf, now_ms);
    if (!v.transmit) return 0;
    CHECK(v.ifindex == kIf);
    return f[5] - 0xa0;
  }
  uint64_t drops(DropReason r) const { return dp.counters().drops[size_t(r)]; }
};

FrameSpec tcp(uint16_t sport, uint8_t flags) {
  FrameSpec s;
  s.sport = sport;
  s.flags = flags;
  s.dst = mac(0xd1);
  return s;
}

}  // namespace

TEST_CASE("a SYN is scheduled and sent to the real's MAC, all other bytes unchanged") {
  Fixture fx;
  auto in = make_frame(tcp(40000, tcp_flag::kSyn));
  auto frame = in;
  const Verdict v = fx.dp.process(frame, kIf, 1000);
  REQUIRE(v.transmit);
  FrameSpec out = tcp(40000, tcp_flag::kSyn);
  out.src = mac(0xd1);
  out.dst = mac(0xa3);  // rr: newest real first
  CHECK(frame == make_frame(out));
  Real& r = fx.real_at(ip("198.18.0.13"));
  CHECK(r.dest.active_conns == 1);
  CHECK(r.stats.conns == 1);
  CHECK(r.stats.inpkts == 1);
  CHECK(r.stats.inbytes == 40);
  CHECK(fx.services.find(kSvc)->stats.inbytes == 40);
}

TEST_CASE("later segments of a connection follow it; rr spreads new ones evenly") {
  Fixture fx;
  std::map<int, int> count;
  for (uint16_t port = 1000; port < 1030; ++port) {
    const int r = fx.send(make_frame(tcp(port, tcp_flag::kSyn)));
    ++count[r];
    CHECK(fx.send(make_frame(tcp(port, tcp_flag::kAck))) == r);
    CHECK(fx.send(make_frame(tcp(port, tcp_flag::kAck | tcp_flag::kPsh))) == r);
  }
  CHECK(count == std::map<int, int>{{1, 10}, {2, 10}, {3, 10}});
}

TEST_CASE("only a SYN creates a connection; RST or data without one is dropped") {
  Fixture fx;
  CHECK(fx.send(make_frame(tcp(1, tcp_flag::kAck))) == 0);
  CHECK(fx.send(make_frame(tcp(2, tcp_flag::kSyn | tcp_flag::kRst))) == 0);
  CHECK(fx.drops(DropReason::kNotSyn) == 2);
  CHECK(fx.conns.size() == 0);
}

TEST_CASE("traffic for no service is dropped and counted") {
  Fixture fx;
  auto s = tcp(1, tcp_flag::kSyn);
  s.dport = 81;
  CHECK(fx.send(make_frame(s)) == 0);
  CHECK(fx.drops(DropReason::kNoService) == 1);
}

TEST_CASE("malformed frames are dropped with their reason and never forwarded") {
  Fixture fx;
  auto f = make_frame(tcp(1, tcp_flag::kSyn));
  f[14] = 0x44;
  CHECK(fx.send(f) == 0);
  CHECK(fx.drops(DropReason::kBadIhl) == 1);
  CHECK(fx.dp.counters().tx_frames == 0);
}

TEST_CASE("ActiveConn/InActConn follow IPVS through a connection's life") {
  Fixture fx("rr", 1);
  Real& r = fx.real_at(ip("198.18.0.11"));
  fx.send(make_frame(tcp(5, tcp_flag::kSyn)));
  CHECK((r.dest.active_conns == 1 && r.dest.inactive_conns == 0));
  fx.send(make_frame(tcp(5, tcp_flag::kAck)));
  CHECK(r.dest.active_conns == 1);
  fx.send(make_frame(tcp(5, tcp_flag::kFin | tcp_flag::kAck)));
  CHECK((r.dest.active_conns == 0 && r.dest.inactive_conns == 1));
}

TEST_CASE("UDP connections count as inactive and expire after the UDP timeout") {
  Fixture fx("rr", 1);
  REQUIRE(fx.services.add_service({kProtoUdp, ip("198.18.0.100"), 53}, {"rr"}).is_ok());
  REQUIRE(fx.services.add_real({kProtoUdp, ip("198.18.0.100"), 53},
                               {ip("198.18.0.11"), 53, FwdMethod::kRoute, 1}).is_ok());
  Real& r = fx.services.real(fx.services.find({kProtoUdp, ip("198.18.0.100"), 53})->reals[0]);
  r.hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, {}};
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.dport = 53;
  s.dst = mac(0xd1);
  s.payload = "query";
  CHECK(fx.send(make_frame(s), 0) == 1);
  CHECK((r.dest.inactive_conns == 1 && r.dest.active_conns == 0));
  CHECK(fx.dp.expire(299'000, 100) == 0);
  CHECK(fx.dp.expire(300'000, 100) == 1);
  CHECK(r.dest.inactive_conns == 0);
}

TEST_CASE("connections expire on the injected clock per their state's timeout") {
  Fixture fx("rr", 1);
  Real& r = fx.real_at(ip("198.18.0.11"));
  fx.send(make_frame(tcp(9, tcp_flag::kSyn)), 0);  // SYN_RECV: 60 s
  CHECK(fx.dp.expire(59'999, 100) == 0);
  fx.send(make_frame(tcp(9, tcp_flag::kAck)), 30'000);  // ESTABLISHED: 900 s from 30 s
  CHECK(fx.dp.expire(60'000, 100) == 0);
  CHECK(fx.dp.expire(929'000, 100) == 0);
  CHECK(r.dest.active_conns == 1);
  CHECK(fx.dp.expire(930'000, 100) == 1);
  CHECK(r.dest.active_conns == 0);
  CHECK(fx.conns.size() == 0);
}

TEST_CASE("weight 0 quiesces: no new connections, existing ones continue") {
  Fixture fx("rr", 2);
  const int first = fx.send(make_frame(tcp(100, tcp_flag::kSyn)));
  REQUIRE(first == 2);
  REQUIRE(fx.services.edit_real(kSvc, {ip("198.18.0.12"), 80, FwdMethod::kRoute, 0}).is_ok());
  for (uint16_t p = 200; p < 206; ++p) CHECK(fx.send(make_frame(tcp(p, tcp_flag::kSyn))) == 1);
  CHECK(fx.send(make_frame(tcp(100, tcp_flag::kAck))) == 2);
}

TEST_CASE("a deleted real's connections are dropped; new ones go elsewhere") {
  Fixture fx("rr", 2);
  REQUIRE(fx.send(make_frame(tcp(100, tcp_flag::kSyn))) == 2);
  REQUIRE(fx.services.delete_real(kSvc, ip("198.18.0.12"), 80).is_ok());
  CHECK(fx.send(make_frame(tcp(100, tcp_flag::kAck))) == 0);
  CHECK(fx.drops(DropReason::kRealUnavailable) == 1);
  CHECK(fx.send(make_frame(tcp(101, tcp_flag::kSyn))) == 1);
}

TEST_CASE("no schedulable real: dropped, counted, and the client told port unreachable") {
  Fixture fx("wlc", 1);
  REQUIRE(fx.services.edit_real(kSvc, {ip("198.18.0.11"), 80, FwdMethod::kRoute, 0}).is_ok());
  auto f = make_frame(tcp(1, tcp_flag::kSyn));
  f.resize(f.size() + 64);
  const Verdict v = fx.dp.process({f.data(), f.size() - 64}, kIf, 0, f.size());
  REQUIRE(v.transmit);
  CHECK(v.ifindex == kIf);
  CHECK(v.length == 14 + 20 + 8 + 40);
  CHECK(f[23] == kProtoIcmp);
  CHECK((f[34] == 3 && f[35] == 3));
  CHECK(fx.drops(DropReason::kNoRealServer) == 1);
  CHECK(fx.conns.size() == 0);
  CHECK(fx.dp.counters().icmp_unreachable_sent == 1);
}

TEST_CASE("port unreachable replies are limited to kIcmpPerSecond per second") {
  Fixture fx("rr", 1);
  REQUIRE(fx.services.edit_real(kSvc, {ip("198.18.0.11"), 80, FwdMethod::kRoute, 0}).is_ok());
  int sent = 0;
  for (uint32_t i = 0; i < DataPath::kIcmpPerSecond + 10; ++i) {
    auto f = make_frame(tcp(uint16_t(i), tcp_flag::kSyn));
    f.resize(f.size() + 64);
    sent += fx.dp.process({f.data(), f.size() - 64}, kIf, 5'000, f.size()).transmit;
  }
  CHECK(sent == int(DataPath::kIcmpPerSecond));
  CHECK(fx.dp.counters().icmp_rate_limited == 10);
  auto f = make_frame(tcp(9, tcp_flag::kSyn));
  f.resize(f.size() + 64);
  CHECK(fx.dp.process({f.data(), f.size() - 64}, kIf, 6'000, f.size()).transmit);  // next second
}

TEST_CASE("a frame for an unresolved next hop is held, then sent once resolved") {
  Fixture fx("rr", 1);
  Real& r = fx.real_at(ip("198.18.0.11"));
  r.hop.resolved = false;
  const auto syn = make_frame(tcp(1, tcp_flag::kSyn));
  CHECK(fx.send(syn, 1000) == 0);
  CHECK(fx.dp.unresolved_reals() == std::vector<uint32_t>{r.id});
  CHECK(fx.dp.held_count() == 1);
  CHECK(fx.dp.counters().total_drops() == 0);
  std::vector<std::vector<uint8_t>> sent;
  auto collect = [&](std::span<const uint8_t> f, const Verdict& v) {
    CHECK(v.ifindex == kIf);
    sent.emplace_back(f.begin(), f.end());
  };
  fx.dp.release_held(1100, collect);  // still unresolved: kept
  CHECK(sent.empty());
  r.hop.resolved = true;
  fx.dp.release_held(1200, collect);
  REQUIRE(sent.size() == 1);
  FrameSpec out = tcp(1, tcp_flag::kSyn);
  out.src = mac(0xd1);
  out.dst = mac(0xa1);
  CHECK(sent[0] == make_frame(out));
  CHECK(fx.dp.held_count() == 0);
}

TEST_CASE("a held frame whose next hop stays unresolved is dropped after kHoldMs") {
  Fixture fx("rr", 1);
  fx.real_at(ip("198.18.0.11")).hop.resolved = false;
  fx.send(make_frame(tcp(1, tcp_flag::kSyn)), 1000);
  int sent = 0;
  auto count = [&](std::span<const uint8_t>, const Verdict&) { ++sent; };
  fx.dp.release_held(1000 + DataPath::kHoldMs - 1, count);
  CHECK(fx.dp.held_count() == 1);
  fx.dp.release_held(1000 + DataPath::kHoldMs, count);
  CHECK(sent == 0);
  CHECK(fx.dp.held_count() == 0);
  CHECK(fx.drops(DropReason::kNextHopUnresolved) == 1);
}

TEST_CASE("when the hold pool is full, further frames are dropped and counted") {
  Fixture fx("rr", 1);
  fx.real_at(ip("198.18.0.11")).hop.resolved = false;
  for (uint16_t p = 1; p <= DataPath::kHeldFrames + 3; ++p) fx.send(make_frame(tcp(p, tcp_flag::kSyn)), 0);
  CHECK(fx.dp.held_count() == DataPath::kHeldFrames);
  CHECK(fx.drops(DropReason::kNextHopUnresolved) == 3);
}

TEST_CASE("a full connection table of answered connections refuses new ones") {
  ServiceTable services;
  ConnTable conns{2, 1};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  REQUIRE(services.add_service(kSvc, {"rr"}).is_ok());
  REQUIRE(services.add_real(kSvc, {ip("198.18.0.11"), 80, FwdMethod::kRoute, 1}).is_ok());
  services.real(services.find(kSvc)->reals[0]).hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, {}};
  // (A table of SYNs nobody answered makes room instead: syn_flood_test.cpp.)
  for (uint16_t p = 1; p <= 3; ++p) {
    auto f = make_frame(tcp(p, tcp_flag::kSyn));
    dp.process(f, kIf, 0);
    auto a = make_frame(tcp(p, tcp_flag::kAck));
    dp.process(a, kIf, 0);
  }
  CHECK(dp.counters().drops[size_t(DropReason::kConnTableFull)] == 1);
  CHECK(dp.counters().embryonic_evicted == 0);
  CHECK(conns.size() == 2);
}

TEST_CASE("an ARP request for a VIP is answered on the interface it came in on") {
  Fixture fx;
  auto f = make_arp_request(mac(9), ip("198.18.0.1"), ip("198.18.0.100"));
  const Verdict v = fx.dp.process(f, kIf, 0);
  REQUIRE(v.transmit);
  CHECK(v.ifindex == kIf);
  CHECK(f[21] == 2);  // ARP reply
  auto other = make_arp_request(mac(9), ip("198.18.0.1"), ip("198.18.0.99"));
  CHECK_FALSE(fx.dp.process(other, kIf, 0).transmit);
}

TEST_CASE("a partial (offloaded) checksum is completed before the frame leaves") {
  Fixture fx("rr", 1);
  auto s = tcp(77, tcp_flag::kSyn);
  s.payload = "hello";
  auto good = make_frame(s);
  auto partial = good;
  const ParsedPacket p = parse_ok(partial);
  const uint16_t pseudo = csum::fold(csum::pseudo_header(p.saddr, p.daddr, kProtoTcp, 25));
  put16(partial, 34 + 16, pseudo);
  REQUIRE(fx.dp.process(partial, kIf, 0).transmit);
  CHECK(std::equal(partial.begin() + 14, partial.end(), good.begin() + 14));
  CHECK(fx.dp.counters().checksums_completed == 1);
}

TEST_CASE("health: a down real gets no new connections; its weight stays; on-down=expire ends its connections") {
  Fixture fx;
  auto syn = make_frame(tcp(40000, tcp_flag::kSyn));
  const int first = fx.send(syn);
  REQUIRE(first == 3);
  Real& r3 = fx.real_at(ip("198.18.0.13"));
  fx.services.set_health(r3, false);
  CHECK(r3.dest.weight == 1);
  for (uint16_t port = 40001; port < 40007; ++port)
    CHECK(fx.send(make_frame(tcp(port, tcp_flag::kSyn))) != 3);
  // Default (keep): the existing connection still flows to the down real.
  CHECK(fx.send(make_frame(tcp(40000, tcp_flag::kAck))) == 3);
  // on-down=expire: its next packet ends it.
  Service& svc = fx.services.service(r3.service_id);
  svc.options.health.on_down = health::OnDown::kExpire;
  CHECK(fx.send(make_frame(tcp(40000, tcp_flag::kAck))) == 0);
  CHECK(fx.drops(DropReason::kRealDown) == 1);
  CHECK(r3.dest.active_conns == 0);
  CHECK(fx.conns.size() == 6);
  // Back up: scheduled again.
  fx.services.set_health(r3, true);
  int got3 = 0;
  for (uint16_t port = 41000; port < 41006; ++port) got3 += fx.send(make_frame(tcp(port, tcp_flag::kSyn))) == 3;
  CHECK(got3 == 2);
}

TEST_CASE("health: every real down sends new connections to the sorry server, and back") {
  Fixture fx;
  ServiceOptions opt("rr");
  auto with_sorry = health::parse_service_health("check=tcp,sorry=198.18.0.50:8080,sorry-fwd=m");
  REQUIRE(with_sorry);
  opt.health = *with_sorry;
  REQUIRE(fx.services.edit_service(kSvc, opt).is_ok());
  Service& svc = *fx.services.find(kSvc);
  REQUIRE(svc.sorry_id != Service::kNoSorry);
  Real& sorry = fx.services.real(svc.sorry_id);
  sorry.hop = NextHop{kIf, mac(0xd1), mac(0xee), 1500, true, {}};
  CHECK_FALSE(svc.sorry_active);
  bool changed = false;
  for (int i = 1; i <= 3; ++i) changed = fx.services.set_health(fx.real_at(Be32::from_host(0xc612000au + uint32_t(i))), false);
  CHECK(changed);
  CHECK(svc.sorry_active);
  auto f = make_frame(tcp(42000, tcp_flag::kSyn));
  REQUIRE(fx.dp.process(f, kIf, 1000).transmit);
  CHECK(f[5] == 0xee);  // to the sorry server, NAT: its address and port
  CHECK(parse_ok(f).daddr == ip("198.18.0.50"));
  CHECK(parse_ok(f).dport == 8080);
  CHECK(sorry.stats.conns == 1);
  CHECK(fx.services.set_health(fx.real_at(ip("198.18.0.12")), true));
  CHECK_FALSE(svc.sorry_active);
  CHECK(fx.send(make_frame(tcp(42001, tcp_flag::kSyn))) == 2);
  // Without a sorry server, all down means port unreachable (IPVS ip_vs_leave).
  auto without = health::parse_service_health("sorry=none", opt.health);
  REQUIRE(without);
  opt.health = *without;
  REQUIRE(fx.services.edit_service(kSvc, opt).is_ok());
  fx.services.set_health(fx.real_at(ip("198.18.0.12")), false);
  auto g = make_frame(tcp(42002, tcp_flag::kSyn));
  g.resize(g.size() + 600);
  const Verdict v = fx.dp.process({g.data(), g.size() - 600}, kIf, 1000, g.size());
  REQUIRE(v.transmit);
  CHECK(parse_ok({g.data(), v.length}).protocol == kProtoIcmp);
  CHECK(fx.drops(DropReason::kNoRealServer) == 1);
}

TEST_CASE("health: keepalived's quorum and hysteresis decide when the sorry server takes over") {
  // ipwrapper.c update_quorum_state(): lost when the weights up fall below quorum -
  // hysteresis (or to 0), gained again at quorum + hysteresis; while lost, the sorry server
  // takes every new connection, the reals still up none. Weights 2, 2, 1: quorum 4, hysteresis 1.
  Fixture fx;
  ServiceOptions opt("rr");
  auto h = health::parse_service_health("check=tcp,sorry=198.18.0.50,quorum=4,hysteresis=1");
  REQUIRE(h);
  opt.health = *h;
  REQUIRE(fx.services.edit_service(kSvc, opt).is_ok());
  const std::pair<const char*, int32_t> weights[] = {{"198.18.0.11", 2}, {"198.18.0.12", 2}, {"198.18.0.13", 1}};
  for (auto [a, w] : weights) REQUIRE(fx.services.edit_real(kSvc, RealSpec(ip(a), 80, FwdMethod::kRoute, w)).is_ok());
  Service& svc = *fx.services.find(kSvc);
  fx.services.real(svc.sorry_id).hop = NextHop{kIf, mac(0xd1), mac(0xee), 1500, true, {}};
  CHECK(svc.quorum);
  fx.services.set_health(fx.real_at(ip("198.18.0.11")), false);  // up: 3, not below 4 - 1
  CHECK(svc.quorum);
  CHECK_FALSE(svc.sorry_active);
  CHECK(fx.services.set_health(fx.real_at(ip("198.18.0.12")), false));  // up: 1 < 3: lost
  CHECK_FALSE(svc.quorum);
  CHECK(svc.sorry_active);
  CHECK(svc.live_weight == 1);
  auto f = make_frame(tcp(42100, tcp_flag::kSyn));
  REQUIRE(fx.dp.process(f, kIf, 1000).transmit);
  CHECK(f[5] == 0xee);  // real3 is up, but without quorum only the sorry server takes new connections
  fx.services.set_health(fx.real_at(ip("198.18.0.12")), true);  // up: 3 < 4 + 1: still lost
  CHECK_FALSE(svc.quorum);
  CHECK(fx.services.set_health(fx.real_at(ip("198.18.0.11")), true));  // up: 5: gained
  CHECK(svc.quorum);
  CHECK_FALSE(svc.sorry_active);
  CHECK(fx.send(make_frame(tcp(42101, tcp_flag::kSyn))) != 0);
  // A weight edit counts at once (-e): real1 and real2 to 0 leaves 1 up: lost.
  REQUIRE(fx.services.edit_real(kSvc, RealSpec(ip("198.18.0.11"), 80, FwdMethod::kRoute, 0)).is_ok());
  REQUIRE(fx.services.edit_real(kSvc, RealSpec(ip("198.18.0.12"), 80, FwdMethod::kRoute, 0)).is_ok());
  CHECK(svc.sorry_active);
  CHECK(health::parse_service_health("quorum=2,hysteresis=2").message() ==
        "hysteresis=2 must be below quorum=2 (keepalived's rule)");
  CHECK(health::format_service_health(*h) == "check=tcp,sorry=198.18.0.50,quorum=4,hysteresis=1");
}

TEST_CASE("a new SYN on a finished connection, or one to a down real, is scheduled afresh") {
  Fixture fx;
  REQUIRE(fx.send(make_frame(tcp(43000, tcp_flag::kSyn))) == 3);
  // A retransmitted SYN of a live connection stays with its real.
  REQUIRE(fx.send(make_frame(tcp(43000, tcp_flag::kSyn))) == 3);
  CHECK(fx.dp.counters().conns_rescheduled == 0);
  // The real goes down: the client's next SYN from the same port goes elsewhere.
  fx.services.set_health(fx.real_at(ip("198.18.0.13")), false);
  const int next = fx.send(make_frame(tcp(43000, tcp_flag::kSyn)));
  CHECK((next == 1 || next == 2));
  CHECK(fx.dp.counters().conns_rescheduled == 1);
  CHECK(fx.real_at(ip("198.18.0.13")).dest.active_conns == 0);
  CHECK(fx.conns.size() == 1);
  // Established, then RST closes it (CLOSE): a SYN from that port is a new connection.
  CHECK(fx.send(make_frame(tcp(43000, tcp_flag::kAck))) == next);
  CHECK(fx.send(make_frame(tcp(43000, tcp_flag::kRst))) == next);
  const int after = fx.send(make_frame(tcp(43000, tcp_flag::kSyn)));
  CHECK(after != 0);
  CHECK(after != next);
  CHECK(fx.dp.counters().conns_rescheduled == 2);
}

TEST_CASE("a SYN with a bad IP or TCP checksum creates no connection; the good one does") {
  Fixture fx("rr", 1);
  auto bad_tcp = make_frame(tcp(41000, tcp_flag::kSyn));
  bad_tcp[34 + 16] ^= 0x5a;  // TCP checksum
  CHECK(fx.send(bad_tcp) == 0);
  auto bad_ip = make_frame(tcp(41001, tcp_flag::kSyn));
  bad_ip[14 + 10] ^= 0x5a;  // IP header checksum
  CHECK(fx.send(bad_ip) == 0);
  CHECK(fx.drops(DropReason::kBadChecksum) == 2);
  CHECK(fx.conns.size() == 0);
  CHECK(fx.real_at(ip("198.18.0.11")).dest.active_conns == 0);
  CHECK(fx.send(make_frame(tcp(41002, tcp_flag::kSyn))) == 1);
  CHECK(fx.conns.size() == 1);
}

TEST_CASE("an ARP request for a VIP from a multicast or broadcast MAC is not answered") {
  Fixture fx;
  MacAddr group = mac(9);
  group.b[0] |= 1;
  auto f = make_arp_request(group, ip("198.18.0.1"), ip("198.18.0.100"));
  CHECK_FALSE(fx.dp.process(f, kIf, 0).transmit);
  auto bcast = make_arp_request(mac(9), ip("198.18.0.1"), ip("198.18.0.100"));
  for (int i = 6; i < 12; ++i) bcast[size_t(i)] = 0xff;  // Ethernet source ff:ff:ff:ff:ff:ff
  CHECK_FALSE(fx.dp.process(bcast, kIf, 0).transmit);
  CHECK(fx.drops(DropReason::kBadArpSender) == 2);
  CHECK(fx.dp.counters().arp_replies == 0);
}

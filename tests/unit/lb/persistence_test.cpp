// IPVS semantics behind ipvsadm's service and real options, on crafted frames with an
// injected clock: persistence templates (-p, -M, port-zero services), connection
// thresholds (-x/-y) with the overload hysteresis, one-packet scheduling (-o) and the
// rate estimator behind --rate.
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;

struct Fixture {
  ServiceTable services;
  ConnTable conns{4096, 7};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  ServiceKey key;

  Fixture(ServiceKey k, ServiceOptions opt, int nreals, uint16_t real_port)
      : key(k) {
    REQUIRE(services.add_service(key, opt).is_ok());
    for (int i = 1; i <= nreals; ++i) add_real(i, real_port);
    dp.set_interfaces({{kIf, mac(0xd1)}});
  }
  void add_real(int i, uint16_t port, uint32_t uthr = 0, uint32_t lthr = 0) {
    RealSpec spec{Be32::from_host(0xc612000au + uint32_t(i)), port, FwdMethod::kRoute, 1};
    spec.u_threshold = uthr;
    spec.l_threshold = lthr;
    REQUIRE(services.add_real(key, spec).is_ok());
    Real& r = *services.find_real(key, spec.addr, port);
    r.hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
  }
  Real& real(int i, uint16_t port) {
    return *services.find_real(key, Be32::from_host(0xc612000au + uint32_t(i)), port);
  }
  // The real index a frame went to; 0: dropped; -1: answered to the client (ICMP).
  int send(const FrameSpec& s, uint64_t now_ms = 1000) {
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(2048);  // room for an ICMP answer
    const Verdict v = dp.process(std::span<uint8_t>(f.data(), len), kIf, now_ms, f.size());
    if (!v.transmit) return 0;
    return f[5] > 0xa0 && f[5] < 0xaa ? f[5] - 0xa0 : -1;
  }
  size_t templates() const {
    size_t n = 0;
    conns.for_each([&](const Conn& c) { n += (c.flags & Conn::kTemplate) != 0; });
    return n;
  }
};

FrameSpec syn(const char* client, uint16_t sport, uint16_t dport = 80) {
  FrameSpec s;
  s.saddr = ip(client);
  s.sport = sport;
  s.dport = dport;
  s.dst = mac(0xd1);
  s.flags = tcp_flag::kSyn;
  return s;
}

ServiceOptions persistent(const char* sched, uint32_t timeout, const char* mask = "255.255.255.255") {
  ServiceOptions o{sched};
  o.persistent = timeout;
  o.netmask = ip(mask);
  return o;
}

}  // namespace

TEST_CASE("-p: a client's connections stick to one real through a template (client port 0)") {
  Fixture fx({kProtoTcp, ip("198.18.0.100"), 80}, persistent("rr", 360), 3, 80);
  const int first = fx.send(syn("198.18.1.1", 1000));
  REQUIRE(first != 0);
  for (uint16_t port = 1001; port < 1010; ++port) CHECK(fx.send(syn("198.18.1.1", port)) == first);
  // Another client gets the next real of the rotation, and keeps it too.
  const int second = fx.send(syn("198.18.1.2", 2000));
  CHECK(second != first);
  CHECK(fx.send(syn("198.18.1.2", 2001)) == second);
  CHECK(fx.templates() == 2);
  CHECK(fx.real(first, 80).persist_conns == 1);
  CHECK(fx.real(first, 80).dest.active_conns == 10);  // SYN_RECV counts as active
  // The template's key: (client network, port 0, VIP, service port), dest = the real.
  bool seen = false;
  fx.conns.for_each([&](const Conn& c) {
    if (!(c.flags & Conn::kTemplate) || !(c.key.caddr == ip("198.18.1.1"))) return;
    seen = true;
    CHECK(c.key.cport == 0);
    CHECK(c.key.vport == 80);
    CHECK(c.key.protocol == (kProtoTcp | kTemplateProtocolBit));
    CHECK(c.control == 10);
    CHECK(c.expires == 1 + 360);
  });
  CHECK(seen);
}

TEST_CASE("-M: clients of one network share a template; outside it they do not") {
  Fixture fx({kProtoTcp, ip("198.18.0.100"), 80}, persistent("rr", 60, "255.255.255.0"), 3, 80);
  const int a = fx.send(syn("198.18.1.1", 1000));
  CHECK(fx.send(syn("198.18.1.77", 1000)) == a);
  CHECK(fx.send(syn("198.18.1.254", 1000)) == a);
  CHECK(fx.send(syn("198.18.2.1", 1000)) != a);
  CHECK(fx.templates() == 2);
}

TEST_CASE("a template outlives its connections, then expires after the persistence timeout") {
  Fixture fx({kProtoUdp, ip("198.18.0.100"), 53}, persistent("rr", 30), 2, 53);
  FrameSpec d = syn("198.18.1.1", 5000, 53);
  d.protocol = kProtoUdp;
  const int r = fx.send(d, 0);
  REQUIRE(r != 0);
  // UDP connection: 300 s. The template (30 s) is kept while it controls it.
  fx.dp.expire(100'000, 1000);
  CHECK(fx.templates() == 1);
  fx.dp.expire(301'000, 1000);  // the connection expires; the template re-armed at 100 s + 30
  CHECK(fx.conns.size() == 1);
  fx.dp.expire(400'000, 1000);
  CHECK(fx.conns.size() == 0);
  CHECK(fx.real(r, 53).persist_conns == 0);
  // A new datagram after that is scheduled afresh: rr moves on.
  d.sport = 5001;
  CHECK(fx.send(d, 401'000) != r);
}

TEST_CASE("a template to a deleted or failed real is remade; a quiesced real keeps its clients") {
  Fixture fx({kProtoTcp, ip("198.18.0.100"), 80}, persistent("rr", 360), 3, 80);
  const int a = fx.send(syn("198.18.1.1", 1000));
  // Weight 0 (quiesce): new clients avoid it, the returning one still goes there (IPVS
  // expire_quiescent_template=0).
  REQUIRE(fx.services.edit_real(fx.key, {fx.real(a, 80).addr, 80, FwdMethod::kRoute, 0}).is_ok());
  CHECK(fx.send(syn("198.18.1.1", 1001)) == a);
  for (int i = 2; i < 8; ++i) CHECK(fx.send(syn(("198.18.1." + std::to_string(i)).c_str(), 1000)) != a);
  // Down by its checks: the template is remade to another real, and then sticks.
  fx.services.set_health(fx.real(a, 80), false);
  const int b = fx.send(syn("198.18.1.1", 1002));
  CHECK(b != 0);
  CHECK(b != a);
  CHECK(fx.send(syn("198.18.1.1", 1003)) == b);
  CHECK(fx.real(a, 80).persist_conns == 0);
  CHECK(fx.real(1, 80).persist_conns + fx.real(2, 80).persist_conns == 7);
  CHECK(fx.templates() == 7);
}

TEST_CASE("a port-zero persistent service takes every port, and the real keeps it") {
  Fixture fx({kProtoTcp, ip("198.18.0.100"), 0}, persistent("rr", 360), 2, 0);
  const int a = fx.send(syn("198.18.1.1", 1000, 80));
  REQUIRE(a != 0);
  CHECK(fx.send(syn("198.18.1.1", 1001, 443)) == a);
  CHECK(fx.send(syn("198.18.1.1", 1002, 8080)) == a);
  CHECK(fx.templates() == 1);  // one template for every port (vport 0)
  bool ok = true;
  fx.conns.for_each([&](const Conn& c) {
    if (c.flags & Conn::kTemplate) ok &= c.key.vport == 0;
    else ok &= c.dport == c.key.vport;
  });
  CHECK(ok);
  // A non-persistent service on a specific port wins over the port-zero one.
  REQUIRE(fx.services.add_service({kProtoTcp, ip("198.18.0.100"), 22}, {"rr"}).is_ok());
  CHECK(fx.send(syn("198.18.1.1", 1003, 22)) == -1);  // its own service, with no real: ICMP
}

TEST_CASE("-x/-y: an overloaded real gets no new connections until below -y (or 3/4 of -x)") {
  Fixture fx({kProtoTcp, ip("198.18.0.100"), 80}, ServiceOptions{"wlc"}, 0, 80);
  fx.add_real(1, 80, 4, 2);  // real 1: at 4 connections overloaded, back under 2
  fx.add_real(2, 80, 0, 0);
  // Fill real 1 to its threshold while real 2 is quiesced.
  fx.real(2, 80).dest.weight = 0;
  for (uint16_t p = 1; p <= 4; ++p) CHECK(fx.send(syn("198.18.1.1", p)) == 1);
  CHECK(fx.real(1, 80).dest.overloaded);
  CHECK(fx.send(syn("198.18.1.1", 5)) == -1);  // nobody schedulable: port unreachable
  fx.real(2, 80).dest.weight = 1;
  CHECK(fx.send(syn("198.18.1.1", 6)) == 2);
  // Closing connections: at 3 and 2 still overloaded (hysteresis), at 1 no longer.
  auto rst = [&](uint16_t port, uint64_t now_ms) {  // established, then reset: CLOSE
    FrameSpec s = syn("198.18.1.1", port);
    s.flags = tcp_flag::kAck;
    fx.send(s, now_ms);
    s.flags = tcp_flag::kRst;
    fx.send(s, now_ms);
  };
  rst(1, 1000);
  fx.dp.expire(12'000, 1000);  // CLOSE lasts 10 s
  CHECK(fx.real(1, 80).dest.overloaded);  // 3 left, -y 2
  rst(2, 12'000);
  rst(3, 12'000);
  fx.dp.expire(24'000, 1000);
  CHECK(fx.real(1, 80).dest.active_conns == 1);
  CHECK(fx.real(1, 80).dest.inactive_conns == 0);
  CHECK(fx.conns.size() == 2);
  CHECK_FALSE(fx.real(1, 80).dest.overloaded);
}

TEST_CASE("without -y the overload ends below 3/4 of -x; editing -x up or to 0 ends it at once") {
  ServiceTable t;
  const ServiceKey k{kProtoTcp, ip("198.18.0.100"), 80};
  REQUIRE(t.add_service(k, {"rr"}).is_ok());
  RealSpec spec{ip("198.18.0.11"), 80, FwdMethod::kRoute, 1};
  spec.u_threshold = 8;
  REQUIRE(t.add_real(k, spec).is_ok());
  Real& r = *t.find_real(k, spec.addr, 80);
  for (int i = 0; i < 8; ++i) t.bind_conn(r, false);
  CHECK(r.dest.overloaded);
  t.unbind_conn(r, false);  // 7 connections: 28 < 24 is false
  t.unbind_conn(r, false);  // 6: 24 < 24 is false
  CHECK(r.dest.overloaded);
  t.unbind_conn(r, false);  // 5: 20 < 24, the overload ends
  CHECK_FALSE(r.dest.overloaded);
  for (int i = 0; i < 3; ++i) t.bind_conn(r, false);
  CHECK(r.dest.overloaded);
  spec.u_threshold = 20;
  REQUIRE(t.edit_real(k, spec).is_ok());
  CHECK_FALSE(r.dest.overloaded);
  // -y above -x (or -y without -x) is the kernel's ERANGE.
  spec.l_threshold = 30;
  CHECK(t.edit_real(k, spec).code() == ERANGE);
  RealSpec only_y{ip("198.18.0.12"), 80, FwdMethod::kRoute, 1};
  only_y.l_threshold = 10;
  CHECK(t.add_real(k, only_y).code() == ERANGE);
}

TEST_CASE("-o: every datagram of one flow is scheduled on its own, and nothing stays") {
  ServiceOptions o{"rr"};
  o.ops = true;
  Fixture fx({kProtoUdp, ip("198.18.0.100"), 53}, o, 3, 53);
  FrameSpec d = syn("198.18.1.1", 5000, 53);
  d.protocol = kProtoUdp;
  std::vector<int> got;
  for (int i = 0; i < 6; ++i) got.push_back(fx.send(d));
  CHECK(got == std::vector<int>{3, 2, 1, 3, 2, 1});
  CHECK(fx.conns.size() == 0);
  CHECK(fx.services.find(fx.key)->stats.conns == 6);
  CHECK(fx.real(1, 53).dest.inactive_conns == 0);
}

TEST_CASE("the rate estimator follows IPVS's 2-second EWMA and its rounding") {
  RateEstimator e;
  Counters c;
  // 1000 connections and 2,000,000 bytes per second, sampled every 2 s.
  for (int i = 1; i <= 100; ++i) {
    c.conns += 2000;
    c.inbytes += 4'000'000;
    estimate(e, c);
  }
  Rates r = read_rates(e);
  CHECK(r.cps == 1000);
  CHECK(r.inbps == 2'000'000);
  CHECK(r.outpps == 0);
  // First step from zero: a quarter of the rate.
  RateEstimator f;
  Counters d;
  d.inpkts = 800;  // 400 per second
  estimate(f, d);
  CHECK(read_rates(f).inpps == 100);
}

// A SYN flood against the connection table, on crafted frames with an injected clock: a
// full table gives the oldest embryonic entry (a TCP connection whose client sent only its
// SYN) to a new connection, never one whose client answered; under pressure (3/4 full) an
// embryo lives kEmbryonicPressureSeconds; the table never grows past its capacity.
#include <catch2/catch.hpp>

#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;
constexpr uint32_t kCapacity = 1024;

struct Flood {
  ServiceTable services;
  ConnTable conns{kCapacity, 5};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  ServiceKey svc{kProtoTcp, lab::kVip, 80};

  explicit Flood(FwdMethod method = FwdMethod::kRoute) {
    REQUIRE(services.add_service(svc, {"rr"}).is_ok());
    REQUIRE(services.add_real(svc, {lab::kRip, uint16_t(method == FwdMethod::kMasq ? 8080 : 80), method, 1}).is_ok());
    services.real(services.find(svc)->reals[0]).hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, lab::kDirector};
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  // A spoofed SYN from flood client number i (198.19.x.y).
  bool syn_from(uint32_t i, uint64_t now_ms = 1000) { return send(spoofed(i, tcp_flag::kSyn), now_ms); }
  static FrameSpec spoofed(uint32_t i, uint8_t flags) {
    FrameSpec s = lab::from_client(flags);
    s.saddr = Be32::from_host(0xc6130000u + i);
    s.sport = uint16_t(1024 + i % 60000);
    return s;
  }
  bool send(const FrameSpec& s, uint64_t now_ms = 1000) {
    auto f = make_frame(s);
    f.resize(f.size() + 64);
    return dp.process({f.data(), f.size() - 64}, kIf, now_ms, f.size()).transmit;
  }
  Conn* find(const FrameSpec& s) { return conns.find(ConnKey{s.saddr, s.daddr, s.sport, s.dport, s.protocol}); }
  const DataPathCounters& counters() const { return dp.counters(); }
};

}  // namespace

TEST_CASE("syn flood: a full table of embryos gives the oldest one's place to a new client") {
  Flood fl;
  for (uint32_t i = 0; i < kCapacity; ++i) REQUIRE(fl.syn_from(i));
  REQUIRE(fl.conns.full());
  CHECK(fl.counters().embryonic_evicted == 0);
  // A real client: its SYN is forwarded (the oldest embryo, flood client 0, is gone) and its
  // ACK makes the connection a proven one.
  const FrameSpec client = lab::from_client(tcp_flag::kSyn);
  CHECK(fl.send(client));
  CHECK(fl.counters().embryonic_evicted == 1);
  CHECK(fl.find(Flood::spoofed(0, tcp_flag::kSyn)) == nullptr);
  CHECK(fl.find(Flood::spoofed(1, tcp_flag::kSyn)) != nullptr);
  FrameSpec ack = client;
  ack.flags = tcp_flag::kAck;
  CHECK(fl.send(ack));
  REQUIRE(fl.find(client) != nullptr);
  CHECK(fl.find(client)->state == ConnState::kEstablished);
  // The flood goes on: 3 times the table; each SYN takes the oldest embryo's place, the
  // table stays exactly full and the real client's connection is never the one evicted.
  for (uint32_t i = kCapacity; i < 4 * kCapacity; ++i) REQUIRE(fl.syn_from(i));
  CHECK(fl.conns.size() == kCapacity);
  CHECK(fl.counters().embryonic_evicted == 1 + 3 * kCapacity);
  CHECK(fl.counters().drops[size_t(DropReason::kConnTableFull)] == 0);
  REQUIRE(fl.find(client) != nullptr);
  ack.payload = "GET / HTTP/1.0\r\n\r\n";
  CHECK(fl.send(ack));
  // The newest embryos are the ones still there (FIFO).
  CHECK(fl.find(Flood::spoofed(4 * kCapacity - 1, tcp_flag::kSyn)) != nullptr);
  CHECK(fl.find(Flood::spoofed(3 * kCapacity, tcp_flag::kSyn)) == nullptr);
  // A retransmitted SYN keeps a connection embryonic (it proves nothing).
  const uint32_t last = 4 * kCapacity - 1;
  REQUIRE(fl.syn_from(last));
  CHECK((fl.find(Flood::spoofed(last, tcp_flag::kSyn))->flags & Conn::kEmbryonic));
}

TEST_CASE("syn flood: a table of proven connections refuses the new one (nothing to evict)") {
  Flood fl;
  for (uint32_t i = 0; i < kCapacity; ++i) {
    REQUIRE(fl.syn_from(i));
    REQUIRE(fl.send(Flood::spoofed(i, tcp_flag::kAck)));
  }
  CHECK_FALSE(fl.syn_from(kCapacity));
  CHECK(fl.counters().drops[size_t(DropReason::kConnTableFull)] == 1);
  CHECK(fl.counters().embryonic_evicted == 0);
}

TEST_CASE("syn flood: under pressure an embryo lives seconds; a NAT real's SYN-ACK does not save it") {
  Flood fl(FwdMethod::kMasq);
  // Below 3/4: SYN_RECV's 60 s.
  REQUIRE(fl.syn_from(0, 1000));
  CHECK(fl.find(Flood::spoofed(0, tcp_flag::kSyn))->expires == 1 + 60);
  // From 3/4 on (the new entry counted): kEmbryonicPressureSeconds, counted.
  const uint32_t n = kCapacity / 4 * 3 - 1;
  for (uint32_t i = 1; i < n; ++i) REQUIRE(fl.syn_from(i, 1000));
  CHECK(fl.counters().embryonic_short_timeouts == 0);
  REQUIRE(fl.syn_from(n, 2000));
  CHECK(fl.find(Flood::spoofed(n, tcp_flag::kSyn))->expires == 2 + DataPath::kEmbryonicPressureSeconds);
  CHECK(fl.counters().embryonic_short_timeouts == 1);
  // The real answers the spoofed SYN (SYN-ACK to the spoofed client): still an embryo,
  // still short-lived, still evictable.
  FrameSpec synack = lab::from_real(tcp_flag::kSyn | tcp_flag::kAck);
  synack.daddr = Flood::spoofed(n, 0).saddr;
  synack.dport = Flood::spoofed(n, 0).sport;
  CHECK(fl.send(synack, 3000));
  Conn* c = fl.find(Flood::spoofed(n, tcp_flag::kSyn));
  REQUIRE(c != nullptr);
  CHECK((c->flags & Conn::kEmbryonic));
  CHECK(c->expires == 3 + DataPath::kEmbryonicPressureSeconds);
  // A real client's ACK ends its embryo: the state's own timeout again.
  const FrameSpec client = lab::from_client(tcp_flag::kSyn);
  REQUIRE(fl.send(client, 3000));
  FrameSpec ack = client;
  ack.flags = tcp_flag::kAck;
  REQUIRE(fl.send(ack, 3000));
  CHECK(fl.find(client)->expires == 3 + fl.timeouts.tcp);
  // The short-lived embryos expire by themselves; the proven connection stays.
  fl.dp.expire(3000 + 1000 * (DataPath::kEmbryonicPressureSeconds + 1), 1u << 20);
  CHECK(fl.find(Flood::spoofed(n, tcp_flag::kSyn)) == nullptr);
  CHECK(fl.find(client) != nullptr);
  CHECK(fl.find(Flood::spoofed(0, tcp_flag::kSyn)) != nullptr);  // made before the pressure: 60 s
}

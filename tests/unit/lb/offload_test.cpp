// The data path's side of the fast path, on crafted frames with the flow table in memory:
// which connections enter it and when they leave, what the kernel's packets add to the
// counters, the timeout that runs from the last of them, and each real's next hop.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;
using namespace lbd::test::lab;

namespace {

constexpr int kIf = 7;

struct Fixture : OneRealPath {
  MemoryFlowCache cache;

  explicit Fixture(FwdMethod method, uint8_t protocol = kProtoTcp, const ServiceOptions& opt = {"rr"})
      : OneRealPath(method, protocol, opt, 80, 8080, kIf) {
    dp.set_flow_cache(&cache);
  }
  Verdict run(FrameSpec s, uint64_t now_ms = 1000) {
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(len + 64);
    return dp.process({f.data(), len}, kIf, now_ms, f.size());
  }
  ConnKey key() const { return ConnKey{kClient, kVip, 40000, 80, svc.protocol}; }
  Conn* conn() { return conns.find(key()); }
  bool offloaded() { return cache.flows.count(flow_key(key())) == 1; }
};

}  // namespace

TEST_CASE("offload: a DR connection enters once established and leaves at its FIN") {
  Fixture fx(FwdMethod::kRoute);
  REQUIRE(fx.run(from_client(tcp_flag::kSyn)).transmit);
  CHECK_FALSE(fx.offloaded());  // SYN_RECV: its next packet changes the state
  REQUIRE(fx.run(from_client(tcp_flag::kAck)).transmit);
  REQUIRE(fx.conn()->state == ConnState::kEstablished);
  REQUIRE(fx.offloaded());
  const lbd_flow& f = fx.cache.flows.at(flow_key(fx.key()));
  CHECK(f.action == LBD_FLOW_DR);
  CHECK(f.real_id == fx.real().id);
  CHECK(fx.dp.counters().offload_entered == 1);

  // The kernel forwards 10 packets of 100 bytes; lbd folds them into the counters.
  for (int i = 0; i < 10; ++i) REQUIRE(fx.cache.forward(flow_key(fx.key()), 100, 2000));
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.inpkts == 12);
  CHECK(fx.real().stats.inbytes == 2 * 40 + 1000);
  CHECK(fx.services.find(fx.svc)->stats.inpkts == 12);
  fx.dp.fold_offloaded();  // nothing new: nothing added twice
  CHECK(fx.real().stats.inpkts == 12);

  // 3 more, then the FIN (the slow path): withdrawn; a listing (which folds first) counts
  // those 3 too, exactly.
  for (int i = 0; i < 3; ++i) REQUIRE(fx.cache.forward(flow_key(fx.key()), 100, 3000));
  REQUIRE(fx.run(from_client(tcp_flag::kFin | tcp_flag::kAck), 3000).transmit);
  CHECK_FALSE(fx.offloaded());
  CHECK(fx.conn()->state != ConnState::kEstablished);
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.inpkts == 16);
  CHECK(fx.real().stats.inbytes == 3 * 40 + 1300);
  CHECK(fx.dp.counters().offload_withdrawn == 1);
  CHECK(fx.dp.counters().offload_packets == 13);
}

TEST_CASE("offload: a NAT connection gets a reply entry back to the client as VIP:vport") {
  Fixture fx(FwdMethod::kMasq);
  REQUIRE(fx.run(from_client(tcp_flag::kSyn)).transmit);
  REQUIRE(fx.run(from_real(tcp_flag::kSyn | tcp_flag::kAck)).transmit);
  CHECK(fx.cache.flows.empty());
  REQUIRE(fx.run(from_client(tcp_flag::kAck)).transmit);
  REQUIRE(fx.cache.flows.size() == 2);
  const lbd_flow& in = fx.cache.flows.at(flow_key(fx.key()));
  CHECK(in.action == LBD_FLOW_NAT_IN);
  CHECK(std::memcmp(in.addr, IpAddr(kRip).b.data(), 16) == 0);  // IPv4 mapped, as the program keys it
  CHECK(ntohs(in.port) == 8080);
  const lbd_flow_key rkey = flow_key(ConnKey{kRip, kClient, 8080, 40000, kProtoTcp});
  const lbd_flow& out = fx.cache.flows.at(rkey);
  CHECK(out.action == LBD_FLOW_NAT_OUT);
  CHECK(std::memcmp(out.addr, IpAddr(kVip).b.data(), 16) == 0);
  CHECK(ntohs(out.port) == 80);
  CHECK(out.ifindex == uint32_t(kIf));
  CHECK(std::memcmp(out.eth_dst, mac(0xc1).b.data(), 6) == 0);
  CHECK(std::memcmp(out.eth_src, mac(0xd1).b.data(), 6) == 0);

  for (int i = 0; i < 5; ++i) REQUIRE(fx.cache.forward(rkey, 1000, 2000));
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.outpkts == 1 + 5);
  CHECK(fx.real().stats.outbytes == 40 + 5000);
  // The real's FIN comes by the slow path: both entries go, the reply's use folded in.
  REQUIRE(fx.cache.forward(rkey, 1000, 2500));
  REQUIRE(fx.run(from_real(tcp_flag::kFin | tcp_flag::kAck), 2600).transmit);
  CHECK(fx.cache.flows.empty());
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.outpkts == 1 + 6 + 1);
}

TEST_CASE("offload: the timeout runs from the last packet the kernel forwarded") {
  Fixture fx(FwdMethod::kRoute);
  fx.run(from_client(tcp_flag::kSyn), 1000);
  fx.run(from_client(tcp_flag::kAck), 1000);
  REQUIRE(fx.offloaded());
  const uint32_t est = fx.timeouts.seconds(ConnState::kEstablished);  // 900 s
  REQUIRE(fx.cache.forward(flow_key(fx.key()), 60, 500'000));  // a packet at 500 s
  CHECK(fx.dp.expire(uint64_t(est + 2) * 1000, 100) == 0);  // due by the slow path's clock: kept
  REQUIRE(fx.conn());
  CHECK(fx.real().dest.active_conns == 1);
  CHECK(fx.dp.expire(uint64_t(500 + est - 1) * 1000, 100) == 0);
  CHECK(fx.dp.expire(uint64_t(500 + est + 1) * 1000, 100) == 1);  // idle 900 s since then
  CHECK_FALSE(fx.conn());
  CHECK(fx.cache.flows.empty());
  CHECK(fx.real().dest.active_conns == 0);
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.inpkts == 3);
}

TEST_CASE("offload: UDP at its first datagram, never one-packet UDP nor a template") {
  SECTION("UDP") {
    Fixture fx(FwdMethod::kRoute, kProtoUdp);
    REQUIRE(fx.run(from_client(0, "", kProtoUdp)).transmit);
    CHECK(fx.offloaded());
  }
  SECTION("one-packet scheduling") {
    ServiceOptions opt{"rr"};
    opt.ops = true;
    Fixture fx(FwdMethod::kMasq, kProtoUdp, opt);
    REQUIRE(fx.run(from_client(0, "", kProtoUdp)).transmit);
    CHECK(fx.cache.flows.empty());
  }
  SECTION("persistence: the connection, not its template") {
    ServiceOptions opt{"rr"};
    opt.persistent = 300;
    opt.netmask = ip("255.255.255.255");
    Fixture fx(FwdMethod::kRoute, kProtoTcp, opt);
    fx.run(from_client(tcp_flag::kSyn));
    fx.run(from_client(tcp_flag::kAck));
    REQUIRE(fx.cache.flows.size() == 1);
    CHECK(fx.offloaded());
  }
}

TEST_CASE("offload: a full table leaves the connection on the slow path, counted") {
  Fixture fx(FwdMethod::kRoute);
  fx.cache.capacity = 0;
  fx.run(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(from_client(tcp_flag::kAck)).transmit);
  CHECK(fx.cache.flows.empty());
  CHECK(fx.dp.counters().offload_full == 1);
  CHECK_FALSE(fx.conn()->flags & Conn::kOffloaded);
  fx.cache.capacity = 1 << 20;  // room again: the refused connection is not asked again
  REQUIRE(fx.run(from_client(tcp_flag::kAck)).transmit);  // forwarded by lbd as before
  CHECK(fx.real().stats.inpkts == 3);
  CHECK(fx.cache.flows.empty());
  CHECK(fx.dp.counters().offload_full == 1);
}

TEST_CASE("offload: a real's next hop, and none while lbd would not forward to it") {
  SECTION("resolved, then deleted") {
    Fixture fx(FwdMethod::kRoute);
    fx.dp.sync_real_hops(1000);
    const uint32_t id = fx.real().id;
    REQUIRE(fx.cache.reals.count(id));
    CHECK(fx.cache.reals[id].ifindex == uint32_t(kIf));
    CHECK(fx.cache.reals[id].mtu == 1500);
    CHECK(std::memcmp(fx.cache.reals[id].eth_dst, mac(0xa1).b.data(), 6) == 0);
    CHECK(std::memcmp(fx.cache.reals[id].eth_src, mac(0xd1).b.data(), 6) == 0);
    fx.run(from_client(tcp_flag::kSyn));
    fx.run(from_client(tcp_flag::kAck));
    REQUIRE(fx.offloaded());
    REQUIRE(fx.services.delete_real(fx.svc, kRip, 8080).is_ok());
    fx.dp.sync_real_hops(1000);
    CHECK(fx.cache.reals[id].ifindex == 0);
    // Its packets now reach lbd, which drops them as without the fast path, and withdraws.
    CHECK_FALSE(fx.run(from_client(tcp_flag::kAck)).transmit);
    CHECK_FALSE(fx.offloaded());
  }
  SECTION("down by its checks: kept with on-down=keep, none with on-down=expire") {
    for (auto on_down : {health::OnDown::kKeep, health::OnDown::kExpire}) {
      ServiceOptions opt{"rr"};
      opt.health.on_down = on_down;
      Fixture fx(FwdMethod::kRoute, kProtoTcp, opt);
      fx.services.set_health(fx.real(), false);
      fx.dp.sync_real_hops(1000);
      CHECK((fx.cache.reals[fx.real().id].ifindex == 0) == (on_down == health::OnDown::kExpire));
    }
  }
  SECTION("TUN: the tunnel's endpoints and its path MTU") {
    Fixture fx(FwdMethod::kTunnel);
    fx.real().tun_pmtu = 1400;
    fx.real().tun_pmtu_until = 600;
    fx.dp.sync_real_hops(1000);
    const lbd_real_hop& h = fx.cache.reals[fx.real().id];
    CHECK(h.mtu == 1400);
    CHECK(std::memcmp(&h.tun_src, kDirector.b.data(), 4) == 0);
    CHECK(std::memcmp(&h.tun_dst, kRip.b.data(), 4) == 0);
    fx.dp.sync_real_hops(700'000);  // the report has expired: the interface's MTU again
    CHECK(fx.cache.reals[fx.real().id].mtu == 1500);
  }
}

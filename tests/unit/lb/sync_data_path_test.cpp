// Connection sync in the data path, on crafted frames with an injected clock: what a
// master queues and when (IPVS ip_vs_sync_conn_needed with sync_threshold "3 50"), what
// a backup makes of a record, and a passive backup forwarding nothing.
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;

struct Director {
  ServiceTable services;
  ConnTable conns{4096, 7};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  ServiceKey key{kProtoTcp, ip("198.18.0.100"), 80};

  explicit Director(ServiceOptions opt = ServiceOptions{"rr"}) {
    REQUIRE(services.add_service(key, opt).is_ok());
    for (int i = 1; i <= 2; ++i) {
      RealSpec spec{Be32::from_host(0xc612000au + uint32_t(i)), 80, FwdMethod::kRoute, 1};
      REQUIRE(services.add_real(key, spec).is_ok());
      services.find_real(key, spec.addr, 80)->hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
    }
    dp.set_interfaces({{kIf, mac(0xd1)}});
  }
  bool send(uint8_t flags, uint16_t sport = 40000, uint64_t now_ms = 1000) {
    FrameSpec s = lab::from_client(flags);
    s.sport = sport;
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(2048);
    return dp.process(std::span<uint8_t>(f.data(), len), kIf, now_ms, f.size()).transmit;
  }
  size_t queued() { return dp.sync_out().size(); }
};

}  // namespace

TEST_CASE("sync master: a TCP connection is sent at its 3rd client packet, then every 50th") {
  Director d;
  d.dp.set_sync_master(true);
  REQUIRE(d.send(tcp_flag::kSyn));          // SYN_RECV: never sent
  REQUIRE(d.send(tcp_flag::kAck));          // 2nd: ESTABLISHED, below the threshold
  CHECK(d.queued() == 0);
  REQUIRE(d.send(tcp_flag::kAck | tcp_flag::kPsh));  // 3rd
  REQUIRE(d.queued() == 1);
  const sync::Record r = d.dp.sync_out()[0];
  CHECK(r.protocol == kProtoTcp);
  CHECK(r.state == 1);  // IP_VS_TCP_S_ESTABLISHED
  CHECK(r.flags == sync::flag::kDroute);
  CHECK(r.timeout == 900);
  CHECK(r.caddr == lab::kClient);
  CHECK(r.cport == 40000);
  CHECK(r.vaddr == lab::kVip);
  d.dp.sync_out().clear();
  for (int pkt = 4; pkt <= 53; ++pkt) {
    REQUIRE(d.send(tcp_flag::kAck));
    CHECK(d.queued() == (pkt == 53 ? 1u : 0u));
  }
  d.dp.sync_out().clear();
  REQUIRE(d.send(tcp_flag::kFin | tcp_flag::kAck));  // FIN_WAIT: a change, sent at once
  REQUIRE(d.queued() == 1);
  CHECK(d.dp.sync_out()[0].state == 4);
  CHECK(d.dp.sync_out()[0].timeout == 120);
  CHECK(d.dp.sync_out()[0].flags == (sync::flag::kDroute | sync::flag::kInactive));
}

TEST_CASE("sync master: a persistent connection's template is sent with it, on each packet") {
  ServiceOptions o{"rr"};
  o.persistent = 300;
  Director d(o);
  d.dp.set_sync_master(true);
  REQUIRE(d.send(tcp_flag::kSyn));
  // ip_vs_sync_conn: the template (control) is considered on every packet, and a
  // template is exempt from the threshold.
  REQUIRE(d.queued() == 1);
  const sync::Record t = d.dp.sync_out()[0];
  CHECK(t.flags == (sync::flag::kTemplate | sync::flag::kInactive | sync::flag::kDroute));
  CHECK(t.cport == 0);
  CHECK(t.vport == 80);
  CHECK(t.timeout == 300);
  CHECK(t.state == 0);
  d.timeouts.sysctl.sync_persist_mode = 1;
  d.dp.sync_out().clear();
  REQUIRE(d.send(tcp_flag::kAck));
  REQUIRE(d.send(tcp_flag::kAck));  // the 3rd packet: only the template under sync_persist_mode
  REQUIRE(d.queued() == 2);
  for (const auto& r : d.dp.sync_out()) CHECK((r.flags & sync::flag::kTemplate));
}

TEST_CASE("sync master: nothing is queued without a master daemon") {
  Director d;
  for (int i = 0; i < 5; ++i) d.send(i ? tcp_flag::kAck : tcp_flag::kSyn);
  CHECK(d.queued() == 0);
}

TEST_CASE("sync backup: a record creates the connection on the real of the same address and port") {
  Director master, backup;
  master.dp.set_sync_master(true);
  REQUIRE(master.send(tcp_flag::kSyn));
  REQUIRE(master.send(tcp_flag::kAck));
  REQUIRE(master.send(tcp_flag::kAck));
  REQUIRE(master.queued() == 1);
  sync::Record r = master.dp.sync_out()[0];
  r.flags |= sync::flag::kSync;
  backup.dp.apply_sync(r, 5000);
  REQUIRE(backup.conns.size() == 1);
  const Conn* c = backup.conns.find(ConnKey{lab::kClient, lab::kVip, 40000, 80, kProtoTcp});
  REQUIRE(c);
  CHECK(c->state == ConnState::kEstablished);
  CHECK(c->daddr == r.daddr);
  CHECK(c->expires == 5 + 900);
  const Real& real = backup.services.real(c->real_id);
  CHECK(real.addr == r.daddr);
  CHECK(real.dest.active_conns == 1);
  CHECK(backup.dp.counters().sync_created == 1);

  // The backup taking over: the client's next segment goes to the same real.
  const Conn* mc = master.conns.find(ConnKey{lab::kClient, lab::kVip, 40000, 80, kProtoTcp});
  FrameSpec s = lab::from_client(tcp_flag::kAck);
  auto f = make_frame(s);
  const Verdict v = backup.dp.process(f, kIf, 6000);
  REQUIRE(v.transmit);
  CHECK(f[5] == 0xa0 + (mc->daddr.v4().b[3] - 10));

  // A later report of its end moves it to InActConn and FIN's timeout.
  r.state = 4;
  r.flags |= sync::flag::kInactive;
  r.timeout = 120;
  backup.dp.apply_sync(r, 7000);
  CHECK(backup.conns.size() == 1);
  CHECK(real.dest.active_conns == 0);
  CHECK(real.dest.inactive_conns == 1);
  CHECK(backup.dp.counters().sync_updated == 1);
}

TEST_CASE("sync backup: records for a real this director lacks are counted, not kept") {
  Director backup;
  sync::Record r;
  r.protocol = kProtoTcp;
  r.flags = sync::flag::kDroute | sync::flag::kSync;
  r.state = 1;
  r.cport = 1234;
  r.vport = 80;
  r.dport = 80;
  r.timeout = 900;
  r.caddr = lab::kClient;
  r.vaddr = lab::kVip;
  r.daddr = ip("198.18.0.99");
  backup.dp.apply_sync(r, 1000);
  CHECK(backup.conns.size() == 0);
  CHECK(backup.dp.counters().sync_no_real == 1);
}

TEST_CASE("sync backup: passive while alone (backup_only): no forwarding, no ARP for VIPs") {
  Director d;
  d.dp.set_backup_alone(true);
  CHECK_FALSE(d.send(tcp_flag::kSyn));
  CHECK(d.dp.counters().drops[size_t(DropReason::kBackupOnly)] == 1);
  auto arp = make_arp_request(mac(0xc1), lab::kClient, lab::kVip);
  CHECK_FALSE(d.dp.process(arp, kIf, 1000).transmit);
  CHECK(d.dp.counters().drops[size_t(DropReason::kVipArpOff)] == 1);
  d.timeouts.sysctl.backup_only = 0;  // IPVS's default: a backup forwards what reaches it
  CHECK(d.send(tcp_flag::kSyn));
  d.dp.set_backup_alone(false);
  d.timeouts.sysctl.backup_only = 1;
  auto arp2 = make_arp_request(mac(0xc1), lab::kClient, lab::kVip);
  CHECK(d.dp.process(arp2, kIf, 1000).transmit);
  d.dp.set_vip_arp(VipArp::kNever);
  auto arp3 = make_arp_request(mac(0xc1), lab::kClient, lab::kVip);
  CHECK_FALSE(d.dp.process(arp3, kIf, 1000).transmit);
}

TEST_CASE("sync master: sync_threshold and sync_refresh_period as IPVS's ip_vs_sync_conn_needed") {
  Director d;
  d.dp.set_sync_master(true);
  auto sent_at = [&](uint64_t ms) {
    d.dp.sync_out().clear();
    REQUIRE(d.send(tcp_flag::kAck, 40000, ms));
    return d.queued();
  };
  SECTION("period 0: once, at the threshold packet") {
    REQUIRE(set_sysctl(d.timeouts.sysctl, "sync_threshold=4,0").is_ok());
    REQUIRE(d.send(tcp_flag::kSyn));
    CHECK(sent_at(1000) == 0);  // 2nd
    CHECK(sent_at(1000) == 0);  // 3rd
    CHECK(sent_at(1000) == 1);  // 4th
    for (int i = 0; i < 60; ++i) CHECK(sent_at(1000) == 0);
  }
  SECTION("refresh period: sent when the backup's expiry would move by the period; retries an eighth apart") {
    REQUIRE(set_sysctl(d.timeouts.sysctl, "sync_threshold=3,0").is_ok());
    REQUIRE(set_sysctl(d.timeouts.sysctl, "sync_refresh_period=60").is_ok());
    REQUIRE(set_sysctl(d.timeouts.sysctl, "sync_retries=1").is_ok());
    REQUIRE(d.send(tcp_flag::kSyn, 40000, 1000));
    CHECK(sent_at(1000) == 1);    // ESTABLISHED: never sent, the expiry moves by 900 s
    CHECK(sent_at(2000) == 0);    // moved 1 s: below the period
    CHECK(sent_at(8000) == 0);    // a retry not before 1 s + 60 s / 8
    CHECK(sent_at(8600) == 1);    // ... now: the one retry
    CHECK(sent_at(30000) == 0);   // retries spent
    CHECK(sent_at(62000) == 0);   // 53.4 s since the retry's expiry
    CHECK(sent_at(70000) == 1);   // moved by the period since the last send
  }
}

TEST_CASE("sync sysctls: sync_threshold is two numbers, checked as IPVS's proc_do_sync_threshold") {
  Sysctls s;
  CHECK(sysctl_listing(s).find("sync_threshold = 3,50\n") != std::string::npos);
  CHECK(set_sysctl(s, "sync_threshold=10,100").is_ok());
  CHECK(s.sync_threshold == 10);
  CHECK(s.sync_period == 100);
  CHECK(changed_sysctls(s) == std::vector<std::string>{"sync_threshold=10,100"});
  CHECK(set_sysctl(s, "sync_threshold=5,0").is_ok());
  CHECK(set_sysctl(s, "sync_threshold=50,3").message() ==
        "--lbd-sysctl sync_threshold=50,3: the threshold must be below the period (or the period 0)");
  CHECK(set_sysctl(s, "sync_threshold=3").message() ==
        "--lbd-sysctl sync_threshold: `3' is not two numbers A,B (IPVS's \"3 50\" is 3,50)");
  CHECK(s.sync_threshold == 5);  // refusals change nothing
  CHECK(set_sysctl(s, "sync_retries=4").message() == "--lbd-sysctl sync_retries=4: expected 0 to 3");
}

TEST_CASE("sync over IPv6: a master's IPv6 connection and template reach a backup through the wire format; a tunnel across families is not synced") {
  struct Six {
    ServiceTable services;
    ConnTable conns{4096, 7};
    Timeouts timeouts;
    DataPath dp{services, conns, timeouts};
    ServiceKey key{kProtoTcp, IpAddr(v6("2001:db8::100")), 80};
    ServiceKey mixed{kProtoTcp, ip("198.18.0.100"), 80};
    Six() {
      ServiceOptions opt{"rr"};
      opt.persistent = 300;
      opt.netmask6 = 64;
      REQUIRE(services.add_service(key, opt).is_ok());
      const IpAddr rip(v6("2001:db8::13"));
      REQUIRE(services.add_real(key, {rip, 8080, FwdMethod::kMasq, 1}).is_ok());
      services.find_real(key, rip, 8080)->hop = NextHop{kIf, mac(0xd1), mac(0xa3), 1500, true, {}};
      REQUIRE(services.add_service(mixed, {"rr"}).is_ok());  // IPv4 VIP, IPv6 tunnel real
      REQUIRE(services.add_real(mixed, {rip, 80, FwdMethod::kTunnel, 1}).is_ok());
      services.find_real(mixed, rip, 80)->hop =
          NextHop{kIf, mac(0xd1), mac(0xa3), 1500, true, IpAddr(v6("2001:db8::2"))};
      dp.set_interfaces({{kIf, mac(0xd1), 1500}});
    }
  } master, backup;
  master.dp.set_sync_master(true);
  for (const uint8_t flags : {tcp_flag::kSyn, tcp_flag::kAck, tcp_flag::kAck}) {
    FrameSpec6 s;
    s.dst = mac(0xd1);
    s.flags = flags;
    auto f = make_frame6(s);
    const size_t len = f.size();
    f.resize(2048);
    REQUIRE(master.dp.process({f.data(), len}, kIf, 1000, f.size()).transmit);
  }
  REQUIRE(master.dp.sync_out().size() >= 2);  // the connection and its /64 template
  sync::MessageBuilder msg(0, 1472);
  for (const sync::Record& r : master.dp.sync_out()) {
    CHECK(r.ipv6);
    REQUIRE(msg.add(r));
  }
  const sync::Decoded d = sync::decode(msg.bytes(), 0);
  REQUIRE(d.refusal == sync::Refusal::kNone);
  for (const sync::Record& r : d.records) backup.dp.apply_sync(r, 5000);
  CHECK(backup.dp.counters().sync_created == 2);
  const Conn* c = backup.conns.find(ConnKey{IpAddr(v6("2001:db8::1")), IpAddr(v6("2001:db8::100")), 40000, 80, kProtoTcp});
  REQUIRE(c);
  CHECK(c->daddr == IpAddr(v6("2001:db8::13")));
  CHECK(c->dport == 8080);
  CHECK(c->state == ConnState::kEstablished);
  CHECK(backup.conns.find(ConnKey{IpAddr(v6("2001:db8::")), IpAddr(v6("2001:db8::100")), 0, 80,
                                  uint8_t(kProtoTcp | kTemplateProtocolBit)}));  // the /64's template

  // IPv4 in IPv6: IPVS's records have one family for all three addresses: not synced.
  master.dp.sync_out().clear();
  for (const uint8_t flags : {tcp_flag::kSyn, tcp_flag::kAck, tcp_flag::kAck}) {
    FrameSpec s = lab::from_client(flags);
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(2048);
    REQUIRE(master.dp.process({f.data(), len}, kIf, 2000, f.size()).transmit);
  }
  CHECK(master.dp.sync_out().empty());
  CHECK(master.dp.counters().sync_mixed_family >= 1);
}

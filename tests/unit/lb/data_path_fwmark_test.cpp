// Firewall-mark services through the whole packet path on crafted frames: a marked packet
// picks the mark's service whatever its address, port and protocol; one persistence template
// per client network and mark covers every port; NAT with the port kept, replies back.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;
using namespace lbd::test::lab;

namespace {

constexpr int kIf = 7;

struct FwmarkPath : PathParts {
  explicit FwmarkPath(FwdMethod method, uint32_t persistent = 0) {
    ServiceOptions opt{"rr"};
    opt.persistent = persistent;
    REQUIRE(services.add_service(fwmark_key(1), opt).is_ok());
    for (const Ipv4 rip : {kRip, ip("198.18.0.12")}) {
      REQUIRE(services.add_real(fwmark_key(1), {rip, 0, method, 1}).is_ok());
      services.find_real(fwmark_key(1), rip, 0)->hop = NextHop{kIf, mac(0xd1), mac(rip.b[3]), 1500, true, kDirector};
    }
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  Verdict run(std::vector<uint8_t>& f, uint32_t mark) {
    const size_t len = f.size();
    f.resize(len + 600);
    const Verdict v = dp.process({f.data(), len}, kIf, 1000, f.size(), mark);
    f.resize(v.length ? v.length : len);
    return v;
  }
  uint64_t drops(DropReason r) const { return dp.counters().drops[size_t(r)]; }
};

FrameSpec to(Ipv4 client, uint16_t dport, uint8_t protocol = kProtoTcp) {
  FrameSpec s = from_client(tcp_flag::kSyn, "", protocol);
  s.saddr = client;
  s.dport = dport;
  return s;
}

}  // namespace

TEST_CASE("fwmark: the mark picks the service; unmarked or another mark: no service") {
  FwmarkPath fx(FwdMethod::kRoute);
  auto f = make_frame(to(kClient, 80));
  CHECK_FALSE(fx.run(f, 0).transmit);
  CHECK(fx.drops(DropReason::kNoService) == 1);
  f = make_frame(to(kClient, 80));
  CHECK_FALSE(fx.run(f, 2).transmit);
  CHECK(fx.drops(DropReason::kNoService) == 2);
  f = make_frame(to(kClient, 53, kProtoUdp));  // any protocol the mark takes
  CHECK(fx.run(f, 1).transmit);
  CHECK(fx.dp.counters().conns_created == 1);
}

TEST_CASE("fwmark persistence: one template per client and mark, every port to one real") {
  FwmarkPath fx(FwdMethod::kRoute, 300);
  std::map<uint32_t, std::set<uint8_t>> reals_of;  // client → the real MACs its packets went to
  for (uint8_t c = 1; c <= 4; ++c) {
    const Ipv4 client = ip(("198.18.1." + std::to_string(c)).c_str());
    for (uint16_t port : {80, 443, 8443}) {
      auto f = make_frame(to(client, port));
      REQUIRE(fx.run(f, 1).transmit);
      reals_of[c].insert(f[5]);  // destination MAC's last byte: the real's
    }
  }
  for (const auto& [c, reals] : reals_of) CHECK(reals.size() == 1);
  CHECK(*reals_of[1].begin() != *reals_of[2].begin());  // rr over the new templates
  CHECK(*reals_of[1].begin() == *reals_of[3].begin());
}

TEST_CASE("fwmark NAT with port 0: the packet's port kept; the real's reply leaves as the VIP") {
  FwmarkPath fx(FwdMethod::kMasq);
  auto f = make_frame(to(kClient, 8080));
  REQUIRE(fx.run(f, 1).transmit);
  const ParsedPacket out = parse_ok(f);
  CHECK((out.daddr == kRip || out.daddr == ip("198.18.0.12")));
  CHECK(out.dport == 8080);
  FrameSpec reply = from_real(tcp_flag::kSyn | tcp_flag::kAck);
  reply.saddr = out.daddr.v4();
  reply.sport = 8080;
  auto r = make_frame(reply);
  REQUIRE(fx.run(r, 0).transmit);
  const ParsedPacket back = parse_ok(r);
  CHECK(back.saddr == kVip);
  CHECK(back.sport == 8080);
  CHECK(back.daddr == kClient);
}

TEST_CASE("fwmark sync: records carry the mark; a backup finds the service by it, template included") {
  FwmarkPath master(FwdMethod::kRoute, 300), backup(FwdMethod::kRoute, 300);
  master.dp.set_sync_master(true);
  for (uint8_t flags : {tcp_flag::kSyn, tcp_flag::kAck, tcp_flag::kAck}) {
    auto f = make_frame(from_client(flags));
    REQUIRE(master.run(f, 1).transmit);
  }
  const auto records = master.dp.sync_out();
  REQUIRE(records.size() >= 2);  // the connection and its template (sent with it, again on each packet)
  for (sync::Record r : records) {
    CHECK(r.fwmark == 1);
    r.flags |= sync::flag::kSync;
    backup.dp.apply_sync(r, 5000);
  }
  CHECK(backup.dp.counters().sync_created == 2);
  const Conn* t = backup.conns.find(ConnKey{kClient, Ipv4::from_host(1), 0, 0, kTemplateProtocolBit});
  REQUIRE(t);
  CHECK(t->flags & Conn::kTemplate);
  const Conn* c = backup.conns.find(ConnKey{kClient, kVip, 40000, 80, kProtoTcp});
  REQUIRE(c);
  CHECK(c->daddr == t->daddr);
}

TEST_CASE("fwmark -6: one mark, two services by family (IPVS keys them by af); IPv6 templates carry the mark as 0:1::") {
  FwmarkPath fx(FwdMethod::kRoute);  // -f 1 (IPv4), reals .11 and .12
  ServiceOptions opt{"rr"};
  opt.persistent = 300;
  REQUIRE(fx.services.add_service(fwmark_key6(1), opt).is_ok());
  const IpAddr rip6(v6("2001:db8::11"));
  REQUIRE(fx.services.add_real(fwmark_key6(1), {rip6, 0, FwdMethod::kRoute, 1}).is_ok());
  fx.services.find_real(fwmark_key6(1), rip6, 0)->hop = NextHop{kIf, mac(0xd1), mac(0x66), 1500, true, IpAddr(v6("2001:db8::2"))};
  // An IPv4 family real cannot join the IPv6 service (ipvsadm's family rule).
  CHECK_FALSE(fx.services.add_real(fwmark_key6(1), {kRip, 0, FwdMethod::kRoute, 1}).is_ok());
  FrameSpec6 s;
  s.dst = mac(0xd1);
  s.dport = 443;
  auto f6 = make_frame6(s);
  REQUIRE(fx.run(f6, 1).transmit);
  CHECK(f6[5] == 0x66);  // the IPv6 service's real
  auto f4 = make_frame(to(kClient, 443));
  REQUIRE(fx.run(f4, 1).transmit);
  CHECK((f4[5] == kRip.b[3] || f4[5] == 12));  // the IPv4 service's
  Ipv6 mark_addr{};
  mark_addr.b[3] = 1;
  bool found = false;
  fx.conns.for_each([&](const Conn& c) {
    if (c.flags & Conn::kTemplate) {
      CHECK(c.key.vaddr == IpAddr(mark_addr));
      CHECK(c.key.caddr == IpAddr(s.saddr));
      found = true;
    }
  });
  CHECK(found);
  CHECK(fx.services.find_for_packet(kProtoTcp, IpAddr(s.daddr), 443, 2) == nullptr);  // another mark: none
}

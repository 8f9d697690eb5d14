// NAT and TUN through the whole packet path on crafted frames: the exact frames sent both
// ways, TCP state from both directions, orphan replies, ICMP in both directions, tunnel
// MTU with frag-needed and outer fragmentation, pings to a VIP.
#include <catch2/catch.hpp>

#include "forwarding/ipip.hpp"
#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;
using namespace lbd::test::lab;

namespace {

constexpr int kIf = 7;

struct Fixture : OneRealPath {
  explicit Fixture(FwdMethod method, uint8_t protocol = kProtoTcp, uint16_t rport = 8080)
      : OneRealPath(method, protocol, {"rr"}, 80, rport, kIf, 99) {}
  // Processes `f` in a buffer with room to grow; returns the verdict, `f` becomes the output.
  Verdict run(std::vector<uint8_t>& f, uint64_t now_ms = 1000) {
    const size_t len = f.size();
    f.resize(len + 600);
    const Verdict v = dp.process({f.data(), len}, kIf, now_ms, f.size());
    f.resize(v.length ? v.length : len);
    return v;
  }
  uint64_t drops(DropReason r) const { return dp.counters().drops[size_t(r)]; }
};

// A router's frag-needed (MTU `mtu`) towards the director about the tunnel packet lbd sent
// in `sent` (an Ethernet frame), quoting its first `quoted` bytes from the outer IP header.
std::vector<uint8_t> router_frag_needed(const std::vector<uint8_t>& sent, size_t quoted, uint16_t mtu) {
  IcmpSpec e;
  e.src = mac(0xa1);  // from the router towards the real
  e.dst = mac(0xd1);
  e.saddr = ip("198.18.0.254");
  e.daddr = kDirector;
  e.code = icmp_code::kFragNeeded;
  e.seq = mtu;
  e.payload = std::vector<uint8_t>(sent.begin() + 14, sent.begin() + long(14 + quoted));
  return make_icmp_frame(e);
}

}  // namespace

TEST_CASE("NAT: the client's packets reach RIP:rport, the replies leave as VIP:vport") {
  Fixture fx(FwdMethod::kMasq);
  auto f = make_frame(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(f).transmit);
  FrameSpec want = from_client(tcp_flag::kSyn);
  want.src = mac(0xd1);
  want.dst = mac(0xa1);
  want.daddr = kRip;
  want.dport = 8080;
  CHECK(f == make_frame(want));

  auto r = make_frame(from_real(tcp_flag::kSyn | tcp_flag::kAck, "x"));
  const Verdict v = fx.run(r);
  REQUIRE(v.transmit);
  CHECK(v.ifindex == kIf);
  FrameSpec back = from_real(tcp_flag::kSyn | tcp_flag::kAck, "x");
  back.src = mac(0xd1);
  back.dst = mac(0xc1);  // where the client's packets came from
  back.saddr = kVip;
  back.sport = 80;
  CHECK(r == make_frame(back));
  CHECK(fx.real().stats.outpkts == 1);
  CHECK(fx.real().stats.outbytes == 41);
  CHECK(fx.dp.counters().nat_replies == 1);
}

TEST_CASE("NAT: TCP state follows both directions (IPVS INPUT and OUTPUT tables)") {
  Fixture fx(FwdMethod::kMasq);
  auto state = [&] {
    ConnState s{};
    fx.conns.for_each([&](const Conn& c) { s = c.state; });
    return s;
  };
  auto in = [&](uint8_t fl) { auto f = make_frame(from_client(fl)); REQUIRE(fx.run(f).transmit); };
  auto out = [&](uint8_t fl) { auto f = make_frame(from_real(fl)); REQUIRE(fx.run(f).transmit); };
  in(tcp_flag::kSyn);
  CHECK(state() == ConnState::kSynRecv);
  out(tcp_flag::kSyn | tcp_flag::kAck);
  CHECK(state() == ConnState::kSynRecv);
  in(tcp_flag::kAck);
  CHECK(state() == ConnState::kEstablished);
  CHECK(fx.real().dest.active_conns == 1);
  out(tcp_flag::kFin | tcp_flag::kAck);  // the server closes first: OUTPUT fin from ES → FW
  CHECK(state() == ConnState::kFinWait);
  in(tcp_flag::kFin | tcp_flag::kAck);   // INPUT fin from FW → TW
  CHECK(state() == ConnState::kTimeWait);
  CHECK(fx.real().dest.inactive_conns == 1);
}

TEST_CASE("NAT: a reply that matches no connection is dropped, never sent as the real") {
  Fixture fx(FwdMethod::kMasq);
  auto r = make_frame(from_real(tcp_flag::kAck, "stray"));
  CHECK_FALSE(fx.run(r).transmit);
  CHECK(fx.drops(DropReason::kOrphanReply) == 1);
  // Replies to another client port of a known client are orphans too.
  auto f = make_frame(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(f).transmit);
  FrameSpec other = from_real(tcp_flag::kAck);
  other.dport = 40001;
  auto o = make_frame(other);
  CHECK_FALSE(fx.run(o).transmit);
  CHECK(fx.drops(DropReason::kOrphanReply) == 2);
}

TEST_CASE("NAT: a second connection with the same reply tuple is refused") {
  Fixture fx(FwdMethod::kMasq);
  const ServiceKey svc2{kProtoTcp, ip("198.18.0.101"), 80};
  REQUIRE(fx.services.add_service(svc2, {"rr"}).is_ok());
  REQUIRE(fx.services.add_real(svc2, {kRip, 8080, FwdMethod::kMasq, 1}).is_ok());
  fx.services.real(fx.services.find(svc2)->reals[0]).hop = fx.real().hop;
  auto a = make_frame(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(a).transmit);
  FrameSpec s = from_client(tcp_flag::kSyn);
  s.daddr = ip("198.18.0.101");  // same client port, other VIP, same RIP:rport
  auto b = make_frame(s);
  CHECK_FALSE(fx.run(b).transmit);
  CHECK(fx.drops(DropReason::kNatTupleBusy) == 1);
  CHECK(fx.conns.size() == 1);
  CHECK(fx.services.real(fx.services.find(svc2)->reals[0]).dest.active_conns == 0);
}

TEST_CASE("NAT: ICMP errors are translated both ways") {
  Fixture fx(FwdMethod::kMasq, kProtoUdp, 5353);
  FrameSpec q = from_client(0, "query");
  q.protocol = kProtoUdp;
  auto f = make_frame(q);
  REQUIRE(fx.run(f).transmit);

  // The client: port unreachable about VIP:80 → client:40000 goes to the real.
  FrameSpec reply;
  reply.protocol = kProtoUdp;
  reply.saddr = kVip;
  reply.sport = 80;
  reply.daddr = kClient;
  reply.dport = 40000;
  reply.payload = "answer";
  IcmpSpec e;
  e.src = mac(0xc1);
  e.dst = mac(0xd1);
  e.saddr = kClient;
  e.daddr = kVip;
  e.payload = ip_part(make_frame(reply));
  auto icmp = make_icmp_frame(e);
  REQUIRE(fx.run(icmp).transmit);
  FrameSpec real_reply = reply;
  real_reply.saddr = kRip;
  real_reply.sport = 5353;
  IcmpSpec to_real = e;
  to_real.src = mac(0xd1);
  to_real.dst = mac(0xa1);
  to_real.daddr = kRip;
  to_real.payload = ip_part(make_frame(real_reply));
  CHECK(icmp == make_icmp_frame(to_real));

  // The real: port unreachable about client → RIP:5353 goes to the client as the VIP's.
  FrameSpec sent = q;
  sent.daddr = kRip;
  sent.dport = 5353;
  IcmpSpec r;
  r.src = mac(0xa1);
  r.dst = mac(0xd1);
  r.saddr = kRip;
  r.daddr = kClient;
  r.payload = ip_part(make_frame(sent));
  auto icmp2 = make_icmp_frame(r);
  REQUIRE(fx.run(icmp2).transmit);
  IcmpSpec to_client = r;
  to_client.src = mac(0xd1);
  to_client.dst = mac(0xc1);
  to_client.saddr = kVip;
  to_client.payload = ip_part(make_frame(q));
  CHECK(icmp2 == make_icmp_frame(to_client));
  CHECK(fx.dp.counters().icmp_errors_forwarded == 2);

  // An error about a connection nobody has: dropped.
  sent.sport = 1;
  r.payload = ip_part(make_frame(sent));
  auto icmp3 = make_icmp_frame(r);
  CHECK_FALSE(fx.run(icmp3).transmit);
  CHECK(fx.drops(DropReason::kIcmpNoConnection) == 1);
}

TEST_CASE("TUN: the client's packet goes to the real inside IPIP from the director") {
  Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
  const auto original = make_frame(from_client(tcp_flag::kSyn, "hi"));
  auto f = original;
  const Verdict v = fx.run(f);
  REQUIRE(v.transmit);
  CHECK(v.fragment_mtu == 0);
  REQUIRE(f.size() == original.size() + 20);
  CHECK(f[0] == 0x02);
  CHECK(f[5] == 0xa1);                                  // to the real's MAC
  CHECK(f[23] == kProtoIpip);
  CHECK(ip_checksum_ok(f));
  CHECK(std::vector<uint8_t>(f.begin() + 26, f.begin() + 30) == std::vector<uint8_t>(kDirector.b.begin(), kDirector.b.end()));
  CHECK(std::vector<uint8_t>(f.begin() + 30, f.begin() + 34) == std::vector<uint8_t>(kRip.b.begin(), kRip.b.end()));
  CHECK(std::vector<uint8_t>(f.begin() + 34, f.end()) == ip_part(original));
  CHECK(fx.dp.counters().tunnelled == 1);
}

TEST_CASE("TUN: too big with DF → frag-needed (MTU - 20) to the client; without DF → fragment") {
  Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
  auto syn = make_frame(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(syn).transmit);
  const auto big = make_frame(from_client(tcp_flag::kAck, std::string(1460, 'z')));  // IP 1500
  auto f = big;
  const Verdict v = fx.run(f);
  REQUIRE(v.transmit);
  const ParsedPacket p = parse_ok(f);
  CHECK(p.protocol == kProtoIcmp);
  CHECK(p.saddr == kVip);
  CHECK(p.daddr == kClient);
  CHECK(f[0 + 5] == 0xc1);
  CHECK(p.icmp_type == 3);
  CHECK(p.icmp_code == 4);
  CHECK((f[40] << 8 | f[41]) == 1480);
  CHECK(ref_checksum(std::vector<uint8_t>(f.begin() + 34, f.end())) == 0);
  CHECK(std::vector<uint8_t>(f.begin() + 42, f.begin() + 62) == std::vector<uint8_t>(big.begin() + 14, big.begin() + 34));
  CHECK(fx.drops(DropReason::kFragNeeded) == 1);
  CHECK(fx.dp.counters().icmp_frag_needed_sent == 1);

  auto nodf = big;
  nodf[20] = 0;  // clear DF; fix the header checksum
  nodf[24] = nodf[25] = 0;
  put16(nodf, 24, ref_checksum(std::vector<uint8_t>(nodf.begin() + 14, nodf.begin() + 34)));
  const Verdict w = fx.run(nodf);
  REQUIRE(w.transmit);
  CHECK(w.fragment_mtu == 1500);
  CHECK(nodf.size() == big.size() + 20);
  CHECK(fx.dp.counters().tunnel_fragmented == 1);
}

TEST_CASE("TUN: a router's frag-needed about our tunnel packet reaches the client and sticks") {
  Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
  auto syn = make_frame(from_client(tcp_flag::kSyn));
  REQUIRE(fx.run(syn).transmit);
  // A 1400-byte packet passed (1420 outer) but a router further on has MTU 1400.
  const auto pkt = make_frame(from_client(tcp_flag::kAck, std::string(1360, 'q')));
  auto sent = pkt;
  REQUIRE(fx.run(sent).transmit);
  auto icmp = router_frag_needed(sent, 20 + 20 + 8, 1400);
  const Verdict v = fx.run(icmp, 2000);
  REQUIRE(v.transmit);
  const ParsedPacket p = parse_ok(icmp);
  CHECK(p.saddr == kVip);
  CHECK(p.daddr == kClient);
  CHECK(icmp[5] == 0xc1);
  CHECK((icmp[40] << 8 | icmp[41]) == 1380);
  CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
  // From now on the same packet gets frag-needed from lbd itself...
  auto again = pkt;
  REQUIRE(fx.run(again, 3000).transmit);
  CHECK(parse_ok(again).protocol == kProtoIcmp);
  CHECK((again[40] << 8 | again[41]) == 1380);
  // ...until the learnt MTU expires.
  auto later = pkt;
  REQUIRE(fx.run(later, 2000 + DataPath::kPmtuSeconds * 1000 + 1000).transmit);
  CHECK(later[23] == kProtoIpip);
}

TEST_CASE("a ping to a VIP: through the tunnel to a TUN real, answered by lbd for NAT") {
  IcmpSpec ping;
  ping.src = mac(0xc1);
  ping.dst = mac(0xd1);
  ping.saddr = kClient;
  ping.daddr = kVip;
  ping.type = icmp_type::kEchoRequest;
  ping.code = 0;
  ping.id = 77;
  ping.seq = 1;
  ping.frag_off = 0x4000;
  ping.payload.assign(1472, 0x5a);  // ping -M do -s 1472: IP 1500 with DF
  {
    Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
    auto f = make_icmp_frame(ping);
    REQUIRE(fx.run(f).transmit);
    const ParsedPacket p = parse_ok(f);
    CHECK(p.icmp_type == 3);
    CHECK(p.icmp_code == 4);
    CHECK((f[40] << 8 | f[41]) == 1480);
    ping.payload.assign(56, 0x5a);
    auto small = make_icmp_frame(ping);
    REQUIRE(fx.run(small).transmit);
    CHECK(small[23] == kProtoIpip);
    CHECK(fx.dp.counters().echo_forwarded == 2);
    // A router's frag-needed about the tunnelled ping (no connection) reaches the client.
    auto err = router_frag_needed(small, 20 + 28, 1400);
    REQUIRE(fx.run(err).transmit);
    CHECK(parse_ok(err).daddr == kClient);
    CHECK(err[5] == 0xc1);
    CHECK((err[40] << 8 | err[41]) == 1380);
  }
  {
    Fixture fx(FwdMethod::kMasq);
    auto f = make_icmp_frame(ping);
    REQUIRE(fx.run(f).transmit);
    IcmpSpec pong = ping;
    pong.src = mac(0xd1);
    pong.dst = mac(0xc1);
    pong.saddr = kVip;
    pong.daddr = kClient;
    pong.type = icmp_type::kEchoReply;
    CHECK(f == make_icmp_frame(pong));
    CHECK(fx.dp.counters().echo_replies == 1);
  }
}

namespace {

// `full` (a whole Ethernet/IPv4 datagram, DF clear) cut into fragments of IP MTU `mtu`.
std::vector<std::vector<uint8_t>> fragments(const std::vector<uint8_t>& full, uint16_t mtu) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> buf(14 + mtu);
  for (size_t i = 0;; ++i) {
    const size_t n = ipv4_fragment_one(full, mtu, i, buf.data());
    if (!n) break;
    out.emplace_back(buf.begin(), buf.begin() + long(n));
  }
  return out;
}

std::vector<uint8_t> no_df(std::vector<uint8_t> f) {
  f[20] = 0;
  f[24] = f[25] = 0;
  put16(f, 24, ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34)));
  return f;
}

// Each frame goes through the data path and must leave as its counterpart in `want`.
void expect_each_sent_as(Fixture& fx, const std::vector<std::vector<uint8_t>>& frames,
                         const std::vector<std::vector<uint8_t>>& want, const char* what) {
  for (size_t i = 0; i < frames.size(); ++i) {
    auto f = frames[i];
    INFO(what << " " << i);
    REQUIRE(fx.run(f).transmit);
    CHECK(f == want[i]);
  }
}

}  // namespace

TEST_CASE("IP fragments follow their first: NAT both ways, byte for byte") {
  Fixture fx(FwdMethod::kMasq, kProtoUdp, 5353);
  FrameSpec q = from_client(0, std::string(1200, 'q'));
  q.protocol = kProtoUdp;
  FrameSpec q_nat = q;
  q_nat.src = mac(0xd1);
  q_nat.dst = mac(0xa1);
  q_nat.daddr = kRip;
  q_nat.dport = 5353;
  const auto in = fragments(no_df(make_frame(q)), 576);
  REQUIRE(in.size() == 3);
  expect_each_sent_as(fx, in, fragments(no_df(make_frame(q_nat)), 576), "fragment");
  // The real's reply, fragmented by the real, goes out as the VIP's.
  FrameSpec r = from_real(0, std::string(1500, 'r'));
  r.protocol = kProtoUdp;
  r.sport = 5353;
  FrameSpec r_nat = r;
  r_nat.src = mac(0xd1);
  r_nat.dst = mac(0xc1);
  r_nat.saddr = kVip;
  r_nat.sport = 80;
  const auto out = fragments(no_df(make_frame(r)), 1000);
  REQUIRE(out.size() == 2);
  expect_each_sent_as(fx, out, fragments(no_df(make_frame(r_nat)), 1000), "reply fragment");
  CHECK(fx.real().stats.inpkts == 3);
  CHECK(fx.real().stats.outpkts == 2);
  // A later fragment whose first was never seen, or seen too long ago, is dropped.
  auto stray = in[1];
  stray[18] ^= 0x55;  // another IP id
  CHECK_FALSE(fx.run(stray).transmit);
  auto late = in[2];
  CHECK_FALSE(fx.run(late, 1000 + DataPath::kFragmentMs + 1).transmit);
  CHECK(fx.drops(DropReason::kFragmentUnmatched) == 2);
}

TEST_CASE("IP fragments through the tunnel: each is encapsulated as it came") {
  Fixture fx(FwdMethod::kTunnel, kProtoUdp, 80);
  FrameSpec q = from_client(0, std::string(1200, 't'));
  q.protocol = kProtoUdp;
  const auto in = fragments(no_df(make_frame(q)), 576);
  for (const auto& frag : in) {
    auto f = frag;
    REQUIRE(fx.run(f).transmit);
    CHECK(f[23] == kProtoIpip);
    CHECK(std::vector<uint8_t>(f.begin() + 34, f.end()) == ip_part(frag));
  }
  CHECK(fx.dp.counters().tunnelled == 3);
}

TEST_CASE("TUN: a frag-needed is applied only about a packet lbd sent, and never below min_pmtu") {
  Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
  auto syn = make_frame(from_client(tcp_flag::kSyn));
  auto sent = syn;
  REQUIRE(fx.run(sent).transmit);  // the tunnelled SYN: outer 198.18.0.2 -> RIP
  auto error_quoting = [&](std::vector<uint8_t> quote, uint16_t mtu) {
    IcmpSpec e;
    e.src = mac(0xc1);  // anyone on the client side
    e.dst = mac(0xd1);
    e.saddr = kClient;
    e.daddr = kVip;
    e.code = icmp_code::kFragNeeded;
    e.seq = mtu;
    e.payload = std::move(quote);
    return make_icmp_frame(e);
  };
  const std::vector<uint8_t> ours(sent.begin() + 14, sent.begin() + 14 + 20 + 28);
  // A forged outer source: not the director's address.
  auto forged = ours;
  forged[12] = 198, forged[13] = 18, forged[14] = 0, forged[15] = 66;
  auto f1 = error_quoting(forged, 88);
  CHECK_FALSE(fx.run(f1).transmit);
  CHECK(fx.drops(DropReason::kPmtuNotOurs) == 1);
  // Our outer header but an inner flow that is no connection.
  auto other = ours;
  other[20 + 20] ^= 0x11;  // inner source port
  auto f2 = error_quoting(other, 88);
  CHECK_FALSE(fx.run(f2).transmit);
  CHECK(fx.drops(DropReason::kIcmpNoConnection) == 1);
  CHECK(fx.dp.counters().tunnel_pmtu_updates == 0);
  // Big packets still pass in full.
  auto big = make_frame(from_client(tcp_flag::kAck, std::string(1400, 'q')));
  REQUIRE(fx.run(big).transmit);
  CHECK(big[23] == kProtoIpip);
  // About our own packet: applied, but 88 becomes the kernel's floor of 552.
  auto f3 = error_quoting(ours, 88);
  REQUIRE(fx.run(f3).transmit);
  CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
  CHECK((f3[40] << 8 | f3[41]) == DataPath::kMinPmtu - 20);
  auto mid = make_frame(from_client(tcp_flag::kAck, std::string(600, 'q')));
  REQUIRE(fx.run(mid).transmit);  // 640 + 20 > 552 with DF: frag-needed from lbd
  CHECK(parse_ok(mid).protocol == kProtoIcmp);
  CHECK((mid[40] << 8 | mid[41]) == 532);
}

TEST_CASE("TUN over GRE and GUE: frag-needed counts their headers, a router's about them is relayed") {
  const struct {
    TunnelSpec tun;
    size_t overhead;
    uint8_t outer_protocol;
  } kinds[] = {{{TunType::kGre, 0, TunCsum::kNoCsum}, 24, kProtoGre},
               {{TunType::kGre, 0, TunCsum::kCsum}, 28, kProtoGre},
               {{TunType::kGue, 6080, TunCsum::kCsum}, 32, kProtoUdp}};
  for (const auto& k : kinds) {
    INFO("overhead " << k.overhead);
    Fixture fx(FwdMethod::kTunnel, kProtoTcp, 80);
    fx.real().tun = k.tun;
    auto syn = make_frame(from_client(tcp_flag::kSyn));
    REQUIRE(fx.run(syn).transmit);
    CHECK(syn[23] == k.outer_protocol);
    // Too big with DF: frag-needed with 1500 minus the tunnel's headers.
    auto big = make_frame(from_client(tcp_flag::kAck, std::string(1500 - 40 - k.overhead + 1, 'z')));
    REQUIRE(fx.run(big).transmit);
    CHECK(parse_ok(big).protocol == kProtoIcmp);
    CHECK((big[40] << 8 | big[41]) == int(1500 - k.overhead));
    // A router's frag-needed (MTU 1400) quoting the tunnel packet lbd sent.
    auto sent = make_frame(from_client(tcp_flag::kAck, std::string(1300, 'q')));
    REQUIRE(fx.run(sent).transmit);
    auto icmp = router_frag_needed(sent, k.overhead + 20 + 8, 1400);  // the tunnel's headers, the inner IP and ports
    REQUIRE(fx.run(icmp, 2000).transmit);
    const ParsedPacket p = parse_ok(icmp);
    CHECK(p.saddr == kVip);
    CHECK(p.daddr == kClient);
    CHECK((icmp[40] << 8 | icmp[41]) == int(1400 - k.overhead));
    CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
    // The same quote from another source than lbd's tunnel address is not lbd's packet.
    auto forged = sent;
    forged[14 + 15] ^= 1;  // the outer source's last byte, as quoted
    auto f2 = router_frag_needed(forged, k.overhead + 20 + 8, 1400);
    CHECK_FALSE(fx.run(f2, 2100).transmit);
    CHECK(fx.drops(DropReason::kPmtuNotOurs) == 1);
    CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
  }
}

// IPv6 through the whole packet path on crafted frames: DR (the MAC rewritten, nothing
// else), NAT66 both ways (the exact frames, built from scratch with a reference checksum),
// ICMPv6 errors about a NAT66 connection translated, Neighbour Solicitations for a VIP
// answered, the two families kept apart, and an IPv6 client's ping.
#include <catch2/catch.hpp>

#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;
const Ipv6 kVip6 = v6("2001:db8::100");
const Ipv6 kRip6 = v6("2001:db8::11");
const Ipv6 kClient6 = v6("2001:db8::1");

// The frame `f` through the data path, with room to grow (an ICMP error's quote, a tunnel's
// headers); `f` becomes what would be sent.
Verdict run_frame(DataPath& dp, std::vector<uint8_t>& f, uint64_t now_ms) {
  const size_t len = f.size();
  f.resize(len + 1400);
  const Verdict v = dp.process({f.data(), len}, kIf, now_ms, f.size());
  f.resize(v.length ? v.length : len);
  return v;
}

struct Path6 : PathParts {
  ServiceKey svc;
  explicit Path6(FwdMethod method, uint16_t rport = 8080) {
    svc = ServiceKey{kProtoTcp, IpAddr(kVip6), 80};
    REQUIRE(services.add_service(svc, {"rr"}).is_ok());
    REQUIRE(services.add_real(svc, {IpAddr(kRip6), method == FwdMethod::kMasq ? rport : uint16_t(80), method, 1}).is_ok());
    real().hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, IpAddr(v6("2001:db8::2"))};
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  Real& real() { return services.real(services.find(svc)->reals[0]); }
  Verdict run(std::vector<uint8_t>& f, uint64_t now_ms = 1000) { return run_frame(dp, f, now_ms); }
  uint64_t drops(DropReason r) const { return dp.counters().drops[size_t(r)]; }
};

FrameSpec6 client6(uint8_t flags, std::string payload = {}) {
  FrameSpec6 s;
  s.src = mac(1);
  s.dst = mac(0xd1);
  s.saddr = kClient6;
  s.daddr = kVip6;
  s.flags = flags;
  s.payload = std::move(payload);
  return s;
}

}  // namespace

TEST_CASE("IPv6 DR: the client's packet leaves for the real with only its MACs changed") {
  Path6 fx(FwdMethod::kRoute);
  auto f = make_frame6(client6(tcp_flag::kSyn));
  auto want = f;
  REQUIRE(fx.run(f).transmit);
  const MacAddr real_mac = mac(0xa1), our_mac = mac(0xd1);
  std::copy(real_mac.b.begin(), real_mac.b.end(), want.begin());
  std::copy(our_mac.b.begin(), our_mac.b.end(), want.begin() + 6);
  CHECK(f == want);
  CHECK(fx.conns.size() == 1);
  auto ack = make_frame6(client6(tcp_flag::kAck, "GET /"));
  REQUIRE(fx.run(ack).transmit);
  CHECK(fx.conns.size() == 1);  // the same connection
}

TEST_CASE("NAT66: the client's packets reach RIP:rport, the replies leave as VIP:vport") {
  Path6 fx(FwdMethod::kMasq);
  auto f = make_frame6(client6(tcp_flag::kSyn));
  REQUIRE(fx.run(f).transmit);
  FrameSpec6 want = client6(tcp_flag::kSyn);
  want.src = mac(0xd1);
  want.dst = mac(0xa1);
  want.daddr = kRip6;
  want.dport = 8080;
  CHECK(f == make_frame6(want));

  FrameSpec6 reply;
  reply.src = mac(0xa1);
  reply.dst = mac(0xd1);
  reply.saddr = kRip6;
  reply.daddr = kClient6;
  reply.sport = 8080;
  reply.dport = 40000;
  reply.flags = tcp_flag::kSyn | tcp_flag::kAck;
  reply.payload = "x";
  auto r = make_frame6(reply);
  REQUIRE(fx.run(r).transmit);
  FrameSpec6 back = reply;
  back.src = mac(0xd1);
  back.dst = mac(1);
  back.saddr = kVip6;
  back.sport = 80;
  CHECK(r == make_frame6(back));
  CHECK(fx.dp.counters().nat_replies == 1);
}

TEST_CASE("NAT66: ICMPv6 errors are translated both ways (quoted header included)") {
  Path6 fx(FwdMethod::kMasq);
  auto syn = make_frame6(client6(tcp_flag::kSyn));
  REQUIRE(fx.run(syn).transmit);
  // The real's Packet Too Big about the client's (translated) packet: to the client, as
  // from the VIP, quoting the packet as the client sent it.
  FrameSpec6 e;
  e.protocol = kProtoIcmpv6;
  e.src = mac(0xa1);
  e.dst = mac(0xd1);
  e.saddr = kRip6;
  e.daddr = kClient6;
  e.icmp = {icmp6_type::kPacketTooBig, 0, 0, 0, 0, 0, 0x05, 0x00};
  const auto quoted = std::vector<uint8_t>(syn.begin() + 14, syn.end());
  e.icmp.insert(e.icmp.end(), quoted.begin(), quoted.end());
  auto err = make_frame6(e);
  REQUIRE(fx.run(err).transmit);
  CHECK(std::equal(kVip6.b.begin(), kVip6.b.end(), err.begin() + 22));   // outer source: the VIP
  CHECK(std::equal(kVip6.b.begin(), kVip6.b.end(), err.begin() + 62 + 24));  // quoted destination
  CHECK((err[62 + 40 + 2] << 8 | err[62 + 40 + 3]) == 80);                // quoted destination port
  CHECK(l4_checksum6_ok(err));
  const auto client_sent = make_frame6(client6(tcp_flag::kSyn));
  CHECK(std::vector<uint8_t>(err.begin() + 62, err.end()) ==
        std::vector<uint8_t>(client_sent.begin() + 14, client_sent.end()));  // byte for byte, its checksum too
  CHECK(fx.dp.counters().icmp_errors_forwarded == 1);
}

TEST_CASE("a Neighbour Solicitation for an IPv6 VIP is answered; for another address not") {
  Path6 fx(FwdMethod::kRoute);
  auto solicit = [](const Ipv6& target) {
    FrameSpec6 s;
    s.protocol = kProtoIcmpv6;
    s.hop_limit = 255;
    s.src = mac(1);
    s.dst = MacAddr{{0x33, 0x33, 0xff, target.b[13], target.b[14], target.b[15]}};
    s.saddr = kClient6;
    s.daddr = IpAddr(v6("ff02::1:ff00:0")).v6addr();
    s.daddr.b[13] = target.b[13];
    s.daddr.b[14] = target.b[14];
    s.daddr.b[15] = target.b[15];
    s.icmp.assign(24, 0);
    s.icmp[0] = icmp6_type::kNeighbourSolicit;
    std::copy(target.b.begin(), target.b.end(), s.icmp.begin() + 8);
    return make_frame6(s);
  };
  auto ns = solicit(kVip6);
  const Verdict v = fx.run(ns);
  REQUIRE(v.transmit);
  CHECK(v.ifindex == kIf);
  CHECK(ns.size() == 86);
  CHECK(ns[54] == icmp6_type::kNeighbourAdvert);
  CHECK(std::equal(ns.begin() + 6, ns.begin() + 12, mac(0xd1).b.begin()));
  CHECK(l4_checksum6_ok(ns));
  CHECK(fx.dp.counters().neighbour_adverts == 1);
  auto other = solicit(v6("2001:db8::99"));
  CHECK_FALSE(fx.run(other).transmit);
  CHECK(fx.drops(DropReason::kNoService) == 1);
  fx.dp.set_vip_arp(VipArp::kNever);
  auto again = solicit(kVip6);
  CHECK_FALSE(fx.run(again).transmit);
  CHECK(fx.drops(DropReason::kVipArpOff) == 1);
}

TEST_CASE("the families stay apart: an IPv4 packet to the VIP's last 32 bits is no IPv6 service's") {
  Path6 fx(FwdMethod::kRoute);
  FrameSpec s;
  s.dst = mac(0xd1);
  s.daddr = Ipv4{{kVip6.b[12], kVip6.b[13], kVip6.b[14], kVip6.b[15]}};
  auto f = make_frame(s);
  CHECK_FALSE(fx.run(f).transmit);
  CHECK(fx.drops(DropReason::kNoService) == 1);
  CHECK(fx.conns.size() == 0);
}

TEST_CASE("an IPv6 ping to a NAT-only VIP is answered by lbd; a SYN with no real gets port unreachable") {
  Path6 fx(FwdMethod::kMasq);
  FrameSpec6 s = client6(0);
  s.protocol = kProtoIcmpv6;
  s.icmp = {icmp6_type::kEchoRequest, 0, 0, 0, 0, 1, 0, 1, 'h', 'i'};
  auto f = make_frame6(s);
  REQUIRE(fx.run(f).transmit);
  CHECK(f[54] == icmp6_type::kEchoReply);
  CHECK(std::equal(kVip6.b.begin(), kVip6.b.end(), f.begin() + 22));
  CHECK(l4_checksum6_ok(f));
  RealSpec quiesced{IpAddr(kRip6), 8080, FwdMethod::kMasq, 0};
  REQUIRE(fx.services.edit_real(fx.svc, quiesced).is_ok());
  auto syn = make_frame6(client6(tcp_flag::kSyn));
  REQUIRE(fx.run(syn).transmit);
  CHECK(syn[12] == 0x86);
  CHECK(syn[54] == icmp6_type::kDestUnreachable);
  CHECK(syn[55] == 4);
  CHECK(l4_checksum6_ok(syn));
}

namespace {

// A TUN service: `vip` (either family) with one tunnel real at `rip` (either family), the
// director's tunnel source `src` (rip's family).
struct TunPath : PathParts {
  ServiceKey svc;
  TunPath(const IpAddr& vip, const IpAddr& rip, const IpAddr& src, TunnelSpec tun = {}) {
    svc = ServiceKey{kProtoTcp, vip, 80};
    REQUIRE(services.add_service(svc, {"rr"}).is_ok());
    RealSpec r{rip, 80, FwdMethod::kTunnel, 1};
    r.tun = tun;
    REQUIRE(services.add_real(svc, r).is_ok());
    real().hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, src};
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  Real& real() { return services.real(services.find(svc)->reals[0]); }
  Verdict run(std::vector<uint8_t>& f, uint64_t now_ms = 1000) { return run_frame(dp, f, now_ms); }
};

const IpAddr kDirector6 = IpAddr(v6("2001:db8::2"));
const IpAddr kRouter6 = IpAddr(v6("2001:db8::fe"));

// The Ethernet and outer IPv6 header lbd puts in front of `inner` (an IP datagram) for an
// IPIP tunnel from the director to kRip6, by RFC 2473 and ip_vs_tunnel_xmit_v6().
std::vector<uint8_t> outer6(const std::vector<uint8_t>& inner, uint8_t next, uint8_t hop_limit) {
  std::vector<uint8_t> f;
  const MacAddr real_mac = mac(0xa1), our_mac = mac(0xd1);
  f.insert(f.end(), real_mac.b.begin(), real_mac.b.end());
  f.insert(f.end(), our_mac.b.begin(), our_mac.b.end());
  f.insert(f.end(), {0x86, 0xdd, 0x60, 0, 0, 0, uint8_t(inner.size() >> 8), uint8_t(inner.size()), next, hop_limit});
  f.insert(f.end(), kDirector6.b.begin(), kDirector6.b.end());
  f.insert(f.end(), kRip6.b.begin(), kRip6.b.end());
  f.insert(f.end(), inner.begin(), inner.end());
  return f;
}

// A router's ICMPv6 Packet Too Big (`mtu`) to the director about the tunnel packet `sent`,
// quoting as much as a router does (the whole packet, within 1280 bytes).
std::vector<uint8_t> router_too_big(const std::vector<uint8_t>& sent, uint16_t mtu, const IpAddr& quoted_src = kDirector6) {
  FrameSpec6 e;
  e.protocol = kProtoIcmpv6;
  e.src = mac(0xa1);
  e.dst = mac(0xd1);
  e.saddr = kRouter6.v6addr();
  e.daddr = kDirector6.v6addr();
  e.icmp = {icmp6_type::kPacketTooBig, 0, 0, 0, 0, 0, uint8_t(mtu >> 8), uint8_t(mtu)};
  std::vector<uint8_t> quote(sent.begin() + 14, sent.begin() + long(std::min<size_t>(sent.size(), 14 + 1232)));
  std::copy(quoted_src.b.begin(), quoted_src.b.end(), quote.begin() + 8);
  e.icmp.insert(e.icmp.end(), quote.begin(), quote.end());
  return make_frame6(e);
}

}  // namespace

TEST_CASE("TUN, IPv6 in IPv6: the client's datagram, unchanged, behind an outer IPv6 header to the real") {
  TunPath fx(IpAddr(kVip6), IpAddr(kRip6), kDirector6);
  const auto sent = make_frame6(client6(tcp_flag::kSyn));
  auto f = sent;
  const Verdict v = fx.run(f);
  REQUIRE(v.transmit);
  CHECK(v.ifindex == kIf);
  CHECK(f == outer6(std::vector<uint8_t>(sent.begin() + 14, sent.end()), kProtoIpv6, 64));
  CHECK(fx.dp.counters().tunnelled == 1);
  CHECK(fx.conns.size() == 1);
}

TEST_CASE("TUN, IPv6 in IPv6: too big for the tunnel → Packet Too Big 1460 from the VIP; a router's 1400 → 1360, learnt") {
  TunPath fx(IpAddr(kVip6), IpAddr(kRip6), kDirector6);
  auto syn = make_frame6(client6(tcp_flag::kSyn));
  REQUIRE(fx.run(syn).transmit);
  const auto big = make_frame6(client6(tcp_flag::kAck, std::string(1401, 'b')));  // IPv6 1461 bytes
  auto f = big;
  REQUIRE(fx.run(f).transmit);
  REQUIRE(parse_ok(f).protocol == kProtoIcmpv6);
  CHECK(f[54] == icmp6_type::kPacketTooBig);
  CHECK((f[58] << 24 | f[59] << 16 | f[60] << 8 | f[61]) == 1460);
  CHECK(std::equal(kVip6.b.begin(), kVip6.b.end(), f.begin() + 22));
  CHECK(std::equal(kClient6.b.begin(), kClient6.b.end(), f.begin() + 38));
  CHECK(l4_checksum6_ok(f));
  CHECK(std::vector<uint8_t>(f.begin() + 62, f.end()) ==
        std::vector<uint8_t>(big.begin() + 14, big.begin() + 14 + 1232));  // quoted within 1280
  CHECK(fx.dp.counters().icmp_frag_needed_sent == 1);

  // Another service tunnels to the same real.
  const ServiceKey other{kProtoTcp, IpAddr(kVip6), 7};
  REQUIRE(fx.services.add_service(other, {"rr"}).is_ok());
  REQUIRE(fx.services.add_real(other, {IpAddr(kRip6), 7, FwdMethod::kTunnel, 1}).is_ok());
  // 1400 bytes pass (1440 outer); a router further on has 1400.
  const auto mid = make_frame6(client6(tcp_flag::kAck, std::string(1340, 'm')));
  auto sent = mid;
  REQUIRE(fx.run(sent).transmit);
  REQUIRE(sent.size() == 14 + 1440);
  auto ptb = router_too_big(sent, 1400);
  REQUIRE(fx.run(ptb, 2000).transmit);
  const ParsedPacket p = parse_ok(ptb);
  CHECK(p.saddr == IpAddr(kVip6));
  CHECK(p.daddr == IpAddr(kClient6));
  CHECK(ptb[54] == icmp6_type::kPacketTooBig);
  CHECK((ptb[60] << 8 | ptb[61]) == 1360);
  CHECK(l4_checksum6_ok(ptb));
  CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
  CHECK(fx.services.real(fx.services.find(other)->reals[0]).tun_pmtu == 1400);  // the path is the address's
  auto again = mid;
  REQUIRE(fx.run(again, 3000).transmit);
  CHECK(parse_ok(again).protocol == kProtoIcmpv6);
  CHECK((again[60] << 8 | again[61]) == 1360);
  // A made-up report (the quoted packet not from lbd's tunnel source) changes nothing.
  auto forged = router_too_big(sent, 1300, IpAddr(v6("2001:db8::66")));
  CHECK_FALSE(fx.run(forged, 4000).transmit);
  CHECK(fx.dp.counters().drops[size_t(DropReason::kPmtuNotOurs)] == 1);
  CHECK(fx.dp.counters().tunnel_pmtu_updates == 1);
}

TEST_CASE("TUN, IPv4 in IPv6: an IPv4 VIP's packet behind IPv6 (next header 4); a router's Packet Too Big reaches the client as frag-needed") {
  TunPath fx(lab::kVip, IpAddr(kRip6), kDirector6);
  FrameSpec s;
  s.dst = mac(0xd1);
  s.flags = tcp_flag::kSyn;
  const auto sent = make_frame(s);
  auto f = sent;
  REQUIRE(fx.run(f).transmit);
  CHECK(f == outer6(std::vector<uint8_t>(sent.begin() + 14, sent.end()), kProtoIpip, sent[22]));
  // The client's 1440-byte packets with DF pass (1480 outer); a router says 1400.
  s.flags = tcp_flag::kAck;
  s.payload = std::string(1400, 'd');
  s.src = mac(0xc1);
  const auto mid = make_frame(s);
  REQUIRE((mid[20] & 0x40) != 0);  // DF, as Linux sends TCP
  auto out = mid;
  REQUIRE(fx.run(out).transmit);
  auto ptb = router_too_big(out, 1400);
  REQUIRE(fx.run(ptb, 2000).transmit);
  const ParsedPacket p = parse_ok(ptb);
  CHECK_FALSE(p.v6);
  CHECK(p.protocol == kProtoIcmp);
  CHECK(p.saddr == lab::kVip);
  CHECK(ptb[34] == icmp_type::kDestUnreachable);
  CHECK(ptb[35] == icmp_code::kFragNeeded);
  CHECK((ptb[40] << 8 | ptb[41]) == 1360);
  CHECK(ip_checksum_ok(ptb));
  CHECK(std::vector<uint8_t>(ptb.begin() + 42, ptb.begin() + 62) == std::vector<uint8_t>(mid.begin() + 14, mid.begin() + 34));
  // The next one, too big for the learnt path, gets frag-needed 1360 from lbd itself.
  auto again = mid;
  REQUIRE(fx.run(again, 3000).transmit);
  CHECK((again[40] << 8 | again[41]) == 1360);
}

TEST_CASE("TUN, IPv6 in IPv4: an IPv6 VIP's packet behind IPv4 (protocol 41, DF clear), fragmented below 1280") {
  TunPath fx(IpAddr(kVip6), lab::kRip, lab::kDirector);
  const auto sent = make_frame6(client6(tcp_flag::kSyn));
  auto f = sent;
  REQUIRE(fx.run(f).transmit);
  CHECK((f[12] << 8 | f[13]) == kEtherTypeIpv4);
  CHECK(f[23] == kProtoIpv6);
  CHECK((f[20] << 8 | f[21]) == 0);
  CHECK(f[22] == 64);
  CHECK(ip_checksum_ok(f));
  CHECK(std::vector<uint8_t>(f.begin() + 34, f.end()) == std::vector<uint8_t>(sent.begin() + 14, sent.end()));
  // A path of 1200 towards the real (learnt): a 1280-byte datagram still passes, in outer
  // fragments; a bigger one gets Packet Too Big 1280, never less.
  fx.real().tun_pmtu = 1200;
  fx.real().tun_pmtu_until = 100000;
  auto min = make_frame6(client6(tcp_flag::kAck, std::string(1220, 'f')));
  const Verdict v = fx.run(min, 2000);
  REQUIRE(v.transmit);
  CHECK(v.fragment_mtu == 1200);
  CHECK(fx.dp.counters().tunnel_fragmented == 1);
  auto big = make_frame6(client6(tcp_flag::kAck, std::string(1221, 'g')));
  REQUIRE(fx.run(big, 2000).transmit);
  CHECK(big[54] == icmp6_type::kPacketTooBig);
  CHECK((big[60] << 8 | big[61]) == 1280);
}

TEST_CASE("DR and NAT66: a datagram the real's link cannot take gets Packet Too Big with its MTU (IPv4: frag-needed with DF)") {
  for (const FwdMethod m : {FwdMethod::kRoute, FwdMethod::kMasq}) {
    Path6 fx(m);
    fx.real().hop.mtu = 1400;
    FrameSpec6 s = client6(0);
    s.protocol = kProtoUdp;
    s.payload = std::string(1400, 'u');  // 40 + 8 + 1400
    auto f = make_frame6(s);
    // (Path6 serves TCP; a UDP service on the same VIP and real.)
    const ServiceKey udp{kProtoUdp, IpAddr(kVip6), s.dport};
    REQUIRE(fx.services.add_service(udp, {"rr"}).is_ok());
    REQUIRE(fx.services.add_real(udp, {IpAddr(kRip6), uint16_t(m == FwdMethod::kMasq ? 8080 : s.dport), m, 1}).is_ok());
    fx.services.find_real(udp, IpAddr(kRip6), m == FwdMethod::kMasq ? 8080 : s.dport)->hop = fx.real().hop;
    const auto sent = f;
    REQUIRE(fx.run(f).transmit);
    REQUIRE(parse_ok(f).protocol == kProtoIcmpv6);
    CHECK(f[54] == icmp6_type::kPacketTooBig);
    CHECK((f[60] << 8 | f[61]) == 1400);
    CHECK(std::equal(kVip6.b.begin(), kVip6.b.end(), f.begin() + 22));
    CHECK(std::vector<uint8_t>(f.begin() + 62, f.end()) ==
          std::vector<uint8_t>(sent.begin() + 14, sent.begin() + 14 + 1232));  // as the client sent it
    CHECK(l4_checksum6_ok(f));
    CHECK(fx.dp.counters().icmp_frag_needed_sent == 1);
  }
  // IPv4 with DF: frag-needed 1400.
  OneRealPath v4(FwdMethod::kRoute, kProtoUdp, {"rr"}, 80, 80);
  v4.real().hop.mtu = 1400;
  FrameSpec s = lab::from_client(0, std::string(1420, 'v'), kProtoUdp);
  auto f = make_frame(s);
  f[20] = 0x40;  // DF
  f[24] = f[25] = 0;
  put16(f, 24, ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34)));
  const size_t len = f.size();
  f.resize(len + 600);
  const Verdict v = v4.dp.process({f.data(), len}, 7, 1000, f.size());
  REQUIRE(v.transmit);
  f.resize(v.length);
  CHECK(f[34] == icmp_type::kDestUnreachable);
  CHECK(f[35] == icmp_code::kFragNeeded);
  CHECK((f[40] << 8 | f[41]) == 1400);
}

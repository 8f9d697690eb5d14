// IPv6 on crafted frames: the address type and its text forms, the extension-header walk
// (RFC 8200 4.1's order and lbd's bounds), quotes, NAT66's rewrites checked against a
// reference checksum, Neighbour Advertisements for a VIP (RFC 4861), ICMPv6 errors and
// echo replies, and segmentation of an IPv6 super-frame.
#include <catch2/catch.hpp>

#include <random>

#include "forwarding/checksum.hpp"
#include "forwarding/icmp.hpp"
#include "forwarding/nat.hpp"
#include "forwarding/ndp.hpp"
#include "forwarding/segment.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

std::vector<uint8_t> ext_header(size_t len) { return std::vector<uint8_t>(len, 0); }
std::vector<uint8_t> hop_by_hop() {  // 8 bytes: next, length 0, a PadN option of 4
  return {0, 0, 1, 4, 0, 0, 0, 0};
}
std::vector<uint8_t> routing(uint8_t segments_left) { return {0, 0, 0, segments_left, 0, 0, 0, 0}; }
std::vector<uint8_t> fragment(uint16_t offset8, bool more, uint32_t id) {
  const uint16_t v = uint16_t(offset8 << 3 | (more ? 1 : 0));
  return {0, 0, uint8_t(v >> 8), uint8_t(v), uint8_t(id >> 24), uint8_t(id >> 16), uint8_t(id >> 8), uint8_t(id)};
}

}  // namespace

TEST_CASE("IpAddr: IPv4 held mapped, IPv6 as itself, text forms, order, fold, masks") {
  const IpAddr a = ip("198.18.0.1");
  CHECK_FALSE(a.v6());
  CHECK(a.v4() == ip("198.18.0.1"));
  CHECK(to_string(a) == "198.18.0.1");
  CHECK(a.fold() == 0xc6120001u);
  const IpAddr b(v6("2001:db8::1"));
  CHECK(b.v6());
  CHECK(to_string(b) == "2001:db8::1");
  CHECK(addr_port(b, 80) == "[2001:db8::1]:80");
  CHECK(addr_port(a, 80) == "198.18.0.1:80");
  CHECK(b.fold() == (0x20010db8u ^ 0u ^ 0u ^ 1u));
  CHECK(IpAddr(Ipv4{}) != IpAddr(Ipv6{}));  // 0.0.0.0 and :: differ
  CHECK(a < b);                             // IPv4 first, as ipvsadm sorts
  IpAddr p;
  CHECK(parse_ip("2001:DB8:0:0::0:1", p));
  CHECK(p == b);
  CHECK(to_string(p) == "2001:db8::1");  // RFC 5952
  CHECK_FALSE(parse_ip("::ffff:198.18.0.1", p));  // the mapped form is IPv4's, not an IPv6 address
  CHECK_FALSE(parse_ip("2001:db8::1%eth0", p));
  CHECK_FALSE(parse_ip("[2001:db8::1]", p));
  CHECK(masked(IpAddr(v6("2001:db8:1:2:3:4:5:6")), 64) == IpAddr(v6("2001:db8:1:2::")));
  CHECK(masked(IpAddr(v6("2001:db8:1:2:3:4:5:6")), 50) == IpAddr(v6("2001:db8:1::")));
  CHECK(masked(a, 24) == IpAddr(ip("198.18.0.0")));
  CHECK(masked(b, 128) == b);
}

TEST_CASE("IPv6 frames: the fixed header, then TCP, UDP or ICMPv6") {
  FrameSpec6 s;
  s.payload = "hello";
  const auto f = make_frame6(s);
  const ParsedPacket p = parse_ok(f);
  CHECK(p.v6);
  CHECK(p.saddr == IpAddr(v6("2001:db8::1")));
  CHECK(p.daddr == IpAddr(v6("2001:db8::100")));
  CHECK(p.protocol == kProtoTcp);
  CHECK(p.l4_off == 54);
  CHECK(p.ip_len == 40 + 20 + 5);
  CHECK(p.sport == 40000);
  CHECK(p.dport == 80);
  CHECK(p.tcp_flags == tcp_flag::kSyn);
  CHECK(p.dont_fragment);
  CHECK(csum::packet_valid(f, p));
  s.protocol = kProtoUdp;
  const auto u = make_frame6(s);
  CHECK(parse_ok(u).dport == 80);
  CHECK(csum::packet_valid(u, parse_ok(u)));
  auto zero = u;
  zero[54 + 6] = zero[54 + 7] = 0;
  CHECK_FALSE(csum::packet_valid(zero, parse_ok(zero)));  // IPv6 UDP must carry a checksum
  auto bad = f;
  bad.back() ^= 1;
  CHECK_FALSE(csum::packet_valid(bad, parse_ok(bad)));
}

TEST_CASE("IPv6 extension headers are walked in RFC 8200's order, within bounds") {
  FrameSpec6 s;
  s.ext = {{kIp6HopByHop, hop_by_hop()}, {kIp6DestOpts, ext_header(16)}, {kIp6Routing, routing(0)}};
  s.ext[1].second[1] = 1;  // 16 bytes
  const auto f = make_frame6(s);
  const ParsedPacket p = parse_ok(f);
  CHECK(p.protocol == kProtoTcp);
  CHECK(p.l4_off == 54 + 8 + 16 + 8);
  CHECK(p.dport == 80);
  CHECK(csum::packet_valid(f, p));

  SECTION("hop-by-hop anywhere but first") {
    s.ext = {{kIp6DestOpts, ext_header(8)}, {kIp6HopByHop, hop_by_hop()}};
    CHECK(refusal(make_frame6(s)) == DropReason::kBadExtHeader);
  }
  SECTION("nine extension headers") {
    s.ext.assign(9, {kIp6DestOpts, ext_header(8)});
    CHECK(refusal(make_frame6(s)) == DropReason::kBadExtHeader);
  }
  SECTION("eight are fine") {
    s.ext.assign(8, {kIp6DestOpts, ext_header(8)});
    CHECK(parse_ok(make_frame6(s)).dport == 80);
  }
  SECTION("a header longer than the payload") {
    s.ext = {{kIp6DestOpts, ext_header(8)}};
    auto g = make_frame6(s);
    g[54 + 1] = 200;
    CHECK(refusal(g) == DropReason::kBadExtHeader);
  }
  SECTION("a routing header with segments left: not for this hop") {
    s.ext = {{kIp6Routing, routing(2)}};
    CHECK(refusal(make_frame6(s)) == DropReason::kRoutingHeader);
  }
  SECTION("an IPv4-mapped address on the wire") {
    s.ext.clear();
    IpAddr mapped = IpAddr(ip("198.18.0.1"));
    s.saddr = mapped.v6addr();
    CHECK(refusal(make_frame6(s)) == DropReason::kMappedAddress);
  }
  SECTION("a payload length beyond the frame, and a jumbogram's 0") {
    auto g = make_frame6(FrameSpec6{});
    put16(g, 18, 2000);
    CHECK(refusal(g) == DropReason::kBadIpLength);
    put16(g, 18, 0);
    CHECK(refusal(g) == DropReason::kBadIpLength);
  }
  SECTION("a UDP length that disagrees with the payload length") {
    FrameSpec6 u;
    u.protocol = kProtoUdp;
    auto g = make_frame6(u);
    put16(g, 54 + 4, 9);
    CHECK(refusal(g) == DropReason::kBadUdpLength);
  }
}

TEST_CASE("IPv6 fragments: the first names its ports, a later one its protocol, an atomic one is whole") {
  FrameSpec6 s;
  s.ext = {{kIp6Fragment, fragment(0, true, 0xdeadbeef)}};
  ParsedPacket p;
  DropReason why{};
  CHECK_FALSE(parse_frame(make_frame6(s), p, why));
  CHECK(why == DropReason::kFragment);
  CHECK(p.fragment);
  CHECK(p.first_fragment);
  CHECK(p.ip_id == 0xdeadbeef);
  CHECK(p.dport == 80);
  s.ext = {{kIp6Fragment, fragment(100, false, 7)}};
  CHECK_FALSE(parse_frame(make_frame6(s), p, why));
  CHECK(p.fragment);
  CHECK_FALSE(p.first_fragment);
  CHECK(p.protocol == kProtoTcp);
  CHECK(p.dport == 0);
  CHECK(p.ip_id == 7);
  s.ext = {{kIp6Fragment, fragment(0, false, 7)}};  // RFC 6946
  CHECK(parse_ok(make_frame6(s)).dport == 80);
}

TEST_CASE("NAT66: address and port rewritten both ways, the checksum as a reference computes it") {
  std::mt19937 rng(6);
  for (int i = 0; i < 500; ++i) {
    FrameSpec6 s;
    s.protocol = i % 2 ? kProtoUdp : kProtoTcp;
    for (auto& b : s.saddr.b) b = uint8_t(rng());
    s.saddr.b[0] = 0x20;  // not multicast, not mapped
    s.payload.assign(rng() % 300, char(rng()));
    s.sport = uint16_t(rng());
    auto f = make_frame6(s);
    const ParsedPacket p = parse_ok(f);
    Ipv6 rip;
    for (auto& b : rip.b) b = uint8_t(rng());
    rip.b[0] = 0x20;
    const uint16_t rport = uint16_t(rng());
    nat_rewrite(f, p, NatSide::kDestination, IpAddr(rip), rport);
    CHECK(std::equal(rip.b.begin(), rip.b.end(), f.begin() + 38));
    CHECK((f[54 + 2] << 8 | f[54 + 3]) == rport);
    REQUIRE(l4_checksum6_ok(f));
    // The reply side: the source becomes the VIP again.
    const ParsedPacket q = parse_ok(f);
    nat_rewrite(f, q, NatSide::kSource, IpAddr(v6("2001:db8::100")), 80);
    REQUIRE(l4_checksum6_ok(f));
  }
}

TEST_CASE("a Neighbour Solicitation for a VIP gets RFC 4861's advertisement") {
  const Ipv6 vip = v6("2001:db8::100");
  std::vector<uint8_t> ns(24, 0);
  ns[0] = icmp6_type::kNeighbourSolicit;
  std::copy(vip.b.begin(), vip.b.end(), ns.begin() + 8);
  ns.insert(ns.end(), {1, 1, 0x02, 0, 0, 0, 0, 1});  // source link-layer address option
  FrameSpec6 s;
  s.protocol = kProtoIcmpv6;
  s.icmp = ns;
  s.hop_limit = 255;
  s.daddr = v6("ff02::1:ff00:100");  // the solicited-node group
  s.dst = MacAddr{{0x33, 0x33, 0xff, 0, 0x01, 0x00}};
  auto f = make_frame6(s);
  const ParsedPacket p = parse_ok(f);
  IpAddr target;
  REQUIRE(neighbour_solicitation(f, p, target));
  CHECK(target == IpAddr(vip));
  f.resize(128);
  const size_t len = solicitation_to_advert(f, p, target, mac(9));
  REQUIRE(len == 86);
  f.resize(len);
  CHECK(std::equal(f.begin(), f.begin() + 6, mac(1).b.begin()));      // back to the asker
  CHECK(std::equal(f.begin() + 6, f.begin() + 12, mac(9).b.begin()));  // from lbd's MAC
  CHECK(f[21] == 255);                                                 // hop limit
  CHECK(std::equal(vip.b.begin(), vip.b.end(), f.begin() + 22));       // from the VIP
  const Ipv6 asker = v6("2001:db8::1");
  CHECK(std::equal(asker.b.begin(), asker.b.end(), f.begin() + 38));
  CHECK(f[54] == icmp6_type::kNeighbourAdvert);
  CHECK(f[54 + 4] == 0x60);  // solicited, override; not a router
  CHECK(std::equal(vip.b.begin(), vip.b.end(), f.begin() + 54 + 8));
  CHECK(std::vector<uint8_t>(f.begin() + 78, f.end()) == std::vector<uint8_t>{2, 1, 0x02, 0, 0, 0, 0, 9});
  CHECK(l4_checksum6_ok(f));

  SECTION("not one lbd answers") {
    auto g = s;
    g.hop_limit = 254;  // from beyond a router
    auto h = make_frame6(g);
    CHECK_FALSE(neighbour_solicitation(h, parse_ok(h), target));
    g = s;
    g.saddr = Ipv6{};  // duplicate address detection
    h = make_frame6(g);
    CHECK_FALSE(neighbour_solicitation(h, parse_ok(h), target));
    g = s;
    g.icmp[8] = 0xff;  // a multicast target
    h = make_frame6(g);
    CHECK_FALSE(neighbour_solicitation(h, parse_ok(h), target));
    g = s;
    g.icmp.resize(20);  // too short
    h = make_frame6(g);
    CHECK_FALSE(neighbour_solicitation(h, parse_ok(h), target));
  }
}

TEST_CASE("ICMPv6: echo replies, port unreachable and Packet Too Big (never below 1280)") {
  FrameSpec6 s;
  s.protocol = kProtoIcmpv6;
  s.icmp = {icmp6_type::kEchoRequest, 0, 0, 0, 0, 7, 0, 1, 'p', 'i', 'n', 'g'};
  auto f = make_frame6(s);
  echo6_request_to_reply(f, parse_ok(f));
  CHECK(f[54] == icmp6_type::kEchoReply);
  CHECK(std::equal(f.begin() + 22, f.begin() + 38, v6("2001:db8::100").b.begin()));
  CHECK(l4_checksum6_ok(f));

  FrameSpec6 t;
  t.payload.assign(1400, 'x');
  auto big = make_frame6(t);
  const ParsedPacket p = parse_ok(big);
  big.resize(2000);
  const size_t len = write_icmp_error(big, p.l3_off, p.ip_len,
                                      error_to_sender(big, p, icmp_code::kFragNeeded, 1000, mac(9)));
  REQUIRE(len == 14 + 1280);  // the quote cut so the packet fits the minimum MTU
  big.resize(len);
  CHECK(big[54] == icmp6_type::kPacketTooBig);
  CHECK((big[54 + 6] << 8 | big[54 + 7]) == 1280);  // 1000 raised to IPv6's floor
  CHECK(l4_checksum6_ok(big));
  auto small = make_frame6(FrameSpec6{});
  const ParsedPacket q = parse_ok(small);
  small.resize(512);
  const size_t n = write_icmp_error(small, q.l3_off, q.ip_len,
                                    error_to_sender(small, q, icmp_code::kPortUnreachable, 0, mac(9)));
  small.resize(n);
  CHECK(small[54] == icmp6_type::kDestUnreachable);
  CHECK(small[55] == 4);  // port unreachable
  CHECK(l4_checksum6_ok(small));
  IcmpQuote quote;
  REQUIRE(parse_quote(small, 62, small.size(), quote));  // what it quotes is the client's packet
  CHECK(quote.saddr == IpAddr(v6("2001:db8::1")));
  CHECK(quote.dport == 80);
}

TEST_CASE("an IPv6 TCP super-frame is cut into MTU-sized segments with their checksums") {
  FrameSpec6 s;
  s.flags = tcp_flag::kAck | tcp_flag::kPsh;
  s.payload.assign(5000, 'a');
  for (size_t i = 0; i < s.payload.size(); ++i) s.payload[i] = char('a' + i % 26);
  const auto f = make_frame6(s);
  const ParsedPacket p = parse_ok(f);
  std::string joined;
  std::vector<uint8_t> buf(14 + 1500);
  size_t n = 0;
  for (size_t i = 0;; ++i) {
    const size_t len = tcp_segment_one(f, p, 1500, i, buf.data());
    if (!len) break;
    std::vector<uint8_t> seg(buf.begin(), buf.begin() + long(len));
    CHECK(len <= 14 + 1500);
    CHECK(size_t(seg[18] << 8 | seg[19]) == len - 54);  // payload length
    CHECK(l4_checksum6_ok(seg));
    joined.append(seg.begin() + 74, seg.end());
    ++n;
  }
  CHECK(n == 4);  // 5000 bytes at 1500 - 40 - 20 = 1440 each
  CHECK(joined == s.payload);
}

// Tunnels with IPv6 on either side, as IPVS's ip_vs_tunnel_xmit_v6() and ip_vs_tunnel_xmit()
// build them (IPv6 in IPv6, IPv4 in IPv6, IPv6 in IPv4; IPIP, GUE, GRE), their MTU policy
// (Packet Too Big never below 1280, outer fragments), the outer IPv6 fragments, lbd-decap's
// side, and ICMP errors translated across families. Expected bytes come from the RFCs
// (2473, 4213, 2784, 8200) and the kernel's code, checksums from frames.hpp's reference sums.
#include <catch2/catch.hpp>

#include <map>

#include "forwarding/decap.hpp"
#include "forwarding/icmp.hpp"
#include "forwarding/ipip.hpp"
#include "forwarding/tunnel.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

const IpAddr kDirector6 = IpAddr(v6("2001:db8::2"));
const IpAddr kReal6 = IpAddr(v6("2001:db8::11"));
const IpAddr kDirector4 = ip("198.18.0.2");
const IpAddr kReal4 = ip("198.18.0.11");

const TunnelSpec kIpip{};
const TunnelSpec kGue{TunType::kGue, 6080, TunCsum::kNoCsum};
const TunnelSpec kGueCsum{TunType::kGue, 6080, TunCsum::kCsum};
const TunnelSpec kGre{TunType::kGre, 0, TunCsum::kNoCsum};
const TunnelSpec kGreCsum{TunType::kGre, 0, TunCsum::kCsum};

// An IPv6 client's TCP segment with traffic class 0xb8 (EF) and hop limit 61.
std::vector<uint8_t> client6_frame(std::string payload = "hello over IPv6") {
  FrameSpec6 s;
  s.payload = std::move(payload);
  s.hop_limit = 61;
  auto f = make_frame6(s);
  f[14] = uint8_t(0x60 | 0xb8 >> 4);
  f[15] = uint8_t((0xb8 & 0x0f) << 4 | (f[15] & 0x0f));
  return f;
}

// An IPv4 client's TCP segment with TOS 0x28, TTL 57 and DF.
std::vector<uint8_t> client4_frame() {
  FrameSpec s;
  s.payload = "hello over IPv4";
  auto f = make_frame(s);
  f[15] = 0x28;
  f[22] = 57;
  f[20] = 0x40;  // DF
  f[24] = f[25] = 0;
  const uint16_t c = ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34));
  put16(f, 24, c);
  return f;
}

std::vector<uint8_t> wrap(const std::vector<uint8_t>& frame, const IpAddr& src, const IpAddr& dst,
                          const TunnelSpec& t, uint16_t id = 7) {
  std::vector<uint8_t> buf(frame.size() + 80, 0xee);
  std::copy(frame.begin(), frame.end(), buf.begin());
  const size_t len = tunnel_encapsulate(buf, parse_ok(frame), src, dst, id, t);
  REQUIRE(len == frame.size() + tunnel_overhead(t, dst.v6()));
  buf.resize(len);
  return buf;
}

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }
std::vector<uint8_t> tail(const std::vector<uint8_t>& v, size_t from) { return {v.begin() + long(from), v.end()}; }
uint16_t be16(const std::vector<uint8_t>& v, size_t off) { return uint16_t(v[off] << 8 | v[off + 1]); }

// The outer IPv6 header of an encapsulated frame, as RFC 2473 and ip_vs_tunnel_xmit_v6() set it.
void check_outer6(const std::vector<uint8_t>& out, uint8_t next, uint8_t tclass, uint8_t hop_limit) {
  CHECK(be16(out, 12) == kEtherTypeIpv6);
  CHECK(out[14] >> 4 == 6);
  CHECK(uint8_t((out[14] & 0x0f) << 4 | out[15] >> 4) == tclass);
  CHECK((out[15] & 0x0f) == 0);  // flow label 0
  CHECK(out[16] == 0);
  CHECK(out[17] == 0);
  CHECK(be16(out, 18) == out.size() - 54);
  CHECK(out[20] == next);
  CHECK(out[21] == hop_limit);
  CHECK(std::vector<uint8_t>(out.begin() + 22, out.begin() + 38) ==
        std::vector<uint8_t>(kDirector6.b.begin(), kDirector6.b.end()));
  CHECK(std::vector<uint8_t>(out.begin() + 38, out.begin() + 54) == std::vector<uint8_t>(kReal6.b.begin(), kReal6.b.end()));
}

}  // namespace

TEST_CASE("tunnel overhead over IPv6: a 40-byte outer header (IPVS's __ip_vs_get_out_rt_v6)") {
  CHECK(tunnel_overhead(kIpip, true) == 40);
  CHECK(tunnel_overhead(kGue, true) == 52);
  CHECK(tunnel_overhead(kGre, true) == 44);
  CHECK(tunnel_overhead(kGreCsum, true) == 48);
  CHECK(min_tunnel_mtu(40, true) == 1280);
  CHECK(min_tunnel_mtu(20, false) == 88);
}

TEST_CASE("IPv6 in IPv6 (IPIP): next header 41, the inner traffic class and hop limit, flow label 0") {
  const auto f = client6_frame();
  const auto out = wrap(f, kDirector6, kReal6, kIpip);
  check_outer6(out, kProtoIpv6, 0xb8, 61);
  CHECK(tail(out, 54) == ip_part(f));
  std::span<const uint8_t> inner;
  const auto carried = tail(out, 54);
  REQUIRE(carrier_decapsulate(out[20], carried, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
}

TEST_CASE("IPv4 in IPv6 (IPIP): next header 4, the inner TOS as traffic class, TTL as hop limit") {
  const auto f = client4_frame();
  const auto out = wrap(f, kDirector6, kReal6, kIpip);
  check_outer6(out, kProtoIpip, 0x28, 57);
  CHECK(tail(out, 54) == ip_part(f));
  std::span<const uint8_t> inner;
  const auto carried = tail(out, 54);
  REQUIRE(carrier_decapsulate(kProtoIpip, carried, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
  // The carrier's protocol decides what is expected inside.
  CHECK(carrier_decapsulate(kProtoIpv6, carried, inner) == DecapStatus::kBadInner);
  CHECK(carrier_decapsulate(kProtoTcp, carried, inner) == DecapStatus::kNotIpip);
}

TEST_CASE("IPv6 in IPv4 (IPIP): protocol 41, DF clear, the traffic class as TOS, hop limit as TTL") {
  const auto f = client6_frame();
  const auto out = wrap(f, kDirector4, kReal4, kIpip, 0x1234);
  CHECK(be16(out, 12) == kEtherTypeIpv4);
  CHECK(out[14] == 0x45);
  CHECK(out[15] == 0xb8);
  CHECK(be16(out, 16) == out.size() - 14);
  CHECK(be16(out, 18) == 0x1234);
  CHECK(be16(out, 20) == 0);  // an IPv6 datagram has no DF to copy (ip_vs_prepare_tunneled_skb)
  CHECK(out[22] == 61);
  CHECK(out[23] == kProtoIpv6);
  CHECK(ip_checksum_ok(out));
  CHECK(tail(out, 34) == ip_part(f));
  std::span<const uint8_t> inner;
  const auto packet = tail(out, 14);
  REQUIRE(ipip_decapsulate(packet, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
  // An IPv4 datagram keeps copying its DF into the outer header.
  const auto out4 = wrap(client4_frame(), kDirector4, kReal4, kIpip);
  CHECK(be16(out4, 20) == kIpDf);
}

TEST_CASE("GUE over IPv6: UDP to the tunnel port, GUE's protocol 41 or 4, the UDP checksum by the IPv6 pseudo-header") {
  for (const bool inner_v6 : {true, false}) {
    const auto f = inner_v6 ? client6_frame() : client4_frame();
    const auto out = wrap(f, kDirector6, kReal6, kGueCsum);
    check_outer6(out, kProtoUdp, inner_v6 ? 0xb8 : 0x28, inner_v6 ? 61 : 57);
    CHECK(be16(out, 56) == 6080);
    CHECK(be16(out, 58) == out.size() - 54);  // UDP length
    CHECK(be16(out, 60) != 0);
    CHECK(ref_checksum6(kDirector6.v6addr(), kReal6.v6addr(), kProtoUdp, tail(out, 54)) == 0);
    CHECK(std::vector<uint8_t>(out.begin() + 62, out.begin() + 66) ==
          std::vector<uint8_t>{0, inner_v6 ? kProtoIpv6 : kProtoIpip, 0, 0});
    auto payload = tail(out, 62);
    std::span<const uint8_t> inner;
    REQUIRE(gue_decapsulate(payload, inner) == DecapStatus::kOk);
    CHECK(bytes(inner) == ip_part(f));
  }
  // --tun-nocsum: 0, as IPVS's udp6_set_csum(nocheck) leaves it (RFC 6935).
  const auto plain = wrap(client6_frame(), kDirector6, kReal6, kGue);
  CHECK(be16(plain, 60) == 0);
  // IPv6 in IPv4 GUE: GUE says 41 inside an IPv4 UDP datagram.
  const auto v4 = wrap(client6_frame(), kDirector4, kReal4, kGue);
  CHECK(v4[23] == kProtoUdp);
  CHECK(v4[43] == kProtoIpv6);
}

TEST_CASE("GRE over either family: protocol 0x86DD for IPv6 inside, 0x0800 for IPv4, the checksum over GRE and payload") {
  struct Case { IpAddr src, dst; bool inner_v6; };
  for (const Case& c : {Case{kDirector6, kReal6, true}, Case{kDirector6, kReal6, false}, Case{kDirector4, kReal4, true}}) {
    const auto f = c.inner_v6 ? client6_frame() : client4_frame();
    const auto out = wrap(f, c.src, c.dst, kGreCsum);
    const size_t gre = c.dst.v6() ? 54 : 34;
    CHECK((c.dst.v6() ? out[20] : out[23]) == kProtoGre);
    CHECK(be16(out, gre) == kGreFlagCsum);
    CHECK(be16(out, gre + 2) == (c.inner_v6 ? kEtherTypeIpv6 : kEtherTypeIpv4));
    CHECK(ref_checksum(tail(out, gre)) == 0);
    CHECK(tail(out, gre + 8) == ip_part(f));
    std::span<const uint8_t> inner;
    const auto carried = tail(out, c.dst.v6() ? gre : 14);  // raw IPv6 sockets hand what follows the header
    const DecapStatus st = c.dst.v6() ? carrier_decapsulate(kProtoGre, carried, inner) : gre_decapsulate(carried, inner);
    REQUIRE(st == DecapStatus::kOk);
    CHECK(bytes(inner) == ip_part(f));
  }
  // GRE announcing IPv6 with an IPv4 datagram inside, or a protocol lbd never sends: refused.
  auto mislabeled = wrap(client4_frame(), kDirector6, kReal6, kGre);
  put16(mislabeled, 56, kEtherTypeIpv6);
  std::span<const uint8_t> inner;
  CHECK(carrier_decapsulate(kProtoGre, tail(mislabeled, 54), inner) == DecapStatus::kBadInner);
  put16(mislabeled, 56, 0x6558);  // transparent Ethernet bridging
  CHECK(carrier_decapsulate(kProtoGre, tail(mislabeled, 54), inner) == DecapStatus::kBadInner);
}

TEST_CASE("inner IPv6 datagrams are whole: payload length within the carrier, version 6, no jumbogram") {
  const auto f = client6_frame();
  const auto out = wrap(f, kDirector6, kReal6, kIpip);
  std::span<const uint8_t> inner;
  auto cut = tail(out, 54);
  cut.pop_back();
  CHECK(carrier_decapsulate(kProtoIpv6, cut, inner) == DecapStatus::kBadInner);
  auto jumbo = tail(out, 54);
  jumbo[4] = jumbo[5] = 0;
  CHECK(carrier_decapsulate(kProtoIpv6, jumbo, inner) == DecapStatus::kBadInner);
  auto v5 = tail(out, 54);
  v5[0] = 0x50;
  CHECK(carrier_decapsulate(kProtoIpv6, v5, inner) == DecapStatus::kBadInner);
  // Padding after the datagram is not part of it.
  auto padded = tail(out, 54);
  padded.insert(padded.end(), 6, 0);
  REQUIRE(carrier_decapsulate(kProtoIpv6, padded, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
}

TEST_CASE("outer IPv6 fragments (RFC 2473 7.1): at most the MTU each, 8-byte offsets, M, one id, reassembled whole") {
  const auto f = client6_frame(std::string(2900, 'x'));
  const auto out = wrap(f, kDirector6, kReal6, kIpip);  // 3 kB outer
  std::vector<uint8_t> frag(14 + 1280);
  std::map<size_t, std::vector<uint8_t>> pieces;
  size_t n = 0, i = 0;
  bool last_seen = false;
  for (; (n = ipv6_fragment_one(out, 1280, 0xabcdef01, i, frag.data())) != 0; ++i) {
    std::vector<uint8_t> fr(frag.begin(), frag.begin() + long(n));
    CHECK(n - 14 <= 1280);
    CHECK(std::vector<uint8_t>(fr.begin(), fr.begin() + 18) == std::vector<uint8_t>(out.begin(), out.begin() + 18));
    CHECK(std::vector<uint8_t>(fr.begin() + 21, fr.begin() + 54) == std::vector<uint8_t>(out.begin() + 21, out.begin() + 54));
    CHECK(fr[20] == kIp6Fragment);
    CHECK(be16(fr, 18) == n - 54);
    CHECK(fr[54] == kProtoIpv6);  // the fragment header names what the original's did
    const uint16_t off_flags = be16(fr, 56);
    const bool more = off_flags & 1;
    CHECK((off_flags & 6) == 0);
    CHECK(std::vector<uint8_t>(fr.begin() + 58, fr.begin() + 62) == std::vector<uint8_t>{0xab, 0xcd, 0xef, 0x01});
    if (more) CHECK((n - 62) % 8 == 0);
    CHECK_FALSE(last_seen);
    last_seen = !more;
    pieces[off_flags & ~7u] = tail(fr, 62);
  }
  CHECK(i == 3);
  CHECK(last_seen);
  std::vector<uint8_t> whole;
  for (const auto& [off, piece] : pieces) {
    CHECK(off == whole.size());
    whole.insert(whole.end(), piece.begin(), piece.end());
  }
  CHECK(whole == tail(out, 54));
}

TEST_CASE("tunnel MTU policy with IPv6: Packet Too Big never below 1280, outer fragments for what must pass") {
  auto v6packet = [](uint16_t len, uint8_t proto = kProtoTcp, uint8_t type = 0) {
    ParsedPacket p;
    p.v6 = true;
    p.dont_fragment = true;
    p.ip_len = len;
    p.protocol = proto;
    p.icmp_type = type;
    return p;
  };
  // IPv6 in IPv6 on 1500-byte links: 1460 fits, more gets Packet Too Big 1460.
  CHECK(tunnel_xmit(v6packet(1460), 1500, 40, true, false) == TunnelXmit::kEncapsulate);
  CHECK(tunnel_xmit(v6packet(1461), 1500, 40, true, false) == TunnelXmit::kFragNeeded);
  CHECK(tunnel_client_mtu(true, 1500, 40) == 1460);
  // A router said 1280 about the outer packets: the tunnel has 1240, the client is told
  // 1280 and its 1280-byte packets go in outer fragments.
  CHECK(tunnel_xmit(v6packet(1280), 1280, 40, true, false) == TunnelXmit::kEncapsulateFragment);
  CHECK(tunnel_xmit(v6packet(1281), 1280, 40, true, false) == TunnelXmit::kFragNeeded);
  CHECK(tunnel_client_mtu(true, 1280, 40) == 1280);
  CHECK(tunnel_xmit(v6packet(1280), 1279, 40, true, false) == TunnelXmit::kMtuTooSmall);  // not an IPv6 path
  // IPv6 in IPv4 over a 1200-byte path: fragments of the outer IPv4 packet up to 1280.
  CHECK(tunnel_xmit(v6packet(1180), 1200, 20, false, false) == TunnelXmit::kEncapsulate);
  CHECK(tunnel_xmit(v6packet(1280), 1200, 20, false, false) == TunnelXmit::kEncapsulateFragment);
  CHECK(tunnel_xmit(v6packet(1281), 1200, 20, false, false) == TunnelXmit::kFragNeeded);
  // Never an error about an error; a later fragment goes on in pieces.
  CHECK(tunnel_xmit(v6packet(1461, kProtoIcmpv6, icmp6_type::kPacketTooBig), 1500, 40, true, false) ==
        TunnelXmit::kEncapsulateFragment);
  CHECK(tunnel_xmit(v6packet(1461, kProtoIcmpv6, icmp6_type::kEchoRequest), 1500, 40, true, false) ==
        TunnelXmit::kFragNeeded);
  auto later = v6packet(1461);
  later.fragment = true;
  CHECK(tunnel_xmit(later, 1500, 40, true, false) == TunnelXmit::kEncapsulateFragment);
  // IPv4 in IPv6: DF decides, as over IPv4; the client is told the room left (1460).
  ParsedPacket p4;
  p4.ip_len = 1461;
  p4.dont_fragment = true;
  CHECK(tunnel_xmit(p4, 1500, 40, true, false) == TunnelXmit::kFragNeeded);
  CHECK(tunnel_client_mtu(false, 1500, 40) == 1460);
  p4.dont_fragment = false;
  CHECK(tunnel_xmit(p4, 1500, 40, true, false) == TunnelXmit::kEncapsulateFragment);
}

TEST_CASE("lbd-decap over IPv6: allowed directors by prefix, this host's addresses, IPv6 VIPs, one level only") {
  Cidr c;
  CHECK(parse_cidr("2001:db8::/64", c));
  CHECK(c.len == 64);
  CHECK(c.contains(IpAddr(v6("2001:db8::2"))));
  CHECK_FALSE(c.contains(IpAddr(v6("2001:db8:0:1::2"))));
  CHECK_FALSE(c.contains(ip("198.18.0.2")));  // the other family never matches
  CHECK(parse_cidr("2001:db8::2", c));
  CHECK(c.len == 128);
  for (const char* bad : {"2001:db8::1/64", "2001:db8::/129", "2001:db8::/", "[2001:db8::]/64", "::ffff:1.2.3.4/128x"})
    CHECK_FALSE(parse_cidr(bad, c));
  Cidr directors;
  REQUIRE(parse_cidr("2001:db8::/120", directors));
  const IpAddr vip6 = IpAddr(v6("2001:db8::100"));
  Decapsulator d({vip6, ip("198.18.0.100")}, {directors});
  d.set_local_addresses({kReal6, kReal4});

  const auto six = tail(wrap(client6_frame(), kDirector6, kReal6, kIpip), 54);
  CHECK(bytes(d.handle_carrier(kDirector6, kReal6, kProtoIpv6, six)) == ip_part(client6_frame()));
  const auto four = tail(wrap(client4_frame(), kDirector6, kReal6, kIpip), 54);
  CHECK(bytes(d.handle_carrier(kDirector6, kReal6, kProtoIpip, four)) == ip_part(client4_frame()));
  CHECK(d.count(Decapsulator::kDelivered) == 2);
  // IPv6 in IPv4 needs an IPv4 director in the list: this one has none.
  const auto over4 = tail(wrap(client6_frame(), kDirector4, kReal4, kIpip), 14);
  CHECK(d.handle(over4).empty());
  CHECK(d.count(Decapsulator::kSourceNotAllowed) == 1);
  CHECK(d.handle_carrier(IpAddr(v6("2001:db8::1:2")), kReal6, kProtoIpv6, six).empty());
  CHECK(d.count(Decapsulator::kSourceNotAllowed) == 2);
  CHECK(d.handle_carrier(kDirector6, IpAddr(v6("ff02::1")), kProtoIpv6, six).empty());
  CHECK(d.count(Decapsulator::kNotToThisHost) == 1);
  // For another VIP: refused.
  FrameSpec6 other;
  other.daddr = v6("2001:db8::101");
  const auto stranger = tail(wrap(make_frame6(other), kDirector6, kReal6, kIpip), 54);
  CHECK(d.handle_carrier(kDirector6, kReal6, kProtoIpv6, stranger).empty());
  CHECK(d.count(Decapsulator::kNotForVip) == 1);
  // A tunnel inside the tunnel: never delivered.
  auto nested = tail(wrap(client6_frame(), kDirector6, kReal6, kIpip), 54);
  nested[6] = kProtoIpip;
  CHECK(d.handle_carrier(kDirector6, kReal6, kProtoIpv6, nested).empty());
  CHECK(d.count(Decapsulator::kNested) == 1);
}

TEST_CASE("ICMP errors across families (RFC 7915): time exceeded and unreachable mapped, the rest not relayed") {
  uint8_t t = 0, c = 0;
  CHECK(translate_icmp_error(false, icmp_type::kTimeExceeded, 0, t, c));
  CHECK((t == icmp6_type::kTimeExceeded && c == 0));
  CHECK(translate_icmp_error(false, icmp_type::kDestUnreachable, icmp_code::kPortUnreachable, t, c));
  CHECK((t == icmp6_type::kDestUnreachable && c == 4));
  CHECK(translate_icmp_error(false, icmp_type::kDestUnreachable, 1, t, c));  // host unreachable
  CHECK((t == icmp6_type::kDestUnreachable && c == 0));
  CHECK(translate_icmp_error(false, icmp_type::kDestUnreachable, 13, t, c));  // administratively filtered
  CHECK((t == icmp6_type::kDestUnreachable && c == 1));
  CHECK_FALSE(translate_icmp_error(false, icmp_type::kDestUnreachable, 2, t, c));  // protocol unreachable
  CHECK_FALSE(translate_icmp_error(false, icmp_type::kSourceQuench, 0, t, c));
  CHECK(translate_icmp_error(true, icmp6_type::kTimeExceeded, 1, t, c));
  CHECK((t == icmp_type::kTimeExceeded && c == 1));
  CHECK(translate_icmp_error(true, icmp6_type::kDestUnreachable, 4, t, c));
  CHECK((t == icmp_type::kDestUnreachable && c == icmp_code::kPortUnreachable));
  CHECK(translate_icmp_error(true, icmp6_type::kDestUnreachable, 3, t, c));  // address unreachable
  CHECK((t == icmp_type::kDestUnreachable && c == 1));
  CHECK(translate_icmp_error(true, icmp6_type::kDestUnreachable, 1, t, c));
  CHECK((t == icmp_type::kDestUnreachable && c == 10));
  CHECK_FALSE(translate_icmp_error(true, icmp6_type::kParamProblem, 0, t, c));
}

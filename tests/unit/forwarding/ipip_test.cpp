// IPIP encapsulation, outer fragmentation and decapsulation on crafted frames.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "forwarding/decap.hpp"
#include "forwarding/ipip.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

std::vector<uint8_t> encapsulated(const std::vector<uint8_t>& frame, uint16_t id = 7) {
  std::vector<uint8_t> buf(frame.size() + 64, 0xee);
  std::copy(frame.begin(), frame.end(), buf.begin());
  const ParsedPacket p = parse_ok(frame);
  const size_t len = ipip_encapsulate(buf, p, ip("198.18.0.2"), ip("198.18.0.11"), id);
  REQUIRE(len == frame.size() + 20);
  buf.resize(len);
  return buf;
}

}  // namespace

TEST_CASE("IPIP: outer header from the director to the real, inner datagram untouched") {
  FrameSpec s;
  s.payload = "hello";
  s.ttl = 17;
  auto f = make_frame(s);
  f[15] = 0x28;  // TOS
  f[24] = f[25] = 0;
  put16(f, 24, ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34)));
  const auto out = encapsulated(f, 0x4242);
  CHECK(std::equal(f.begin(), f.begin() + 14, out.begin()));  // Ethernet header kept
  CHECK(out[14] == 0x45);
  CHECK(out[15] == 0x28);                                   // TOS copied
  CHECK((out[16] << 8 | out[17]) == int(f.size() - 14 + 20));
  CHECK((out[18] << 8 | out[19]) == 0x4242);                // id
  CHECK((out[20] << 8 | out[21]) == 0x4000);                // DF copied
  CHECK(out[22] == 17);                                     // TTL copied
  CHECK(out[23] == kProtoIpip);
  CHECK(std::vector<uint8_t>(out.begin() + 26, out.begin() + 30) == std::vector<uint8_t>{198, 18, 0, 2});
  CHECK(std::vector<uint8_t>(out.begin() + 30, out.begin() + 34) == std::vector<uint8_t>{198, 18, 0, 11});
  CHECK(ip_checksum_ok(out));
  CHECK(std::vector<uint8_t>(out.begin() + 34, out.end()) == ip_part(f));

  std::span<const uint8_t> inner;
  REQUIRE(ipip_decapsulate({out.data() + 14, out.size() - 14}, inner) == DecapStatus::kOk);
  CHECK(std::vector<uint8_t>(inner.begin(), inner.end()) == ip_part(f));
}

TEST_CASE("IPIP: DF clear inside means DF clear outside; no room means no change") {
  auto f = make_frame(FrameSpec{});
  f[20] = 0;  // clear DF (checksum not re-done: the encapsulation does not read it)
  CHECK((encapsulated(f)[20] & 0x40) == 0);
  std::vector<uint8_t> tight = make_frame(FrameSpec{});
  const auto before = tight;
  CHECK(ipip_encapsulate(tight, parse_ok(tight), ip("198.18.0.2"), ip("198.18.0.11"), 1) == 0);
  CHECK(tight == before);
}

TEST_CASE("fragmentation: pieces fit the MTU, offsets in 8s, MF on all but the last, reassemble") {
  std::mt19937 rng(7);
  for (uint16_t mtu : {68, 576, 1000, 1480, 1500}) {
    FrameSpec s;
    s.payload.resize(1480);
    for (auto& ch : s.payload) ch = char(rng());
    auto f = make_frame(s);
    f[20] = 0;  // no DF
    const auto outer = encapsulated(f);
    std::map<size_t, std::vector<uint8_t>> pieces;
    std::vector<uint8_t> frag(14 + mtu);
    size_t i = 0, n;
    bool saw_last = false;
    while ((n = ipv4_fragment_one(outer, mtu, i++, frag.data())) != 0) {
      std::vector<uint8_t> fr(frag.begin(), frag.begin() + long(n));
      INFO("mtu " << mtu << " fragment " << i - 1);
      CHECK(n - 14 <= mtu);
      CHECK(ip_checksum_ok(fr));
      const uint16_t fo = uint16_t(fr[20] << 8 | fr[21]);
      const bool mf = fo & 0x2000;
      CHECK_FALSE(saw_last);
      saw_last = !mf;
      CHECK((fr[16] << 8 | fr[17]) == int(n - 14));
      CHECK(std::equal(fr.begin() + 18, fr.begin() + 20, outer.begin() + 18));  // same id
      CHECK(std::equal(fr.begin() + 22, fr.begin() + 24, outer.begin() + 22));  // TTL, proto
      CHECK(std::equal(fr.begin() + 26, fr.begin() + 34, outer.begin() + 26));  // addresses
      pieces[size_t(fo & 0x1fff) * 8] = std::vector<uint8_t>(fr.begin() + 34, fr.end());
    }
    CHECK(saw_last);
    std::vector<uint8_t> joined;
    for (auto& [off, data] : pieces) {
      CHECK(off == joined.size());
      joined.insert(joined.end(), data.begin(), data.end());
    }
    CHECK(joined == std::vector<uint8_t>(outer.begin() + 34, outer.end()));
  }
}

TEST_CASE("decapsulation refuses what is not a whole, valid IPIP packet") {
  const auto outer = encapsulated(make_frame(FrameSpec{}));
  const std::vector<uint8_t> good(outer.begin() + 14, outer.end());
  std::span<const uint8_t> inner;
  auto with = [&](auto change) {
    auto v = good;
    change(v);
    return ipip_decapsulate(v, inner);
  };
  CHECK(with([](auto& v) { v.resize(10); }) == DecapStatus::kTruncatedOuter);
  CHECK(with([](auto& v) { v[9] = kProtoTcp; }) == DecapStatus::kNotIpip);
  CHECK(with([](auto& v) { v.resize(v.size() - 1); }) == DecapStatus::kTruncatedOuter);
  CHECK(with([](auto& v) { v[20] = 0x65; }) == DecapStatus::kBadInner);  // inner version 6
  CHECK(with([](auto& v) { v[22] = 0xff; v[23] = 0xff; }) == DecapStatus::kBadInner);  // length
  CHECK(with([](auto& v) { v[28] ^= 1; }) == DecapStatus::kBadInner);  // inner checksum
  CHECK(with([](auto&) {}) == DecapStatus::kOk);
}

TEST_CASE("lbd-decap delivers only a whole inner packet for a VIP from an allowed director") {
  Cidr c;
  CHECK(parse_cidr("198.18.0.0/24", c));
  CHECK(c.contains(ip("198.18.0.2")));
  CHECK_FALSE(c.contains(ip("198.18.1.2")));
  CHECK(parse_cidr("198.18.0.2", c));
  CHECK(c.len == 32);
  CHECK(parse_cidr("0.0.0.0/0", c));
  CHECK(c.contains(ip("203.0.113.9")));
  for (const char* bad : {"198.18.0.1/24", "198.18.0.0/33", "198.18.0.0/", "198.18.0/24", "x"})
    CHECK_FALSE(parse_cidr(bad, c));

  const auto frame = encapsulated(make_frame(FrameSpec{}));  // director 198.18.0.2 → VIP .100
  const std::vector<uint8_t> outer(frame.begin() + 14, frame.end());
  const std::vector<IpAddr> local{ip("198.18.0.11")};
  Decapsulator any({ip("198.18.0.100")}, {}, true);
  any.set_local_addresses(local);
  const auto inner = any.handle(outer);
  CHECK(std::vector<uint8_t>(inner.begin(), inner.end()) == std::vector<uint8_t>(outer.begin() + 20, outer.end()));
  CHECK(any.count(Decapsulator::kDelivered) == 1);

  Decapsulator other_vip({ip("198.18.0.101")}, {}, true);
  other_vip.set_local_addresses(local);
  CHECK(other_vip.handle(outer).empty());
  CHECK(other_vip.count(Decapsulator::kNotForVip) == 1);

  Cidr d1, d2;
  REQUIRE(parse_cidr("198.18.0.3", d1));
  REQUIRE(parse_cidr("198.18.0.0/31", d2));
  Decapsulator strict({ip("198.18.0.100")}, {d1});
  strict.set_local_addresses(local);
  CHECK(strict.handle(outer).empty());
  CHECK(strict.count(Decapsulator::kSourceNotAllowed) == 1);
  Decapsulator none({ip("198.18.0.100")}, {});  // no --allow-from and no --allow-any
  none.set_local_addresses(local);
  CHECK(none.handle(outer).empty());
  CHECK(none.count(Decapsulator::kSourceNotAllowed) == 1);
  Decapsulator allowed({ip("198.18.0.100")}, {d1, Cidr{ip("198.18.0.2"), 32}});
  allowed.set_local_addresses(local);
  CHECK_FALSE(allowed.handle(outer).empty());
  // Sent to a broadcast address (or any address that is not this host's): refused.
  auto bcast = outer;
  bcast[16] = 198, bcast[17] = 18, bcast[18] = 0, bcast[19] = 255;
  CHECK(allowed.handle(bcast).empty());
  CHECK(allowed.count(Decapsulator::kNotToThisHost) == 1);
  // IPIP inside IPIP: never decapsulated twice.
  std::vector<uint8_t> twice(frame.size() + 20 + 64);
  std::copy(frame.begin(), frame.end(), twice.begin());
  ParsedPacket op;  // the IPIP packet as a packet to tunnel (parse_frame takes no IPIP)
  op.l3_off = 14;
  op.ip_len = uint16_t(frame.size() - 14);
  const size_t n2 = ipip_encapsulate(twice, op, ip("198.18.0.2"), ip("198.18.0.11"), 9);
  REQUIRE(n2 == frame.size() + 20);
  const std::vector<uint8_t> nested(twice.begin() + 14, twice.begin() + long(n2));
  CHECK(allowed.handle(nested).empty());
  CHECK(allowed.count(Decapsulator::kNested) == 1);

  auto cut = outer;
  cut.resize(30);
  CHECK(any.handle(cut).empty());
  CHECK(any.count(Decapsulator::kMalformed) == 1);
  CHECK(any.handle(ip_part(make_frame(FrameSpec{}))).empty());  // plain TCP, not IPIP
  CHECK(any.count(Decapsulator::kNotIpip) == 1);
}

TEST_CASE("IPIP checksum property: random packets, the outer header verifies, the inner is intact") {
  std::mt19937 rng(99);
  for (int i = 0; i < 1000; ++i) {
    FrameSpec s;
    s.protocol = (rng() & 1) ? kProtoTcp : kProtoUdp;
    s.saddr = Be32::from_host(rng());
    s.daddr = Be32::from_host(rng());
    s.ttl = uint8_t(1 + rng() % 255);
    s.payload.resize(rng() % 1400);
    const auto f = make_frame(s);
    std::vector<uint8_t> buf(f.size() + 20);
    std::copy(f.begin(), f.end(), buf.begin());
    const Ipv4 src = Be32::from_host(rng()), dst = Be32::from_host(rng());
    const size_t n = ipip_encapsulate(buf, parse_ok(f), src, dst, uint16_t(rng()));
    REQUIRE(n == f.size() + 20);
    INFO("case " << i);
    REQUIRE(ip_checksum_ok(buf));
    REQUIRE(buf[22] == s.ttl);
    REQUIRE(std::vector<uint8_t>(buf.begin() + 34, buf.end()) == ip_part(f));
    std::span<const uint8_t> inner;
    REQUIRE(ipip_decapsulate({buf.data() + 14, n - 14}, inner) == DecapStatus::kOk);
  }
}

TEST_CASE("the tunnel's MTU policy: too small, segmented, frag-needed, as is, or the outer packet fragmented") {
  auto packet = [](uint16_t ip_len, bool df, uint8_t protocol = kProtoUdp, uint8_t icmp_type = 0) {
    ParsedPacket p;
    p.ip_len = ip_len;
    p.dont_fragment = df;
    p.protocol = protocol;
    p.icmp_type = icmp_type;
    return p;
  };
  CHECK(tunnel_xmit(packet(100, true), min_tunnel_mtu(20, false) - 1, 20, false, false) == TunnelXmit::kMtuTooSmall);
  CHECK(tunnel_xmit(packet(68, true), min_tunnel_mtu(20, false), 20, false, false) == TunnelXmit::kEncapsulate);  // 68 + 20 fits 88
  CHECK(tunnel_xmit(packet(1480, true), 1500, 20, false, false) == TunnelXmit::kEncapsulate);  // 1480 + 20 fits
  CHECK(tunnel_xmit(packet(1481, true), 1500, 20, false, false) == TunnelXmit::kFragNeeded);
  CHECK(tunnel_xmit(packet(1481, false), 1500, 20, false, false) == TunnelXmit::kEncapsulateFragment);
  // An ICMP error with DF is relayed, its outer packet cut: never an error about an error.
  CHECK(tunnel_xmit(packet(1481, true, kProtoIcmp, 3), 1500, 20, false, false) == TunnelXmit::kEncapsulateFragment);
  CHECK(tunnel_xmit(packet(1481, true, kProtoIcmp, 8), 1500, 20, false, false) == TunnelXmit::kFragNeeded);  // a ping
  // A local sender's super-frame: segmented for the tunnel whatever its DF.
  CHECK(tunnel_xmit(packet(9000, true, kProtoTcp), 1500, 20, false, true) == TunnelXmit::kSegmentEncapsulate);
  CHECK(tunnel_xmit(packet(9000, true, kProtoTcp), min_tunnel_mtu(20, false) - 1, 20, false, true) == TunnelXmit::kMtuTooSmall);
}

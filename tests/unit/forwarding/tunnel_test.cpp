// GUE and GRE encapsulation as IPVS sends them (ip_vs_xmit.c ipvs_gue_encap, ipvs_gre_encap)
// and their decapsulation, on crafted frames; checksums by the reference sum in frames.hpp.
#include <catch2/catch.hpp>

#include <set>

#include "forwarding/decap.hpp"
#include "forwarding/tunnel.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;
using namespace lbd::test::lab;

namespace {

std::vector<uint8_t> wrapped(const std::vector<uint8_t>& frame, const TunnelSpec& t) {
  std::vector<uint8_t> buf(frame.size() + 64, 0xee);
  std::copy(frame.begin(), frame.end(), buf.begin());
  const size_t len = tunnel_encapsulate(buf, parse_ok(frame), kDirector, kRip, 9, t);
  REQUIRE(len == frame.size() + tunnel_overhead(t, false));
  buf.resize(len);
  return buf;
}

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

const TunnelSpec kGue{TunType::kGue, 6080, TunCsum::kNoCsum};
const TunnelSpec kGueCsum{TunType::kGue, 6080, TunCsum::kCsum};
const TunnelSpec kGre{TunType::kGre, 0, TunCsum::kNoCsum};
const TunnelSpec kGreCsum{TunType::kGre, 0, TunCsum::kCsum};

}  // namespace

TEST_CASE("tunnel overhead: IPVS's MTU arithmetic (outer IPv4 + UDP + GUE, + GRE 4 or 8)") {
  CHECK(tunnel_overhead(TunnelSpec{}, false) == 20);
  CHECK(tunnel_overhead(kGue, false) == 32);
  CHECK(tunnel_overhead(TunnelSpec{TunType::kGue, 1, TunCsum::kRemCsum}, false) == 32);
  CHECK(tunnel_overhead(kGre, false) == 24);
  CHECK(tunnel_overhead(kGreCsum, false) == 28);
}

TEST_CASE("GUE: outer IPv4/UDP to the tunnel port, a 4-byte GUE header for IPv4, no checksum") {
  FrameSpec s;
  s.payload = "hello";
  const auto f = make_frame(s);
  const auto out = wrapped(f, kGue);
  CHECK(out[23] == kProtoUdp);
  CHECK(ip_checksum_ok(out));
  const uint16_t sport = uint16_t(out[34] << 8 | out[35]);
  CHECK(sport >= 32768);
  CHECK(sport <= 60999);
  CHECK((out[36] << 8 | out[37]) == 6080);
  CHECK((out[38] << 8 | out[39]) == int(out.size() - 34));  // UDP length
  CHECK((out[40] | out[41]) == 0);                           // --tun-nocsum: 0
  CHECK(std::vector<uint8_t>(out.begin() + 42, out.begin() + 46) == std::vector<uint8_t>{0, kProtoIpip, 0, 0});
  CHECK(std::vector<uint8_t>(out.begin() + 46, out.end()) == ip_part(f));

  std::vector<uint8_t> payload(out.begin() + 42, out.end());
  std::span<const uint8_t> inner;
  REQUIRE(gue_decapsulate(payload, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
}

TEST_CASE("GUE: --tun-csum and --tun-remcsum compute the UDP checksum; one flow keeps its port") {
  const auto f = make_frame(FrameSpec{});
  for (const TunnelSpec& t : {kGueCsum, TunnelSpec{TunType::kGue, 6080, TunCsum::kRemCsum}}) {
    const auto out = wrapped(f, t);
    CHECK((out[40] | out[41]) != 0);
    CHECK(l4_checksum_ok(out));
    CHECK(std::vector<uint8_t>(out.begin() + 42, out.begin() + 46) == std::vector<uint8_t>{0, kProtoIpip, 0, 0});
  }
  CHECK(wrapped(f, kGue)[34] == wrapped(f, kGue)[34]);
  std::set<uint16_t> ports;
  for (uint16_t cport = 40000; cport < 40064; ++cport) {
    FrameSpec s;
    s.sport = cport;
    const auto out = wrapped(make_frame(s), kGue);
    ports.insert(uint16_t(out[34] << 8 | out[35]));
  }
  CHECK(ports.size() > 48);  // 64 flows hashed over 28,231 ports
}

TEST_CASE("GRE: protocol 47, 0x0800; with --tun-csum the C bit and an RFC 2784 checksum") {
  FrameSpec s;
  s.payload = "odd";  // an odd length: the checksum pads the last byte
  const auto f = make_frame(s);
  const auto plain = wrapped(f, kGre);
  CHECK(plain[23] == kProtoGre);
  CHECK(ip_checksum_ok(plain));
  CHECK(std::vector<uint8_t>(plain.begin() + 34, plain.begin() + 38) == std::vector<uint8_t>{0, 0, 0x08, 0x00});
  CHECK(std::vector<uint8_t>(plain.begin() + 38, plain.end()) == ip_part(f));

  const auto summed = wrapped(f, kGreCsum);
  CHECK(std::vector<uint8_t>(summed.begin() + 34, summed.begin() + 36) == std::vector<uint8_t>{0x80, 0});
  CHECK((summed[40] | summed[41]) == 0);  // reserved
  CHECK(ref_checksum(std::vector<uint8_t>(summed.begin() + 34, summed.end())) == 0);
  CHECK(std::vector<uint8_t>(summed.begin() + 42, summed.end()) == ip_part(f));

  for (const auto* out : {&plain, &summed}) {
    std::span<const uint8_t> inner;
    REQUIRE(gre_decapsulate({out->data() + 14, out->size() - 14}, inner) == DecapStatus::kOk);
    CHECK(bytes(inner) == ip_part(f));
  }
}

TEST_CASE("GRE decapsulation refuses a bad checksum, routing, another version or protocol") {
  const auto f = make_frame(FrameSpec{});
  std::span<const uint8_t> inner;
  auto decap = [&](const std::vector<uint8_t>& out) { return gre_decapsulate({out.data() + 14, out.size() - 14}, inner); };
  auto bad_sum = wrapped(f, kGreCsum);
  bad_sum.back() ^= 1;
  CHECK(decap(bad_sum) == DecapStatus::kBadInner);
  for (const auto& [off, value] : std::vector<std::pair<size_t, uint8_t>>{{34, 0x40}, {35, 0x01}, {36, 0x86}}) {
    auto out = wrapped(f, kGre);
    out[off] |= value;
    CHECK(decap(out) == DecapStatus::kBadInner);
  }
  auto truncated = wrapped(f, kGreCsum);
  truncated[17] = 20 + 6;  // outer total length: the GRE header cut
  truncated[16] = 0;
  CHECK(decap(truncated) == DecapStatus::kTruncatedOuter);
  CHECK(decap(wrapped(f, TunnelSpec{})) == DecapStatus::kNotIpip);
  // Key and sequence number (sent by other GRE peers) are skipped.
  auto keyed = wrapped(f, kGre);
  keyed.insert(keyed.begin() + 38, {1, 2, 3, 4, 5, 6, 7, 8});
  keyed[34] = 0x30;
  put16(keyed, 16, uint16_t(keyed.size() - 14));
  REQUIRE(decap(keyed) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip_part(f));
}

TEST_CASE("GUE decapsulation: fou's rules (version 0 data, IPv4 or IPv6, known flags, hlen that fits)") {
  const auto f = make_frame(FrameSpec{});
  const auto out = wrapped(f, kGue);
  const std::vector<uint8_t> good(out.begin() + 42, out.end());
  std::span<const uint8_t> inner;
  auto with = [&](size_t off, uint8_t v) {
    auto p = good;
    p[off] = v;
    return gue_decapsulate(p, inner);
  };
  CHECK(with(0, 0x40) == DecapStatus::kNotIpip);      // version 1
  CHECK(with(0, 0x20) == DecapStatus::kNotIpip);      // a control message
  CHECK(with(1, 6) == DecapStatus::kNotIpip);         // TCP inside: not a datagram
  CHECK(with(1, 41) == DecapStatus::kBadInner);       // IPv6 announced, IPv4 inside
  CHECK(with(3, 0x02) == DecapStatus::kBadInner);     // an unknown flag
  CHECK(with(3, 0x01) == DecapStatus::kBadInner);     // private flags announced, hlen 0
  CHECK(with(0, 0x1f) == DecapStatus::kTruncatedOuter);  // 124 bytes of options: not there
  std::vector<uint8_t> tiny{0, 4};
  CHECK(gue_decapsulate(tiny, inner) == DecapStatus::kTruncatedOuter);
  auto bad_inner = good;
  bad_inner[4 + 10] ^= 0xff;  // inner IPv4 header checksum
  CHECK(gue_decapsulate(bad_inner, inner) == DecapStatus::kBadInner);
}

TEST_CASE("GUE remote checksum offload: the inner checksum completed as fou does") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = "remote checksum";
  const auto f = make_frame(s);
  const auto ip = ip_part(f);  // IPv4 20 + UDP 8 + payload
  // The sender's partial form: the UDP checksum field holds the pseudo-header's sum only.
  auto partial = ip;
  std::vector<uint8_t> pseudo(ip.begin() + 12, ip.begin() + 20);
  const size_t l4 = ip.size() - 20;
  pseudo.insert(pseudo.end(), {0, kProtoUdp, uint8_t(l4 >> 8), uint8_t(l4)});
  const uint16_t pseudo_sum = uint16_t(~ref_checksum(pseudo));
  partial[26] = uint8_t(pseudo_sum >> 8);
  partial[27] = uint8_t(pseudo_sum);
  // GUE with the private flags word (REMCSUM) and start/offset relative to the inner packet.
  std::vector<uint8_t> gue{0x02, kProtoIpip, 0x00, 0x01, 0x80, 0, 0, 0, 0, 20, 0, 26};
  gue.insert(gue.end(), partial.begin(), partial.end());
  std::span<const uint8_t> inner;
  REQUIRE(gue_decapsulate(gue, inner) == DecapStatus::kOk);
  CHECK(bytes(inner) == ip);  // the original checksum back
  auto beyond = gue;
  beyond[11] = uint8_t(ip.size());  // the field past the end
  CHECK(gue_decapsulate(beyond, inner) == DecapStatus::kBadInner);
}

TEST_CASE("Decapsulator: GRE and GUE from an allowed director to a VIP; others counted and dropped") {
  Decapsulator d({kVip}, {Cidr{kDirector, 32}});
  d.set_local_addresses({kRip});
  const auto f = make_frame(FrameSpec{});
  const auto gre = wrapped(f, kGreCsum);
  CHECK(bytes(d.handle({gre.data() + 14, gre.size() - 14})) == ip_part(f));
  auto gue = wrapped(f, kGue);
  std::vector<uint8_t> payload(gue.begin() + 42, gue.end());
  CHECK(bytes(d.handle_gue(kDirector, kRip, payload)) == ip_part(f));
  CHECK(d.handle_gue(ip("198.18.0.99"), kRip, payload).empty());
  CHECK(d.handle_gue(kDirector, ip("198.18.0.255"), payload).empty());
  CHECK(d.count(Decapsulator::kDelivered) == 2);
  CHECK(d.count(Decapsulator::kSourceNotAllowed) == 1);
  CHECK(d.count(Decapsulator::kNotToThisHost) == 1);
  // A tunnel inside a tunnel is never a director's: GRE in GUE is refused.
  std::vector<uint8_t> nested_frame(gre.size() + 64);
  std::copy(gre.begin(), gre.end(), nested_frame.begin());
  ParsedPacket outer;  // parse_frame() takes no GRE packet: the fields encapsulation reads
  outer.l3_off = 14;
  outer.ip_len = uint16_t(gre.size() - 14);
  outer.protocol = kProtoGre;
  const size_t n = tunnel_encapsulate(nested_frame, outer, kDirector, kRip, 1, kGue);
  REQUIRE(n);
  std::vector<uint8_t> nested(nested_frame.begin() + 42, nested_frame.begin() + long(n));
  CHECK(d.handle_gue(kDirector, kRip, nested).empty());
  CHECK(d.count(Decapsulator::kNested) == 1);
}

// Checksum helpers against from-scratch recomputation on random packets.
#include <catch2/catch.hpp>

#include <random>

#include "forwarding/checksum.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
uint16_t get16(const std::vector<uint8_t>& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }

std::vector<uint8_t> random_frame(std::mt19937& rng) {
  FrameSpec s;
  s.protocol = rng() % 2 ? kProtoTcp : kProtoUdp;
  s.saddr = Be32::from_host(uint32_t(rng()));
  s.daddr = Be32::from_host(uint32_t(rng()));
  s.sport = uint16_t(rng());
  s.dport = uint16_t(rng());
  s.payload.resize(rng() % 1400);
  for (auto& ch : s.payload) ch = char(rng());
  return make_frame(s);
}
}  // namespace

TEST_CASE("ipv4_header matches the reference checksum") {
  std::mt19937 rng(1);
  for (int i = 0; i < 200; ++i) {
    auto f = random_frame(rng);
    std::vector<uint8_t> hdr(f.begin() + 14, f.begin() + 34);
    const uint16_t stored = get16(f, 24);
    CHECK(csum::ipv4_header(hdr) == stored);
  }
}

TEST_CASE("l4_full matches the reference checksum for TCP and UDP") {
  std::mt19937 rng(2);
  for (int i = 0; i < 200; ++i) {
    auto f = random_frame(rng);
    const ParsedPacket p = parse_ok(f);
    const size_t check_off = p.protocol == kProtoTcp ? 16 : 6;
    const uint16_t stored = get16(f, 34 + check_off);
    std::span<const uint8_t> seg(f.data() + 34, f.size() - 34);
    CHECK(csum::l4_full(p.saddr, p.daddr, p.protocol, seg, check_off) == stored);
  }
}

TEST_CASE("replace16 and replace32 equal a full recomputation (RFC 1624)") {
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) {
    auto f = random_frame(rng);
    const bool tcp = f[23] == kProtoTcp;
    const size_t check_at = 34 + (tcp ? 16 : 6);
    // Change the destination address and port, as NAT does, and update incrementally.
    const uint32_t old_addr = uint32_t(get16(f, 30)) << 16 | get16(f, 32);
    const uint32_t new_addr = uint32_t(rng());
    const uint16_t old_port = get16(f, 36), new_port = uint16_t(rng());
    uint16_t ip_check = csum::replace32(get16(f, 24), old_addr, new_addr);
    uint16_t l4_check = get16(f, check_at);
    l4_check = csum::replace32(l4_check, old_addr, new_addr);
    l4_check = csum::replace16(l4_check, old_port, new_port);
    put16(f, 30, uint16_t(new_addr >> 16));
    put16(f, 32, uint16_t(new_addr));
    put16(f, 36, new_port);
    std::vector<uint8_t> hdr(f.begin() + 14, f.begin() + 34);
    CHECK(ip_check == csum::ipv4_header(hdr));
    // One's complement has two zeros, so compare by verification: the reference sum over
    // pseudo-header and segment, with the updated checksum in place, must come out 0.
    put16(f, check_at, l4_check);
    CHECK(l4_checksum_ok(f));
  }
}

TEST_CASE("a partial (offloaded) checksum is completed; a finished one is untouched") {
  std::mt19937 rng(4);
  for (int i = 0; i < 200; ++i) {
    auto good = random_frame(rng);
    const ParsedPacket p = parse_ok(good);
    const size_t check_at = 34 + (p.protocol == kProtoTcp ? 16 : 6);
    // What veth with TX offload hands over: the folded pseudo-header sum, not complemented.
    auto partial = good;
    const uint16_t l4len = uint16_t(good.size() - 34);
    put16(partial, check_at, csum::fold(csum::pseudo_header(p.saddr, p.daddr, p.protocol, l4len)));
    CHECK(csum::complete_partial(partial, p));
    CHECK(partial == good);
    auto untouched = good;
    CHECK_FALSE(csum::complete_partial(untouched, p));
    CHECK(untouched == good);
  }
}

TEST_CASE("a UDP checksum of 0 (none) stays 0") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = "abc";
  auto f = make_frame(s);
  put16(f, 34 + 6, 0);
  const ParsedPacket p = parse_ok(f);
  auto before = f;
  CHECK_FALSE(csum::complete_partial(f, p));
  CHECK(f == before);
}

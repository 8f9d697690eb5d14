// Software TCP segmentation of GSO super-frames: every segment is a valid TCP/IPv4 packet
// (checked with the reference checksum), and together they carry exactly the payload.
#include <catch2/catch.hpp>

#include "forwarding/checksum.hpp"
#include "forwarding/segment.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
uint32_t get32(const std::vector<uint8_t>& f, size_t o) {
  return uint32_t(f[o]) << 24 | uint32_t(f[o + 1]) << 16 | uint32_t(f[o + 2]) << 8 | f[o + 3];
}
}  // namespace

TEST_CASE("a 5000-byte TCP super-frame becomes 4 valid MTU-sized segments") {
  FrameSpec s;
  s.flags = tcp_flag::kAck | tcp_flag::kPsh | tcp_flag::kFin;
  s.payload.resize(5000);
  for (size_t i = 0; i < s.payload.size(); ++i) s.payload[i] = char(i * 7);
  auto big = make_frame(s);
  put16(big, 34 + 16, 0x1234);  // a partial or stale checksum: segments get full ones
  const ParsedPacket p = parse_ok(big);
  std::string carried;
  std::vector<uint8_t> buf(14 + 1500);
  size_t n = 0;
  for (;; ++n) {
    const size_t len = tcp_segment_one(big, p, 1500, n, buf.data());
    if (!len) break;
    std::vector<uint8_t> seg(buf.begin(), buf.begin() + long(len));
    INFO("segment " << n);
    CHECK(len <= 14 + 1500);
    parse_ok(seg);
    CHECK(ref_checksum(std::vector<uint8_t>(seg.begin() + 14, seg.begin() + 34)) == 0);
    CHECK(l4_checksum_ok(seg));
    CHECK(get32(seg, 34 + 4) == get32(big, 34 + 4) + uint32_t(carried.size()));
    const bool last = carried.size() + (len - 54) == s.payload.size();
    CHECK(bool(seg[34 + 13] & tcp_flag::kFin) == last);
    CHECK(bool(seg[34 + 13] & tcp_flag::kPsh) == last);
    CHECK(bool(seg[34 + 13] & tcp_flag::kAck));
    CHECK(uint16_t(seg[18] << 8 | seg[19]) == 0x1234 + n);
    carried.append(seg.begin() + 54, seg.end());
  }
  CHECK(n == 4);
  CHECK(carried == s.payload);
}

TEST_CASE("segmentation refuses UDP") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload.resize(3000);
  auto f = make_frame(s);
  const ParsedPacket p = parse_ok(f);
  std::vector<uint8_t> buf(1514);
  CHECK(tcp_segment_one(f, p, 1500, 0, buf.data()) == 0);
}

// ICMP port unreachable built in place from the offending frame: addresses reversed, the
// original datagram quoted (truncated to fit 576 bytes), both checksums valid.
#include <catch2/catch.hpp>

#include "forwarding/icmp.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
std::vector<uint8_t> reply_for(const FrameSpec& s, size_t& len, std::vector<uint8_t>& original) {
  original = make_frame(s);
  std::vector<uint8_t> buf = original;
  buf.resize(original.size() + 64);
  const ParsedPacket p = parse_ok(original);
  len = make_dest_unreachable({buf.data(), original.size()}, buf.size(), p, 3, mac(0xd1));
  buf.resize(len);
  return buf;
}
}  // namespace

TEST_CASE("a SYN to a VIP with no real becomes ICMP port unreachable from the VIP") {
  FrameSpec s;
  s.dst = mac(0xd1);
  size_t len = 0;
  std::vector<uint8_t> orig;
  auto r = reply_for(s, len, orig);
  REQUIRE(len == 14 + 20 + 8 + 40);
  CHECK(std::equal(r.begin(), r.begin() + 6, s.src.b.begin()));      // to the client's MAC
  CHECK(std::equal(r.begin() + 6, r.begin() + 12, mac(0xd1).b.begin()));
  CHECK(r[23] == kProtoIcmp);
  CHECK(std::equal(r.begin() + 26, r.begin() + 30, s.daddr.b.begin()));  // from the VIP
  CHECK(std::equal(r.begin() + 30, r.begin() + 34, s.saddr.b.begin()));  // to the client
  CHECK(ref_checksum(std::vector<uint8_t>(r.begin() + 14, r.begin() + 34)) == 0);
  CHECK(r[34] == 3);
  CHECK(r[35] == 3);
  CHECK(ref_checksum(std::vector<uint8_t>(r.begin() + 34, r.end())) == 0);
  CHECK(std::equal(r.begin() + 42, r.end(), orig.begin() + 14));  // the datagram, quoted
}

TEST_CASE("the quote is cut so that the ICMP datagram fits 576 bytes") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = std::string(1400, 'u');
  size_t len = 0;
  std::vector<uint8_t> orig;
  auto r = reply_for(s, len, orig);
  CHECK(len == 14 + 576);
  CHECK(ref_checksum(std::vector<uint8_t>(r.begin() + 34, r.end())) == 0);
  CHECK(std::equal(r.begin() + 42, r.end(), orig.begin() + 14));
}

TEST_CASE("no reply when the buffer is too small") {
  auto f = make_frame({});
  const ParsedPacket p = parse_ok(f);
  CHECK(make_dest_unreachable(f, f.size(), p, 3, mac(0xd1)) == 0);
}

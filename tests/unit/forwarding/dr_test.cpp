// DR rewrite fixtures {description, input, expected}: only the two MACs change.
#include <catch2/catch.hpp>

#include "forwarding/arp.hpp"
#include "forwarding/dr.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

TEST_CASE("DR rewrites destination MAC to the real's and source MAC to the director's") {
  struct Fixture {
    const char* description;
    FrameSpec in;
  };
  FrameSpec udp;
  udp.protocol = kProtoUdp;
  udp.dport = 53;
  udp.payload = std::string(100, 'q');
  FrameSpec data;
  data.flags = tcp_flag::kAck | tcp_flag::kPsh;
  data.payload = "GET / HTTP/1.1\r\nHost: vip\r\n\r\n";
  const Fixture fixtures[] = {{"TCP SYN", FrameSpec{}}, {"TCP data", data}, {"UDP datagram", udp}};
  NextHop hop{3, mac(0xd1), mac(0xa1), 1500, true, {}};
  for (const auto& fx : fixtures) {
    SECTION(fx.description) {
      auto frame = make_frame(fx.in);
      FrameSpec out_spec = fx.in;
      out_spec.src = hop.src;
      out_spec.dst = hop.dst;
      const auto expected = make_frame(out_spec);
      const ParsedPacket p = parse_ok(frame);
      REQUIRE(rewrite_dr(frame, p, hop) == RewriteStatus::kOk);
      CHECK(frame == expected);
    }
  }
}

TEST_CASE("DR asks for segmentation of a TCP super-frame, refuses any other") {
  FrameSpec t;
  t.payload = std::string(2000, 'x');
  auto tf = make_frame(t);
  const ParsedPacket tp = parse_ok(tf);
  NextHop thop{3, mac(0xd1), mac(0xa1), 1500, true, {}};
  CHECK(rewrite_dr(tf, tp, thop) == RewriteStatus::kNeedsSegmentation);
  CHECK(tf[5] == 0xa1);

  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = std::string(2000, 'x');
  auto f = make_frame(s);
  const auto before = f;
  const ParsedPacket p = parse_ok(f);
  NextHop hop{3, mac(0xd1), mac(0xa1), 1500, true, {}};
  CHECK(rewrite_dr(f, p, hop) == RewriteStatus::kFrameTooBig);
  CHECK(f == before);
}

TEST_CASE("an ARP request for the VIP becomes the reply 'VIP is-at director MAC'") {
  auto f = make_arp_request(mac(9), ip("198.18.0.1"), ip("198.18.0.100"));
  const ParsedPacket p = parse_ok(f);
  REQUIRE(is_arp_request_for(f, p, ip("198.18.0.100")));
  CHECK_FALSE(is_arp_request_for(f, p, ip("198.18.0.101")));
  arp_request_to_reply(f, mac(0xd1));
  const std::vector<uint8_t> expected = {
      0x02, 0, 0, 0, 0, 9,    0x02, 0, 0, 0, 0, 0xd1, 0x08, 0x06,  // Ethernet
      0, 1, 0x08, 0, 6, 4, 0, 2,                                   // ARP reply
      0x02, 0, 0, 0, 0, 0xd1, 198, 18, 0, 100,                     // sender: VIP at director
      0x02, 0, 0, 0, 0, 9,    198, 18, 0, 1};                      // target: the asker
  CHECK(f == expected);
}

// Layer-2 transmission (DR; NAT after its rewrite), the path the data path sends by:
// fixtures {description, input, expected} where only the two MACs change, and the MTU
// policy for packets larger than the next hop takes.
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
      REQUIRE(xmit_l2(frame, p, hop, hop.mtu) == XmitStatus::kSend);
      CHECK(frame == expected);
    }
  }
}

TEST_CASE("too big for the MTU: a TCP super-frame is segmented, DF clear fragmented, DF set refused untouched") {
  NextHop hop{3, mac(0xd1), mac(0xa1), 1500, true, {}};
  FrameSpec t;
  t.payload = std::string(2000, 'x');
  auto tf = make_frame(t);
  const ParsedPacket tp = parse_ok(tf);
  CHECK(xmit_l2(tf, tp, hop, 1500) == XmitStatus::kSegment);
  CHECK(tf[5] == 0xa1);  // its MACs set: segments are cut from it

  FrameSpec u;
  u.protocol = kProtoUdp;
  u.payload = std::string(2000, 'x');
  u.dont_fragment = false;
  auto uf = make_frame(u);
  const ParsedPacket up = parse_ok(uf);
  CHECK(xmit_l2(uf, up, hop, 1500) == XmitStatus::kFragment);
  CHECK(uf[5] == 0xa1);

  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = std::string(2000, 'x');
  s.dont_fragment = true;
  auto f = make_frame(s);
  const auto before = f;
  const ParsedPacket p = parse_ok(f);
  CHECK(xmit_l2(f, p, hop, 1500) == XmitStatus::kTooBig);
  CHECK(f == before);

  // Under the MTU nothing but the MACs: a smaller next hop (a tunnel's, a path MTU) decides.
  auto small = make_frame(FrameSpec{});
  const ParsedPacket sp = parse_ok(small);
  CHECK(xmit_l2(small, sp, hop, uint16_t(sp.ip_len)) == XmitStatus::kSend);
  CHECK(xmit_l2(small, sp, hop, uint16_t(sp.ip_len - 1)) == XmitStatus::kSegment);
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

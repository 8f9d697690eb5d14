// Parsing: well-formed frames yield their fields; every malformed shape is refused with
// its own reason and nothing is read out of bounds.
#include <catch2/catch.hpp>

#include <functional>

#include "forwarding/packet.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

TEST_CASE("a TCP SYN parses into its addresses, ports and flags") {
  auto f = make_frame({});
  const ParsedPacket p = parse_ok(f);
  CHECK(p.protocol == kProtoTcp);
  CHECK(p.saddr == ip("198.18.0.1"));
  CHECK(p.daddr == ip("198.18.0.100"));
  CHECK(p.sport == 40000);
  CHECK(p.dport == 80);
  CHECK(p.tcp_flags == tcp_flag::kSyn);
  CHECK(p.l4_off == 34);
  CHECK(p.ip_len == 40);
}

TEST_CASE("Ethernet padding after the IP datagram is allowed") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = "x";
  auto f = make_frame(s);
  f.resize(60, 0);  // minimum Ethernet frame
  const ParsedPacket p = parse_ok(f);
  CHECK(p.ip_len == 29);
}

namespace {
struct Malformed {
  const char* description;
  std::function<void(std::vector<uint8_t>&)> mutate;
  DropReason expected;
};
}  // namespace

TEST_CASE("malformed frames are refused with their reason") {
  const std::vector<Malformed> cases = {
      {"shorter than Ethernet", [](auto& f) { f.resize(10); }, DropReason::kTruncatedEthernet},
      {"another ethertype", [](auto& f) { put16(f, 12, 0x88b5); }, DropReason::kUnsupportedEtherType},
      {"IPv6 ethertype over an IPv4 packet", [](auto& f) { put16(f, 12, 0x86dd); }, DropReason::kBadIpVersion},
      {"VLAN tag", [](auto& f) { put16(f, 12, 0x8100); }, DropReason::kUnsupportedEtherType},
      {"IP header cut", [](auto& f) { f.resize(14 + 12); }, DropReason::kTruncatedIp},
      {"IP version 6 in an IPv4 frame", [](auto& f) { f[14] = 0x65; }, DropReason::kBadIpVersion},
      {"IHL below 5", [](auto& f) { f[14] = 0x44; }, DropReason::kBadIhl},
      {"total length beyond the frame", [](auto& f) { put16(f, 16, 1500); }, DropReason::kBadIpLength},
      {"total length below the header", [](auto& f) { put16(f, 16, 10); }, DropReason::kBadIpLength},
      {"IP options", [](auto& f) {
         f[14] = 0x46;
         f.insert(f.begin() + 34, {1, 1, 1, 0});
         put16(f, 16, uint16_t(f.size() - 14));
       }, DropReason::kIpOptions},
      {"first fragment (MF)", [](auto& f) { put16(f, 20, 0x2000); }, DropReason::kFragment},
      {"later fragment (offset)", [](auto& f) { put16(f, 20, 0x0010); }, DropReason::kFragment},
      {"GRE", [](auto& f) { f[23] = 47; }, DropReason::kUnsupportedProtocol},
      {"TCP header cut", [](auto& f) { f.resize(14 + 20 + 10); put16(f, 16, 30); }, DropReason::kTruncatedL4},
      {"TCP data offset below 5", [](auto& f) { f[34 + 12] = 0x40; }, DropReason::kBadTcpOffset},
      {"TCP data offset beyond the datagram", [](auto& f) { f[34 + 12] = 0xf0; }, DropReason::kBadTcpOffset},
  };
  for (const auto& c : cases) {
    SECTION(c.description) {
      auto f = make_frame({});
      c.mutate(f);
      CHECK(refusal(f) == c.expected);
    }
  }
}

TEST_CASE("a UDP length that disagrees with the IP length is refused") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = "hello";
  auto f = make_frame(s);
  put16(f, 34 + 4, 100);
  CHECK(refusal(f) == DropReason::kBadUdpLength);
}

TEST_CASE("every prefix of a valid frame parses or is refused, never read past its end") {
  FrameSpec s;
  s.payload = "GET / HTTP/1.0\r\n\r\n";
  const auto full = make_frame(s);
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + long(n));
    refusal(cut);  // IP total length always exceeds a cut frame
  }
}

TEST_CASE("ARP requests parse; malformed ARP is refused") {
  auto f = make_arp_request(mac(9), ip("198.18.0.1"), ip("198.18.0.100"));
  CHECK(parse_ok(f).ether_type == kEtherTypeArp);
  f[19] = 16;  // IPv6-sized protocol address
  CHECK(refusal(f) == DropReason::kMalformedArp);
}

TEST_CASE("dotted-quad parsing is strict") {
  Ipv4 a;
  CHECK(parse_ipv4("198.18.0.1", a));
  CHECK(to_string(a) == "198.18.0.1");
  CHECK_FALSE(parse_ipv4("198.18.0", a));
  CHECK_FALSE(parse_ipv4("198.18.0.256", a));
  CHECK_FALSE(parse_ipv4("198.18.0.1.", a));
  CHECK_FALSE(parse_ipv4("a.b.c.d", a));
  CHECK_FALSE(parse_ipv4("", a));
}

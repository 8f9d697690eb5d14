// lbd's fanout program in the running kernel (BPF_PROG_TEST_RUN on crafted frames, root):
// every frame of a connection — the client's packets, a NAT real's replies, the later
// fragments of a datagram, ICMP errors about any of them — goes to the worker that owns
// the client, and that worker is the one steer_worker() (what lbd's benchmarks and tests
// shard by) names.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/io/steering.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

uint32_t steer(const Steering& s, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> in = frame;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_size_in = uint32_t(in.size()), .repeat = 1);
  REQUIRE(bpf_prog_test_run_opts(s.program_fd(), &opts) == 0);
  return opts.retval;
}

const Ipv4 kVip = ip("198.18.0.100");
const Ipv4 kRip = ip("198.18.0.11");
const Ipv4 kDip = ip("198.18.0.2");
const Ipv4 kHost{{255, 255, 255, 255}};

FrameSpec client_packet(Ipv4 client, uint16_t port) {
  FrameSpec f;
  f.saddr = client;
  f.daddr = kVip;
  f.sport = port;
  f.flags = tcp_flag::kAck;
  return f;
}

// An IPv4 header (20 bytes) from `src` to `dst` carrying `protocol`.
std::vector<uint8_t> ip_header(Ipv4 src, Ipv4 dst, uint8_t protocol, size_t payload) {
  std::vector<uint8_t> h(20, 0);
  h[0] = 0x45;
  put16(h, 2, uint16_t(20 + payload));
  h[8] = 64;
  h[9] = protocol;
  std::copy(src.b.begin(), src.b.end(), h.begin() + 12);
  std::copy(dst.b.begin(), dst.b.end(), h.begin() + 16);
  return h;
}

}  // namespace

TEST_CASE("steering: every frame of a client's connections reaches the worker that owns the client") {
  Steering s(4);
  REQUIRE(s.configure({kVip}, kHost, 128, {6080}).is_ok());
  std::vector<uint32_t> per_worker(4);
  for (int i = 1; i <= 200; ++i) {
    const Ipv4 client = Ipv4::from_host(ip("198.18.1.0").host() + uint32_t(i));
    const uint32_t owner = steer_worker(client, kHost, 4);
    REQUIRE(owner < 4);
    ++per_worker[owner];
    INFO("client " << to_string(client));
    // Its packets, whatever the port: the port does not choose.
    CHECK(steer(s, make_frame(client_packet(client, 40000))) == owner);
    CHECK(steer(s, make_frame(client_packet(client, uint16_t(1024 + i)))) == owner);
    // A NAT real's reply to it.
    FrameSpec reply;
    reply.saddr = kRip;
    reply.sport = 8080;
    reply.daddr = client;
    reply.dport = 40000;
    reply.flags = tcp_flag::kAck;
    CHECK(steer(s, make_frame(reply)) == owner);
    // A later fragment of its datagram (no ports).
    auto frag = make_frame(client_packet(client, 40000));
    put16(frag, 20, 0x2000 | 185);
    CHECK(steer(s, frag) == owner);
    // A router's error about the packet lbd sent the real (the client is its source).
    IcmpSpec to_client;
    to_client.saddr = ip("198.18.0.254");
    to_client.daddr = client;
    to_client.payload = ip_part(make_frame(client_packet(client, 40000)));
    to_client.payload.resize(28);
    CHECK(steer(s, make_icmp_frame(to_client)) == owner);
    // The client's error about a NAT reply lbd sent it (from the VIP).
    IcmpSpec about_reply;
    about_reply.saddr = client;
    about_reply.daddr = kVip;
    FrameSpec from_vip = reply;
    from_vip.saddr = kVip;
    from_vip.sport = 80;
    about_reply.payload = ip_part(make_frame(from_vip));
    about_reply.payload.resize(28);
    CHECK(steer(s, make_icmp_frame(about_reply)) == owner);
    // frag-needed about lbd's IPIP packet to a tunnel real: the client is inside it.
    IcmpSpec about_tunnel;
    about_tunnel.saddr = ip("198.18.0.254");
    about_tunnel.daddr = kDip;
    about_tunnel.code = 4;
    about_tunnel.seq = 1400;
    const auto inner = ip_part(make_frame(client_packet(client, 40000)));
    about_tunnel.payload = ip_header(kDip, kRip, 4, inner.size());
    about_tunnel.payload.insert(about_tunnel.payload.end(), inner.begin(), inner.begin() + 28);
    CHECK(steer(s, make_icmp_frame(about_tunnel)) == owner);
    // The same about lbd's GRE packet with its checksum (8 bytes), and its GUE packet (UDP
    // to the real's --tun-port 6080, the GUE header).
    IcmpSpec about_gre = about_tunnel;
    about_gre.payload = ip_header(kDip, kRip, 47, inner.size() + 8);
    about_gre.payload.insert(about_gre.payload.end(), {0x80, 0, 0x08, 0, 0x12, 0x34, 0, 0});
    about_gre.payload.insert(about_gre.payload.end(), inner.begin(), inner.begin() + 28);
    CHECK(steer(s, make_icmp_frame(about_gre)) == owner);
    IcmpSpec about_gue = about_tunnel;
    about_gue.payload = ip_header(kDip, kRip, kProtoUdp, inner.size() + 12);
    about_gue.payload.insert(about_gue.payload.end(), {0xc3, 0x50, 0x17, 0xc0, 0, 0, 0, 0, 0, 4, 0, 0});
    about_gue.payload.insert(about_gue.payload.end(), inner.begin(), inner.begin() + 28);
    CHECK(steer(s, make_icmp_frame(about_gue)) == owner);
  }
  // 200 clients spread over the 4 workers.
  for (uint32_t n : per_worker) CHECK(n >= 25);
}

TEST_CASE("steering: one worker, ARP, and a persistence netmask") {
  const Ipv4 client = ip("198.18.1.7");
  {
    Steering one(1);
    REQUIRE(one.configure({kVip}, kHost).is_ok());
    CHECK(steer(one, make_frame(client_packet(client, 40000))) == 0);
  }
  Steering s(2);
  REQUIRE(s.configure({kVip}, kHost).is_ok());
  CHECK(steer(s, make_arp_request(mac(1), client, kVip)) == 0);  // any worker answers ARP
  // -M 255.255.255.0: every client of a /24 with the same worker (one template each).
  const Ipv4 m24 = ip("255.255.255.0");
  REQUIRE(s.configure({kVip}, m24).is_ok());
  const uint32_t owner = steer_worker(client, m24, 2);
  for (int i = 1; i < 255; i += 17)
    CHECK(steer(s, make_frame(client_packet(Ipv4::from_host(ip("198.18.1.0").host() + uint32_t(i)), 40000))) ==
          owner);
  // A VIP taken away: a frame to it is steered as a reply would be (by its destination).
  REQUIRE(s.configure({}, kHost).is_ok());
  CHECK(steer(s, make_frame(client_packet(client, 40000))) == steer_worker(kVip, kHost, 2));
}

TEST_CASE("steering, IPv6: a client's packets, a NAT66 real's replies, ICMPv6 errors and tunnels across families reach the client's worker") {
  Steering s(4);
  const IpAddr vip6(v6("2001:db8::100")), rip6(v6("2001:db8::11")), dir6(v6("2001:db8::2"));
  REQUIRE(s.configure({kVip, vip6}, kHost, 128, {6080}).is_ok());
  std::vector<uint32_t> per_worker(4);
  for (int i = 1; i <= 200; ++i) {
    Ipv6 c = v6("2001:db8:1::");
    c.b[14] = uint8_t(i >> 8);
    c.b[15] = uint8_t(i);
    const IpAddr client(c);
    const uint32_t owner = steer_worker(client, kHost, 128, 4);
    ++per_worker[owner];
    FrameSpec6 in;
    in.saddr = c;
    in.daddr = vip6.v6addr();
    in.flags = tcp_flag::kAck;
    CHECK(steer(s, make_frame6(in)) == owner);
    FrameSpec6 reply = in;  // a NAT66 real's reply, to the client
    reply.saddr = rip6.v6addr();
    reply.daddr = c;
    reply.sport = 8080;
    reply.dport = 40000;
    CHECK(steer(s, make_frame6(reply)) == owner);
    // A client's Packet Too Big about a reply lbd sent it (from the VIP).
    const auto sent = make_frame6(reply);
    FrameSpec6 err;
    err.saddr = c;
    err.daddr = vip6.v6addr();
    err.protocol = kProtoIcmpv6;
    err.icmp = {icmp6_type::kPacketTooBig, 0, 0, 0, 0, 0, 0x05, 0x00};
    auto quoted = ip_part(sent);
    std::copy(vip6.b.begin(), vip6.b.end(), quoted.begin() + 8);  // as lbd sent it: from the VIP
    err.icmp.insert(err.icmp.end(), quoted.begin(), quoted.end());
    CHECK(steer(s, make_frame6(err)) == owner);
    // A router's Packet Too Big about lbd's IPv6-in-IPv6 packet to a real: the client inside.
    FrameSpec6 router;
    router.saddr = v6("2001:db8::fe");
    router.daddr = dir6.v6addr();
    router.protocol = kProtoIcmpv6;
    router.icmp = {icmp6_type::kPacketTooBig, 0, 0, 0, 0, 0, 0x05, 0x00};
    const auto inner = ip_part(make_frame6(in));
    std::vector<uint8_t> outer = {0x60, 0, 0, 0, uint8_t(inner.size() >> 8), uint8_t(inner.size()), kProtoIpv6, 64};
    outer.insert(outer.end(), dir6.b.begin(), dir6.b.end());
    outer.insert(outer.end(), rip6.b.begin(), rip6.b.end());
    router.icmp.insert(router.icmp.end(), outer.begin(), outer.end());
    router.icmp.insert(router.icmp.end(), inner.begin(), inner.end());
    CHECK(steer(s, make_frame6(router)) == owner);
    // ... and about lbd's IPv6-in-IPv4 packet (protocol 41) to an IPv4 real.
    IcmpSpec about6in4;
    about6in4.saddr = ip("198.18.0.254");
    about6in4.daddr = kDip;
    about6in4.code = 4;
    about6in4.seq = 1400;
    about6in4.payload = ip_header(kDip, kRip, kProtoIpv6, inner.size());
    about6in4.payload.insert(about6in4.payload.end(), inner.begin(), inner.begin() + 48);
    CHECK(steer(s, make_icmp_frame(about6in4)) == owner);
  }
  for (uint32_t n : per_worker) CHECK(n >= 25);
  // A /64 persistence prefix: every client of the /64 on one worker.
  REQUIRE(s.configure({kVip, vip6}, kHost, 64, {6080}).is_ok());
  FrameSpec6 a, b;
  a.saddr = v6("2001:db8:5::1");
  b.saddr = v6("2001:db8:5::ffff:2");
  a.daddr = b.daddr = vip6.v6addr();
  CHECK(steer(s, make_frame6(a)) == steer(s, make_frame6(b)));
  CHECK(steer(s, make_frame6(a)) == steer_worker(IpAddr(a.saddr), kHost, 64, 4));
}

// NAT rewrites against frames built from scratch by the reference checksum: the rewritten
// frame must equal, byte for byte, the frame the real server (or client) should receive.
#include <catch2/catch.hpp>

#include <random>

#include "forwarding/nat.hpp"
#include "frames.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

std::vector<uint8_t> rewritten(std::vector<uint8_t> f, NatSide side, Ipv4 addr, uint16_t port) {
  const ParsedPacket p = parse_ok(f);
  nat_rewrite(f, p, side, addr, port);
  return f;
}

}  // namespace

TEST_CASE("NAT fixture table: in to RIP:rport, out back to VIP:vport") {
  struct Row {
    const char* what;
    uint8_t protocol;
    FrameSpec before, after;
    NatSide side;
  };
  FrameSpec in;  // client 198.18.0.1:40000 → VIP 198.18.0.100:80
  in.payload = "GET / HTTP/1.0\r\n\r\n";
  FrameSpec in_nat = in;
  in_nat.daddr = ip("198.18.0.11");
  in_nat.dport = 8080;
  FrameSpec out;  // real 198.18.0.11:8080 → client
  out.saddr = ip("198.18.0.11");
  out.sport = 8080;
  out.daddr = ip("198.18.0.1");
  out.dport = 40000;
  out.flags = tcp_flag::kSyn | tcp_flag::kAck;
  out.payload = "HTTP/1.0 200 OK\r\n";
  FrameSpec out_nat = out;
  out_nat.saddr = ip("198.18.0.100");
  out_nat.sport = 80;
  for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
    Row rows[] = {{"in", proto, in, in_nat, NatSide::kDestination},
                  {"out", proto, out, out_nat, NatSide::kSource}};
    for (auto& r : rows) {
      r.before.protocol = r.after.protocol = proto;
      const Ipv4 addr = r.side == NatSide::kDestination ? r.after.daddr : r.after.saddr;
      const uint16_t port = r.side == NatSide::kDestination ? r.after.dport : r.after.sport;
      INFO(r.what << " proto " << int(proto));
      CHECK(rewritten(make_frame(r.before), r.side, addr, port) == make_frame(r.after));
    }
  }
}

TEST_CASE("NAT keeps a UDP checksum of 0 (none) at 0") {
  FrameSpec s;
  s.protocol = kProtoUdp;
  s.payload = "x";
  auto f = make_frame(s);
  f[40] = f[41] = 0;  // UDP check field: "no checksum"
  auto out = rewritten(f, NatSide::kDestination, ip("198.18.0.12"), 53);
  CHECK(out[40] == 0);
  CHECK(out[41] == 0);
  CHECK(ip_checksum_ok(out));
}

TEST_CASE("NAT checksum property: random packets rewritten equal the reference build") {
  std::mt19937 rng(20261124);
  for (int i = 0; i < 2000; ++i) {
    FrameSpec s;
    s.protocol = (rng() & 1) ? kProtoTcp : kProtoUdp;
    s.saddr = Be32::from_host(rng());
    s.daddr = Be32::from_host(rng());
    s.sport = uint16_t(rng());
    s.dport = uint16_t(rng());
    s.flags = uint8_t(rng() & 0x1f);
    s.payload.resize(rng() % 200);
    for (auto& ch : s.payload) ch = char(rng());
    const NatSide side = (rng() & 1) ? NatSide::kSource : NatSide::kDestination;
    FrameSpec want = s;
    const Ipv4 addr = Be32::from_host(rng());
    const uint16_t port = uint16_t(rng());
    (side == NatSide::kSource ? want.saddr : want.daddr) = addr;
    (side == NatSide::kSource ? want.sport : want.dport) = port;
    auto got = rewritten(make_frame(s), side, addr, port);
    INFO("case " << i);
    REQUIRE(got == make_frame(want));
  }
}

TEST_CASE("ICMP errors about a NAT connection are translated, quoted header included") {
  // A client's port unreachable about a UDP reply it got from VIP:53 goes to the real as
  // one about RIP:5353; the real's error about the client's packet goes out as the VIP's.
  FrameSpec reply;  // what the client received: VIP:53 → client:40000
  reply.protocol = kProtoUdp;
  reply.saddr = ip("198.18.0.100");
  reply.sport = 53;
  reply.daddr = ip("198.18.0.1");
  reply.dport = 40000;
  reply.payload = "answer";
  FrameSpec real_reply = reply;  // what the real sent: RIP:5353 → client
  real_reply.saddr = ip("198.18.0.11");
  real_reply.sport = 5353;

  IcmpSpec from_client;
  from_client.saddr = ip("198.18.0.1");
  from_client.daddr = ip("198.18.0.100");
  from_client.payload = ip_part(make_frame(reply));
  IcmpSpec to_real = from_client;
  to_real.daddr = ip("198.18.0.11");
  to_real.payload = ip_part(make_frame(real_reply));

  auto f = make_icmp_frame(from_client);
  ParsedPacket p = parse_ok(f);
  IcmpQuote q;
  REQUIRE(parse_quote(f, p.l4_off + 8, f.size(), q));
  CHECK(q.sport == 53);
  nat_rewrite_icmp(f, p, q, NatSide::kDestination, ip("198.18.0.11"), 5353);
  CHECK(f == make_icmp_frame(to_real));

  // The other way: the real says frag-needed about the client's TCP packet to RIP:8080.
  FrameSpec sent;  // client → RIP:8080 (after NAT)
  sent.daddr = ip("198.18.0.11");
  sent.dport = 8080;
  sent.payload = std::string(100, 'a');
  FrameSpec original = sent;  // what the client had sent: → VIP:80
  original.daddr = ip("198.18.0.100");
  original.dport = 80;
  IcmpSpec from_real;
  from_real.saddr = ip("198.18.0.11");
  from_real.daddr = ip("198.18.0.1");
  from_real.code = icmp_code::kFragNeeded;
  from_real.seq = 1400;
  from_real.payload = ip_part(make_frame(sent));
  from_real.payload.resize(28);  // RFC 792's minimum quote: IP header + 8 bytes
  IcmpSpec to_client = from_real;
  to_client.saddr = ip("198.18.0.100");
  to_client.payload = ip_part(make_frame(original));
  to_client.payload.resize(28);

  f = make_icmp_frame(from_real);
  p = parse_ok(f);
  REQUIRE(parse_quote(f, p.l4_off + 8, f.size(), q));
  nat_rewrite_icmp(f, p, q, NatSide::kSource, ip("198.18.0.100"), 80);
  CHECK(f == make_icmp_frame(to_client));
}

TEST_CASE("a quote shorter than IP header + 8 bytes does not parse") {
  IcmpSpec s;
  s.saddr = ip("198.18.0.1");
  s.daddr = ip("198.18.0.100");
  s.payload = ip_part(make_frame(FrameSpec{}));
  s.payload.resize(27);
  const auto f = make_icmp_frame(s);
  const ParsedPacket p = parse_ok(f);
  IcmpQuote q;
  CHECK_FALSE(parse_quote(f, p.l4_off + 8, f.size(), q));
}

TEST_CASE("ICMP translation checksum property: random quotes, both directions, match a rebuild") {
  std::mt19937 rng(424242);
  for (int i = 0; i < 1000; ++i) {
    FrameSpec quoted;  // the datagram the error is about, as it travelled
    quoted.protocol = (rng() & 1) ? kProtoTcp : kProtoUdp;
    quoted.saddr = Be32::from_host(rng());
    quoted.daddr = Be32::from_host(rng());
    quoted.sport = uint16_t(rng());
    quoted.dport = uint16_t(rng());
    quoted.payload.resize(rng() % 300);
    for (auto& ch : quoted.payload) ch = char(rng());
    const NatSide side = (rng() & 1) ? NatSide::kSource : NatSide::kDestination;
    const Ipv4 addr = Be32::from_host(rng());
    const uint16_t port = uint16_t(rng());
    auto q = ip_part(make_frame(quoted));
    const size_t cut = 28 + rng() % (q.size() - 27);  // quotes from 28 bytes to whole
    q.resize(cut);
    IcmpSpec err;
    err.saddr = Be32::from_host(rng());
    err.daddr = Be32::from_host(rng());
    err.code = uint8_t(rng() % 16);
    err.payload = q;
    // Expected: the outer address moved, and the quote rebuilt with the other end moved.
    FrameSpec moved = quoted;
    IcmpSpec want = err;
    if (side == NatSide::kDestination) {
      want.daddr = addr;
      moved.saddr = addr;
      moved.sport = port;
    } else {
      want.saddr = addr;
      moved.daddr = addr;
      moved.dport = port;
    }
    want.payload = ip_part(make_frame(moved));
    // A cut quote keeps only what was quoted; its L4 checksum was updated if quoted whole
    // (half a checksum cannot be updated: that byte stays as it was).
    want.payload.resize(cut);
    if (quoted.protocol == kProtoTcp && cut == 20 + 17) want.payload[36] = q[36];
    auto f = make_icmp_frame(err);
    const ParsedPacket p = parse_ok(f);
    IcmpQuote iq;
    REQUIRE(parse_quote(f, p.l4_off + 8, f.size(), iq));
    nat_rewrite_icmp(f, p, iq, side, addr, port);
    INFO("case " << i << " cut " << cut);
    REQUIRE(f == make_icmp_frame(want));
  }
}

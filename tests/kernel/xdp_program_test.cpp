// lbd's XDP program in the running kernel (BPF_PROG_TEST_RUN, root): the slow path decides
// a connection and enters it in the program's real maps, then the same established packet
// goes once through the program and once through lbd's slow path, and the two frames must
// be the same bytes (a tunnel's outer IP id aside: lbd counts, the program copies the
// inner one). Everything the program must leave to lbd comes back untouched as XDP_PASS.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "data_path_fixture.hpp"
#include "frames.hpp"
#include "lb/core/data_path.hpp"
#include "lb/io/xdp_flow_cache.hpp"

using namespace lbd;
using namespace lbd::test;
using namespace lbd::test::lab;

namespace {

// BPF_PROG_TEST_RUN runs XDP as if received on the namespace's loopback (ifindex 1).
constexpr int kIf = 1;

struct Run {
  uint32_t verdict = 0;
  std::vector<uint8_t> frame;
};

// The frame `in` once through the program (BPF_PROG_TEST_RUN).
Run run_program(int prog_fd, const std::vector<uint8_t>& in) {
  Run r;
  r.frame.resize(in.size() + 64);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = r.frame.data(),
              .data_size_in = uint32_t(in.size()), .data_size_out = uint32_t(r.frame.size()), .repeat = 1);
  REQUIRE(bpf_prog_test_run_opts(prog_fd, &opts) == 0);
  r.verdict = opts.retval;
  r.frame.resize(opts.data_size_out);
  return r;
}

// The frame `f` through lbd's slow path: the frame it would send.
std::vector<uint8_t> run_slow(DataPath& dp, std::vector<uint8_t> f) {
  const size_t len = f.size();
  f.resize(len + 64);
  const Verdict v = dp.process({f.data(), len}, kIf, 5000, f.size());
  REQUIRE(v.transmit);
  f.resize(v.length ? v.length : len);
  return f;
}

struct Fixture : OneRealPath {
  XdpFlowCache xdp{1024};
  uint16_t vport;

  explicit Fixture(FwdMethod method, uint8_t protocol = kProtoTcp, uint16_t port = 80)
      : OneRealPath(method, protocol, {"rr"}, port, 8080, kIf), vport(port) {
    dp.set_flow_cache(&xdp);
    xdp.allow_tx(kIf, true);
    dp.sync_real_hops(1000);
  }
  FrameSpec from_client(uint8_t flags, std::string payload = "") const {
    return lab::from_client(flags, std::move(payload), svc.protocol, vport);
  }
  FrameSpec from_real(uint8_t flags, std::string payload = "") const {
    return lab::from_real(flags, std::move(payload), svc.protocol);
  }
  // lbd's slow path on a copy: the frame it would send.
  std::vector<uint8_t> slow(std::vector<uint8_t> f) { return run_slow(dp, std::move(f)); }
  Run kernel(const std::vector<uint8_t>& in) { return run_program(xdp.program_fd(), in); }
  void establish() {
    slow(make_frame(from_client(tcp_flag::kSyn)));
    if (real().fwd == FwdMethod::kMasq) slow(make_frame(from_real(tcp_flag::kSyn | tcp_flag::kAck)));
    slow(make_frame(from_client(tcp_flag::kAck)));
    REQUIRE(dp.counters().offload_entered == 1);
  }
  lbd_flow entry(const ConnKey& k) {
    lbd_flow f{};
    REQUIRE(xdp.get(flow_key(k), f));
    return f;
  }
};

const ConnKey kConn{kClient, kVip, 40000, 80, kProtoTcp};

}  // namespace

TEST_CASE("XDP: DR rewrites the MACs only, as lbd does, and counts the packet") {
  Fixture fx(FwdMethod::kRoute);
  fx.establish();
  const auto in = make_frame(fx.from_client(tcp_flag::kAck | tcp_flag::kPsh, "GET / HTTP/1.1\r\n"));
  const Run k = fx.kernel(in);
  CHECK(k.verdict == XDP_TX);
  CHECK(k.frame == fx.slow(in));
  const lbd_flow f = fx.entry(kConn);
  CHECK(f.packets == 1);
  CHECK(f.bytes == in.size() - 14);
  CHECK(f.last_ns > 0);
  CHECK(fx.xdp.stats()[LBD_XDP_FORWARDED] == 1);
}

TEST_CASE("XDP: NAT both ways, addresses, ports and checksums as lbd writes them") {
  for (uint8_t protocol : {kProtoTcp, kProtoUdp}) {
    Fixture fx(FwdMethod::kMasq, protocol);
    if (protocol == kProtoTcp) {
      fx.establish();
    } else {
      fx.slow(make_frame(fx.from_client(0, "q1")));
    }
    const auto in = make_frame(fx.from_client(tcp_flag::kAck, "request bytes"));
    const Run k = fx.kernel(in);
    CHECK(k.verdict == XDP_TX);
    const auto want = fx.slow(in);
    CHECK(k.frame == want);
    CHECK(l4_checksum_ok(k.frame));
    CHECK(ref_checksum(std::vector<uint8_t>(k.frame.begin() + 14, k.frame.begin() + 34)) == 0);

    const auto reply = make_frame(fx.from_real(tcp_flag::kAck, "response bytes, a few more"));
    const Run kr = fx.kernel(reply);
    CHECK(kr.verdict == XDP_TX);
    CHECK(kr.frame == fx.slow(reply));
    CHECK(l4_checksum_ok(kr.frame));
    CHECK(fx.entry(ConnKey{kRip, kClient, 8080, 40000, protocol}).packets == 1);
  }
  SECTION("UDP without a checksum keeps none") {
    Fixture fx(FwdMethod::kMasq, kProtoUdp);
    fx.slow(make_frame(fx.from_client(0, "q1")));
    auto in = make_frame(fx.from_client(0, "q2"));
    in[34 + 6] = in[34 + 7] = 0;
    const Run k = fx.kernel(in);
    CHECK(k.verdict == XDP_TX);
    CHECK(k.frame == fx.slow(in));
    CHECK(k.frame[34 + 6] == 0);
    CHECK(k.frame[34 + 7] == 0);
  }
}

TEST_CASE("XDP: TUN wraps the packet in IPIP, or GUE or GRE without checksums, as the slow path does") {
  for (const TunnelSpec& tun : {TunnelSpec{}, TunnelSpec{TunType::kGue, 6080, TunCsum::kNoCsum},
                                TunnelSpec{TunType::kGre, 0, TunCsum::kNoCsum}}) {
    INFO(tun_type_name(tun.type));
    Fixture fx(FwdMethod::kTunnel);
    fx.real().tun = tun;
    fx.dp.sync_real_hops(1000);
    fx.establish();
    const auto in = make_frame(fx.from_client(tcp_flag::kAck, "payload through the tunnel"));
    const Run k = fx.kernel(in);
    REQUIRE(k.verdict == XDP_TX);
    auto want = fx.slow(in);
    REQUIRE(k.frame.size() == want.size());
    REQUIRE(k.frame.size() == in.size() + tunnel_overhead(tun, false));
    // The outer header's checksum holds on its own; then id and checksum aside, same bytes
    // (the GUE source port included: one hash on both paths).
    CHECK(ref_checksum(std::vector<uint8_t>(k.frame.begin() + 14, k.frame.begin() + 34)) == 0);
    CHECK(k.frame[18] == in[18]);  // the outer id is the inner one
    CHECK(k.frame[19] == in[19]);
    auto got = k.frame;
    for (size_t i : {18, 19, 24, 25}) got[i] = want[i] = 0;
    CHECK(got == want);
  }
}

TEST_CASE("XDP: GUE or GRE with a checksum is lbd's to send") {
  // With a checksum the real takes no fast-path packet (a pass over the packet each).
  Fixture fx(FwdMethod::kTunnel);
  fx.real().tun = TunnelSpec{TunType::kGre, 0, TunCsum::kCsum};
  fx.dp.sync_real_hops(1000);
  fx.establish();
  const auto in = make_frame(fx.from_client(tcp_flag::kAck, "x"));
  CHECK(fx.kernel(in).verdict == XDP_PASS);
}

TEST_CASE("XDP: what changes lbd's state, or needs lbd, passes untouched") {
  Fixture fx(FwdMethod::kMasq);
  fx.establish();
  auto pass = [&](const std::vector<uint8_t>& in) {
    const Run k = fx.kernel(in);
    CHECK(k.verdict == XDP_PASS);
    CHECK(k.frame == in);
  };
  const auto stats0 = fx.xdp.stats();
  SECTION("SYN, FIN, RST") {
    for (uint8_t flags : {tcp_flag::kSyn, uint8_t(tcp_flag::kFin | tcp_flag::kAck), tcp_flag::kRst})
      pass(make_frame(fx.from_client(flags)));
    CHECK(fx.xdp.stats()[LBD_XDP_STATE] == stats0[LBD_XDP_STATE] + 3);
  }
  SECTION("a connection lbd has not decided") {
    auto s = fx.from_client(tcp_flag::kAck);
    s.sport = 40001;
    pass(make_frame(s));
  }
  SECTION("a fragment, IP options") {
    auto frag = make_frame(fx.from_client(tcp_flag::kAck, "x"));
    frag[20] = 0x20;  // MF
    frag[21] = 0;
    pass(frag);
    auto f = make_frame(fx.from_client(tcp_flag::kAck, "x"));
    std::vector<uint8_t> opt(f.begin(), f.begin() + 34);
    opt.insert(opt.end(), {1, 1, 1, 0});  // NOP NOP NOP EOL
    opt.insert(opt.end(), f.begin() + 34, f.end());
    opt[14] = 0x46;
    put16(opt, 16, uint16_t(opt.size() - 14));
    put16(opt, 24, 0);
    put16(opt, 24, ref_checksum(std::vector<uint8_t>(opt.begin() + 14, opt.begin() + 38)));
    pass(opt);
  }
  SECTION("a checksum a local sender left to the hardware") {
    auto f = make_frame(fx.from_client(tcp_flag::kAck, "partial"));
    const uint32_t s = kClient.host(), d = kVip.host(), len = uint32_t(f.size() - 34);
    uint32_t sum = (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + kProtoTcp + len;
    sum = (sum & 0xffff) + (sum >> 16);
    put16(f, 34 + 16, uint16_t((sum & 0xffff) + (sum >> 16)));
    pass(f);
    CHECK(fx.xdp.stats()[LBD_XDP_PARTIAL_CSUM] == stats0[LBD_XDP_PARTIAL_CSUM] + 1);
  }
  SECTION("bigger than the real's next hop takes") {
    fx.real().hop.mtu = 60;
    fx.dp.sync_real_hops(5000);
    pass(make_frame(fx.from_client(tcp_flag::kAck, std::string(40, 'x'))));
    CHECK(fx.xdp.stats()[LBD_XDP_TOO_BIG] == stats0[LBD_XDP_TOO_BIG] + 1);
  }
  SECTION("a real lbd no longer forwards to") {
    REQUIRE(fx.services.delete_real(fx.svc, kRip, 8080).is_ok());
    fx.dp.sync_real_hops(5000);
    pass(make_frame(fx.from_client(tcp_flag::kAck)));
    CHECK(fx.xdp.stats()[LBD_XDP_REAL_OFF] == stats0[LBD_XDP_REAL_OFF] + 1);
  }
  SECTION("an interface the program may not transmit on") {
    fx.xdp.allow_tx(kIf, false);
    pass(make_frame(fx.from_client(tcp_flag::kAck)));
    CHECK(fx.xdp.stats()[LBD_XDP_NO_TX] == stats0[LBD_XDP_NO_TX] + 1);
  }
  CHECK(fx.entry(kConn).packets == 0);
}

TEST_CASE("XDP: the real's counts hold every packet the program forwarded, entry gone or not") {
  Fixture fx(FwdMethod::kRoute);
  fx.establish();
  const auto in = make_frame(fx.from_client(tcp_flag::kAck, "data"));
  for (int i = 0; i < 5; ++i) REQUIRE(fx.kernel(in).verdict == XDP_TX);
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.inpkts == 2 + 5);
  fx.slow(make_frame(fx.from_client(tcp_flag::kFin | tcp_flag::kAck)));
  lbd_flow f;
  CHECK_FALSE(fx.xdp.get(flow_key(kConn), f));
  fx.dp.fold_offloaded();
  CHECK(fx.real().stats.inpkts == 2 + 5 + 1);
  CHECK(fx.xdp.real_use(fx.real().id, false).packets == 5);
  CHECK(fx.kernel(in).verdict == XDP_PASS);  // no entry: lbd's again
}

namespace {

// IPv6: one service [2001:db8::100]:80 (TCP or UDP) with one real, DR or NAT66 onto 8080.
struct Fixture6 : PathParts {
  XdpFlowCache xdp{1024};
  ServiceKey svc;
  const Ipv6 vip = v6("2001:db8::100"), rip = v6("2001:db8::11"), client = v6("2001:db8::1");
  Fixture6(FwdMethod method, uint8_t protocol = kProtoTcp) {
    svc = ServiceKey{protocol, IpAddr(vip), 80};
    REQUIRE(services.add_service(svc, {"rr"}).is_ok());
    REQUIRE(services.add_real(svc, {IpAddr(rip), uint16_t(method == FwdMethod::kMasq ? 8080 : 80), method, 1}).is_ok());
    real().hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, IpAddr(v6("2001:db8::2"))};
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
    dp.set_flow_cache(&xdp);
    xdp.allow_tx(kIf, true);
    dp.sync_real_hops(1000);
  }
  Real& real() { return services.real(services.find(svc)->reals[0]); }
  FrameSpec6 from_client(uint8_t flags, std::string payload = "") const {
    FrameSpec6 s;
    s.src = mac(0xc1);
    s.dst = mac(0xd1);
    s.saddr = client;
    s.daddr = vip;
    s.protocol = svc.protocol;
    s.flags = flags;
    s.payload = std::move(payload);
    return s;
  }
  FrameSpec6 from_real(uint8_t flags, std::string payload = "") const {
    FrameSpec6 s = from_client(flags, std::move(payload));
    s.src = mac(0xa1);
    s.saddr = rip;
    s.daddr = client;
    s.sport = 8080;
    s.dport = 40000;
    return s;
  }
  std::vector<uint8_t> slow(std::vector<uint8_t> f) { return run_slow(dp, std::move(f)); }
  Run kernel(const std::vector<uint8_t>& in) { return run_program(xdp.program_fd(), in); }
  void establish() {
    if (svc.protocol == kProtoUdp) {
      slow(make_frame6(from_client(0, "q1")));
    } else {
      slow(make_frame6(from_client(tcp_flag::kSyn)));
      if (real().fwd == FwdMethod::kMasq) slow(make_frame6(from_real(tcp_flag::kSyn | tcp_flag::kAck)));
      slow(make_frame6(from_client(tcp_flag::kAck)));
    }
    REQUIRE(dp.counters().offload_entered == 1);
  }
};

}  // namespace

TEST_CASE("XDP, IPv6: DR rewrites the MACs only, as lbd does") {
  Fixture6 fx(FwdMethod::kRoute);
  fx.establish();
  const auto in = make_frame6(fx.from_client(tcp_flag::kAck | tcp_flag::kPsh, "GET / HTTP/1.1\r\n"));
  const Run k = fx.kernel(in);
  CHECK(k.verdict == XDP_TX);
  CHECK(k.frame == fx.slow(in));
  lbd_flow f{};
  REQUIRE(fx.xdp.get(flow_key(ConnKey{IpAddr(fx.client), IpAddr(fx.vip), 40000, 80, kProtoTcp}), f));
  CHECK(f.packets == 1);
  CHECK(f.bytes == in.size() - 14);
}

TEST_CASE("XDP, IPv6: NAT66 both ways, addresses, ports and checksums as lbd writes them") {
  for (const uint8_t protocol : {kProtoTcp, kProtoUdp}) {
    INFO(int(protocol));
    Fixture6 fx(FwdMethod::kMasq, protocol);
    fx.establish();
    const auto in = make_frame6(fx.from_client(tcp_flag::kAck, "request bytes"));
    const Run k = fx.kernel(in);
    CHECK(k.verdict == XDP_TX);
    CHECK(k.frame == fx.slow(in));
    CHECK(l4_checksum6_ok(k.frame));
    const auto reply = make_frame6(fx.from_real(tcp_flag::kAck, "response bytes, a few more"));
    const Run kr = fx.kernel(reply);
    CHECK(kr.verdict == XDP_TX);
    CHECK(kr.frame == fx.slow(reply));
    CHECK(l4_checksum6_ok(kr.frame));
    CHECK(fx.xdp.stats()[LBD_XDP_FORWARDED] == 2);
  }
}

TEST_CASE("XDP, IPv6: extension headers, a local sender's partial checksum, SYN: untouched, lbd's") {
  Fixture6 fx(FwdMethod::kMasq);
  fx.establish();
  auto pass = [&](const std::vector<uint8_t>& in) {
    const Run k = fx.kernel(in);
    CHECK(k.verdict == XDP_PASS);
    CHECK(k.frame == in);
  };
  FrameSpec6 ext = fx.from_client(tcp_flag::kAck, "x");
  ext.ext = {{kIp6DestOpts, std::vector<uint8_t>(8, 0)}};
  pass(make_frame6(ext));
  pass(make_frame6(fx.from_client(tcp_flag::kSyn)));
  auto partial = make_frame6(fx.from_client(tcp_flag::kAck, "partial"));
  const uint16_t pseudo = uint16_t(~ref_checksum6(fx.client, fx.vip, kProtoTcp, std::vector<uint8_t>(partial.size() - 54, 0)));
  put16(partial, 54 + 16, pseudo);
  pass(partial);
  CHECK(fx.xdp.stats()[LBD_XDP_PARTIAL_CSUM] == 1);
  CHECK(fx.xdp.stats()[LBD_XDP_FORWARDED] == 0);
}

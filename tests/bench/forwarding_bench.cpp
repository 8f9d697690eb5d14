// Per-packet cost of each forwarding method's work on one frame, in isolation: the NAT
// rewrite (both checksums, incrementally), IPIP encapsulation, and the whole data path for
// an established connection per method (lookup, state, counters, rewrite), NAT replies
// included. One connection, so the table stays in cache: this is the code's own cost.
#include <benchmark/benchmark.h>

#include <vector>

#include "forwarding/ipip.hpp"
#include "forwarding/nat.hpp"
#include "forwarding/checksum.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;

namespace {

const Ipv4 kVip = Be32::from_host(0xc6120064), kClient = Be32::from_host(0xc6120001),
           kRip = Be32::from_host(0xc612000b);

// An Ethernet/IPv4/TCP ACK with 64 bytes of payload, checksums left as zero (the rewrites
// update whatever is there).
std::vector<uint8_t> frame(Ipv4 src, uint16_t sport, Ipv4 dst, uint16_t dport, uint8_t flags) {
  std::vector<uint8_t> f(14 + 20 + 20 + 64, 0);
  f[0] = 2; f[5] = 0xd1; f[6] = 2; f[11] = 0xc1;
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = 0; f[17] = uint8_t(f.size() - 14);
  f[20] = 0x40;
  f[22] = 64;
  f[23] = kProtoTcp;
  std::copy(src.b.begin(), src.b.end(), f.begin() + 26);
  std::copy(dst.b.begin(), dst.b.end(), f.begin() + 30);
  f[34] = uint8_t(sport >> 8); f[35] = uint8_t(sport);
  f[36] = uint8_t(dport >> 8); f[37] = uint8_t(dport);
  f[46] = 0x50;
  f[47] = flags;
  // Valid checksums: lbd verifies those of a packet that would create a connection.
  const uint16_t ip = csum::ipv4_header({f.data() + 14, 20});
  f[24] = uint8_t(ip >> 8); f[25] = uint8_t(ip);
  const uint16_t tcp = csum::l4_full(src, dst, kProtoTcp, {f.data() + 34, f.size() - 34}, 16);
  f[50] = uint8_t(tcp >> 8); f[51] = uint8_t(tcp);
  return f;
}

uint16_t get16(const std::vector<uint8_t>& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }
void set16(std::vector<uint8_t>& f, size_t off, uint16_t v) {
  f[off] = uint8_t(v >> 8);
  f[off + 1] = uint8_t(v);
}

// A new client address and port for `f`, both checksums updated incrementally (RFC 1624):
// the SYN stays as valid as a real client's, which lbd verifies before it creates state.
void set_client(std::vector<uint8_t>& f, uint32_t addr, uint16_t port) {
  const uint32_t old = uint32_t(get16(f, 26)) << 16 | get16(f, 28);
  set16(f, 24, csum::replace32(get16(f, 24), old, addr));
  set16(f, 50, csum::replace32(get16(f, 50), old, addr));
  set16(f, 50, csum::replace16(get16(f, 50), get16(f, 34), port));
  set16(f, 26, uint16_t(addr >> 16));
  set16(f, 28, uint16_t(addr));
  set16(f, 34, port);
}

void BM_NatRewrite(benchmark::State& st) {
  auto f = frame(kClient, 40000, kVip, 80, tcp_flag::kAck);
  ParsedPacket p;
  DropReason why{};
  parse_frame(f, p, why);
  for (auto _ : st) {
    nat_rewrite(f, p, NatSide::kDestination, kRip, 8080);
    benchmark::DoNotOptimize(f.data());
  }
}
BENCHMARK(BM_NatRewrite);

// IPVS's three tunnels on one 54-byte ACK: arg 0 = IPIP, 1 = GUE without checksum, 2 = GUE
// with its UDP checksum, 3 = GRE, 4 = GRE with its checksum (both sums over the packet).
void BM_TunnelEncapsulate(benchmark::State& st) {
  static const TunnelSpec kSpecs[] = {{}, {TunType::kGue, 6080, TunCsum::kNoCsum}, {TunType::kGue, 6080, TunCsum::kCsum},
                                      {TunType::kGre, 0, TunCsum::kNoCsum}, {TunType::kGre, 0, TunCsum::kCsum}};
  const auto f = frame(kClient, 40000, kVip, 80, tcp_flag::kAck);
  std::vector<uint8_t> buf(f.size() + 64);
  ParsedPacket p;
  DropReason why{};
  parse_frame(f, p, why);
  for (auto _ : st) {
    std::copy(f.begin(), f.end(), buf.begin());
    benchmark::DoNotOptimize(tunnel_encapsulate(buf, p, Be32::from_host(0xc6120002), kRip, 1, kSpecs[st.range(0)]));
  }
}
BENCHMARK(BM_TunnelEncapsulate)->DenseRange(0, 4);

// The data path for one established connection: arg 0 = DR, 1 = NAT (client side),
// 2 = NAT reply, 3 = TUN, 4 = DR on a sync master (the records it queues, drained as the
// worker does every batch, included).
void BM_DataPath(benchmark::State& st) {
  const bool sync_master = st.range(0) == 4;
  const int mode = sync_master ? 0 : int(st.range(0));
  const FwdMethod method = mode == 0 ? FwdMethod::kRoute : mode == 3 ? FwdMethod::kTunnel : FwdMethod::kMasq;
  ServiceTable services;
  ConnTable conns(1024, 1);
  Timeouts timeouts;
  DataPath dp(services, conns, timeouts);
  const ServiceKey svc{kProtoTcp, kVip, 80};
  (void)services.add_service(svc, {"rr"});
  (void)services.add_real(svc, {kRip, uint16_t(method == FwdMethod::kMasq ? 8080 : 80), method, 1});
  services.for_each_real([](Real& r) {
    r.hop = NextHop{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, MacAddr{{2, 0, 0, 0, 0, 0xa1}}, 1500, true,
                    Be32::from_host(0xc6120002)};
  });
  dp.set_interfaces({{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, 1500}});
  dp.set_sync_master(sync_master);
  auto syn = frame(kClient, 40000, kVip, 80, tcp_flag::kSyn);
  syn.resize(syn.size() + 64);
  dp.process({syn.data(), syn.size() - 64}, 1, 1000, syn.size());
  const auto in = mode == 2 ? frame(kRip, 8080, kClient, 40000, tcp_flag::kAck)
                            : frame(kClient, 40000, kVip, 80, tcp_flag::kAck);
  std::vector<uint8_t> buf(in.size() + 64);
  sync::MessageBuilder msg(0, 1472);
  if (sync_master) {  // its 2nd packet: the loop's first is the 3rd, which is sent
    std::copy(in.begin(), in.end(), buf.begin());
    dp.process({buf.data(), in.size()}, 1, 1000, buf.size());
  }
  for (auto _ : st) {
    std::copy(in.begin(), in.end(), buf.begin());
    benchmark::DoNotOptimize(dp.process({buf.data(), in.size()}, 1, 1000, buf.size()));
    if (sync_master && !dp.sync_out().empty()) {
      for (const auto& r : dp.sync_out())
        if (!msg.add(r)) msg.clear();
      dp.sync_out().clear();
    }
  }
  if (sync_master && !dp.counters().sync_queued) st.SkipWithError("nothing was queued for sync");
  if (dp.counters().total_drops()) st.SkipWithError("frames were dropped");
}
BENCHMARK(BM_DataPath)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Arg(4);

// The same over IPv6, beside BM_DataPath's IPv4: arg 0 = DR, 1 = NAT66 (client side), 2 =
// NAT66 reply, 3 = TUN IPv6 in IPv6 (IPIP), 4 = TUN IPv4 in IPv6 (an IPv4 VIP, BM_DataPath's
// frame, on an IPv6 real). The frames are IPv4's with a 40-byte header: the difference is the address
// width (parse, hash, compare, the 128-bit pseudo-header in NAT's checksum updates).
Ipv6 addr6(uint8_t last) { return Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}}; }

std::vector<uint8_t> frame6(const Ipv6& src, uint16_t sport, const Ipv6& dst, uint16_t dport, uint8_t flags) {
  std::vector<uint8_t> f(14 + 40 + 20 + 64, 0);
  f[0] = 2; f[5] = 0xd1; f[6] = 2; f[11] = 0xc1;
  f[12] = 0x86; f[13] = 0xdd;
  f[14] = 0x60;
  f[18] = 0; f[19] = 20 + 64;
  f[20] = kProtoTcp;
  f[21] = 64;
  std::copy(src.b.begin(), src.b.end(), f.begin() + 22);
  std::copy(dst.b.begin(), dst.b.end(), f.begin() + 38);
  f[54] = uint8_t(sport >> 8); f[55] = uint8_t(sport);
  f[56] = uint8_t(dport >> 8); f[57] = uint8_t(dport);
  f[66] = 0x50;
  f[67] = flags;
  const uint16_t tcp = csum::l4_full(IpAddr(src), IpAddr(dst), kProtoTcp, {f.data() + 54, f.size() - 54}, 16);
  f[70] = uint8_t(tcp >> 8); f[71] = uint8_t(tcp);
  return f;
}

void BM_DataPath6(benchmark::State& st) {
  const int mode = int(st.range(0));
  const FwdMethod method = mode == 0 ? FwdMethod::kRoute : mode >= 3 ? FwdMethod::kTunnel : FwdMethod::kMasq;
  ServiceTable services;
  ConnTable conns(1024, 1);
  Timeouts timeouts;
  DataPath dp(services, conns, timeouts);
  const Ipv6 vip = addr6(0x64), client = addr6(1), rip = addr6(0x0b);
  const ServiceKey svc{kProtoTcp, mode == 4 ? IpAddr(kVip) : IpAddr(vip), 80};
  (void)services.add_service(svc, {"rr"});
  (void)services.add_real(svc, {IpAddr(rip), uint16_t(method == FwdMethod::kMasq ? 8080 : 80), method, 1});
  services.for_each_real([](Real& r) {
    r.hop = NextHop{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, MacAddr{{2, 0, 0, 0, 0, 0xa1}}, 1500, true, IpAddr(addr6(2))};
  });
  dp.set_interfaces({{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, 1500}});
  auto syn = mode == 4 ? frame(kClient, 40000, kVip, 80, tcp_flag::kSyn) : frame6(client, 40000, vip, 80, tcp_flag::kSyn);
  syn.resize(syn.size() + 64);
  dp.process({syn.data(), syn.size() - 64}, 1, 1000, syn.size());
  const auto in = mode == 2   ? frame6(rip, 8080, client, 40000, tcp_flag::kAck)
                  : mode == 4 ? frame(kClient, 40000, kVip, 80, tcp_flag::kAck)
                              : frame6(client, 40000, vip, 80, tcp_flag::kAck);
  std::vector<uint8_t> buf(in.size() + 64);
  for (auto _ : st) {
    std::copy(in.begin(), in.end(), buf.begin());
    benchmark::DoNotOptimize(dp.process({buf.data(), in.size()}, 1, 1000, buf.size()));
  }
  if (dp.counters().total_drops()) st.SkipWithError("frames were dropped");
}
BENCHMARK(BM_DataPath6)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Arg(4);

// A new connection (SYN → scheduled, DR) each iteration, from 4096 clients in turn: arg 0 =
// plain rr, 1 = persistent (-p: a template looked up, or made, then the connection).
// Connections expire as the clock moves, so the table stays at a steady size.
void BM_NewConnection(benchmark::State& st) {
  const bool persistent = st.range(0) == 1;
  ServiceTable services;
  ConnTable conns(1 << 17, 1);
  Timeouts timeouts;
  DataPath dp(services, conns, timeouts);
  const ServiceKey svc{kProtoTcp, kVip, 80};
  ServiceOptions opt{"rr"};
  opt.persistent = persistent ? 10 : 0;
  (void)services.add_service(svc, opt);
  for (uint32_t i = 0; i < 4; ++i)
    (void)services.add_real(svc, {Be32::from_host(0xc612000b + i), 80, FwdMethod::kRoute, 1});
  services.for_each_real([](Real& r) {
    r.hop = NextHop{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, MacAddr{{2, 0, 0, 0, 0, 0xa1}}, 1500, true,
                    Be32::from_host(0xc6120002)};
  });
  dp.set_interfaces({{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, 1500}});
  auto syn = frame(kClient, 40000, kVip, 80, tcp_flag::kSyn);
  std::vector<uint8_t> buf(syn.size() + 64);
  uint64_t n = 0, now_ms = 1000;
  for (auto _ : st) {
    ++n;
    const uint32_t client = 0xc6130000u + uint32_t(n % 4096);  // 198.19.x.y
    const uint16_t port = uint16_t(1024 + (n / 4096) % 60000);
    set_client(syn, client, port);
    std::copy(syn.begin(), syn.end(), buf.begin());
    benchmark::DoNotOptimize(dp.process({buf.data(), syn.size()}, 1, now_ms, buf.size()));
    if (n % 1024 == 0) {
      now_ms += 1000;  // SYN_RECV lasts 60 s: about 61,000 live entries
      dp.expire(now_ms, 1 << 20);
    }
  }
  if (dp.counters().drops[size_t(DropReason::kConnTableFull)]) st.SkipWithError("table full");
  if (dp.counters().drops[size_t(DropReason::kBadChecksum)]) st.SkipWithError("SYNs with bad checksums");
}
BENCHMARK(BM_NewConnection)->Arg(0)->Arg(1);

}  // namespace

// A backup's cost per record: a full message (40 connections, 1472 bytes) decoded.
void BM_SyncDecode(benchmark::State& st) {
  sync::MessageBuilder msg(0, 1472);
  sync::Record r;
  r.protocol = kProtoTcp;
  r.flags = sync::flag::kDroute;
  r.state = 1;
  r.timeout = 900;
  r.caddr = kClient;
  r.vaddr = kVip;
  r.daddr = kRip;
  r.vport = r.dport = 80;
  for (r.cport = 1000; msg.add(r); ++r.cport) {}
  for (auto _ : st) benchmark::DoNotOptimize(sync::decode(msg.bytes(), 0));
  st.SetItemsProcessed(int64_t(st.iterations()) * msg.count());
}
BENCHMARK(BM_SyncDecode);

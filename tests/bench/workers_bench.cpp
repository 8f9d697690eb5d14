// N workers on pre-built frame batches (no I/O): what the multi-core slow path scales to
// when nothing but the CPU limits it. Each worker is what lbd runs per thread — its own
// copy of the services, its own shard of the connection table, its own DataPath — and
// gets the frames of the clients the fanout program would steer to it (steer_worker()).
// The traffic is what the slow path sees with the fast path on: short connections (SYN,
// ACK, 6 data segments, FIN, ACK) from 16,384 clients to a DR service of 4 reals (wlc),
// each frame copied into a buffer first as the capture does; with several workers the reals'
// connection counts are shared (atomics) as in lbd. Rounds repeat the same
// connections after the clock has moved past their timeouts (expiry is part of the work).
//
//   lbd_workers_bench [ROUNDS] [MAX_WORKERS]
//
// prints, for 1..MAX_WORKERS workers, frames per second of wall time, per CPU-second, and
// the speed-up over one worker; then how long one step of a connection listing holds a
// worker (the copy of 16,384 entries lbd makes per step) in a table of 1M connections.
// Run it on an otherwise idle box.
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <thread>
#include <vector>

#include "forwarding/checksum.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/core/data_path.hpp"
#include "lb/io/steering.hpp"

using namespace lbd;

namespace {

const Ipv4 kVip = Be32::from_host(0xc6120064);
const Ipv4 kHost{{255, 255, 255, 255}};
constexpr uint32_t kClients = 16384;
constexpr uint16_t kPortsPerClient = 4;

void put16(std::vector<uint8_t>& f, size_t off, uint16_t v) {
  f[off] = uint8_t(v >> 8);
  f[off + 1] = uint8_t(v);
}

// Ethernet/IPv4/TCP from `client`:`port` to the VIP with valid checksums.
std::vector<uint8_t> frame(Ipv4 client, uint16_t port, uint8_t flags, size_t payload) {
  std::vector<uint8_t> f(14 + 20 + 20 + payload, 0);
  f[0] = 2; f[5] = 0xd1; f[6] = 2; f[11] = 0xc1;
  f[12] = 0x08;
  f[14] = 0x45;
  put16(f, 16, uint16_t(f.size() - 14));
  f[20] = 0x40;
  f[22] = 64;
  f[23] = kProtoTcp;
  std::copy(client.b.begin(), client.b.end(), f.begin() + 26);
  std::copy(kVip.b.begin(), kVip.b.end(), f.begin() + 30);
  put16(f, 34, port);
  put16(f, 36, 80);
  f[46] = 0x50;
  f[47] = flags;
  put16(f, 24, csum::ipv4_header({f.data() + 14, 20}));
  put16(f, 50, csum::l4_full(client, kVip, kProtoTcp, {f.data() + 34, f.size() - 34}, 16));
  return f;
}

struct Shard {
  ServiceTable services;
  Timeouts timeouts;
  ConnTable conns;
  DataPath dp{services, conns, timeouts};
  std::vector<std::vector<uint8_t>> frames;
  double cpu_s = 0;
  explicit Shard(uint32_t capacity) : conns(capacity, 1) {
    const ServiceKey svc{kProtoTcp, kVip, 80};
    (void)services.add_service(svc, {"wlc"});
    for (uint32_t i = 0; i < 4; ++i)
      (void)services.add_real(svc, {Be32::from_host(0xc612000b + i), 80, FwdMethod::kRoute, 1});
    services.for_each_real([](Real& r) {
      r.hop = NextHop{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, MacAddr{{2, 0, 0, 0, 0, 0xa1}}, 1500, true,
                      Be32::from_host(0xc6120002)};
    });
    dp.set_interfaces({{1, MacAddr{{2, 0, 0, 0, 0, 0xd1}}, 1500}});
  }
};

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}
double wall_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

void run(Shard& s, int rounds) {
  const double cpu0 = thread_cpu_s();
  std::vector<uint8_t> buf(2048);
  uint64_t now_ms = 1000;
  for (int r = 0; r < rounds; ++r) {
    for (const auto& f : s.frames) {
      std::copy(f.begin(), f.end(), buf.begin());  // what the capture's copy costs
      (void)s.dp.process({buf.data(), f.size()}, 1, now_ms, buf.size());
    }
    now_ms += 1000 * 1000;  // past every timeout: the next round's SYNs find no entry
    s.dp.expire(now_ms, 1u << 30);
  }
  s.cpu_s = thread_cpu_s() - cpu0;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  const uint32_t max_workers = argc > 2 ? uint32_t(std::atoi(argv[2])) : 2;
  std::printf("%-8s %12s %10s %14s %16s %8s\n", "workers", "frames", "wall_s", "frames/s", "frames/CPU-s",
              "speedup");
  double one = 0;
  for (uint32_t n = 1; n <= max_workers; ++n) {
    std::vector<std::unique_ptr<Shard>> shards;
    std::deque<sched::SharedDest> shared(16);
    for (uint32_t w = 0; w < n; ++w) {
      shards.push_back(std::make_unique<Shard>((kClients * kPortsPerClient * 2) / n + 1024));
      ServiceTable& t = shards.back()->services;
      if (n > 1) t.for_each_real([&](Real& r) { t.share_counts(r, &shared[r.id]); });
    }
    for (uint32_t c = 0; c < kClients; ++c) {
      const Ipv4 client = Be32::from_host(0xc6130000u + c);  // 198.19.0.0/18
      Shard& s = *shards[steer_worker(client, kHost, n)];
      for (uint16_t p = 0; p < kPortsPerClient; ++p) {
        const uint16_t port = uint16_t(20000 + p);
        s.frames.push_back(frame(client, port, tcp_flag::kSyn, 0));
        s.frames.push_back(frame(client, port, tcp_flag::kAck, 0));
        for (int d = 0; d < 6; ++d) s.frames.push_back(frame(client, port, tcp_flag::kAck | tcp_flag::kPsh, 64));
        s.frames.push_back(frame(client, port, tcp_flag::kFin | tcp_flag::kAck, 0));
        s.frames.push_back(frame(client, port, tcp_flag::kAck, 0));
      }
    }
    const double t0 = wall_s();
    std::vector<std::thread> threads;
    for (auto& s : shards) threads.emplace_back([&s, rounds] { run(*s, rounds); });
    for (auto& t : threads) t.join();
    const double wall = wall_s() - t0;
    uint64_t frames = 0, drops = 0;
    double cpu = 0;
    for (auto& s : shards) {
      frames += uint64_t(s->frames.size()) * uint64_t(rounds);
      drops += s->dp.counters().total_drops();
      cpu += s->cpu_s;
    }
    if (drops) {
      std::fprintf(stderr, "%llu frames dropped: the benchmark's traffic is wrong\n", (unsigned long long)drops);
      return 1;
    }
    const double rate = double(frames) / wall;
    if (n == 1) one = rate;
    std::printf("%-8u %12llu %10.3f %14.0f %16.0f %7.2fx\n", n, (unsigned long long)frames, wall, rate,
                double(frames) / cpu, rate / one);
  }
  // A listing's step: what lbd's dump_with_conns copies out of a worker per step.
  Shard big(1u << 21);
  std::vector<uint8_t> buf(2048);
  for (uint32_t i = 0; i < (1u << 20); ++i) {
    const auto f = frame(Be32::from_host(0xc6140000u + (i >> 4)), uint16_t(10000 + (i & 15)), tcp_flag::kSyn, 0);
    std::copy(f.begin(), f.end(), buf.begin());
    (void)big.dp.process({buf.data(), f.size()}, 1, 1000, buf.size());
  }
  double worst = 0, total = 0;
  size_t steps = 0;
  for (size_t pos = 0; pos < big.conns.index_positions();) {
    Dump step;
    const double t0 = wall_s();
    pos = big.conns.for_each_from(pos, 16384, [&](const Conn& c) {
      step.conns.push_back({uint8_t(c.key.protocol), c.key.caddr, c.key.vaddr, c.daddr, c.key.cport, c.key.vport,
                            c.dport, state_name(c.state), big.dp.expires_of(c)});
    });
    const double dt = wall_s() - t0;
    worst = std::max(worst, dt);
    total += dt;
    ++steps;
  }
  std::printf("listing %u connections: %zu steps of 16384, %.0f us per step on average, %.0f us at most\n",
              big.conns.size(), steps, total / double(steps) * 1e6, worst * 1e6);
  return 0;
}

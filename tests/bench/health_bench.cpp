// The health engine at scale: N reals (default 1000) checked every INTERVAL ms (1000) by
// TCP connect for SECONDS (10), against a local listener that accepts and closes. Reports
// how many checks ran against how many were due, how late they started (the schedule's
// drift: p50/p99/max over the last 4096 checks) and the engine's CPU (the process's, minus
// the listener thread's). Usage: lbd_health_bench [N] [SECONDS] [INTERVAL_MS]
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "health/engine.hpp"

using namespace lbd;

namespace {
double cpu_seconds(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 10;
  const uint32_t interval_ms = argc > 3 ? uint32_t(std::atoi(argv[3])) : 1000;

  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) || listen(lfd, 4096)) {
    std::perror("listener");
    return 1;
  }
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<bool> stop{false};
  double listener_cpu = 0;
  std::thread acceptor([&] {
    while (!stop) {
      const int c = accept(lfd, nullptr, nullptr);
      if (c >= 0) close(c);
    }
    listener_cpu = cpu_seconds(RUSAGE_THREAD);
  });

  health::Engine engine;
  std::vector<health::Target> targets;
  for (int i = 0; i < n; ++i) {
    health::Target t;
    t.real_id = uint32_t(i);
    t.service = "TCP 198.18.0.100:80";
    t.addr = Be32::from_host(0x7f000001);
    t.port = ntohs(a.sin_port);
    t.check.kind = health::find_check("tcp");
    t.check.interval_ms = interval_ms;
    t.check.timeout_ms = std::min<uint32_t>(interval_ms, 1000);
    targets.push_back(t);
  }
  const double cpu0 = cpu_seconds(RUSAGE_SELF);
  const auto t0 = std::chrono::steady_clock::now();
  engine.configure(std::move(targets));
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  const auto st = engine.stats();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  const int wake = socket(AF_INET, SOCK_STREAM, 0);  // unblock accept()
  connect(wake, reinterpret_cast<sockaddr*>(&a), sizeof a);
  acceptor.join();
  close(wake);
  const double cpu = cpu_seconds(RUSAGE_SELF) - cpu0 - listener_cpu;
  const double due = double(n) * wall * 1000.0 / interval_ms;
  std::printf("reals %d, interval %u ms, %.1f s: %llu checks (%.0f due), %llu failed\n", n,
              interval_ms, wall, static_cast<unsigned long long>(st.checks), due,
              static_cast<unsigned long long>(st.failures));
  std::printf("start lateness (schedule drift): p50 %llu us, p99 %llu us, max %llu us\n",
              static_cast<unsigned long long>(st.late_p50_us),
              static_cast<unsigned long long>(st.late_p99_us),
              static_cast<unsigned long long>(st.late_max_us));
  std::printf("engine CPU: %.2f s over %.1f s = %.1f%% of one core (%.1f us per check)\n", cpu,
              wall, 100.0 * cpu / wall, st.checks ? 1e6 * cpu / double(st.checks) : 0.0);
  return 0;
}

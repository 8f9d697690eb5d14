// The control plane at scale: a rules file of N services with 10 reals each, applied
// from empty (lbd's start, `lbadm -R`) and reloaded with one weight changed (SIGHUP). The
// data path waits while a command runs, so this is the pause a reload causes.
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "lb/ctl/commands.hpp"

using namespace lbd;

namespace {

std::string rules_text(int services, int changed_weight) {
  std::string t;
  for (int s = 0; s < services; ++s) {
    const std::string vip = fmt::format("198.18.{}.{}:80", 100 + s / 250, s % 250 + 1);
    t += fmt::format("-A -t {} -s wlc\n", vip);
    for (int r = 0; r < 10; ++r)
      t += fmt::format("-a -t {} -r 198.19.{}.{}:80 -g -w {}\n", vip, s / 25, (s % 25) * 10 + r + 1,
                       s == 0 && r == 0 ? changed_weight : 1);
  }
  return t;
}

void BM_ApplyFromEmpty(benchmark::State& st) {
  std::vector<CliCommand> rules;
  (void)parse_rules(rules_text(int(st.range(0)), 1), rules);
  for (auto _ : st) {
    ServiceTable t;
    Timeouts to;
    benchmark::DoNotOptimize(apply_rules_atomically(rules, t, to));
  }
  st.counters["lines"] = double(rules.size());
}
BENCHMARK(BM_ApplyFromEmpty)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_ReloadOneChange(benchmark::State& st) {
  std::vector<CliCommand> a, b;
  (void)parse_rules(rules_text(int(st.range(0)), 1), a);
  (void)parse_rules(rules_text(int(st.range(0)), 5), b);
  ServiceTable t;
  Timeouts to;
  (void)apply_rules_atomically(a, t, to);
  size_t changes = 0;
  bool flip = false;
  for (auto _ : st) {
    benchmark::DoNotOptimize(reload_rules(flip ? a : b, t, to, changes));
    flip = !flip;
  }
  if (changes != 1) st.SkipWithError("expected exactly one change");
}
BENCHMARK(BM_ReloadOneChange)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// One service with N reals (a large pool behind one VIP): each add used to move the whole
// real list and rebuild its views, O(N^2) for the file; a Batch makes it linear.
std::string one_service_text(int reals) {
  std::string t = "-A -t 198.18.0.100:80 -s wrr\n";
  for (int r = 0; r < reals; ++r)
    t += fmt::format("-a -t 198.18.0.100:80 -r 198.19.{}.{}:80 -g -w 1\n", r / 250, r % 250 + 1);
  return t;
}

void BM_ApplyOneServiceManyReals(benchmark::State& st) {
  std::vector<CliCommand> rules;
  (void)parse_rules(one_service_text(int(st.range(0))), rules);
  for (auto _ : st) {
    ServiceTable t;
    Timeouts to;
    benchmark::DoNotOptimize(apply_rules_atomically(rules, t, to));
  }
  st.counters["reals"] = double(st.range(0));
}
BENCHMARK(BM_ApplyOneServiceManyReals)->Arg(3000)->Arg(30000)->Unit(benchmark::kMillisecond);

void BM_ReloadAddManyReals(benchmark::State& st) {
  std::vector<CliCommand> empty, full;
  (void)parse_rules(one_service_text(0), empty);
  (void)parse_rules(one_service_text(int(st.range(0))), full);
  ServiceTable t;
  Timeouts to;
  (void)apply_rules_atomically(empty, t, to);
  size_t changes = 0;
  bool flip = false;
  for (auto _ : st) {  // alternately add all reals and remove them again
    benchmark::DoNotOptimize(reload_rules(flip ? empty : full, t, to, changes));
    flip = !flip;
  }
  if (changes != size_t(st.range(0))) st.SkipWithError("expected every real to change");
}
BENCHMARK(BM_ReloadAddManyReals)->Arg(3000)->Arg(30000)->Unit(benchmark::kMillisecond);

}  // namespace

// Each scheduler's pick() over 3, 16 and 256 reals: every scheduler of the registry (a new
// one is measured without a line here). No real is idle (nq's shortcut would hide its walk).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "scheduler/scheduler.hpp"

using namespace lbd::sched;

static void BM_Pick(benchmark::State& st, const std::string& name) {
  const size_t n = size_t(st.range(0));
  auto s = make_scheduler(name);
  std::vector<DestView> dests(n);
  std::vector<const DestView*> views;
  for (size_t i = 0; i < n; ++i) {
    dests[i].weight = int32_t(1 + i % 5);
    dests[i].active_conns = uint32_t(1 + i * 7 % 13);
    views.push_back(&dests[i]);
  }
  s->reals_changed(views);
  Flow f{};
  for (auto _ : st) {
    auto idx = s->pick(f, views);
    benchmark::DoNotOptimize(idx);
  }
  st.SetItemsProcessed(int64_t(st.iterations()));
}

static const bool kRegistered = [] {
  for (const std::string& name : scheduler_names())
    benchmark::RegisterBenchmark(("BM_Pick/" + name).c_str(), [name](benchmark::State& st) { BM_Pick(st, name); })
        ->Arg(3)
        ->Arg(16)
        ->Arg(256);
  return true;
}();

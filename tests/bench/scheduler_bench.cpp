// Each scheduler's pick() over 3, 16 and 256 reals.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "scheduler/scheduler.hpp"

using namespace lbd::sched;

static void BM_Pick(benchmark::State& st, const char* name) {
  const size_t n = size_t(st.range(0));
  auto s = make_scheduler(name);
  std::vector<DestView> dests(n);
  std::vector<const DestView*> views;
  for (size_t i = 0; i < n; ++i) {
    dests[i].weight = int32_t(1 + i % 5);
    dests[i].active_conns = uint32_t(i * 7 % 13);
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

BENCHMARK_CAPTURE(BM_Pick, rr, "rr")->Arg(3)->Arg(16)->Arg(256);
BENCHMARK_CAPTURE(BM_Pick, wrr, "wrr")->Arg(3)->Arg(16)->Arg(256);
BENCHMARK_CAPTURE(BM_Pick, lc, "lc")->Arg(3)->Arg(16)->Arg(256);
BENCHMARK_CAPTURE(BM_Pick, wlc, "wlc")->Arg(3)->Arg(16)->Arg(256);

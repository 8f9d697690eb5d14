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

// mh's disruption: N reals, one leaves; of 100,000 clients, the share that changes real
// (ideal: 1/N) and the share of the other reals' clients that moves (ideal: 0). Counters,
// not times.
static void BM_MhDisruption(benchmark::State& st) {
  const size_t n = size_t(st.range(0));
  constexpr uint32_t kClients = 100000;
  double moved = 0, others_moved = 0;
  for (auto _ : st) {
    auto s = make_scheduler("mh");
    std::vector<DestView> dests(n);
    std::vector<const DestView*> views;
    for (size_t i = 0; i < n; ++i) {
      dests[i].addr = 0xc6120000u + 11 + uint32_t(i);
      dests[i].port = 80;
      views.push_back(&dests[i]);
    }
    s->reals_changed(views);
    std::vector<size_t> before(kClients);
    for (uint32_t c = 0; c < kClients; ++c) before[c] = *s->pick({6, 0xc6130000u + c, 0, 40000, 80}, views);
    const size_t gone = n / 2;
    views.erase(views.begin() + long(gone));
    s->reals_changed(views);
    uint32_t changed = 0, others = 0, kept_out = 0;
    for (uint32_t c = 0; c < kClients; ++c) {
      const size_t now = *s->pick({6, 0xc6130000u + c, 0, 40000, 80}, views);
      const size_t was = before[c];
      const size_t now_orig = now >= gone ? now + 1 : now;  // back to the indices before the removal
      changed += now_orig != was;
      if (was != gone) {
        ++others;
        kept_out += now_orig != was;
      }
    }
    moved = double(changed) / kClients;
    others_moved = double(kept_out) / others;
  }
  st.counters["moved"] = moved;
  st.counters["ideal"] = 1.0 / double(n);
  st.counters["others_moved"] = others_moved;
}
BENCHMARK(BM_MhDisruption)->Arg(3)->Arg(10)->Arg(100)->Iterations(1)->Unit(benchmark::kMillisecond);

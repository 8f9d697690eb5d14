// What --metrics costs the control thread: /metrics (Prometheus text) and /status.json
// rebuilt from a dump of N services with 10 reals each, as after every gathering (2 s),
// health transition and change. (Serving them is the HTTP thread's.)
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lb/ctl/json_output.hpp"
#include "lb/ctl/metrics.hpp"

using namespace lbd;

namespace {

Dump dump_of(int services) {
  Dump d;
  for (int s = 0; s < services; ++s) {
    DumpService ds;
    ds.key = {kProtoTcp, Ipv4::from_host(0xc6126400u + uint32_t(s)), 80};
    ds.stats = {1000, 20000, 0, 3000000, 0};
    for (int r = 0; r < 10; ++r) {
      DumpReal dr;
      dr.spec = RealSpec(Ipv4::from_host(0xc6130000u + uint32_t(s * 10 + r)), 80, FwdMethod::kRoute, 1);
      dr.active = 12;
      dr.inactive = 40;
      dr.stats = {100, 2000, 0, 300000, 0};
      ds.reals.push_back(dr);
    }
    d.services.push_back(std::move(ds));
  }
  return d;
}

std::vector<Counter> some_counters() {
  std::vector<Counter> v;
  for (int i = 0; i < 80; ++i) v.push_back({"drop_reason_" + std::to_string(i), uint64_t(i)});
  for (int i = 0; i < 40; ++i) v.push_back({"count_" + std::to_string(i), uint64_t(i)});
  return v;
}

void BM_PrometheusText(benchmark::State& st) {
  const Dump d = dump_of(int(st.range(0)));
  const std::vector<Counter> cs = some_counters();
  const std::vector<RealHealthView> health;
  size_t bytes = 0;
  for (auto _ : st) {
    const std::string t = prometheus_text({.dump = d, .counters = cs, .health = health, .offload = "xdp-generic",
                                           .capacity = 1u << 20, .version = "0.1.0"});
    bytes = t.size();
    benchmark::DoNotOptimize(t.data());
  }
  st.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_PrometheusText)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_StatusJson(benchmark::State& st) {
  const Dump d = dump_of(int(st.range(0)));
  CliCommand all;
  all.cmd = Command::kList;
  for (auto _ : st) {
    const std::string t = listing_json(all, d).value().dump();
    benchmark::DoNotOptimize(t.data());
  }
}
BENCHMARK(BM_StatusJson)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

}  // namespace

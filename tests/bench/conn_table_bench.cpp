// Connection-table lookup and insert at 1M and 10M entries (random keys, so lookups miss
// the cache as they would under real traffic).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "lb/core/conn_table.hpp"

using namespace lbd;

namespace {
std::vector<ConnKey> keys(size_t n) {
  std::mt19937_64 rng(1);
  std::vector<ConnKey> v(n);
  for (auto& k : v) {
    const uint64_t r = rng();
    k = ConnKey{Be32::from_host(0xc6120000u | uint32_t(r & 0x1ffff)), Be32::from_host(0xc6120064u),
                uint16_t(r >> 20), 80, kProtoTcp};
    // distinct client ports per address: combine to make duplicates vanishingly rare
    k.caddr = Be32::from_host(uint32_t(r >> 32));
  }
  return v;
}

void BM_Lookup(benchmark::State& st) {
  const size_t n = size_t(st.range(0));
  static std::unique_ptr<ConnTable> table;
  static std::vector<ConnKey> ks;
  static size_t built = 0;
  if (built != n) {
    table = std::make_unique<ConnTable>(uint32_t(n), 42);
    ks = keys(n);
    for (const auto& k : ks)
      if (!table->find(k)) table->insert(k, 1000);
    built = n;
  }
  std::mt19937 rng(7);
  size_t hits = 0;
  for (auto _ : st) {
    const ConnKey& k = ks[rng() % n];
    hits += table->find(k) != nullptr;
  }
  benchmark::DoNotOptimize(hits);
  st.SetItemsProcessed(int64_t(st.iterations()));
  st.counters["bytes_per_conn"] = double(ConnTable::bytes_per_connection());
}

void BM_InsertErase(benchmark::State& st) {
  const size_t n = size_t(st.range(0));
  ConnTable table(uint32_t(n), 42);
  auto ks = keys(n);
  // Fill to 90%, then measure insert + erase pairs at that load.
  const size_t fill = n * 9 / 10;
  for (size_t i = 0; i < fill; ++i)
    if (!table.find(ks[i])) table.insert(ks[i], 1000);
  size_t i = fill;
  for (auto _ : st) {
    const ConnKey& k = ks[i];
    if (Conn* c = table.find(k)) table.erase(c);
    else table.insert(k, 1000);
    if (++i == n) i = fill;
  }
  st.SetItemsProcessed(int64_t(st.iterations()));
}
}  // namespace

BENCHMARK(BM_Lookup)->Arg(1 << 20)->Arg(10'000'000)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_InsertErase)->Arg(1 << 20)->Arg(10'000'000)->Unit(benchmark::kNanosecond);

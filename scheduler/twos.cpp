// Power of two choices (IPVS ip_vs_twos.c): two weighted random picks among the usable
// reals, r1 and r2 each uniform in [0, total weight] (inclusive, as the kernel's "+ 1":
// the first real's share is one more than its weight), walking the list and subtracting
// weights until <= 0; the second wins if weight2 × overhead1 > weight1 × overhead2 (the
// kernel's int arithmetic, wrapping as it does). The random source is injectable.
#include <functional>
#include <random>

#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

// The kernel multiplies ints: a product past 2^31 wraps (x86, two's complement).
int32_t mul32(int32_t a, int32_t b) { return int32_t(uint32_t(a) * uint32_t(b)); }

class Twos final : public Scheduler {
 public:
  explicit Twos(std::function<uint32_t()> random) : random_(std::move(random)) {}
  std::string_view name() const override { return "twos"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    int32_t total = 0;
    for (const auto* d : dests)
      if (d->schedulable()) total += d->weight;
    if (total == 0) return std::nullopt;
    total += 1;
    int32_t r1 = int32_t(random_() % uint32_t(total)), r2 = int32_t(random_() % uint32_t(total));
    std::optional<size_t> c1, c2;
    int32_t w1 = -1, w2 = -1, o1 = 0, o2 = 0;
    for (size_t i = 0; i < dests.size() && (w1 == -1 || w2 == -1); ++i) {
      const auto* d = dests[i];
      if (!d->schedulable()) continue;
      r1 -= d->weight;
      r2 -= d->weight;
      if (r1 <= 0 && w1 == -1) c1 = i, w1 = d->weight, o1 = int32_t(d->overhead());
      if (r2 <= 0 && w2 == -1) c2 = i, w2 = d->weight, o2 = int32_t(d->overhead());
    }
    if (c2 && mul32(w2, o1) > mul32(w1, o2)) return c2;
    return c1;
  }

 private:
  std::function<uint32_t()> random_;
};

}  // namespace

std::unique_ptr<Scheduler> make_twos(std::function<uint32_t()> random) { return std::make_unique<Twos>(std::move(random)); }

std::unique_ptr<Scheduler> make_twos() {
  auto engine = std::make_shared<std::mt19937>(std::random_device{}());
  return make_twos([engine] { return uint32_t((*engine)()); });
}

}  // namespace lbd::sched

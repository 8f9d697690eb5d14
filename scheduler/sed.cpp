// Shortest expected delay (IPVS ip_vs_sed.c): minimise (active + 1) / weight, inactive
// connections not counted. The first schedulable real is the initial "least"; a later one
// replaces it only when loh * w_dest > doh * w_least (64-bit), so ties keep the earlier
// real in list order.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Sed final : public Scheduler {
 public:
  std::string_view name() const override { return "sed"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    std::optional<size_t> least;
    int64_t loh = 0;
    for (size_t i = 0; i < dests.size(); ++i) {
      const auto* d = dests[i];
      if (!d->schedulable()) continue;
      const int64_t doh = int64_t(d->active_conns) + 1;  // ip_vs_sed_dest_overhead()
      if (!least || loh * d->weight > doh * dests[*least]->weight) {
        least = i;
        loh = doh;
      }
    }
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_sed() { return std::make_unique<Sed>(); }

}  // namespace lbd::sched

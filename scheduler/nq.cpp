// Never queue (IPVS ip_vs_nq.c): an idle real (no active connection) takes the connection
// at once, the first such in list order; when none is idle, shortest expected delay as sed
// ((active + 1) / weight, ties to the earlier real).
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Nq final : public Scheduler {
 public:
  std::string_view name() const override { return "nq"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    std::optional<size_t> least;
    int64_t loh = 0;
    for (size_t i = 0; i < dests.size(); ++i) {
      const auto* d = dests[i];
      if (!d->schedulable()) continue;
      if (d->active_conns == 0) return i;  // idle: return the server directly
      const int64_t doh = int64_t(d->active_conns) + 1;
      if (!least || loh * d->weight > doh * dests[*least]->weight) {
        least = i;
        loh = doh;
      }
    }
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_nq() { return std::make_unique<Nq>(); }

}  // namespace lbd::sched

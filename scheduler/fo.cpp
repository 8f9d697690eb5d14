// Weighted failover (IPVS ip_vs_fo.c): every new connection to the schedulable real of the
// highest weight, the first in list order among equals; its connections never matter. An
// active/standby pool: the standby has the lower weight.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Fo final : public Scheduler {
 public:
  std::string_view name() const override { return "fo"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    std::optional<size_t> highest;
    int32_t hw = 0;
    for (size_t i = 0; i < dests.size(); ++i) {
      const auto* d = dests[i];
      if (d->schedulable() && d->weight > hw) {
        highest = i;
        hw = d->weight;
      }
    }
    return highest;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_fo() { return std::make_unique<Fo>(); }

}  // namespace lbd::sched

// Weighted overflow (IPVS ip_vs_ovf.c): the schedulable real of the highest weight whose
// active connections do not exceed its weight, the first in list order among equals. A
// real takes connections until it holds more than its weight, then the next one overflows.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Ovf final : public Scheduler {
 public:
  std::string_view name() const override { return "ovf"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    std::optional<size_t> highest;
    int32_t hw = 0;
    for (size_t i = 0; i < dests.size(); ++i) {
      const auto* d = dests[i];
      if (!d->schedulable() || int64_t(d->active_conns) > d->weight) continue;
      if (!highest || d->weight > hw) {
        highest = i;
        hw = d->weight;
      }
    }
    return highest;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_ovf() { return std::make_unique<Ovf>(); }

}  // namespace lbd::sched

// Weighted overflow (IPVS ip_vs_ovf.c): the schedulable real of the highest weight whose
// active connections do not exceed its weight, the first in list order among equals. A
// real takes connections until it holds more than its weight, then the next one overflows.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

std::optional<size_t> pick(Dests dests) {
  std::optional<size_t> highest;
  for (size_t i = 0; i < dests.size(); ++i) {
    const auto* d = dests[i];
    if (!d->schedulable() || int64_t(d->active_conns) > d->weight) continue;
    if (!highest || d->weight > dests[*highest]->weight) highest = i;
  }
  return highest;
}

}  // namespace

std::unique_ptr<Scheduler> make_ovf() { return make_stateless("ovf", pick); }

}  // namespace lbd::sched

// Weighted failover (IPVS ip_vs_fo.c): every new connection to the schedulable real of the
// highest weight, the first in list order among equals; its connections never matter. An
// active/standby pool: the standby has the lower weight.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

std::optional<size_t> pick(Dests dests) {
  std::optional<size_t> highest;
  int32_t hw = 0;
  for (size_t i = 0; i < dests.size(); ++i)
    if (dests[i]->schedulable() && dests[i]->weight > hw) {
      highest = i;
      hw = dests[i]->weight;
    }
  return highest;
}

}  // namespace

std::unique_ptr<Scheduler> make_fo() { return make_stateless("fo", pick); }

}  // namespace lbd::sched

// Weighted least connection (IPVS ip_vs_wlc.c, the ipvsadm default): minimise
// overhead/weight without dividing. The first schedulable real is the initial "least";
// a later one replaces it only when loh * w_dest > doh * w_least (64-bit), so ties keep
// the earlier real in list order.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

std::optional<size_t> pick(Dests dests) {
  std::optional<size_t> least;
  uint64_t loh = 0;
  for (size_t i = 0; i < dests.size(); ++i) {
    const auto* d = dests[i];
    if (!d->schedulable()) continue;
    const uint64_t doh = d->overhead();
    if (!least || loh * uint64_t(d->weight) > doh * uint64_t(dests[*least]->weight)) {
      least = i;
      loh = doh;
    }
  }
  return least;
}

}  // namespace

std::unique_ptr<Scheduler> make_wlc() { return make_stateless("wlc", pick); }

}  // namespace lbd::sched

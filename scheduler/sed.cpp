// Shortest expected delay (IPVS ip_vs_sed.c): minimise (active + 1) / weight, inactive
// connections not counted. The first schedulable real is the initial "least"; a later one
// replaces it only when loh * w_dest > doh * w_least (64-bit), so ties keep the earlier
// real in list order. nq (nq.cpp) is this walk with an idle real taken at once.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

std::optional<size_t> least_expected_delay(Dests dests, bool idle_first) {
  std::optional<size_t> least;
  int64_t loh = 0;
  for (size_t i = 0; i < dests.size(); ++i) {
    const auto* d = dests[i];
    if (!d->schedulable()) continue;
    if (idle_first && d->active_conns == 0) return i;  // ip_vs_nq.c: the idle server directly
    const int64_t doh = int64_t(d->active_conns) + 1;  // ip_vs_{sed,nq}_dest_overhead()
    if (!least || loh * d->weight > doh * dests[*least]->weight) {
      least = i;
      loh = doh;
    }
  }
  return least;
}

std::unique_ptr<Scheduler> make_sed() {
  return make_stateless("sed", [](Dests dests) { return least_expected_delay(dests, false); });
}

}  // namespace lbd::sched

// Least connection (IPVS ip_vs_lc.c): the schedulable real with the smallest overhead
// (active*256 + inactive). Strict "<", so ties go to the earliest in list order, i.e. the
// most recently added real. Weights only matter as 0 = quiesced.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

std::unique_ptr<Scheduler> make_lc() {
  return make_stateless("lc", [](Dests dests) {
    return least_by(
        dests, [](const DestView& d) { return d.overhead(); },
        [](uint64_t doh, const DestView&, uint64_t loh, const DestView&) { return doh < loh; });
  });
}

}  // namespace lbd::sched

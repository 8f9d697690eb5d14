// Weighted least connection (IPVS ip_vs_wlc.c, the ipvsadm default): minimise
// overhead/weight without dividing. The first schedulable real is the initial "least";
// a later one replaces it only when loh * w_dest > doh * w_least (64-bit), so ties keep
// the earlier real in list order.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

std::unique_ptr<Scheduler> make_wlc() {
  return make_stateless("wlc", [](Dests dests) {
    return least_by(
        dests, [](const DestView& d) { return d.overhead(); },
        [](uint64_t doh, const DestView& d, uint64_t loh, const DestView& least) {
          return loh * uint64_t(d.weight) > doh * uint64_t(least.weight);
        });
  });
}

}  // namespace lbd::sched

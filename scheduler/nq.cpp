// Never queue (IPVS ip_vs_nq.c): an idle real (no active connection) takes the connection
// at once, the first such in list order; when none is idle, shortest expected delay as sed
// ((active + 1) / weight, ties to the earlier real): sed.cpp's walk.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

std::unique_ptr<Scheduler> make_nq() {
  return make_stateless("nq", [](Dests dests) { return least_expected_delay(dests, true); });
}

}  // namespace lbd::sched

// Least connection (IPVS ip_vs_lc.c): the schedulable real with the smallest overhead
// (active*256 + inactive). Strict "<", so ties go to the earliest in list order, i.e. the
// most recently added real. Weights only matter as 0 = quiesced.
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
    if (!least || doh < loh) {
      least = i;
      loh = doh;
    }
  }
  return least;
}

}  // namespace

std::unique_ptr<Scheduler> make_lc() { return make_stateless("lc", pick); }

}  // namespace lbd::sched

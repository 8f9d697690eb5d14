// The scheduler interface: given a service's real servers in IPVS list order (newest
// first), pick one for a new connection. Schedulers are pure: no I/O, no clock, no locks,
// and pick() never allocates. Per-service state (rr's cursor, wrr's weight walk) lives in
// the scheduler object; reals_changed() rebuilds whatever is derived from the real set.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lbd::sched {

// What every copy of a real shares when several workers each schedule with their own copy
// of the services: the connections of all of them and the overload flag, so that a real's
// thresholds (-x/-y) hold for the director as a whole, as IPVS's one count per real does.
// (lc and wlc compare each worker's own counts: see DestView.)
struct alignas(64) SharedDest {  // a cache line each: two reals never share one
  std::atomic<uint32_t> conns{0};  // ActiveConn + InActConn of every worker (reals with a threshold)
  std::atomic<bool> overloaded{false};
};

// What a scheduler may know of one real server. Owned by the service table. The counts are
// this copy's: with several workers, each schedules its share of the clients by its own
// connections (as each of several IPVS directors behind ECMP would), and no worker's pick
// reads what another writes.
struct DestView {
  int32_t weight = 1;          // 0 = quiesced: no new connections
  // IPVS's last_weight: the weight it was added with, then its latest non-zero one (a
  // quiesced real keeps its place in mh's table).
  int32_t last_weight = 1;
  uint32_t addr = 0;           // the real's address and port (host order): mh hashes them
  uint16_t port = 0;
  uint32_t active_conns = 0;   // IPVS ActiveConn
  uint32_t inactive_conns = 0; // IPVS InActConn
  bool overloaded = false;     // above its upper threshold (IPVS IP_VS_DEST_F_OVERLOAD)
  bool available = true;       // false while health says down
  SharedDest* shared = nullptr;  // several workers: what all copies share

  bool is_overloaded() const { return shared ? shared->overloaded.load(std::memory_order_relaxed) : overloaded; }
  // IPVS ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones.
  uint64_t overhead() const { return (uint64_t(active_conns) << 8) + inactive_conns; }
  bool schedulable() const { return weight > 0 && !is_overloaded() && available; }
};

// The flow a hashing scheduler may look at (addresses and ports in host order).
struct Flow {
  uint8_t protocol = 0;
  uint32_t saddr = 0, daddr = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t now_s = 0;  // the data path's clock (seconds): lblc/lblcr's cache ages by it
  // TCP, UDP and SCTP carry ports where the hashing schedulers read them (-b sh-port).
  bool has_ports() const { return protocol == 6 || protocol == 17 || protocol == 132; }
};

using Dests = std::span<const DestView* const>;

// What a service gives its scheduler besides the reals: -b's flags, IPVS's
// IP_VS_SVC_F_SCHED1..3 (sh-fallback and sh-port, mh-fallback and mh-port; the others
// ignore them). IPVS reads them at each pick, so an -E that changes only them changes them
// in place (set_options) and keeps the scheduler's state.
inline constexpr uint8_t kSchedFlag1 = 1, kSchedFlag2 = 2, kSchedFlag3 = 4;  // -b flag-1..3
inline constexpr uint8_t kFlagFallback = kSchedFlag1, kFlagPort = kSchedFlag2;  // sh-/mh-fallback, -port
struct SchedulerOptions {
  uint8_t flags = 0;
  friend bool operator==(const SchedulerOptions&, const SchedulerOptions&) = default;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  const SchedulerOptions& options() const { return options_; }
  virtual void set_options(const SchedulerOptions& o) { options_ = o; }
  virtual std::string_view name() const = 0;
  // Index into `dests` of the chosen real, or nullopt when none is schedulable.
  virtual std::optional<size_t> pick(const Flow& flow, Dests dests) = 0;
  // IPVS's add_dest / del_dest / upd_dest hooks, called after the list changed. By default
  // each one rebuilds derived state through reals_changed().
  virtual void real_added(Dests dests, size_t index) { (void)index; reals_changed(dests); }
  virtual void real_removed(Dests dests, const DestView* removed, size_t old_index) {
    (void)removed;
    (void)old_index;
    reals_changed(dests);
  }
  virtual void real_edited(Dests dests, size_t index) { (void)index; reals_changed(dests); }
  virtual void reals_changed(Dests dests) { (void)dests; }

 private:
  SchedulerOptions options_;
};

// A scheduler with no state of its own (lc, wlc, sed, nq, fo, ovf): its name and its pick,
// a pure function of the reals.
using PickFn = std::optional<size_t> (*)(Dests dests);
std::unique_ptr<Scheduler> make_stateless(std::string_view name, PickFn pick);

// IPVS's walk of lc and wlc: the first schedulable real is the "least"; a later one takes
// its place only when `beats(cost, real, least_cost, least)`, so ties keep the earlier real.
template <class Cost, class Beats>
std::optional<size_t> least_by(Dests dests, Cost cost, Beats beats) {
  std::optional<size_t> least;
  decltype(cost(*dests[0])) lc{};
  for (size_t i = 0; i < dests.size(); ++i) {
    const DestView& d = *dests[i];
    if (!d.schedulable()) continue;
    const auto c = cost(d);
    if (!least || beats(c, d, lc, *dests[*least])) {
      least = i;
      lc = c;
    }
  }
  return least;
}

// IPVS's shortest expected delay walk (ip_vs_sed.c): the schedulable real minimising
// (active + 1) / weight, ties to the earlier one; with `idle_first` (ip_vs_nq.c), the first
// real without an active connection at once. sed.cpp and nq.cpp are this walk.
std::optional<size_t> least_expected_delay(Dests dests, bool idle_first);

// twos with its random source given (the registry's draws from a seeded mt19937).
std::unique_ptr<Scheduler> make_twos(std::function<uint32_t()> random);

// The registry (registry.cpp: the explicit list of algorithms, each a file of its own):
// the scheduler `-s NAME` names, with its options, or nullptr if there is none.
std::unique_ptr<Scheduler> make_scheduler(std::string_view name, const SchedulerOptions& options = {});
std::vector<std::string> scheduler_names();

}  // namespace lbd::sched

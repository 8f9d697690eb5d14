// The scheduler interface: given a service's real servers in IPVS list order (newest
// first), pick one for a new connection. Schedulers are pure: no I/O, no clock, no locks,
// and pick() never allocates. Per-service state (rr's cursor, wrr's weight walk) lives in
// the scheduler object; reals_changed() rebuilds whatever is derived from the real set.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lbd::sched {

// What a scheduler may know of one real server. Owned by the service table.
struct DestView {
  int32_t weight = 1;          // 0 = quiesced: no new connections
  uint32_t active_conns = 0;   // IPVS ActiveConn
  uint32_t inactive_conns = 0; // IPVS InActConn
  bool overloaded = false;     // above its upper threshold (IPVS IP_VS_DEST_F_OVERLOAD)
  bool available = true;       // false while health says down

  // IPVS ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones.
  uint64_t overhead() const { return (uint64_t(active_conns) << 8) + inactive_conns; }
  bool schedulable() const { return weight > 0 && !overloaded && available; }
};

// The flow a hashing scheduler may look at (addresses and ports in host order).
struct Flow {
  uint8_t protocol = 0;
  uint32_t saddr = 0, daddr = 0;
  uint16_t sport = 0, dport = 0;
};

using Dests = std::span<const DestView* const>;

class Scheduler {
 public:
  virtual ~Scheduler() = default;
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
};

// The registry: the explicit list of algorithms lives in registry.cpp.
std::unique_ptr<Scheduler> make_scheduler(std::string_view name);
std::vector<std::string> scheduler_names();

// Constructors, one per file.
std::unique_ptr<Scheduler> make_rr();
std::unique_ptr<Scheduler> make_wrr();
std::unique_ptr<Scheduler> make_lc();
std::unique_ptr<Scheduler> make_wlc();

}  // namespace lbd::sched

// What lblc and lblcr share (IPVS ip_vs_lblc.c, ip_vs_lblcr.c): a cache from a packet's
// destination address to reals, its garbage collection on the kernel's 60 s timer (every
// 30th run a full check drops entries unused for lblc(r)_expiration, 24 h by default;
// otherwise, past 16 × 1024 entries, entries unused for 6 minutes go, a bounded number),
// their "overloaded" (more active connections than its weight while another real is
// below half its own), and their least-connection walk. The timer is driven by the
// flows' clock (Flow::now_s): the schedulers stay pure.
#pragma once

#include <cstdint>
#include <algorithm>
#include <optional>
#include <unordered_map>

#include "scheduler/scheduler.hpp"

namespace lbd::sched::locality {

inline constexpr uint32_t kCheckInterval = 60, kEntryTimeout = 6 * 60, kDefaultExpiration = 24 * 60 * 60;
inline constexpr int kCountForFullExpiration = 30;
inline constexpr size_t kMaxSize = 1024 * 16;  // IP_VS_LBLC(R)_TAB_SIZE × 16

// A real as the cache names it (its address and port: a real deleted and added again is
// the same one, as IPVS revives it from its trash).
inline uint64_t key_of(const DestView& d) { return uint64_t(d.addr) << 16 | d.port; }

// The reals' index by key, rebuilt when the list changes.
struct Index {
  std::unordered_map<uint64_t, size_t> at;
  void rebuild(Dests dests) {
    at.clear();
    for (size_t i = 0; i < dests.size(); ++i) at[key_of(*dests[i])] = i;
  }
  std::optional<size_t> find(uint64_t key, size_t n) const {
    const auto it = at.find(key);
    return it == at.end() || it->second >= n ? std::nullopt : std::optional(it->second);
  }
};

// is_overloaded(): more active connections than its weight, and some real of the service
// below half its weight.
inline bool overloaded(const DestView& d, Dests dests) {
  if (int64_t(d.active_conns) <= d.weight) return false;
  for (const auto* o : dests)
    if (int64_t(o->active_conns) * 2 < o->weight) return true;
  return false;
}

// __ip_vs_lblc(r)_schedule(): wlc over the service's reals.
inline std::optional<size_t> least_loaded(Dests dests) {
  return least_by(
      dests, [](const DestView& d) { return int64_t(d.overhead()); },
      [](int64_t doh, const DestView& d, int64_t loh, const DestView& least) { return loh * d.weight > doh * least.weight; });
}

// The kernel's periodic timer over a cache of entries with a `lastuse`, run for each
// 60 s that passed by the time of `now`.
template <class Entry>
class Collector {
 public:
  void run(std::unordered_map<uint32_t, Entry>& cache, uint32_t now, uint32_t expiration) {
    if (!next_) next_ = uint64_t(now) + kCheckInterval;  // the timer starts with the service (its first flow)
    while (next_ <= now) {
      if (counter_ % kCountForFullExpiration != 0 && cache.size() <= kMaxSize) {
        // Runs that only count, up to the next full check or to now, at once.
        const uint64_t to_full = uint64_t(kCountForFullExpiration - counter_ % kCountForFullExpiration);
        const uint64_t skip = std::min<uint64_t>(to_full, (now - next_) / kCheckInterval + 1);
        counter_ += int(skip);
        next_ += skip * kCheckInterval;
        continue;
      }
      tick(cache, uint32_t(next_), expiration);
      next_ += kCheckInterval;
    }
  }

 private:
  void tick(std::unordered_map<uint32_t, Entry>& cache, uint32_t now, uint32_t expiration) {
    if (counter_ % kCountForFullExpiration == 0) {  // the full check: unused for the expiration
      std::erase_if(cache, [&](const auto& kv) { return now >= kv.second.lastuse + expiration; });
      counter_ = 1;
      return;
    }
    if (cache.size() <= kMaxSize) {
      ++counter_;
      return;
    }
    size_t goal = std::min((cache.size() - kMaxSize) * 4 / 3, kMaxSize / 2);
    for (auto it = cache.begin(); it != cache.end() && goal > 0;) {
      if (now >= it->second.lastuse + kEntryTimeout) {
        it = cache.erase(it);
        --goal;
      } else {
        ++it;
      }
    }
  }
  uint64_t next_ = 0;  // when the timer runs next
  int counter_ = 1;
};

// What lblc and lblcr are built on: the cache by destination, the reals' index, the timer.
template <class Entry>
class CachingScheduler : public Scheduler {
 public:
  void reals_changed(Dests dests) override { index_.rebuild(dests); }

 protected:
  // The timer's runs due by `now`, then the destination's entry (end() if none).
  auto entry_for(const Flow& flow) {
    gc_.run(cache_, flow.now_s, kDefaultExpiration);
    return cache_.find(flow.daddr);
  }
  std::unordered_map<uint32_t, Entry> cache_;  // destination address → its entry
  Index index_;

 private:
  Collector<Entry> gc_;
};

}  // namespace lbd::sched::locality

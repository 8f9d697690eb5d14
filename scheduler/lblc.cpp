// Locality-based least connection (IPVS ip_vs_lblc.c): a packet's destination address
// keeps the real it was last given while that real is usable (not deleted or down, weight
// > 0, not overloaded in lblc's sense: see locality.hpp); otherwise wlc picks one and the
// cache remembers it. Entries unused for lblc_expiration (24 h) are collected.
#include "scheduler/locality.hpp"

namespace lbd::sched {
namespace {

struct Entry {
  uint64_t dest;
  uint32_t lastuse;
};

class Lblc final : public locality::CachingScheduler<Entry> {
 public:
  std::string_view name() const override { return "lblc"; }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    const auto it = entry_for(flow);
    if (it != cache_.end()) {
      it->second.lastuse = flow.now_s;
      const auto i = index_.find(it->second.dest, dests.size());
      if (i) {
        const DestView& d = *dests[*i];
        if (d.available && d.weight > 0 && !locality::overloaded(d, dests)) return i;
      }
    }
    const auto least = locality::least_loaded(dests);
    if (!least) return std::nullopt;
    const uint64_t key = locality::key_of(*dests[*least]);
    if (it == cache_.end())
      cache_.emplace(flow.daddr, Entry{key, flow.now_s});
    else if (it->second.dest != key)  // ip_vs_lblc_new(): a new entry for another real
      it->second = Entry{key, flow.now_s};
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_lblc() { return std::make_unique<Lblc>(); }

}  // namespace lbd::sched

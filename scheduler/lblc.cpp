// Locality-based least connection (IPVS ip_vs_lblc.c): a packet's destination address
// keeps the real it was last given while that real is usable (not deleted or down, weight
// > 0, not overloaded in lblc's sense: see locality.hpp); otherwise wlc picks one and the
// cache remembers it. Entries unused for lblc_expiration (24 h) are collected.
#include "scheduler/locality.hpp"

namespace lbd::sched {
namespace {

class Lblc final : public Scheduler {
 public:
  std::string_view name() const override { return "lblc"; }
  void reals_changed(Dests dests) override { index_.rebuild(dests); }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    gc_.run(cache_, flow.now_s, locality::kDefaultExpiration);
    const auto it = cache_.find(flow.daddr);
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

 private:
  struct Entry {
    uint64_t dest;
    uint32_t lastuse;
  };
  std::unordered_map<uint32_t, Entry> cache_;  // destination address → its real
  locality::Index index_;
  locality::Collector<Entry> gc_;
};

}  // namespace

std::unique_ptr<Scheduler> make_lblc() { return std::make_unique<Lblc>(); }

}  // namespace lbd::sched

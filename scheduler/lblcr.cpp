// Locality-based least connection with replication (IPVS ip_vs_lblcr.c): a packet's
// destination address keeps a set of reals (newest first). The least loaded usable one of
// the set serves it; when that one is overloaded (locality.hpp) wlc picks a real of the
// service, which joins the set. A set of more than one unchanged for lblcr_expiration
// (24 h) loses its most loaded member. Entries unused for that long are collected.
#include <vector>

#include "scheduler/locality.hpp"

namespace lbd::sched {
namespace {

struct Entry {
  std::vector<uint64_t> set;  // newest first, as list_add_rcu
  uint32_t lastuse, lastmod;
};

class Lblcr final : public locality::CachingScheduler<Entry> {
 public:
  std::string_view name() const override { return "lblcr"; }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    const auto it = entry_for(flow);
    if (it == cache_.end()) {
      const auto least = locality::least_loaded(dests);
      if (!least) return std::nullopt;
      cache_.emplace(flow.daddr, Entry{{locality::key_of(*dests[*least])}, flow.now_s, flow.now_s});
      return least;
    }
    Entry& en = it->second;
    en.lastuse = flow.now_s;
    const auto dest = set_min(en, dests);
    if (en.set.size() > 1 && flow.now_s > en.lastmod + locality::kDefaultExpiration)
      if (const auto most = set_max(en, dests)) erase(en, locality::key_of(*dests[*most]), flow.now_s);
    if (dest && !locality::overloaded(*dests[*dest], dests)) return dest;
    const auto least = locality::least_loaded(dests);
    if (!least) return std::nullopt;
    insert(en, locality::key_of(*dests[*least]), flow.now_s);
    return least;
  }

 private:

  // ip_vs_dest_set_min(): the first member not overloaded (-x) with weight > 0 and
  // available, then a later one not overloaded and available when loh × w > doh × w_least.
  std::optional<size_t> set_min(const Entry& en, Dests dests) const {
    std::optional<size_t> least;
    int64_t loh = 0;
    for (uint64_t key : en.set) {
      const auto i = index_.find(key, dests.size());
      if (!i) continue;  // deleted: not available
      const DestView& d = *dests[*i];
      if (d.is_overloaded()) continue;
      const int64_t doh = int64_t(d.overhead());
      if (!least) {
        if (d.weight > 0 && d.available) least = i, loh = doh;
      } else if (loh * d.weight > doh * dests[*least]->weight && d.available) {
        least = i, loh = doh;
      }
    }
    return least;
  }

  // ip_vs_dest_set_max(): the first member with weight > 0, then a later one with weight
  // > 0 when moh × w < doh × w_most.
  std::optional<size_t> set_max(const Entry& en, Dests dests) const {
    std::optional<size_t> most;
    int64_t moh = 0;
    for (uint64_t key : en.set) {
      const auto i = index_.find(key, dests.size());
      if (!i) continue;
      const DestView& d = *dests[*i];
      const int64_t doh = int64_t(d.overhead());
      if (!most) {
        if (d.weight > 0) most = i, moh = doh;
      } else if (moh * d.weight < doh * dests[*most]->weight && d.weight > 0) {
        most = i, moh = doh;
      }
    }
    return most;
  }

  static void insert(Entry& en, uint64_t key, uint32_t now) {
    for (uint64_t k : en.set)
      if (k == key) return;
    en.set.insert(en.set.begin(), key);
    en.lastmod = now;
  }
  static void erase(Entry& en, uint64_t key, uint32_t now) {
    for (auto k = en.set.begin(); k != en.set.end(); ++k)
      if (*k == key) {
        en.set.erase(k);
        en.lastmod = now;
        return;
      }
  }

};

}  // namespace

std::unique_ptr<Scheduler> make_lblcr() { return std::make_unique<Lblcr>(); }

}  // namespace lbd::sched

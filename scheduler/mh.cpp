// Maglev hashing (IPVS ip_vs_mh.c; NSDI'16 §3.4): a lookup table of 4093 slots (IPVS's
// default prime) that each real fills by its own permutation (offset and skip from
// hsiphash of its address and port with IPVS's fixed keys), by turns proportional to
// last_weight / gcd (shifted to at most 6 bits), in list order. A client's slot is
// hsiphash(port + address) mod 4093 of its source (port 0 unless -b mh-port). Two directors
// with the same reals in the same order build the same table; when one of N reals leaves,
// about 1/N of the slots change. An unusable real in the slot gives none, or with
// -b mh-fallback the next usable one along the kernel's walk.
#include <numeric>
#include <vector>

#include "scheduler/hash.hpp"
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

constexpr uint32_t kSize = 4093;      // primes[CONFIG_IP_VS_MH_TAB_INDEX 12 - 8]
constexpr int kTabBits = 12 / 2;      // IP_VS_MH_TAB_BITS
constexpr uint64_t kKey1 = 2654435761u, kKey2 = 2654446892u;  // generate_hash_secret(): both words

uint32_t hashkey(uint32_t addr, uint16_t port, uint64_t key, uint32_t offset) {
  return hsiphash_u32(offset + uint32_t(port) + addr, key, key);
}

int fls(uint32_t x) { return x ? 32 - __builtin_clz(x) : 0; }

class Mh final : public Scheduler {
 public:
  std::string_view name() const override { return "mh"; }

  void reals_changed(Dests dests) override {  // ip_vs_mh_dest_changed(): gcd, shift, reassign
    int g = 0, mw = 0;
    for (const auto* d : dests)
      if (d->last_weight > 0) {
        g = g > 0 ? std::gcd(d->last_weight, g) : d->last_weight;
        mw = std::max(mw, d->last_weight);
      }
    lookup_.assign(kSize, -1);
    if (g < 1) return;  // no real, or none with a weight: an empty table
    const int rshift = std::max(0, fls(uint32_t(mw / g)) - kTabBits);
    struct Setup {
      uint32_t skip, perm;
      int turns;
    };
    std::vector<Setup> setup;
    for (const auto* d : dests) {  // ip_vs_mh_permutate()
      const int lw = d->last_weight;
      const int turns = (lw / g) >> rshift;
      setup.push_back({hashkey(d->addr, d->port, kKey2, 0) % (kSize - 1) + 1,
                       hashkey(d->addr, d->port, kKey1, 0) % kSize, turns ? turns : int(lw != 0)});
    }
    std::vector<bool> taken(kSize);
    uint32_t n = 0;
    int dt_count = 0;
    while (n < kSize) {  // ip_vs_mh_populate(): the reals by turns, round and round
      for (size_t i = 0; i < dests.size();) {
        Setup& s = setup[i];
        if (s.turns < 1) {  // added with weight 0: no slot
          ++i;
          continue;
        }
        while (taken[s.perm]) {
          s.perm += s.skip;
          if (s.perm >= kSize) s.perm -= kSize;
        }
        taken[s.perm] = true;
        lookup_[s.perm] = int32_t(i);
        if (++n == kSize) return;
        if (++dt_count >= s.turns) {
          dt_count = 0;
          ++i;
        }
      }
    }
  }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    if (lookup_.empty()) return std::nullopt;
    const uint16_t port = (options().flags & kFlagPort) && flow.has_ports() ? flow.sport : 0;
    auto usable = [&](int32_t b) { return size_t(b) < dests.size() && dests[size_t(b)]->schedulable(); };
    const uint32_t ihash = hashkey(flow.saddr, port, kKey1, 0) % kSize;
    const int32_t first = lookup_[ihash];
    if (first < 0) return std::nullopt;
    if (usable(first)) return size_t(first);
    if (!(options().flags & kFlagFallback)) return std::nullopt;
    for (uint32_t offset = 0; offset < kSize; ++offset) {  // ip_vs_mh_get_fallback()
      const int32_t b = lookup_[hashkey(flow.saddr, port, kKey1, (offset + ihash) % kSize) % kSize];
      if (b < 0) break;
      if (usable(b)) return size_t(b);
    }
    return std::nullopt;
  }

 private:
  std::vector<int32_t> lookup_;  // slot → index into the reals, -1 none
};

}  // namespace

std::unique_ptr<Scheduler> make_mh() { return std::make_unique<Mh>(); }

}  // namespace lbd::sched

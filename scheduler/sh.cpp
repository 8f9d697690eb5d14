// Source hashing (IPVS ip_vs_sh.c): a 256-bucket table filled in list order, each real
// taking `weight` consecutive buckets (a quiesced one still one); a client's bucket is
// hash_32(port + address, 8) of its source (port 0 unless -b sh-port). An unusable real
// there (quiesced, overloaded, down) gives none, or with -b sh-fallback the next usable
// one along the kernel's walk of the table (offset + the same hash again: it is exact).
#include "scheduler/hash.hpp"
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

constexpr unsigned kBits = Buckets::kBits;
constexpr uint32_t kSize = Buckets::kSize, kMask = kSize - 1;

class Sh final : public Scheduler {
 public:
  std::string_view name() const override { return "sh"; }

  void reals_changed(Dests dests) override {  // ip_vs_sh_reassign()
    size_t p = 0;
    int32_t d_count = 0;
    for (uint32_t i = 0; i < kSize; ++i) {
      if (dests.empty()) {
        buckets_.at[i] = -1;
        continue;
      }
      buckets_.at[i] = int32_t(p);
      if (++d_count >= dests[p]->weight) {  // the next real once this one's weight is filled
        p = (p + 1) % dests.size();
        d_count = 0;
      }
    }
  }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    const uint16_t port = (options().flags & kFlagPort) && flow.has_ports() ? flow.sport : 0;
    auto key = [&](uint32_t offset) { return (offset + hash_32(uint32_t(port) + flow.saddr, kBits)) & kMask; };
    auto usable = [&](int32_t b) { return b >= 0 && size_t(b) < dests.size() && dests[size_t(b)]->schedulable(); };
    const uint32_t ihash = key(0);
    const int32_t first = buckets_.at[ihash];
    if (usable(first)) return size_t(first);
    if (first < 0 || !(options().flags & kFlagFallback)) return std::nullopt;
    for (uint32_t offset = 0; offset < kSize; ++offset) {  // ip_vs_sh_get_fallback()
      const int32_t b = buckets_.at[key((offset + ihash) % kSize)];
      if (b < 0) break;
      if (usable(b)) return size_t(b);
    }
    return std::nullopt;
  }

 private:
  Buckets buckets_;
};

}  // namespace

std::unique_ptr<Scheduler> make_sh() { return std::make_unique<Sh>(); }

}  // namespace lbd::sched

// Destination hashing (IPVS ip_vs_dh.c): a 256-bucket table filled with the reals in list
// order, one bucket each, round and round (weights do not count); a packet's bucket is
// hash_32(destination address, 8). An unusable real there gives none. (With
// one VIP per service every client has the same destination: dh is for transparent cache
// clusters, where the destination is the origin server.)
#include "scheduler/hash.hpp"
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

constexpr unsigned kBits = Buckets::kBits;
constexpr uint32_t kSize = Buckets::kSize;

class Dh final : public Scheduler {
 public:
  std::string_view name() const override { return "dh"; }

  void reals_changed(Dests dests) override {  // ip_vs_dh_reassign()
    for (uint32_t i = 0; i < kSize; ++i) buckets_.at[i] = dests.empty() ? -1 : int32_t(i % dests.size());
  }

  std::optional<size_t> pick(const Flow& flow, Dests dests) override {
    const int32_t b = buckets_.at[hash_32(flow.daddr, kBits)];
    if (b < 0 || size_t(b) >= dests.size() || !dests[size_t(b)]->schedulable()) return std::nullopt;
    return size_t(b);
  }

 private:
  Buckets buckets_;
};

}  // namespace

std::unique_ptr<Scheduler> make_dh() { return std::make_unique<Dh>(); }

}  // namespace lbd::sched

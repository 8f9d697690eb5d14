// Weighted round robin (IPVS ip_vs_wrr.c), interleaved: with di = gcd of the positive
// weights and mw = max weight - (di - 1), a current weight cw walks down from mw in steps
// of di, and each pass over the list takes every schedulable real whose weight >= cw.
// Weights 4,3,2 give A A B A B C A B C. When reals change, di and mw are recomputed, the
// position returns to the list head, and cw is clamped as IPVS's ip_vs_wrr_dest_changed().
#include <numeric>

#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Wrr final : public Scheduler {
 public:
  std::string_view name() const override { return "wrr"; }

  void reals_changed(Dests dests) override {
    int g = 0, mx = 0;
    for (const auto* d : dests) {
      if (d->weight > 0) {
        g = g ? std::gcd(g, d->weight) : d->weight;
        mx = std::max(mx, d->weight);
      }
    }
    di_ = g ? g : 1;
    mw_ = mx - (di_ - 1);
    last_ = kHead;
    if (cw_ > mw_ || cw_ == 0) {
      cw_ = mw_;
    } else if (di_ > 1) {
      cw_ = (cw_ / di_) * di_ + 1;
    }
  }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    const size_t n = dests.size();
    if (mw_ <= 0) return std::nullopt;
    // Every positive weight is a multiple of di, and cw's lowest value in a cycle is <= di,
    // so if any real is schedulable the walk below reaches it within one cycle of cw.
    bool any = false;
    for (const auto* d : dests) any = any || d->schedulable();
    if (!any) return std::nullopt;
    if (last_ != kHead && last_ >= n) last_ = kHead;
    size_t pos = last_;
    for (;;) {
      pos = (pos == kHead) ? 0 : pos + 1;
      if (pos == n) {  // past the list end: the head position, where cw steps down
        pos = kHead;
        cw_ -= di_;
        if (cw_ <= 0) cw_ = mw_;
      } else if (dests[pos]->schedulable() && dests[pos]->weight >= cw_) {
        last_ = pos;
        return pos;
      }
    }
  }

 private:
  static constexpr size_t kHead = size_t(-1);
  size_t last_ = kHead;
  int cw_ = 0;
  int mw_ = 0;
  int di_ = 1;
};

}  // namespace

std::unique_ptr<Scheduler> make_wrr() { return std::make_unique<Wrr>(); }

}  // namespace lbd::sched

// Round robin (IPVS ip_vs_rr.c): walk the list circularly starting after the last real
// chosen and take the first schedulable one. Like IPVS, the cursor is the last real itself,
// not a position: adding a real (at the list head) or editing one leaves it in place, and
// deleting the cursor's real moves it to the real before it (or the head).
#include "scheduler/scheduler.hpp"

namespace lbd::sched {
namespace {

class Rr final : public Scheduler {
 public:
  std::string_view name() const override { return "rr"; }

  std::optional<size_t> pick(const Flow&, Dests dests) override {
    const size_t n = dests.size();
    size_t start = 0;  // from the head
    if (last_) {
      // The hint is right unless the list changed since; then find the real again.
      if (hint_ >= n || dests[hint_] != last_) {
        hint_ = n;
        for (size_t i = 0; i < n; ++i) {
          if (dests[i] == last_) {
            hint_ = i;
            break;
          }
        }
      }
      start = hint_ < n ? hint_ + 1 : 0;
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = (start + i) % n;
      if (dests[idx]->schedulable()) {
        last_ = dests[idx];
        hint_ = idx;
        return idx;
      }
    }
    return std::nullopt;
  }

  void real_added(Dests, size_t) override {}
  void real_edited(Dests, size_t) override {}
  void real_removed(Dests dests, const DestView* removed, size_t old_index) override {
    if (last_ == removed) last_ = old_index == 0 ? nullptr : dests[old_index - 1];
  }

 private:
  const DestView* last_ = nullptr;  // nullptr = the list head
  size_t hint_ = 0;                 // last_'s index when the list last looked like this
};

}  // namespace

std::unique_ptr<Scheduler> make_rr() { return std::make_unique<Rr>(); }

}  // namespace lbd::sched

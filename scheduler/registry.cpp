// The list of schedulers `-s NAME` can name. Adding an algorithm: one file + one line here.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

namespace {
struct Entry {
  std::string_view name;
  std::unique_ptr<Scheduler> (*make)();
};
constexpr Entry kSchedulers[] = {
    {"rr", make_rr},
    {"wrr", make_wrr},
    {"lc", make_lc},
    {"wlc", make_wlc},
};
}  // namespace

std::unique_ptr<Scheduler> make_scheduler(std::string_view name) {
  for (const auto& e : kSchedulers)
    if (e.name == name) return e.make();
  return nullptr;
}

std::vector<std::string> scheduler_names() {
  std::vector<std::string> v;
  for (const auto& e : kSchedulers) v.emplace_back(e.name);
  return v;
}

}  // namespace lbd::sched

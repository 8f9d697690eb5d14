// The list of schedulers `-s NAME` can name. Adding an algorithm: its file (which defines
// its make_ function), its declaration and its entry here.
#include "scheduler/scheduler.hpp"

namespace lbd::sched {

// Each defined in its own file.
std::unique_ptr<Scheduler> make_rr();
std::unique_ptr<Scheduler> make_wrr();
std::unique_ptr<Scheduler> make_lc();
std::unique_ptr<Scheduler> make_wlc();
std::unique_ptr<Scheduler> make_lblc();
std::unique_ptr<Scheduler> make_lblcr();
std::unique_ptr<Scheduler> make_dh();
std::unique_ptr<Scheduler> make_sh();
std::unique_ptr<Scheduler> make_sed();
std::unique_ptr<Scheduler> make_nq();
std::unique_ptr<Scheduler> make_fo();
std::unique_ptr<Scheduler> make_ovf();
std::unique_ptr<Scheduler> make_mh();
std::unique_ptr<Scheduler> make_twos();

namespace {
struct Entry {
  std::string_view name;
  std::unique_ptr<Scheduler> (*make)();
};
// In ipvsadm's order (its SCHEDULERS list, which `-h` prints), then twos.
constexpr Entry kSchedulers[] = {
    {"rr", make_rr},
    {"wrr", make_wrr},
    {"lc", make_lc},
    {"wlc", make_wlc},
    {"lblc", make_lblc},
    {"lblcr", make_lblcr},
    {"dh", make_dh},
    {"sh", make_sh},
    {"sed", make_sed},
    {"nq", make_nq},
    {"fo", make_fo},
    {"ovf", make_ovf},
    {"mh", make_mh},
    {"twos", make_twos},
};
}  // namespace

namespace {
class Stateless final : public Scheduler {
 public:
  Stateless(std::string_view name, PickFn pick) : name_(name), pick_(pick) {}
  std::string_view name() const override { return name_; }
  std::optional<size_t> pick(const Flow&, Dests dests) override { return pick_(dests); }

 private:
  std::string_view name_;
  PickFn pick_;
};
}  // namespace

std::unique_ptr<Scheduler> make_stateless(std::string_view name, PickFn pick) {
  return std::make_unique<Stateless>(name, pick);
}

std::unique_ptr<Scheduler> make_scheduler(std::string_view name, const SchedulerOptions& options) {
  for (const auto& e : kSchedulers)
    if (e.name == name) {
      auto s = e.make();
      s->set_options(options);
      return s;
    }
  return nullptr;
}

std::vector<std::string> scheduler_names() {
  std::vector<std::string> v;
  for (const auto& e : kSchedulers) v.emplace_back(e.name);
  return v;
}

}  // namespace lbd::sched

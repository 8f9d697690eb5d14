// The health-check engine; see engine.hpp.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/engine.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <pthread.h>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"
#include "lb/base/log.hpp"

namespace lbd::health {
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

// Monotonic: a step of the wall clock (NTP, an operator's date -s) changes no "since".
int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

constexpr auto kUseAwaitable = asio::use_awaitable;

}  // namespace

int64_t health_now_ms() { return mono_ms(); }

std::string real_name(const Target& t) { return addr_port(t.addr, t.port); }

struct Engine::Impl {
  static constexpr int kBeatMs = 250;
  static constexpr uint32_t kNotifyId = 0xffffffff;  // on_thread: a notify command
  // One check of a real, shared by every service naming the same real, port and check
  // (members: each service's target; the first's is probed). An exec check is not shared:
  // its command learns the service (LBD_VIP, LBD_VPORT).
  struct Check {
    Check(asio::io_context& io, std::vector<Target> m) : members(std::move(m)), timer(io) {}
    std::vector<Target> members;
    asio::steady_timer timer;
    State state;
    bool stopped = false;
    Clock::time_point due;
    const Target& lead() const { return members.front(); }
  };
  static std::string share_key(const Target& t) {
    ServiceHealth h;
    h.check = t.check;
    std::string key = fmt::format("{}:{} {}", t.addr, t.check_port(), format_service_health(h));
    if (t.check.kind && std::string_view(t.check.kind->name) == "exec") key += fmt::format(" #{}", t.real_id);
    return key;
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::map<std::string, std::shared_ptr<Check>> checks;  // by share_key; loop thread only
  std::mt19937 rng{std::random_device{}()};
  int event_fd = -1;

  mutable std::mutex mu;  // guards what the daemon's thread reads
  std::vector<Event> events;
  std::map<uint32_t, RealStatus> status;
  std::vector<uint32_t> lateness_us = std::vector<uint32_t>(4096, 0);
  size_t lateness_n = 0;
  uint64_t checks_run = 0, failures = 0;

  std::thread thread;
  std::atomic<bool> ended{false};  // the loop returned (the thread is about to end)
  // The watchdog's view (read by the daemon's thread): the loop's last heartbeat, and the
  // check whose code runs on the thread now (0: none), named in `names` (under mu).
  std::atomic<int64_t> beat_ms{mono_ms()};
  std::atomic<uint32_t> on_thread{0};
  std::atomic<int64_t> on_thread_since_ms{0};
  std::map<uint32_t, std::string> names;
  asio::steady_timer heart{io};

  // Marks `real_id`'s check as the code the thread runs from now on (every resumption of
  // a check's coroutine calls it): a stall is then this check's.
  void running(uint32_t real_id) {
    on_thread.store(real_id, std::memory_order_relaxed);
    on_thread_since_ms.store(mono_ms(), std::memory_order_relaxed);
  }

  void heartbeat() {
    beat_ms.store(mono_ms(), std::memory_order_relaxed);
    on_thread.store(0, std::memory_order_relaxed);  // back in the loop: no check runs
    heart.expires_after(std::chrono::milliseconds(kBeatMs));
    heart.async_wait([this](error_code ec) {
      if (!ec) heartbeat();
    });
  }

  void apply(std::vector<Target> targets) {
    std::map<std::string, std::vector<Target>> groups;
    for (auto& t : targets) groups[share_key(t)].push_back(std::move(t));
    // A real whose check changed keeps its up/down state: the old states by real.
    std::map<uint32_t, std::pair<const Target*, State>> old;
    for (const auto& [key, c] : checks)
      for (const Target& m : c->members) old[m.real_id] = {&m, c->state};
    std::map<std::string, std::shared_ptr<Check>> next;
    std::set<uint32_t> live;
    for (auto& [key, members] : groups) {
      for (const Target& m : members) live.insert(m.real_id);
      auto it = checks.find(key);
      if (it != checks.end() && it->second->members == members) {
        next[key] = it->second;
        checks.erase(it);
        continue;
      }
      auto c = std::make_shared<Check>(io, members);
      // A new real with start=down, or one a previous lbd had down: up after `rise` passes.
      c->state.up = !c->lead().check.start_down && !c->lead().down_now;
      if (it != checks.end()) {
        c->state = it->second->state;  // the same check, another set of services
      } else {
        auto o = old.find(c->lead().real_id);
        if (o != old.end() && o->second.first->addr == c->lead().addr && o->second.first->port == c->lead().port)
          c->state = o->second.second;  // the check changed, the real did not: keep up/down
      }
      // Spread first checks over one interval, so a thousand reals do not fire at once.
      c->due = Clock::now() + std::chrono::milliseconds(
                                  std::uniform_int_distribution<uint32_t>(0, c->lead().check.interval_ms)(rng));
      {
        std::lock_guard lock(mu);
        for (const Target& t : members) {
          names[t.real_id] = fmt::format("{} check of {} ({})", check_name(t.check.kind), real_name(t), t.service);
          RealStatus& st = status[t.real_id];
          const bool kept = st.real_id == t.real_id && st.state.up == c->state.up && old.count(t.real_id);
          if (!kept) {
            st = RealStatus{};
            st.real_id = t.real_id;
            st.since_ms = mono_ms();
          }
          st.state = c->state;
        }
      }
      next[key] = c;
      asio::co_spawn(io, run(c), asio::detached);
    }
    for (auto& [key, c] : checks) {  // gone, or replaced by a changed check
      c->stopped = true;
      c->timer.cancel();
    }
    {
      std::lock_guard lock(mu);
      std::erase_if(status, [&](const auto& kv) { return !live.count(kv.first); });
      std::erase_if(names, [&](const auto& kv) { return !live.count(kv.first); });
    }
    checks = std::move(next);
  }

  asio::awaitable<void> run(std::shared_ptr<Check> c) {
    const auto interval = std::chrono::milliseconds(c->lead().check.interval_ms);
    while (!c->stopped) {
      c->timer.expires_at(c->due);
      error_code ec;
      co_await c->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
      if (c->stopped) break;
      running(c->lead().real_id);
      const auto start = Clock::now();
      const auto late = std::chrono::duration_cast<std::chrono::microseconds>(start - c->due).count();
      CheckResult result;
      try {
        result = co_await probe(c->lead());
      } catch (const std::exception& e) {  // a check must never end the real's schedule
        result = CheckResult::fail(fmt::format("check failed: {}", e.what()));
      }
      running(c->lead().real_id);
      if (c->stopped) break;
      const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
      record(*c, result, uint32_t(std::max<int64_t>(late, 0)), uint32_t(took));
      // The next slot on the grid; slots already missed (a long check) are skipped.
      c->due += interval;
      const auto now = Clock::now();
      if (c->due <= now) c->due += ((now - c->due) / interval + 1) * interval;
    }
  }

  void record(Check& c, const CheckResult& outcome, uint32_t late_us, uint32_t took_us) {
    const bool ok = outcome.passed();
    // The one place a check's result enters logs, --lbd-health and notify arguments: what
    // a server sent (a MySQL error text, say) may hold newlines and terminal escapes.
    const std::string result = printable(outcome.why());
    const Change change = lbd::health::record(c.state, ok, c.lead().check.rise, c.lead().check.fall);
    std::lock_guard lock(mu);
    ++checks_run;
    if (!ok) ++failures;
    lateness_us[lateness_n++ % lateness_us.size()] = late_us;
    const int64_t now = mono_ms();
    for (const Target& t : c.members) {  // one result, each service's real
      RealStatus& st = status[t.real_id];
      st.real_id = t.real_id;
      st.state = c.state;
      st.checked = true;
      st.last = ok ? "ok" : result;
      st.last_duration_us = took_us;
      st.last_check_ms = now;
      if (change == Change::kNone) continue;
      st.since_ms = now;
      events.push_back({t, change == Change::kWentUp, st.last});
      if (!t.notify.empty())
        enqueue_notify(real_name(t), {t.notify, t.check.exec_user,
                                      {change == Change::kWentUp ? "up" : "down", t.service, real_name(t), st.last}});
    }
    if (change == Change::kNone) return;
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(event_fd, &one, sizeof one);
  }

  asio::awaitable<CheckResult> probe(const Target& t) {
    if (!t.check.kind) co_return CheckResult::pass();
    ProbeContext ctx{t, [this, id = t.real_id] { running(id); }};
    co_return co_await t.check.kind->start(ctx).body;
  }

  // Notify commands, in order per key (a real, or a service's sorry server): a transition
  // waits for the previous one's command to end, so "down" never overtakes "up".
  struct Notify {
    std::string cmd, user;
    std::vector<std::string> args;
  };
  std::map<std::string, std::deque<Notify>> notify_queues;

  void enqueue_notify(const std::string& key, Notify n) {
    auto& q = notify_queues[key];
    q.push_back(std::move(n));
    if (q.size() == 1) asio::co_spawn(io, run_notifies(key), asio::detached);
  }

  asio::awaitable<void> run_notifies(std::string key) {
    for (;;) {
      auto it = notify_queues.find(key);
      if (it == notify_queues.end() || it->second.empty()) break;
      const Notify n = it->second.front();
      co_await notify(n);
      it = notify_queues.find(key);
      it->second.pop_front();
      if (it->second.empty()) {
        notify_queues.erase(it);
        break;
      }
    }
  }

  asio::awaitable<void> notify(const Notify& n) {
    std::vector<std::string> argv{n.cmd};
    argv.insert(argv.end(), n.args.begin(), n.args.end());
    std::string what;
    for (const auto& a : argv) what += (what.empty() ? "" : " ") + a;
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    running(kNotifyId);
    const auto pid = spawn(argv, {}, n.user);
    if (!pid) {
      LBD_LOG(kWarn, "health", "notify {}: {}", what, pid.message());
      co_return;
    }
    p->pid = *pid;
    arm_deadline(p, std::chrono::seconds(30));
    const int status = co_await wait_exit(p->pid);
    running(kNotifyId);
    p->deadline.cancel();
    p->pid = -1;
    if (p->timed_out)
      LBD_LOG(kWarn, "health", "notify {}: killed after 30 s", what);
    else if (const auto failure = exit_failure(status))
      LBD_LOG(kWarn, "health", "notify {}: {}", what, *failure);
  }
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->event_fd = event_fd_;
  asio::post(impl_->io, [this] { impl_->heartbeat(); });
  impl_->thread = std::thread([this] {
    impl_->io.run();
    impl_->ended = true;
  });
  pthread_setname_np(impl_->thread.native_handle(), "lbd-health");
}

Engine::~Engine() {
  asio::post(impl_->io, [this] {
    for (auto& [id, c] : impl_->checks) {
      c->stopped = true;
      c->timer.cancel();
    }
    impl_->heart.cancel();
    impl_->work.reset();
    impl_->io.stop();
  });
  // A thread stuck in a check (a lookup that never returns) must not keep lbd from
  // stopping and restoring the box: after 2 s it is left behind, to end with the process.
  for (int i = 0; i < 200 && !impl_->ended; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!impl_->ended) {
    const auto s = stalled();
    LBD_LOG(kError, "health", "the checks' thread does not stop ({}): lbd stops without it",
            s && !s->check.empty() ? "stuck in the " + s->check : "stuck");
    impl_->thread.detach();
    [[maybe_unused]] Impl* left = impl_.release();  // still in use by that thread
    return;
  }
  impl_->thread.join();
  close(event_fd_);
}

std::optional<Stall> Engine::stalled() const {
  const int64_t beat = impl_->beat_ms.load(std::memory_order_relaxed);
  const int64_t late = mono_ms() - beat - Impl::kBeatMs;
  if (late < kStallMs) return std::nullopt;
  Stall s;
  s.ms = uint64_t(late);
  const uint32_t id = impl_->on_thread.load(std::memory_order_relaxed);
  if (id == Impl::kNotifyId) {
    s.check = "a notify command";
  } else if (id) {
    std::lock_guard lock(impl_->mu);
    const auto it = impl_->names.find(id);
    s.check = it == impl_->names.end() ? fmt::format("check of real #{}", id) : it->second;
  }
  if (id) s.ms = uint64_t(std::max<int64_t>(late, mono_ms() - impl_->on_thread_since_ms.load()));
  return s;
}

void Engine::configure(std::vector<Target> targets) {
  asio::post(impl_->io, [this, t = std::move(targets)]() mutable { impl_->apply(std::move(t)); });
}

std::vector<Event> Engine::take_events() {
  uint64_t n;
  [[maybe_unused]] auto r = read(event_fd_, &n, sizeof n);
  std::lock_guard lock(impl_->mu);
  return std::exchange(impl_->events, {});
}

std::vector<RealStatus> Engine::statuses() const {
  std::lock_guard lock(impl_->mu);
  std::vector<RealStatus> v;
  for (const auto& [id, s] : impl_->status) v.push_back(s);
  return v;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mu);
  EngineStats s;
  s.checks = impl_->checks_run;
  s.failures = impl_->failures;
  const size_t n = std::min(impl_->lateness_n, impl_->lateness_us.size());
  if (n) {
    std::vector<uint32_t> v(impl_->lateness_us.begin(), impl_->lateness_us.begin() + long(n));
    std::sort(v.begin(), v.end());
    s.late_p50_us = v[n / 2];
    s.late_p99_us = v[std::min(n - 1, n * 99 / 100)];
    s.late_max_us = v.back();
  }
  return s;
}

void Engine::run_command(std::string key, std::string cmd, std::string user, std::vector<std::string> args) {
  asio::post(impl_->io, [this, key = std::move(key), n = Impl::Notify{std::move(cmd), std::move(user),
                                                                      std::move(args)}]() mutable {
    impl_->enqueue_notify(key, std::move(n));
  });
}

}  // namespace lbd::health

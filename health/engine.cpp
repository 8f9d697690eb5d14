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

std::string real_name(const Target& t) { return fmt::format("{}:{}", t.addr, t.port); }

struct Engine::Impl {
  static constexpr int kBeatMs = 250;
  static constexpr uint32_t kNotifyId = 0xffffffff;  // on_thread: a notify command
  struct Check {
    Check(asio::io_context& io, Target t) : target(std::move(t)), timer(io) {}
    Target target;
    asio::steady_timer timer;
    State state;
    bool stopped = false;
    Clock::time_point due;
  };

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::map<uint32_t, std::shared_ptr<Check>> checks;  // loop thread only
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
    std::map<uint32_t, std::shared_ptr<Check>> next;
    for (auto& t : targets) {
      auto it = checks.find(t.real_id);
      if (it != checks.end() && it->second->target == t) {
        next[t.real_id] = it->second;
        checks.erase(it);
        continue;
      }
      auto c = std::make_shared<Check>(io, t);
      if (it != checks.end() && it->second->target.addr == t.addr && it->second->target.port == t.port)
        c->state = it->second->state;  // the check changed, the real did not: keep up/down
      // Spread first checks over one interval, so a thousand reals do not fire at once.
      c->due = Clock::now() + std::chrono::milliseconds(
                                  std::uniform_int_distribution<uint32_t>(0, t.check.interval_ms)(rng));
      next[t.real_id] = c;
      {
        std::lock_guard lock(mu);
        names[t.real_id] = fmt::format("{} check of {} ({})", check_name(t.check.kind), real_name(t), t.service);
        RealStatus& st = status[t.real_id];
        st = RealStatus{};
        st.real_id = t.real_id;
        st.state = c->state;
        st.since_ms = mono_ms();
      }
      asio::co_spawn(io, run(c), asio::detached);
    }
    for (auto& [id, c] : checks) {  // gone, or replaced by a changed check
      c->stopped = true;
      c->timer.cancel();
      std::lock_guard lock(mu);
      if (!next.count(id)) {
        status.erase(id);
        names.erase(id);
      }
    }
    checks = std::move(next);
  }

  asio::awaitable<void> run(std::shared_ptr<Check> c) {
    const auto interval = std::chrono::milliseconds(c->target.check.interval_ms);
    while (!c->stopped) {
      c->timer.expires_at(c->due);
      error_code ec;
      co_await c->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
      if (c->stopped) break;
      running(c->target.real_id);
      const auto start = Clock::now();
      const auto late = std::chrono::duration_cast<std::chrono::microseconds>(start - c->due).count();
      CheckResult result;
      try {
        result = co_await probe(c->target);
      } catch (const std::exception& e) {  // a check must never end the real's schedule
        result = CheckResult::fail(fmt::format("check failed: {}", e.what()));
      }
      running(c->target.real_id);
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
    const Change change = lbd::health::record(c.state, ok, c.target.check.rise, c.target.check.fall);
    std::lock_guard lock(mu);
    ++checks_run;
    if (!ok) ++failures;
    lateness_us[lateness_n++ % lateness_us.size()] = late_us;
    RealStatus& st = status[c.target.real_id];
    st.real_id = c.target.real_id;
    st.state = c.state;
    st.checked = true;
    st.last = ok ? "ok" : result;
    st.last_duration_us = took_us;
    st.last_check_ms = mono_ms();
    if (change == Change::kNone) return;
    st.since_ms = st.last_check_ms;
    events.push_back({c.target, change == Change::kWentUp, st.last});
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(event_fd, &one, sizeof one);
    if (!c.target.notify.empty())
      enqueue_notify(real_name(c.target), {c.target.notify, c.target.check.exec_user,
                                           {change == Change::kWentUp ? "up" : "down", c.target.service,
                                            real_name(c.target), st.last}});
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

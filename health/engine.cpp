// The health-check engine; see engine.hpp.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/engine.hpp"

#include <fcntl.h>
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <cstring>
#include <fstream>
#include <deque>
#include <map>
#include <optional>
#include <pthread.h>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "forwarding/protocol.hpp"
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

// One probe's I/O objects, shared with its deadline's handler (which may run after the
// probe's coroutine has finished: it then only sees an aborted wait).
struct Probe {
  explicit Probe(asio::any_io_executor ex) : socket(ex), deadline(ex) {}
  tcp::socket socket;
  asio::steady_timer deadline;
  bool timed_out = false;
  pid_t pid = -1;
};

void arm_deadline(const std::shared_ptr<Probe>& p, std::chrono::milliseconds timeout) {
  p->deadline.expires_after(timeout);
  p->deadline.async_wait([p](error_code ec) {
    if (ec) return;
    p->timed_out = true;
    error_code ignored;
    p->socket.close(ignored);
    if (p->pid > 0) kill(-p->pid, SIGKILL);  // the exec check's whole process group
  });
}

CheckResult io_error(const char* step, const error_code& ec, const Probe& p, uint32_t timeout_ms) {
  if (p.timed_out) return CheckResult::fail(fmt::format("{}: timed out after {} ms", step, timeout_ms));
  return CheckResult::fail(fmt::format("{}: {}", step, ec.message()));
}

// Who a command runs as: looked up before the fork (getpwnam is not async-signal-safe).
struct RunAs {
  bool drop = false;  // lbd is root: switch to uid/gid below
  uid_t uid = 0;
  gid_t gid = 0;
};
bool lookup_user(const std::string& name, RunAs& as, std::string& error) {
  as = RunAs{};
  if (geteuid() != 0) return true;  // already unprivileged (tests): nothing to drop
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    error = fmt::format("exec-user {}: no such user", name);
    return false;
  }
  as = {found->pw_uid != 0, found->pw_uid, found->pw_gid};
  return true;
}

// Spawns `argv[0]` as `user` (exec-user=, default nobody): a clean environment (PATH and
// `env`, the LBD_* variables), stdin/stdout on /dev/null, stderr lbd's, no other
// descriptor (not the capture socket, not the control socket), its own process group,
// default signals, no capability left and no_new_privs (a setuid binary gains nothing).
// If the switch to the user fails, nothing runs: the child never execs as root.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& user, std::string& error) {
  RunAs as;
  if (!lookup_user(user, as, error)) return -1;
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  envp.push_back(const_cast<char*>(kPath));
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int report[2];  // the child's errno if it cannot exec; closed (EOF) by a successful exec
  if (pipe2(report, O_CLOEXEC) < 0) {
    error = fmt::format("{}: pipe: {}", argv[0], std::strerror(errno));
    return -1;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    error = fmt::format("{}: fork: {}", argv[0], std::strerror(errno));
    close(report[0]);
    close(report[1]);
    return -1;
  }
  if (pid == 0) {  // async-signal-safe calls only from here on
    int step = 0;
    auto fail = [&](int what) {
      const int v[2] = {what, errno};
      [[maybe_unused]] auto n = write(report[1], v, sizeof v);
      _exit(127);
    };
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int devnull = open("/dev/null", O_RDWR);
    if (devnull < 0) fail(step);
    dup2(devnull, 0);
    dup2(devnull, 1);
    step = 1;
    if (report[1] != 3) {  // keep only the report pipe (CLOEXEC) above 2, for a moment
      if (dup3(report[1], 3, O_CLOEXEC) < 0) fail(step);
      report[1] = 3;
    }
    if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0) fail(step);
    step = 2;
    if (as.drop && (setgroups(0, nullptr) < 0 || setresgid(as.gid, as.gid, as.gid) < 0 ||
                    setresuid(as.uid, as.uid, as.uid) < 0))
      fail(step);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(step);
    step = 3;
    execve(argv[0].c_str(), args.data(), envp.data());
    fail(step);
  }
  setpgid(pid, pid);  // as the child does: whichever runs first, the group exists for a kill
  close(report[1]);
  int v[2] = {0, 0};
  ssize_t n;
  while ((n = read(report[0], v, sizeof v)) < 0 && errno == EINTR) {}
  close(report[0]);
  if (n == ssize_t(sizeof v)) {
    waitpid(pid, nullptr, 0);
    static const char* const kStep[] = {"/dev/null", "descriptors", "switching to the exec-user", "exec"};
    error = v[0] == 2 ? fmt::format("{}: cannot run as {}: {}", argv[0], user, std::strerror(v[1]))
                      : v[0] == 3 ? fmt::format("{}: {}", argv[0], std::strerror(v[1]))
                                  : fmt::format("{}: {}: {}", argv[0], kStep[v[0]], std::strerror(v[1]));
    return -1;
  }
  return pid;
}

// Waits for `pid` without blocking the loop (a pidfd becomes readable when it exits).
asio::awaitable<int> wait_exit(pid_t pid) {
  const int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  if (pidfd >= 0) {
    asio::posix::stream_descriptor d(co_await asio::this_coro::executor, pidfd);
    error_code ec;
    co_await d.async_wait(asio::posix::stream_descriptor::wait_read,
                          asio::redirect_error(kUseAwaitable, ec));
  }
  waitpid(pid, &status, 0);
  co_return status;
}

// How a command ended that did not exit 0 ("exit status 2", "killed by signal 9"); nullopt
// when it did.
std::optional<std::string> exit_failure(int status) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) return std::nullopt;
    return fmt::format("exit status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "ended oddly";
}

// One MySQL packet: passed, or failed with the step's trouble (ec set: an I/O error).
asio::awaitable<CheckResult> read_mysql_packet(tcp::socket& s, std::vector<uint8_t>& payload, uint8_t& seq,
                                               error_code& ec) {
  std::array<uint8_t, 4> hdr{};
  co_await asio::async_read(s, asio::buffer(hdr), asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return CheckResult::fail("read");
  const size_t len = size_t(hdr[0]) | size_t(hdr[1]) << 8 | size_t(hdr[2]) << 16;
  if (len > (1u << 20)) co_return CheckResult::fail("oversized packet");
  seq = hdr[3];
  payload.resize(len);
  co_await asio::async_read(s, asio::buffer(payload), asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return CheckResult::fail("read");
  co_return CheckResult::pass();
}

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
        names[t.real_id] = fmt::format("{} check of {} ({})", check_name(t.check.type), real_name(t), t.service);
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
    switch (t.check.type) {
      case CheckType::kTcp:
      case CheckType::kHttp:
      case CheckType::kMysql: co_return co_await probe_socket(t);
      case CheckType::kExec: co_return co_await probe_exec(t);
      case CheckType::kNone: break;
    }
    co_return CheckResult::pass();
  }

  asio::awaitable<CheckResult> probe_socket(const Target& t) {
    const CheckSpec& cs = t.check;
    const uint16_t port = cs.port ? cs.port : t.port;
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
    CheckResult result = co_await converse(*p, t, port);
    p->deadline.cancel();
    error_code ignored;
    p->socket.close(ignored);
    co_return result;
  }

  asio::awaitable<CheckResult> converse(Probe& p, const Target& t, uint16_t port) {
    const CheckSpec& cs = t.check;
    error_code ec;
    const tcp::endpoint ep(asio::ip::address_v4(t.addr.host()), port);
    co_await p.socket.async_connect(ep, asio::redirect_error(kUseAwaitable, ec));
    running(t.real_id);
    if (ec) co_return io_error("connect", ec, p, cs.timeout_ms);
    if (cs.type == CheckType::kTcp) co_return CheckResult::pass();

    if (cs.type == CheckType::kHttp) {
      const std::string req = http_request(cs, t.addr, port);
      co_await asio::async_write(p.socket, asio::buffer(req), asio::redirect_error(kUseAwaitable, ec));
      running(t.real_id);
      if (ec) co_return io_error("send", ec, p, cs.timeout_ms);
      std::string resp;
      std::vector<char> buf(4096);
      while (resp.size() < 65536) {
        const size_t n = co_await p.socket.async_read_some(asio::buffer(buf),
                                                           asio::redirect_error(kUseAwaitable, ec));
        running(t.real_id);
        resp.append(buf.data(), n);
        if (ec == asio::error::eof) break;
        if (ec) co_return io_error("read", ec, p, cs.timeout_ms);
      }
      co_return judge_http(resp, cs);
    }

    // MySQL / MariaDB.
    std::vector<uint8_t> pkt;
    uint8_t seq = 0;
    CheckResult step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
    running(t.real_id);
    if (!step.passed()) co_return ec ? io_error("greeting", ec, p, cs.timeout_ms) : step;
    Greeting g;
    std::string error;
    if (!parse_greeting(pkt, g, error)) co_return CheckResult::fail("greeting: " + error);
    if (cs.user.empty()) co_return CheckResult::pass();  // the server answers with a sane greeting: up
    std::string password = cs.password;
    if (!cs.password_file.empty()) {
      // Read at each check: a rotated password is used from the next check on.
      std::ifstream f(cs.password_file);
      if (!f || !std::getline(f, password))
        co_return CheckResult::fail(
            fmt::format("password-file {}: {}", cs.password_file, f ? "empty" : std::strerror(errno)));
      if (!password.empty() && password.back() == '\r') password.pop_back();
    }
    auto send = [&](uint8_t s, const std::vector<uint8_t>& payload) -> asio::awaitable<bool> {
      const auto bytes = mysql_packet(s, payload);
      co_await asio::async_write(p.socket, asio::buffer(bytes), asio::redirect_error(kUseAwaitable, ec));
      running(t.real_id);
      co_return !ec;
    };
    if (!co_await send(uint8_t(seq + 1), handshake_response(cs.user, password, g)))
      co_return io_error("login", ec, p, cs.timeout_ms);
    step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
    running(t.real_id);
    if (!step.passed()) co_return ec ? io_error("login", ec, p, cs.timeout_ms) : step;
    std::optional<std::string> switch_scramble;
    if (const CheckResult r = judge_login_reply(pkt, switch_scramble); !r.passed()) co_return r.in_step("login: ");
    if (switch_scramble) {
      const std::string auth = native_password_scramble(password, *switch_scramble);
      if (!co_await send(uint8_t(seq + 1), std::vector<uint8_t>(auth.begin(), auth.end())))
        co_return io_error("login", ec, p, cs.timeout_ms);
      step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
      running(t.real_id);
      if (!step.passed()) co_return ec ? io_error("login", ec, p, cs.timeout_ms) : step;
      if (const CheckResult r = judge_login_reply(pkt, switch_scramble); !r.passed()) co_return r.in_step("login: ");
    }
    CheckResult verdict;
    if (cs.max_lag >= 0) {
      if (!co_await send(0, query_packet("SHOW SLAVE STATUS")))
        co_return io_error("query", ec, p, cs.timeout_ms);
      std::vector<std::vector<uint8_t>> packets;
      int eofs = 0;
      while (eofs < 2 && packets.size() < 10000) {
        step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
        running(t.real_id);
        if (!step.passed()) co_return ec ? io_error("query", ec, p, cs.timeout_ms) : step;
        packets.push_back(pkt);
        if (packets.size() == 1 && !pkt.empty() && (pkt[0] == 0xff || pkt[0] == 0x00)) break;
        if (is_eof_packet(pkt)) ++eofs;
      }
      ResultSet rs;
      if (!parse_result_set(packets, rs, error)) co_return CheckResult::fail("SHOW SLAVE STATUS: " + error);
      verdict = judge_replica(rs, cs.max_lag);
    }
    const std::vector<uint8_t> quit(1, 0x01);  // COM_QUIT: a clean goodbye, no "aborted connection"
    co_await send(0, quit);
    co_return verdict;
  }

  asio::awaitable<CheckResult> probe_exec(const Target& t) {
    const CheckSpec& cs = t.check;
    std::string error;
    const std::vector<std::string> env = {
        fmt::format("LBD_REAL_ADDR={}", t.addr),
        fmt::format("LBD_REAL_PORT={}", t.port),
        fmt::format("LBD_CHECK_PORT={}", cs.port ? cs.port : t.port),
        fmt::format("LBD_VIP={}", t.vip),
        fmt::format("LBD_VPORT={}", t.vport),
        fmt::format("LBD_PROTOCOL={}", protocol_info(t.protocol).token)};
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    p->pid = spawn({cs.cmd}, env, cs.exec_user, error);
    if (p->pid < 0) co_return CheckResult::fail("exec " + error);
    arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
    const int status = co_await wait_exit(p->pid);
    running(t.real_id);
    p->deadline.cancel();
    p->pid = -1;
    if (p->timed_out) co_return CheckResult::fail(fmt::format("{}: killed after the {} ms timeout", cs.cmd, cs.timeout_ms));
    if (const auto failure = exit_failure(status)) co_return CheckResult::fail(fmt::format("{}: {}", cs.cmd, *failure));
    co_return CheckResult::pass();
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
    std::string error;
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    running(kNotifyId);
    p->pid = spawn(argv, {}, n.user, error);
    if (p->pid < 0) {
      LBD_LOG(kWarn, "health", "notify {}: {}", what, error);
      co_return;
    }
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

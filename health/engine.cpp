// The health-check engine; see engine.hpp.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/engine.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <cstring>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "health/protocols.hpp"

extern char** environ;

namespace lbd::health {
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

std::string io_error(const char* step, const error_code& ec, const Probe& p, uint32_t timeout_ms) {
  if (p.timed_out) return fmt::format("{}: timed out after {} ms", step, timeout_ms);
  return fmt::format("{}: {}", step, ec.message());
}

// Spawns `argv[0]` with `env` added to ours, in its own process group, with default
// signal dispositions and nothing blocked (lbd blocks the ones it reads from a signalfd).
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            std::string& error) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    error = fmt::format("{}: {}", argv[0], std::strerror(rc));
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

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 0 ? "" : fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "ended oddly";
}

asio::awaitable<std::string> read_mysql_packet(tcp::socket& s, std::vector<uint8_t>& payload,
                                               uint8_t& seq, error_code& ec) {
  std::array<uint8_t, 4> hdr{};
  co_await asio::async_read(s, asio::buffer(hdr), asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return "read";
  const size_t len = size_t(hdr[0]) | size_t(hdr[1]) << 8 | size_t(hdr[2]) << 16;
  if (len > (1u << 20)) co_return "oversized packet";
  seq = hdr[3];
  payload.resize(len);
  co_await asio::async_read(s, asio::buffer(payload), asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return "read";
  co_return "";
}

}  // namespace

std::string real_name(const Target& t) { return fmt::format("{}:{}", to_string(t.addr), t.port); }

struct Engine::Impl {
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
        RealStatus& st = status[t.real_id];
        st = RealStatus{};
        st.real_id = t.real_id;
        st.state = c->state;
        st.since_ms = wall_ms();
      }
      asio::co_spawn(io, run(c), asio::detached);
    }
    for (auto& [id, c] : checks) {  // gone, or replaced by a changed check
      c->stopped = true;
      c->timer.cancel();
      std::lock_guard lock(mu);
      if (!next.count(id)) status.erase(id);
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
      const auto start = Clock::now();
      const auto late = std::chrono::duration_cast<std::chrono::microseconds>(start - c->due).count();
      std::string result;
      try {
        result = co_await probe(c->target);
      } catch (const std::exception& e) {  // a check must never end the real's schedule
        result = fmt::format("check failed: {}", e.what());
      }
      if (c->stopped) break;
      const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
      record(*c, result, uint32_t(std::max<int64_t>(late, 0)), uint32_t(took));
      // The next slot on the grid; slots already missed (a long check) are skipped.
      c->due += interval;
      const auto now = Clock::now();
      if (c->due <= now) c->due += ((now - c->due) / interval + 1) * interval;
    }
  }

  void record(Check& c, const std::string& raw_result, uint32_t late_us, uint32_t took_us) {
    const bool ok = raw_result.empty();
    // The one place a check's result enters logs, --lbd-health and notify arguments: what
    // a server sent (a MySQL error text, say) may hold newlines and terminal escapes.
    const std::string result = printable(raw_result);
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
    st.last_check_ms = wall_ms();
    if (change == Change::kNone) return;
    st.since_ms = st.last_check_ms;
    events.push_back({c.target, change == Change::kWentUp, st.last});
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(event_fd, &one, sizeof one);
    if (!c.target.notify.empty())
      asio::co_spawn(io, notify(c.target.notify, {change == Change::kWentUp ? "up" : "down",
                                                  c.target.service, real_name(c.target), st.last}),
                     asio::detached);
  }

  asio::awaitable<std::string> probe(const Target& t) {
    switch (t.check.type) {
      case CheckType::kTcp:
      case CheckType::kHttp:
      case CheckType::kMysql: co_return co_await probe_socket(t);
      case CheckType::kExec: co_return co_await probe_exec(t);
      case CheckType::kNone: break;
    }
    co_return "";
  }

  asio::awaitable<std::string> probe_socket(const Target& t) {
    const CheckSpec& cs = t.check;
    const uint16_t port = cs.port ? cs.port : t.port;
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
    std::string result = co_await converse(*p, t, port);
    p->deadline.cancel();
    error_code ignored;
    p->socket.close(ignored);
    co_return result;
  }

  asio::awaitable<std::string> converse(Probe& p, const Target& t, uint16_t port) {
    const CheckSpec& cs = t.check;
    error_code ec;
    const tcp::endpoint ep(asio::ip::address_v4(t.addr.host()), port);
    co_await p.socket.async_connect(ep, asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return io_error("connect", ec, p, cs.timeout_ms);
    if (cs.type == CheckType::kTcp) co_return "";

    if (cs.type == CheckType::kHttp) {
      const std::string req = http_request(cs, t.addr, port);
      co_await asio::async_write(p.socket, asio::buffer(req), asio::redirect_error(kUseAwaitable, ec));
      if (ec) co_return io_error("send", ec, p, cs.timeout_ms);
      std::string resp;
      std::vector<char> buf(4096);
      while (resp.size() < 65536) {
        const size_t n = co_await p.socket.async_read_some(asio::buffer(buf),
                                                           asio::redirect_error(kUseAwaitable, ec));
        resp.append(buf.data(), n);
        if (ec == asio::error::eof) break;
        if (ec) co_return io_error("read", ec, p, cs.timeout_ms);
      }
      co_return judge_http(resp, cs);
    }

    // MySQL / MariaDB.
    std::vector<uint8_t> pkt;
    uint8_t seq = 0;
    std::string step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
    if (!step.empty()) co_return ec ? io_error("greeting", ec, p, cs.timeout_ms) : step;
    Greeting g;
    std::string error;
    if (!parse_greeting(pkt, g, error)) co_return "greeting: " + error;
    if (cs.user.empty()) co_return "";  // the server answers with a sane greeting: up
    std::string password = cs.password;
    if (!cs.password_file.empty()) {
      // Read at each check: a rotated password is used from the next check on.
      std::ifstream f(cs.password_file);
      if (!f || !std::getline(f, password))
        co_return fmt::format("password-file {}: {}", cs.password_file, f ? "empty" : std::strerror(errno));
      if (!password.empty() && password.back() == '\r') password.pop_back();
    }
    auto send = [&](uint8_t s, const std::vector<uint8_t>& payload) -> asio::awaitable<bool> {
      const auto bytes = mysql_packet(s, payload);
      co_await asio::async_write(p.socket, asio::buffer(bytes), asio::redirect_error(kUseAwaitable, ec));
      co_return !ec;
    };
    if (!co_await send(uint8_t(seq + 1), handshake_response(cs.user, password, g)))
      co_return io_error("login", ec, p, cs.timeout_ms);
    step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
    if (!step.empty()) co_return ec ? io_error("login", ec, p, cs.timeout_ms) : step;
    std::optional<std::string> switch_scramble;
    if (error = judge_login_reply(pkt, switch_scramble); !error.empty()) co_return "login: " + error;
    if (switch_scramble) {
      const std::string auth = native_password_scramble(password, *switch_scramble);
      if (!co_await send(uint8_t(seq + 1), std::vector<uint8_t>(auth.begin(), auth.end())))
        co_return io_error("login", ec, p, cs.timeout_ms);
      step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
      if (!step.empty()) co_return ec ? io_error("login", ec, p, cs.timeout_ms) : step;
      if (error = judge_login_reply(pkt, switch_scramble); !error.empty()) co_return "login: " + error;
    }
    std::string verdict;
    if (cs.max_lag >= 0) {
      if (!co_await send(0, query_packet("SHOW SLAVE STATUS")))
        co_return io_error("query", ec, p, cs.timeout_ms);
      std::vector<std::vector<uint8_t>> packets;
      int eofs = 0;
      while (eofs < 2 && packets.size() < 10000) {
        step = co_await read_mysql_packet(p.socket, pkt, seq, ec);
        if (!step.empty()) co_return ec ? io_error("query", ec, p, cs.timeout_ms) : step;
        packets.push_back(pkt);
        if (packets.size() == 1 && !pkt.empty() && (pkt[0] == 0xff || pkt[0] == 0x00)) break;
        if (is_eof_packet(pkt)) ++eofs;
      }
      ResultSet rs;
      if (!parse_result_set(packets, rs, error)) co_return "SHOW SLAVE STATUS: " + error;
      verdict = judge_replica(rs, cs.max_lag);
    }
    const std::vector<uint8_t> quit(1, 0x01);  // COM_QUIT: a clean goodbye, no "aborted connection"
    co_await send(0, quit);
    co_return verdict;
  }

  asio::awaitable<std::string> probe_exec(const Target& t) {
    const CheckSpec& cs = t.check;
    std::string error;
    const std::vector<std::string> env = {
        fmt::format("LBD_REAL_ADDR={}", to_string(t.addr)),
        fmt::format("LBD_REAL_PORT={}", t.port),
        fmt::format("LBD_CHECK_PORT={}", cs.port ? cs.port : t.port),
        fmt::format("LBD_VIP={}", to_string(t.vip)),
        fmt::format("LBD_VPORT={}", t.vport),
        fmt::format("LBD_PROTOCOL={}", t.protocol == kProtoUdp ? "udp" : "tcp")};
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    p->pid = spawn({cs.cmd}, env, error);
    if (p->pid < 0) co_return "exec " + error;
    arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
    const int status = co_await wait_exit(p->pid);
    p->deadline.cancel();
    p->pid = -1;
    if (p->timed_out) co_return fmt::format("{}: killed after the {} ms timeout", cs.cmd, cs.timeout_ms);
    const std::string d = describe_exit(status);
    co_return d.empty() ? "" : fmt::format("{}: {}", cs.cmd, d);
  }

  asio::awaitable<void> notify(std::string cmd, std::vector<std::string> args) {
    std::vector<std::string> argv{cmd};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string error;
    auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
    p->pid = spawn(argv, {}, error);
    if (p->pid < 0) co_return;
    arm_deadline(p, std::chrono::seconds(30));
    co_await wait_exit(p->pid);
    p->deadline.cancel();
    p->pid = -1;
  }
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->event_fd = event_fd_;
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Engine::~Engine() {
  asio::post(impl_->io, [this] {
    for (auto& [id, c] : impl_->checks) {
      c->stopped = true;
      c->timer.cancel();
    }
    impl_->work.reset();
    impl_->io.stop();
  });
  impl_->thread.join();
  close(event_fd_);
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

void Engine::run_command(std::string cmd, std::vector<std::string> args) {
  asio::post(impl_->io, [this, cmd = std::move(cmd), args = std::move(args)]() mutable {
    asio::co_spawn(impl_->io, impl_->notify(std::move(cmd), std::move(args)), asio::detached);
  });
}

}  // namespace lbd::health

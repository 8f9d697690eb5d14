// The parts checks are made of; see probe.hpp.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/probe.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace lbd::health {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr auto kUseAwaitable = asio::use_awaitable;

// Who a command runs as: looked up before the fork (getpwnam is not async-signal-safe).
struct RunAs {
  bool drop = false;  // lbd is root: switch to uid/gid below
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<RunAs> lookup_user(const std::string& name) {
  if (geteuid() != 0) return RunAs{};  // already unprivileged (tests): nothing to drop
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return Status::invalid(fmt::format("exec-user {}: no such user", name));
  return RunAs{found->pw_uid != 0, found->pw_uid, found->pw_gid};
}

}  // namespace

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

asio::ip::address asio_address(const IpAddr& a) {
  if (a.v6()) return asio::ip::address_v6(a.b);
  return asio::ip::address_v4(a.v4().host());
}

asio::awaitable<CheckResult> over_tcp(ProbeContext& ctx, Talk talk) {
  const CheckSpec& cs = ctx.spec();
  auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
  arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
  error_code ec;
  const asio::ip::tcp::endpoint ep(asio_address(ctx.target.addr), ctx.target.check_port());
  co_await p->socket.async_connect(ep, asio::redirect_error(kUseAwaitable, ec));
  ctx.resumed();
  CheckResult result = io_error("connect", ec, *p, cs.timeout_ms);
  if (!ec) result = co_await talk(ctx, *p);  // (GCC 12 mishandles a co_await inside ?:)
  p->deadline.cancel();
  error_code ignored;
  p->socket.close(ignored);
  co_return result;
}

asio::awaitable<UdpExchange> over_udp(ProbeContext& ctx, std::string_view payload) {
  struct UdpProbe {
    explicit UdpProbe(asio::any_io_executor ex) : socket(ex), deadline(ex) {}
    asio::ip::udp::socket socket;
    asio::steady_timer deadline;
    bool timed_out = false;
  };
  const CheckSpec& cs = ctx.spec();
  auto p = std::make_shared<UdpProbe>(co_await asio::this_coro::executor);
  UdpExchange out;
  const asio::ip::udp::endpoint ep(asio_address(ctx.target.addr), ctx.target.check_port());
  p->socket.open(ep.protocol(), out.ec);
  if (!out.ec) p->socket.connect(ep, out.ec);
  if (out.ec) co_return out;
  p->deadline.expires_after(std::chrono::milliseconds(cs.timeout_ms));
  p->deadline.async_wait([p](error_code ec) {
    if (ec) return;
    p->timed_out = true;
    error_code ignored;
    p->socket.close(ignored);
  });
  co_await p->socket.async_send(asio::buffer(payload.data(), payload.size()), asio::redirect_error(kUseAwaitable, out.ec));
  ctx.resumed();
  if (!out.ec) {
    std::vector<char> buf(4096);
    const size_t n = co_await p->socket.async_receive(asio::buffer(buf), asio::redirect_error(kUseAwaitable, out.ec));
    ctx.resumed();
    if (!out.ec) out.reply.assign(buf.data(), n);
  }
  out.timed_out = p->timed_out;
  p->deadline.cancel();
  error_code ignored;
  p->socket.close(ignored);
  co_return out;
}

Result<pid_t> spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& user) {
  const auto who = lookup_user(user);
  if (!who) return who.status();
  const RunAs as = *who;
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  envp.push_back(const_cast<char*>(kPath));
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int report[2];  // the child's errno if it cannot exec; closed (EOF) by a successful exec
  if (pipe2(report, O_CLOEXEC) < 0) return Status::error(errno, fmt::format("{}: pipe: {}", argv[0], std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(report[0]);
    close(report[1]);
    return Status::error(err, fmt::format("{}: fork: {}", argv[0], std::strerror(err)));
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
    return Status::error(v[1], v[0] == 2   ? fmt::format("{}: cannot run as {}: {}", argv[0], user, std::strerror(v[1]))
                               : v[0] == 3 ? fmt::format("{}: {}", argv[0], std::strerror(v[1]))
                                           : fmt::format("{}: {}: {}", argv[0], kStep[v[0]], std::strerror(v[1])));
  }
  return pid;
}

// A pidfd becomes readable when the process exits.
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

std::optional<std::string> exit_failure(int status) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) return std::nullopt;
    return fmt::format("exit status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "ended oddly";
}


}  // namespace lbd::health

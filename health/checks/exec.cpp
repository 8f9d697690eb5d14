// check=exec: runs cmd= as exec-user= with the LBD_* variables; up when it exits 0 within
// the timeout (else its whole process group is killed).
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <fmt/format.h>

#include "forwarding/protocol.hpp"
#include "health/check.hpp"
#include "health/probe.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;

asio::awaitable<CheckResult> run(ProbeContext& ctx) {
  const Target& t = ctx.target;
  const CheckSpec& cs = ctx.spec();
  const std::vector<std::string> env = {
      fmt::format("LBD_REAL_ADDR={}", t.addr),
      fmt::format("LBD_REAL_PORT={}", t.port),
      fmt::format("LBD_CHECK_PORT={}", t.check_port()),
      fmt::format("LBD_VIP={}", t.vip),
      fmt::format("LBD_VPORT={}", t.vport),
      fmt::format("LBD_PROTOCOL={}", protocol_info(t.protocol).token)};
  auto p = std::make_shared<Probe>(co_await asio::this_coro::executor);
  const auto pid = spawn({cs.cmd}, env, cs.exec_user);
  if (!pid) co_return CheckResult::fail("exec " + pid.message());
  p->pid = *pid;
  arm_deadline(p, std::chrono::milliseconds(cs.timeout_ms));
  const int status = co_await wait_exit(p->pid);
  ctx.resumed();
  p->deadline.cancel();
  p->pid = -1;
  if (p->timed_out) co_return CheckResult::fail(fmt::format("{}: killed after the {} ms timeout", cs.cmd, cs.timeout_ms));
  if (const auto failure = exit_failure(status)) co_return CheckResult::fail(fmt::format("{}: {}", cs.cmd, *failure));
  co_return CheckResult::pass();
}

CheckTask start(ProbeContext& ctx) { return {run(ctx)}; }

const char* invalid(const CheckSpec& c) { return c.cmd.empty() ? "check=exec needs cmd=" : nullptr; }

}  // namespace

namespace kinds {
extern const CheckKind exec{"exec", invalid, start};
}

}  // namespace lbd::health

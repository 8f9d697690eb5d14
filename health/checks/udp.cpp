// check=udp: send= (maybe empty) in one datagram to the real's check port. With expect=,
// up when a reply holding it comes within the timeout; without, up unless the real says
// ICMP port unreachable in that time (a UDP service need not answer).
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <fmt/format.h>

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;

asio::awaitable<CheckResult> run(ProbeContext& ctx) {
  const CheckSpec& cs = ctx.spec();
  const UdpExchange x = co_await over_udp(ctx, cs.send);
  if (x.ec == asio::error::connection_refused) co_return CheckResult::fail("ICMP port unreachable");
  if (x.timed_out)
    co_return cs.expect.empty() ? CheckResult::pass()
                                : CheckResult::fail(fmt::format("no reply in {} ms", cs.timeout_ms));
  if (x.ec) co_return CheckResult::fail(fmt::format("send: {}", x.ec.message()));
  if (!cs.expect.empty() && x.reply.find(cs.expect) == std::string::npos)
    co_return CheckResult::fail(fmt::format("reply lacks \"{}\": \"{}\"", printable(cs.expect, 64), printable(x.reply, 64)));
  co_return CheckResult::pass();
}

CheckTask start(ProbeContext& ctx) { return {run(ctx)}; }

}  // namespace

namespace kinds {
extern const CheckKind udp{"udp", nullptr, start};
}

}  // namespace lbd::health

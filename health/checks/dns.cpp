// check=dns: a query (query=, qtype=, default A) in one UDP datagram to the real's check
// port; up when the reply is for it, with rcode= (default NOERROR) and, if answer= is set,
// that A record among its answers. The bytes: health/dns.cpp.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <sys/random.h>

#include <fmt/format.h>

#include "health/check.hpp"
#include "health/dns.hpp"
#include "health/probe.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;

asio::awaitable<CheckResult> run(ProbeContext& ctx) {
  const CheckSpec& cs = ctx.spec();
  uint16_t id = 0;
  if (getrandom(&id, sizeof id, 0) != sizeof id) id = uint16_t(ctx.target.real_id * 40503u);
  const UdpExchange x = co_await over_udp(ctx, dns_query(id, cs));
  if (x.timed_out) co_return CheckResult::fail(fmt::format("no reply in {} ms", cs.timeout_ms));
  if (x.ec == asio::error::connection_refused) co_return CheckResult::fail("ICMP port unreachable");
  if (x.ec) co_return CheckResult::fail(fmt::format("query: {}", x.ec.message()));
  co_return judge_dns(x.reply, id, cs);
}

CheckTask start(ProbeContext& ctx) { return {run(ctx)}; }
const char* invalid(const CheckSpec& c) { return c.query.empty() ? "check=dns needs query=" : nullptr; }

}  // namespace

namespace kinds {
extern const CheckKind dns{"dns", invalid, start};
}

}  // namespace lbd::health

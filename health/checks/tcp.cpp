// check=tcp: the real is up when it accepts a connection on its check port in time.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/check.hpp"
#include "health/probe.hpp"

namespace lbd::health {
namespace {

boost::asio::awaitable<CheckResult> connected(ProbeContext&, Probe&) { co_return CheckResult::pass(); }

CheckTask start(ProbeContext& ctx) { return {over_tcp(ctx, connected)}; }

}  // namespace

namespace kinds {
extern const CheckKind tcp{"tcp", nullptr, start};
}

}  // namespace lbd::health

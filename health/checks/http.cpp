// check=http: GET path= (Host host=), up when the status is in status= and the body holds
// body=. The bytes are built and judged in health/protocols.cpp; this file moves them.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;

asio::awaitable<CheckResult> talk(ProbeContext& ctx, Probe& p) {
  const CheckSpec& cs = ctx.spec();
  boost::system::error_code ec;
  const std::string req = http_request(cs, ctx.target.addr, ctx.target.check_port());
  co_await asio::async_write(p.socket, asio::buffer(req), asio::redirect_error(asio::use_awaitable, ec));
  ctx.resumed();
  if (ec) co_return io_error("send", ec, p, cs.timeout_ms);
  co_return co_await read_http_response(ctx, p, p.socket);
}

CheckTask start(ProbeContext& ctx) { return {over_tcp(ctx, talk)}; }

}  // namespace

namespace kinds {
extern const CheckKind http{"http", nullptr, start};
}

}  // namespace lbd::health

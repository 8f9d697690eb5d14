// check=http: GET path= (Host host=), up when the status is in status= and the body holds
// body=. The bytes are built and judged in health/protocols.cpp; this file moves them.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;

constexpr size_t kMaxResponse = 65536;  // read to EOF or this much, then judge

asio::awaitable<CheckResult> talk(ProbeContext& ctx, Probe& p) {
  const CheckSpec& cs = ctx.spec();
  boost::system::error_code ec;
  const std::string req = http_request(cs, ctx.target.addr, ctx.target.check_port());
  co_await asio::async_write(p.socket, asio::buffer(req), asio::redirect_error(asio::use_awaitable, ec));
  ctx.resumed();
  if (ec) co_return io_error("send", ec, p, cs.timeout_ms);
  std::string resp;
  std::vector<char> buf(4096);
  while (resp.size() < kMaxResponse) {
    const size_t n =
        co_await p.socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    ctx.resumed();
    resp.append(buf.data(), n);
    if (ec == asio::error::eof) break;
    if (ec) co_return io_error("read", ec, p, cs.timeout_ms);
  }
  co_return judge_http(resp, cs);
}

CheckTask start(ProbeContext& ctx) { return {over_tcp(ctx, talk)}; }

}  // namespace

namespace kinds {
extern const CheckKind http{"http", nullptr, start};
}

}  // namespace lbd::health

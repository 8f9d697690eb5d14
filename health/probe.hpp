// What a check kind (health/checks/) is built from: the context the engine runs it in, a
// deadline that ends its I/O (and kills its process group), a TCP conversation with the
// real, and the spawning of a command as an unprivileged user. Boost.Asio; the engine's
// thread only.
#pragma once

#include <sys/types.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl/error.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "health/protocols.hpp"
#include "health/result.hpp"
#include "health/target.hpp"
#include "lb/base/status.hpp"

namespace lbd::health {

// The real a check runs against, and the engine's marker: a check calls resumed() each
// time its coroutine resumes, so that a stall of the thread is named after it.
struct ProbeContext {
  const Target& target;
  std::function<void()> resumed;
  const CheckSpec& spec() const { return target.check; }
};

struct CheckTask {
  boost::asio::awaitable<CheckResult> body;
};

// One check's I/O objects, shared with its deadline's handler (which may run after the
// check's coroutine has finished: it then only sees an aborted wait).
struct Probe {
  explicit Probe(boost::asio::any_io_executor ex) : socket(ex), deadline(ex) {}
  boost::asio::ip::tcp::socket socket;
  boost::asio::steady_timer deadline;
  bool timed_out = false;
  pid_t pid = -1;
};

// At `timeout` the probe's socket closes and its process group (pid) is killed.
void arm_deadline(const std::shared_ptr<Probe>& p, std::chrono::milliseconds timeout);

// A failed step: "connect: Connection refused", or "read: timed out after 1000 ms" when
// the deadline ended it.
CheckResult io_error(const char* step, const boost::system::error_code& ec, const Probe& p,
                     uint32_t timeout_ms);

// What a TCP check says once connected; it calls ctx.resumed() after each co_await.
using Talk = boost::asio::awaitable<CheckResult> (*)(ProbeContext& ctx, Probe& p);
// Connects to the real's check port and runs `talk`, the whole within the check's timeout;
// the socket is closed after.
boost::asio::awaitable<CheckResult> over_tcp(ProbeContext& ctx, Talk talk);

// An HTTP response read from `stream` (plain or TLS) to its end, or kMaxHttpResponse bytes,
// then judged by judge_http (health/protocols.hpp); the read's failure otherwise. A TLS
// server that closes without close_notify ends the response too (stream_truncated).
constexpr size_t kMaxHttpResponse = 65536;
template <class Stream>
boost::asio::awaitable<CheckResult> read_http_response(ProbeContext& ctx, Probe& p, Stream& stream) {
  boost::system::error_code ec;
  std::string resp;
  std::vector<char> buf(4096);
  while (resp.size() < kMaxHttpResponse) {
    const size_t n = co_await stream.async_read_some(boost::asio::buffer(buf),
                                                     boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    ctx.resumed();
    resp.append(buf.data(), n);
    if (ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated) break;
    if (ec) co_return io_error("read", ec, p, ctx.spec().timeout_ms);
  }
  co_return judge_http(resp, ctx.spec());
}

// One datagram to the real's check port (a connected UDP socket, so an ICMP port
// unreachable is seen) and the first reply, within the check's timeout.
struct UdpExchange {
  std::string reply;
  boost::system::error_code ec;  // connection_refused: ICMP port unreachable came back
  bool timed_out = false;        // no reply in time (ec is then operation_aborted)
};
boost::asio::awaitable<UdpExchange> over_udp(ProbeContext& ctx, std::string_view payload);

// Spawns argv[0] as `user`: a clean environment (PATH and `env`), stdin/stdout on
// /dev/null, stderr lbd's, no other descriptor, its own process group, default signals,
// no capability and no_new_privs. If the switch to the user fails nothing runs. Its pid,
// or why it could not run.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& user);
// Waits for `pid` without blocking the loop; its wait status.
boost::asio::awaitable<int> wait_exit(pid_t pid);
// How a command ended that did not exit 0 ("exit status 2", "killed by signal 9");
// nullopt when it did.
std::optional<std::string> exit_failure(int status);

}  // namespace lbd::health

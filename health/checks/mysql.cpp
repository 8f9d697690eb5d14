// check=mysql: the server's greeting; with user= a login (password= or password-file=,
// read at each check); with max-lag= a replica check (SHOW SLAVE STATUS). The packets are
// built and judged in health/protocols.cpp; this file moves them.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;
using boost::system::error_code;
constexpr auto kUseAwaitable = asio::use_awaitable;

// One packet: passed, or failed with the step's trouble (ec set: an I/O error).
asio::awaitable<CheckResult> read_packet(asio::ip::tcp::socket& s, std::vector<uint8_t>& payload, uint8_t& seq,
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

// One conversation's state: the socket, the last packet and its sequence number.
struct Conversation {
  ProbeContext& ctx;
  Probe& p;
  error_code ec;
  std::vector<uint8_t> pkt;
  uint8_t seq = 0;

  // The next packet, or why not (the step names it).
  asio::awaitable<CheckResult> next(const char* step) {
    const CheckResult r = co_await read_packet(p.socket, pkt, seq, ec);
    ctx.resumed();
    if (r.passed() || !ec) co_return r;
    co_return io_error(step, ec, p, ctx.spec().timeout_ms);
  }
  asio::awaitable<bool> send(uint8_t s, const std::vector<uint8_t>& payload) {
    const auto bytes = mysql_packet(s, payload);
    co_await asio::async_write(p.socket, asio::buffer(bytes), asio::redirect_error(kUseAwaitable, ec));
    ctx.resumed();
    co_return !ec;
  }
};

asio::awaitable<CheckResult> talk(ProbeContext& ctx, Probe& p) {
  const CheckSpec& cs = ctx.spec();
  Conversation c{ctx, p, {}, {}, 0};

  if (CheckResult r = co_await c.next("greeting"); !r.passed()) co_return r;
  const auto greeting = parse_greeting(c.pkt);
  if (!greeting) co_return CheckResult::fail("greeting: " + greeting.message());
  const Greeting& g = *greeting;
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
  if (!co_await c.send(uint8_t(c.seq + 1), handshake_response(cs.user, password, g)))
    co_return io_error("login", c.ec, p, cs.timeout_ms);
  if (CheckResult r = co_await c.next("login"); !r.passed()) co_return r;
  std::optional<std::string> switch_scramble;
  if (const CheckResult r = judge_login_reply(c.pkt, switch_scramble); !r.passed()) co_return r.in_step("login: ");
  if (switch_scramble) {
    const std::string auth = native_password_scramble(password, *switch_scramble);
    if (!co_await c.send(uint8_t(c.seq + 1), std::vector<uint8_t>(auth.begin(), auth.end())))
      co_return io_error("login", c.ec, p, cs.timeout_ms);
    if (CheckResult r = co_await c.next("login"); !r.passed()) co_return r;
    if (const CheckResult r = judge_login_reply(c.pkt, switch_scramble); !r.passed()) co_return r.in_step("login: ");
  }
  CheckResult verdict;
  if (cs.max_lag >= 0) {
    if (!co_await c.send(0, query_packet("SHOW SLAVE STATUS"))) co_return io_error("query", c.ec, p, cs.timeout_ms);
    std::vector<std::vector<uint8_t>> packets;
    int eofs = 0;
    while (eofs < 2 && packets.size() < 10000) {
      if (CheckResult r = co_await c.next("query"); !r.passed()) co_return r;
      packets.push_back(c.pkt);
      if (packets.size() == 1 && !c.pkt.empty() && (c.pkt[0] == 0xff || c.pkt[0] == 0x00)) break;
      if (is_eof_packet(c.pkt)) ++eofs;
    }
    const auto rs = parse_result_set(packets);
    if (!rs) co_return CheckResult::fail("SHOW SLAVE STATUS: " + rs.message());
    verdict = judge_replica(*rs, cs.max_lag);
  }
  const std::vector<uint8_t> quit(1, 0x01);  // COM_QUIT: a clean goodbye, no "aborted connection"
  co_await c.send(0, quit);
  co_return verdict;
}

CheckTask start(ProbeContext& ctx) { return {over_tcp(ctx, talk)}; }

}  // namespace

namespace kinds {
extern const CheckKind mysql{"mysql", nullptr, start};
}

}  // namespace lbd::health

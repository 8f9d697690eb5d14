// check=https: the HTTP check over TLS (OpenSSL through Boost.Asio): SNI from sni= (else
// host=, else none), the certificate verified against ca= when it is set (chain and the
// name: sni=/host=, else the real's address), then GET path= judged by status= and body=.
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include "health/check.hpp"
#include "health/probe.hpp"
#include "health/protocols.hpp"

namespace lbd::health {
namespace {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

std::string ssl_error(const boost::system::error_code& ec) {
  std::string m = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(ec.value(), buf, sizeof buf);
    m = buf;
  }
  return m;
}

asio::awaitable<CheckResult> talk(ProbeContext& ctx, Probe& p) {
  const CheckSpec& cs = ctx.spec();
  boost::system::error_code ec;
  ssl::context tls(ssl::context::tls_client);
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
  const std::string name = !cs.sni.empty() ? cs.sni : cs.host;
  if (!cs.ca.empty()) {
    tls.load_verify_file(cs.ca, ec);
    if (ec) co_return CheckResult::fail(fmt::format("ca={}: {}", cs.ca, ssl_error(ec)));
    tls.set_verify_mode(ssl::verify_peer);
  } else {
    tls.set_verify_mode(ssl::verify_none);
  }
  ssl::stream<asio::ip::tcp::socket&> s(p.socket, tls);
  if (!name.empty()) SSL_set_tlsext_host_name(s.native_handle(), name.c_str());
  if (!cs.ca.empty()) {
    // The certificate must name what the check asks for: the server name, else the address.
    X509_VERIFY_PARAM* vp = SSL_get0_param(s.native_handle());
    const std::string addr = fmt::format("{}", ctx.target.addr);
    if (!name.empty()) X509_VERIFY_PARAM_set1_host(vp, name.c_str(), name.size());
    else X509_VERIFY_PARAM_set1_ip_asc(vp, addr.c_str());
  }
  co_await s.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  ctx.resumed();
  if (ec) {
    const long v = SSL_get_verify_result(s.native_handle());
    if (!cs.ca.empty() && v != X509_V_OK)
      co_return CheckResult::fail(fmt::format("tls: certificate: {}", X509_verify_cert_error_string(v)));
    co_return p.timed_out ? io_error("tls", ec, p, cs.timeout_ms) : CheckResult::fail("tls: " + ssl_error(ec));
  }
  const std::string req = http_request(cs, ctx.target.addr, ctx.target.check_port());
  co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(asio::use_awaitable, ec));
  ctx.resumed();
  if (ec) co_return io_error("send", ec, p, cs.timeout_ms);
  co_return co_await read_http_response(ctx, p, s);
}

CheckTask start(ProbeContext& ctx) { return {over_tcp(ctx, talk)}; }

}  // namespace

namespace kinds {
extern const CheckKind https{"https", nullptr, start};
}

}  // namespace lbd::health

// See http_server.hpp.
#include "lb/io/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <thread>

#include "lb/base/log.hpp"

namespace lbd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Endpoint {
  asio::ip::address addr;
  uint16_t port = 0;
};

Result<Endpoint> parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::error(EINVAL, fmt::format("--metrics {}: expected ADDRESS:PORT (127.0.0.1:9100, [::1]:9100)", listen));
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return Status::error(EINVAL, fmt::format("--metrics {}: {} is not an IP address", listen, host));
  const std::string port = listen.substr(colon + 1);
  unsigned v = 0;
  auto [p, e] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || e != std::errc{} || p != port.data() + port.size() || v > 65535)
    return Status::error(EINVAL, fmt::format("--metrics {}: {} is not a port", listen, port));
  return Endpoint{addr, uint16_t(v)};
}

}  // namespace

Status check_listen_address(const std::string& listen) {
  return parse_listen(listen).status();
}

struct HttpServer::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<const Page>> pages;
  mutable std::map<std::string, std::chrono::steady_clock::time_point> asked;  // path -> last request (under mu)
  std::atomic<size_t> clients{0};
  std::atomic<uint64_t> requests{0}, refused{0};

  std::shared_ptr<const Page> page(const std::string& target) const {
    const std::string path = target.substr(0, target.find('?'));
    std::lock_guard lock(mu);
    auto it = pages.find(path);
    if (it != pages.end()) asked[path] = std::chrono::steady_clock::now();
    return it == pages.end() ? nullptr : it->second;
  }

  asio::awaitable<void> session(tcp::socket sock) {
    beast::tcp_stream stream(std::move(sock));
    beast::flat_buffer buf(kMaxRequestBytes);
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(kMaxRequestBytes);
      parser.body_limit(0);
      stream.expires_after(std::chrono::seconds(kReadTimeoutSeconds));
      beast::error_code ec;
      co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::operation_aborted)
          ++refused;
        break;
      }
      ++requests;
      const auto& req = parser.get();
      http::response<http::string_body> res;
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      res.set(http::field::server, "lbd");
      res.set(http::field::cache_control, "no-store");
      std::shared_ptr<const Page> p;
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "GET or HEAD only\n";
      } else if ((p = page(std::string(req.target())))) {
        res.result(http::status::ok);
        res.set(http::field::content_type, p->content_type);
        res.set("X-Content-Type-Options", "nosniff");
        // The page loads only lbd's own assets (no CDN on a director) and runs no inline script.
        res.set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
        if (req.method() == http::verb::get) res.body() = p->body;
        else res.content_length(p->body.size());
      } else {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "not found: lbd serves /, /metrics and /status.json\n";
      }
      if (req.method() == http::verb::get || res.result() != http::status::ok) res.prepare_payload();
      stream.expires_after(std::chrono::seconds(kReadTimeoutSeconds));
      beast::error_code wec;
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, wec));
      if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    --clients;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket sock = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;  // (out of descriptors: the next accept tries again)
      if (clients >= kMaxClients) {
        ++refused;
        continue;  // closed at once
      }
      ++clients;
      asio::co_spawn(io, session(std::move(sock)), asio::detached);
    }
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen) {
  auto ep = parse_listen(listen);
  if (!ep) return ep.status();
  auto impl = std::make_unique<Impl>();
  boost::system::error_code ec;
  const tcp::endpoint where(ep->addr, ep->port);
  impl->acceptor.open(where.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(where, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::error(ec.value(), fmt::format("--metrics {}: {}", listen, ec.message()));
  Impl* i = impl.get();
  asio::co_spawn(i->io, i->accept_loop(), asio::detached);
  i->thread = std::thread([i] {
    try {
      i->io.run();
    } catch (const std::exception& e) {
      LBD_LOG(kError, "metrics", "the HTTP server stopped: {}", e.what());
    }
  });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HttpServer::publish(const std::string& path, Page page) {
  auto p = std::make_shared<const Page>(std::move(page));
  std::lock_guard lock(impl_->mu);
  impl_->pages[path] = std::move(p);
}

std::string HttpServer::local_endpoint() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  if (ec) return "?";
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

bool HttpServer::wanted(const std::string& path, uint64_t ms) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->asked.find(path);
  return it != impl_->asked.end() && std::chrono::steady_clock::now() - it->second < std::chrono::milliseconds(ms);
}

uint64_t HttpServer::requests() const { return impl_->requests; }
uint64_t HttpServer::refused() const { return impl_->refused; }

}  // namespace lbd

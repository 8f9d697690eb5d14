// lbd --metrics ADDR:PORT: a small HTTP/1.1 server (Boost.Beast) on a thread of its own,
// off the data path and off the control thread's loop. It serves what the control thread
// last published (publish(): a whole page replaced under a lock), so a scrape never waits
// for a worker and a slow client never holds the control thread. GET and HEAD only; at
// most kMaxClients at once, each request read within kReadTimeout and kMaxRequestBytes.
#pragma once

#include <memory>
#include <string>

#include "lb/base/status.hpp"

namespace lbd {

class HttpServer {
 public:
  struct Page {
    std::string content_type;
    std::string body;
  };
  static constexpr size_t kMaxClients = 64;
  static constexpr size_t kMaxRequestBytes = 8192;
  static constexpr int kReadTimeoutSeconds = 10;

  // Listening on "ADDR:PORT" ("[::1]:9100" too), or why not (address in use, bad address).
  static Result<std::unique_ptr<HttpServer>> start(const std::string& listen);
  ~HttpServer();  // stops the thread, closes every connection
  // Replaces the page at `path` ("/metrics"); safe from any thread.
  void publish(const std::string& path, Page page);
  // Whether `path` was asked for in the last `ms` milliseconds (a page nobody reads is not
  // rebuilt: the control thread asks before it builds one).
  bool wanted(const std::string& path, uint64_t ms) const;
  std::string local_endpoint() const;  // "198.18.0.1:9100", the port chosen if 0 was asked
  uint64_t requests() const;
  uint64_t refused() const;  // over kMaxClients, malformed, too large, or timed out

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "ADDR:PORT" split and checked (lbd's flag is refused at start with this reason).
Status check_listen_address(const std::string& listen);

}  // namespace lbd

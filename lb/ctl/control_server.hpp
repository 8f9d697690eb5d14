// lbd's control socket: a Unix stream socket, mode 0600 (root only), one request line per
// connection (or a RESTORE block), answered by a handler and closed. Served from the
// daemon's poll loop and never blocking it: replies leave as the client reads them, a long
// listing is produced in steps as the client's socket drains, and clients are bounded in
// number, in request size and in time (a client that stalls is dropped, not waited for).
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lb/base/unique_fd.hpp"

namespace lbd {

// What a request is answered with: `text`, then, if set, what `more` appends at each call
// (called while the client's pending output is small) until it returns true (done).
// `fds`, if any, go with the reply's first bytes (SCM_RIGHTS; they must stay open until
// the reply is sent), and `sent` runs once the client is done with (all sent, or gone).
struct Reply {
  std::string text;
  std::function<bool(std::string& out)> more;
  std::vector<int> fds;
  std::function<void()> sent;
};

class ControlServer {
 public:
  using Handler = std::function<Reply(const std::string& request)>;

  static constexpr size_t kMaxClients = 32;
  static constexpr uint64_t kRequestTimeoutMs = 10000;  // to send a whole request
  static constexpr uint64_t kReplyTimeoutMs = 30000;    // without reading any of the reply
  static constexpr size_t kOutputLowWater = 256 << 10;  // `more` runs below this much pending

  // Throws std::runtime_error if the socket is in use by a live lbd, if `path` exists and
  // is not a socket (never unlinked), or if it cannot be made.
  ControlServer(std::string path, Handler handler);
  ~ControlServer();  // closes and unlinks the socket
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // What to poll (the listener first, then clients, each for input or output). The same
  // vector while nothing changes; version() changes when it does.
  const std::vector<pollfd>& poll_fds() const { return fds_; }
  uint64_t version() const { return version_; }
  void on_event(int fd, short revents, uint64_t now_ms);
  // Drops clients past their deadline and resumes accepting after a descriptor shortage.
  void tick(uint64_t now_ms);
  size_t clients() const { return clients_.size(); }
  uint64_t dropped_clients() const { return dropped_; }

 private:
  struct Client {
    UniqueFd sock;
    int fd() const { return sock.get(); }
    std::string in;
    std::string out;
    size_t out_off = 0;
    std::function<bool(std::string&)> more;
    bool replying = false;
    uint64_t deadline_ms = 0;
    std::vector<int> fds;
    std::function<void()> sent;
  };
  void accept_all(uint64_t now_ms);
  void read_request(Client& c, uint64_t now_ms);
  void write_reply(Client& c, uint64_t now_ms);
  ssize_t send_with_fds(Client& c);
  void close_client(int fd);
  void refresh_fds();

  std::string path_;
  Handler handler_;
  UniqueFd listen_;
  uint64_t accept_paused_until_ = 0;  // EMFILE/ENFILE: the listener rests a moment
  uint64_t last_emfile_log_ = 0;
  uint64_t dropped_ = 0;
  std::vector<Client> clients_;
  std::vector<pollfd> fds_;
  uint64_t version_ = 0;
};

// lbadm's side: sends `request`, returns the whole reply, or throws with a clear message,
// also when lbd does not answer within `timeout_ms`. Descriptors passed with the reply are
// put in `fds` (closed if nullptr).
std::string control_request(const std::string& path, const std::string& request,
                            uint64_t timeout_ms = 30000, std::vector<UniqueFd>* fds = nullptr);

}  // namespace lbd

// lbd's control socket: a Unix stream socket, mode 0600 (root only), one request line per
// connection (or a RESTORE block), answered by a handler and closed. Non-blocking, served
// from the daemon's poll loop, so a command runs between two packet batches, never during one.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace lbd {

class ControlServer {
 public:
  using Handler = std::function<std::string(const std::string& request)>;

  // Throws std::runtime_error if the socket is in use by a live lbd or cannot be made.
  ControlServer(std::string path, Handler handler);
  ~ControlServer();  // closes and unlinks the socket
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // File descriptors to poll for reading (the listener first, then clients). The same
  // vector while no client comes or goes; version() changes when it does.
  const std::vector<int>& fds() const { return fds_; }
  uint64_t version() const { return version_; }
  void on_readable(int fd);

 private:
  struct Client {
    int fd;
    std::string in;
  };
  void close_client(size_t i);
  void refresh_fds();

  std::string path_;
  Handler handler_;
  int listen_fd_ = -1;
  std::vector<Client> clients_;
  std::vector<int> fds_;
  uint64_t version_ = 0;
};

// lbadm's side: sends `request`, returns the whole reply, or throws with a clear message.
std::string control_request(const std::string& path, const std::string& request);

}  // namespace lbd

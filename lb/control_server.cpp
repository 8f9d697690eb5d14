// Control socket; see control_server.hpp.
#include "lb/control_server.hpp"

#include <sys/socket.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace lbd {
namespace {

sockaddr_un make_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw std::runtime_error(fmt::format("control socket path too long: {}", path));
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

bool complete_request(const std::string& in) {
  if (in.rfind("RESTORE\n", 0) == 0) return in.size() >= 4 && in.find("\nEND\n") != std::string::npos;
  return in.find('\n') != std::string::npos;
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {
  const sockaddr_un addr = make_addr(path_);
  // A live lbd answers connect(); a stale socket file from a crash does not.
  {
    const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    close(probe);
    if (live)
      throw std::runtime_error(fmt::format(
          "another lbd is already running on control socket {} (stop it first)", path_));
  }
  const auto slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path_.substr(0, slash);
    if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
  }
  unlink(path_.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const mode_t old = umask(0177);  // the socket is born 0600: no window where others connect
  const int rc = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc < 0 || chmod(path_.c_str(), 0600) < 0 || listen(listen_fd_, 64) < 0)
    throw std::runtime_error(
        fmt::format("control socket {}: {}", path_, std::strerror(errno)));
  refresh_fds();
}

ControlServer::~ControlServer() {
  for (auto& c : clients_) close(c.fd);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(path_.c_str());
  }
}

void ControlServer::refresh_fds() {
  fds_.assign(1, listen_fd_);
  for (const auto& c : clients_) fds_.push_back(c.fd);
  ++version_;
}

void ControlServer::close_client(size_t i) {
  close(clients_[i].fd);
  clients_.erase(clients_.begin() + long(i));
  refresh_fds();
}

void ControlServer::on_readable(int fd) {
  if (fd == listen_fd_) {
    for (;;) {
      const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) break;
      clients_.push_back({c, {}});
    }
    refresh_fds();
    return;
  }
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (clients_[i].fd != fd) continue;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      close_client(i);
      return;
    }
    clients_[i].in.append(buf, size_t(n));
    if (clients_[i].in.size() > (16u << 20)) {  // a runaway client: refuse, do not grow
      close_client(i);
      return;
    }
    if (!complete_request(clients_[i].in)) return;
    std::string req = clients_[i].in;
    if (req.rfind("RESTORE\n", 0) != 0) req = req.substr(0, req.find('\n'));
    const std::string reply = handler_(req);
    // Replies are small or a dump; write it all (blocking briefly is acceptable here).
    const int flags = 0;
    size_t off = 0;
    while (off < reply.size()) {
      const ssize_t w = send(fd, reply.data() + off, reply.size() - off, flags | MSG_NOSIGNAL);
      if (w > 0) {
        off += size_t(w);
      } else if (w < 0 && errno == EAGAIN) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        timeval tv{1, 0};
        if (select(fd + 1, nullptr, &set, nullptr, &tv) <= 0) break;
      } else {
        break;
      }
    }
    close_client(i);
    return;
  }
}

std::string control_request(const std::string& path, const std::string& request) {
  const sockaddr_un addr = make_addr(path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    const int err = errno;
    close(fd);
    throw std::runtime_error(fmt::format("cannot reach lbd on {}: {}{}", path, std::strerror(err),
                                         err == ENOENT || err == ECONNREFUSED ? " (is lbd running?)"
                                         : err == EACCES ? " (you must be root)" : ""));
  }
  size_t off = 0;
  while (off < request.size()) {
    const ssize_t w = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += size_t(w);
  }
  std::string reply;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) reply.append(buf, size_t(n));
  close(fd);
  return reply;
}

}  // namespace lbd

// Control socket; see control_server.hpp.
#include "lb/ctl/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "lb/ctl/control_protocol.hpp"
#include "lb/base/host.hpp"
#include "lb/base/log.hpp"

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

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {
  const sockaddr_un addr = make_addr(path_);
  // A live lbd answers connect(); a stale socket file from a crash does not.
  {
    const UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) throw std::runtime_error(fmt::format("control socket: {}", std::strerror(errno)));
    if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
      throw std::runtime_error(fmt::format(
          "another lbd is already running on control socket {} (stop it first)", path_));
  }
  const auto slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path_.substr(0, slash);
    if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
  }
  // Only a stale socket is replaced: --socket naming a file by mistake must not delete it.
  struct stat st{};
  if (lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::runtime_error(fmt::format("control socket {}: exists and is not a socket (not removed)", path_));
    unlink(path_.c_str());
  }
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) throw std::runtime_error(fmt::format("control socket {}: {}", path_, std::strerror(errno)));
  const mode_t old = umask(0177);  // the socket is born 0600: no window where others connect
  const int rc = bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc < 0) throw std::runtime_error(fmt::format("control socket {}: {}", path_, std::strerror(errno)));
  if (chmod(path_.c_str(), 0600) < 0 || listen(listener.get(), 64) < 0) {
    const int err = errno;
    unlink(path_.c_str());  // ours, just bound
    throw std::runtime_error(fmt::format("control socket {}: {}", path_, std::strerror(err)));
  }
  listen_ = std::move(listener);
  refresh_fds();
}

ControlServer::~ControlServer() {
  clients_.clear();
  if (listen_) {
    listen_.reset();
    unlink(path_.c_str());
  }
}

void ControlServer::refresh_fds() {
  fds_.clear();
  if (accept_paused_until_ == 0) fds_.push_back({listen_.get(), POLLIN, 0});
  for (const auto& c : clients_) fds_.push_back({c.fd(), short(c.replying ? POLLOUT : POLLIN), 0});
  ++version_;
}

void ControlServer::close_client(int fd) {
  const auto it = std::find_if(clients_.begin(), clients_.end(), [fd](const Client& c) { return c.fd() == fd; });
  std::function<void()> sent = std::move(it->sent);
  clients_.erase(it);
  refresh_fds();
  if (sent) sent();
}

void ControlServer::accept_all(uint64_t now) {
  for (;;) {
    UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the pending client waits in the backlog; the listener rests
        // a second instead of waking the loop for nothing.
        if (now - last_emfile_log_ >= 10000 || last_emfile_log_ == 0) {
          LBD_LOG(kWarn, "control", "cannot accept a control client: {} (retrying in 1 s)", std::strerror(errno));
          last_emfile_log_ = now;
        }
        accept_paused_until_ = now + 1000;
      }
      break;
    }
    if (clients_.size() >= kMaxClients) {
      const std::string busy = status_reply(
          Status::error(EBUSY, fmt::format("lbd is serving {} control clients already; try again", kMaxClients)));
      [[maybe_unused]] auto n = send(fd.get(), busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ++dropped_;
      continue;
    }
    clients_.push_back({std::move(fd), {}, {}, 0, {}, false, now + kRequestTimeoutMs});
  }
  refresh_fds();
}

void ControlServer::read_request(Client& c, uint64_t now) {
  char buf[65536];
  for (;;) {
    const ssize_t n = read(c.fd(), buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      close_client(c.fd());
      return;
    }
    c.in.append(buf, size_t(n));
    if (c.in.size() > kMaxRequestBytes) {  // a runaway client: refuse, do not grow
      c.in.clear();
      c.out = status_reply(Status::error(E2BIG, fmt::format("request larger than {} MiB: refused", kMaxRequestBytes >> 20)));
      break;
    }
    if (auto req = framed_request(c.in)) {
      c.in.clear();
      Reply r = handler_(*req);
      c.out = std::move(r.text);
      c.more = std::move(r.more);
      c.fds = std::move(r.fds);
      c.sent = std::move(r.sent);
      break;
    }
    if (size_t(n) < sizeof buf) return;
  }
  c.replying = true;
  c.deadline_ms = now + kReplyTimeoutMs;
  refresh_fds();
  write_reply(c, now);
}

// The first bytes of a reply with its descriptors (SCM_RIGHTS), which then are sent.
ssize_t ControlServer::send_with_fds(Client& c) {
  iovec iov{c.out.data() + c.out_off, c.out.size() - c.out_off};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * c.fds.size()));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * c.fds.size());
  std::memcpy(CMSG_DATA(cm), c.fds.data(), sizeof(int) * c.fds.size());
  const ssize_t w = sendmsg(c.fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w > 0) c.fds.clear();
  return w;
}

void ControlServer::write_reply(Client& c, uint64_t now) {
  // At most one step of a stepped reply per call: a client that reads as fast as lbd
  // writes must still let the loop forward between steps (POLLOUT brings it back).
  bool stepped = false;
  for (;;) {
    if (c.more && !stepped && c.out.size() - c.out_off < kOutputLowWater) {
      c.out.erase(0, c.out_off);
      c.out_off = 0;
      if (c.more(c.out)) c.more = nullptr;
      stepped = true;
    }
    if (c.out_off == c.out.size()) {
      if (c.more) return;  // the next step at the next POLLOUT
      close_client(c.fd());  // all sent
      return;
    }
    const ssize_t w = c.fds.empty() ? send(c.fd(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                                           MSG_NOSIGNAL | MSG_DONTWAIT)
                                    : send_with_fds(c);
    if (w > 0) {
      c.out_off += size_t(w);
      c.deadline_ms = now + kReplyTimeoutMs;  // it reads: give it time for the rest
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;  // POLLOUT brings us back
    close_client(c.fd());
    return;
  }
}

void ControlServer::on_event(int fd, short revents, uint64_t now) {
  if (fd == listen_.get()) {
    accept_all(now);
    return;
  }
  for (auto& c : clients_) {
    if (c.fd() != fd) continue;
    if (c.replying && (revents & (POLLOUT | POLLERR | POLLHUP)))
      write_reply(c, now);
    else if (!c.replying && (revents & (POLLIN | POLLERR | POLLHUP)))
      read_request(c, now);
    return;
  }
}

void ControlServer::tick(uint64_t now) {
  bool changed = false;
  if (accept_paused_until_ && now >= accept_paused_until_) {
    accept_paused_until_ = 0;
    changed = true;
  }
  for (size_t i = 0; i < clients_.size();) {
    if (now < clients_[i].deadline_ms) {
      ++i;
      continue;
    }
    std::function<void()> sent = std::move(clients_[i].sent);
    clients_.erase(clients_.begin() + long(i));  // stalled: sent no whole request, or read nothing for too long
    ++dropped_;
    if (sent) sent();
    changed = true;
  }
  if (changed) refresh_fds();
}

std::string control_request(const std::string& path, const std::string& request, uint64_t timeout_ms,
                            std::vector<UniqueFd>* fds) {
  const sockaddr_un addr = make_addr(path);
  const UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int fd = sock.get();
  if (!sock || connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    const int err = errno;
    throw std::runtime_error(fmt::format("cannot reach lbd on {}: {}{}", path, std::strerror(err),
                                         err == ENOENT || err == ECONNREFUSED ? " (is lbd running?)"
                                         : err == EACCES ? " (you must be root)" : ""));
  }
  const uint64_t deadline = monotonic_ms() + timeout_ms;
  auto wait = [&](short events) {
    pollfd p{fd, events, 0};
    for (;;) {
      const uint64_t now = monotonic_ms();
      if (now >= deadline) return false;
      const int r = poll(&p, 1, int(std::min<uint64_t>(deadline - now, 1000)));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  };
  auto timed_out = [&] {
    return std::runtime_error(fmt::format(
        "lbd on {} did not answer within {} s (stopped, or busy with a long operation?)", path,
        timeout_ms / 1000));
  };
  size_t off = 0;
  while (off < request.size()) {
    if (!wait(POLLOUT)) throw timed_out();
    const ssize_t w = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (w <= 0) break;  // lbd closed early (a refusal): read what it said
    off += size_t(w);
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    if (!wait(POLLIN)) throw timed_out();
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];  // SCM_MAX_FD
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      const size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(cm) + i * sizeof(int), sizeof passed);
        UniqueFd owned(passed);
        if (fds) fds->push_back(std::move(owned));
      }
    }
    if (n <= 0) break;
    reply.append(buf, size_t(n));
  }
  return reply;
}

}  // namespace lbd

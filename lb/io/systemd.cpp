// sd_notify and the watchdog; see systemd.hpp.
#include "lb/io/systemd.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "lb/base/log.hpp"

namespace lbd {

// systemd's notification protocol (sd_notify(3)): the socket in $NOTIFY_SOCKET is a path,
// or '@' for the abstract namespace.
void notify_systemd(const std::string& message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  const size_t n = std::strlen(path);
  if (n >= sizeof sa.sun_path) return;
  std::memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
             socklen_t(offsetof(sockaddr_un, sun_path) + n)) < 0)
    LBD_LOG(kWarn, "main", "sd_notify to {}: {}", path, std::strerror(errno));
  close(fd);
}

uint64_t watchdog_interval_ms() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (!usec) return 0;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && std::atol(pid) != long(getpid())) return 0;
  return std::strtoull(usec, nullptr, 10) / 1000;
}

}  // namespace lbd

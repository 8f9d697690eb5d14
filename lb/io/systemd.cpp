// sd-daemon's calls; see systemd.hpp.
#include "lb/io/systemd.hpp"

#include <fcntl.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "lb/base/log.hpp"

namespace lbd {

bool under_systemd() {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s && *s;
}

void notify_systemd(const std::string& message) {
  if (!under_systemd()) return;
  if (const int rc = sd_notify(0, message.c_str()); rc < 0)
    LBD_LOG(kWarn, "main", "sd_notify: {}", std::strerror(-rc));
}

uint64_t watchdog_interval_ms() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec / 1000 : 0;
}

bool store_fds(const std::string& name, const std::vector<int>& fds) {
  if (!under_systemd() || fds.empty()) return false;
  const std::string msg = "FDSTORE=1\nFDNAME=" + name;
  const int rc = sd_pid_notify_with_fds(0, 0, msg.c_str(), fds.data(), unsigned(fds.size()));
  if (rc <= 0) {
    LBD_LOG(kWarn, "handover", "systemd's file descriptor store: {}", rc < 0 ? std::strerror(-rc) : "not reachable");
    return false;
  }
  return true;
}

void release_stored_fds(const std::string& name) {
  if (under_systemd()) notify_systemd("FDSTOREREMOVE=1\nFDNAME=" + name);
}

std::vector<NamedFd> passed_fds() {
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);
  std::vector<NamedFd> out;
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    fcntl(fd, F_SETFD, FD_CLOEXEC);  // an exec check must not inherit the table
    out.push_back({names && names[i] ? names[i] : "unknown", UniqueFd(fd)});
  }
  if (names) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  return out;
}

}  // namespace lbd

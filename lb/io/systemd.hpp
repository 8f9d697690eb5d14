// What lbd tells systemd and gets from it (libsystemd's sd-daemon): notifications, the
// watchdog interval, and the file descriptor store that keeps the connection table across
// a restart (FDSTORE=1; the unit's FileDescriptorStoreMax=).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lb/base/unique_fd.hpp"

namespace lbd {

// One datagram of "KEY=VALUE" lines to $NOTIFY_SOCKET; nothing without it.
void notify_systemd(const std::string& message);
// WatchdogSec=: systemd's interval in ms (for this process), or 0 when not watched.
uint64_t watchdog_interval_ms();
// Under systemd (NOTIFY_SOCKET set).
bool under_systemd();

// The store: `fds` kept under `name` (false, logged, if systemd refused or is not there),
// and every descriptor stored under `name` released.
bool store_fds(const std::string& name, const std::vector<int>& fds);
void release_stored_fds(const std::string& name);

// Descriptors systemd passed this process (LISTEN_FDS, from the store), by name; each is
// made close-on-exec. The environment variables are unset.
struct NamedFd {
  std::string name;
  UniqueFd fd;
};
std::vector<NamedFd> passed_fds();

}  // namespace lbd

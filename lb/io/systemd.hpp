// What lbd tells systemd: sd_notify(3)'s datagrams, and the watchdog interval it asked for.
#pragma once

#include <cstdint>
#include <string>

namespace lbd {

// One datagram of "KEY=VALUE" lines to $NOTIFY_SOCKET; nothing without it.
void notify_systemd(const std::string& message);
// WatchdogSec=: systemd's interval in ms (for this process), or 0 when not watched.
uint64_t watchdog_interval_ms();

}  // namespace lbd

// lbd's event loop: one thread polls the capture sockets, the control socket, a timerfd
// and a signalfd. Packets are processed in batches; commands run between batches, so the
// data path never sees half a command and needs no lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lbd {

struct DaemonConfig {
  std::vector<std::string> interfaces;
  std::string socket_path = "/run/lbd/lbd.sock";
  std::string rules_path = "/etc/lbd/rules";
  bool rules_path_given = false;
  uint32_t max_connections = 1u << 20;
  int capture_timeout_ms = 0;  // 0 = immediate mode (see Capture)
};

// Runs until SIGTERM/SIGINT; returns the process exit code. Every change made to the box is
// undone before it returns.
int run_daemon(const DaemonConfig& config);

}  // namespace lbd

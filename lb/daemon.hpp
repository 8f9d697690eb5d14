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
  // The XDP flow cache: "xdp" (native where the interfaces can transmit XDP frames, else
  // generic), "xdp-native", "xdp-generic", or "off".
  std::string offload = "xdp";
  uint32_t offload_flows = 0;  // flow table entries; 0: 2 per connection, at most 1M
};

inline bool valid_offload(const std::string& s) {
  return s == "xdp" || s == "xdp-native" || s == "xdp-generic" || s == "off";
}

// The largest connection table (12 GiB at 92 bytes an entry).
constexpr uint32_t kMaxConnections = 1u << 27;

// lbd --check-rules: reads and checks `path` exactly as a start would (regular file,
// size, syntax, names, a dry run of every rule); prints the verdict. A missing file is an
// error only when `required` (the default path may be absent). Returns the exit code.
int check_rules_file(const std::string& path, bool required);

// Runs until SIGTERM/SIGINT; returns the process exit code. Every change made to the box is
// undone before it returns.
int run_daemon(const DaemonConfig& config);

}  // namespace lbd

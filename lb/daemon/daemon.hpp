// lbd: a control thread (the control socket, signals, reloads, health, next hops) and
// workers (worker.hpp), each polling its own capture sockets and owning a shard of the
// connections. The control thread applies each change to its own table, then hands it to
// every worker, which applies it between two batches of frames: the data path never sees
// half a command and needs no lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lb/core/data_path.hpp"

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
  uint32_t workers = 0;        // 0: one per receive queue of the interfaces, at most the CPUs
  // --sysctl NAME=VALUE (checked): applied before the rules file's, at start and reload.
  std::vector<std::string> sysctls;
  // --takeover: the lbd running on socket_path hands its connections over and stops.
  bool takeover = false;
  // --vip-arp: when lbd answers ARP for VIPs (vip_arp_from_name).
  std::string vip_arp = "active";
  // --announce-table: the VIPs that can take connections, as routes in this table for a
  // routing daemon to announce (vip_announcer.hpp); 0: none.
  uint32_t announce_table = 0;
  // --metrics ADDR:PORT: Prometheus metrics and the status page over HTTP; "": off.
  std::string metrics;
  // --fwmark-queue, --fwmark-fail: the NFQUEUE firewall-mark services' packets come through,
  // and what happens to them while lbd cannot take them (fwmark_queue.hpp).
  uint32_t fwmark_queue = 4321;
  std::string fwmark_fail = "closed";
};

inline std::optional<VipArp> vip_arp_from_name(const std::string& s) {
  if (s == "active") return VipArp::kActive;
  if (s == "always") return VipArp::kAlways;
  if (s == "never") return VipArp::kNever;
  return std::nullopt;
}

// The most workers lbd runs (one fanout group member each).
constexpr uint32_t kMaxWorkers = 64;

inline bool valid_offload(const std::string& s) {
  return s == "xdp" || s == "xdp-native" || s == "xdp-generic" || s == "off";
}

// The largest connection table (13 GiB at 100 bytes an entry).
constexpr uint32_t kMaxConnections = 1u << 27;

// lbd --check-rules: reads and checks `path` exactly as a start would (regular file,
// size, syntax, names, a dry run of every rule); prints the verdict. A missing file is an
// error only when `required` (the default path may be absent). Returns the exit code.
int check_rules_file(const std::string& path, bool required);

// Runs until SIGTERM/SIGINT; returns the process exit code. Every change made to the box is
// undone before it returns.
int run_daemon(const DaemonConfig& config);

}  // namespace lbd

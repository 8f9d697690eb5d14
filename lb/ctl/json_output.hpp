// lbd's machine-readable output (lbadm --json, the status page's data): one schema,
// built with nlohmann::ordered_json, documented in README "JSON output". Field names are stable:
// a new field may be added, none is renamed or removed while "schema" stays 1.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "lb/core/data_path.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

namespace lbd {

inline constexpr int kJsonSchema = 1;

// A real's health as the daemon knows it (lbadm --lbd-health, metrics, the status page).
struct RealHealthView {
  ServiceKey service;
  IpAddr addr;
  uint16_t port = 0;
  bool checked_by_engine = false;  // false: the service has no check for it
  bool up = true;
  bool checked = false;            // a result exists
  std::string last;                // "ok" or the failure
  double last_duration_s = 0;
  double since_s = 0;              // seconds in this state
  double checked_s = 0;            // seconds since the last result
  uint32_t ok_run = 0, fail_run = 0;
};

// The listing's services (sorted as ipvsadm sorts unless --nosort), or one service:
// {"schema", "services": [...]}; with -c, "connections"; with --timeout, "timeouts";
// with --daemon, "daemons". Error: "No such service".
Result<nlohmann::ordered_json> listing_json(const CliCommand& cmd, const Dump& dump);
// {"schema", "offload", "counters": {name: value}} (--lbd-counters --json).
nlohmann::ordered_json counters_json(const std::string& offload, const std::vector<Counter>& counters);
// {"schema", "stalled_ms", "stalled_in", "reals": [...]} (--lbd-health --json).
nlohmann::ordered_json health_json(const std::vector<RealHealthView>& reals, uint64_t stalled_ms, const std::string& stalled_in);

}  // namespace lbd

// Prometheus' text exposition format (version 0.0.4) for lbd --metrics: node_exporter's
// ipvs collector's metrics under its names and labels (collector/ipvs_linux.go), so its
// dashboards and alerts work unchanged; per-service and per-real counters under lbd_service_
// and lbd_real_ (Telegraf's ipvs field names); lbd's own counts under lbd_.
#pragma once

#include <string>
#include <vector>

#include "lb/ctl/json_output.hpp"

namespace lbd {

struct MetricsInput {
  const Dump& dump;
  const std::vector<Counter>& counters;  // Control::counters(): drop_*, worker<N>_*, the rest
  const std::vector<RealHealthView>& health;
  std::string offload;            // "xdp-native", "xdp-generic", "off"
  uint64_t capacity = 0;          // the connection table's size (--max-connections)
  std::string version;
};

std::string prometheus_text(const MetricsInput& in);

// A label value as the format escapes it (backslash, double quote, newline).
std::string prometheus_escape(const std::string& s);

}  // namespace lbd

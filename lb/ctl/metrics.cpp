// See metrics.hpp. README "Metrics" lists every family.
#include "lb/ctl/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <string_view>
#include <map>

namespace lbd {

std::string prometheus_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

namespace {

struct Writer {
  std::string out;
  void family(const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <class V>
  void sample(std::string_view name, std::string_view labels, V v) {
    out += name;
    if (!labels.empty()) {
      out += '{';
      out += labels;
      out += '}';
    }
    out += ' ';
    fmt::format_to(std::back_inserter(out), "{}", v);
    out += '\n';
  }
};

// A fwmark service's labels as node_exporter's procfs reads /proc/net/ip_vs's "FWM" lines:
// proto FWM, the mark, no address (Go prints a nil address as "<nil>"), port 0.
const char* proto_label(const ServiceKey& k) { return k.fwmark ? "FWM" : protocol_info(k.protocol).name; }
std::string address_label(const ServiceKey& k) { return k.fwmark ? "<nil>" : to_string(k.vip); }

std::string service_labels(const ServiceKey& k) {
  return fmt::format("proto=\"{}\",local_address=\"{}\",local_port=\"{}\"{}", proto_label(k), address_label(k),
                     k.port, k.fwmark ? fmt::format(",local_mark=\"{}\"", k.fwmark) : "");
}

std::string real_labels(const ServiceKey& k, const DumpReal& r) {
  return fmt::format("{},remote_address=\"{}\",remote_port=\"{}\"", service_labels(k), to_string(r.spec.addr),
                     r.spec.port);
}

// node_exporter's backend label set, in its order; local_mark is a fwmark service's mark.
std::string ipvs_backend_labels(const ServiceKey& k, const DumpReal& r) {
  return fmt::format("local_address=\"{}\",local_port=\"{}\",remote_address=\"{}\",remote_port=\"{}\","
                     "proto=\"{}\",local_mark=\"{}\"",
                     address_label(k), k.port, to_string(r.spec.addr), r.spec.port, proto_label(k),
                     k.fwmark ? std::to_string(k.fwmark) : "");
}

}  // namespace

std::string prometheus_text(const MetricsInput& in) {
  Writer w;
  // node_exporter's ipvs collector: the totals (/proc/net/ip_vs_stats) and, per backend
  // (/proc/net/ip_vs), active and inactive connections and the weight IPVS has.
  Counters total;
  for (const auto& s : in.dump.services) total += s.stats;
  const struct {
    const char* name;
    const char* help;
    uint64_t v;
  } totals[] = {{"node_ipvs_connections_total", "The total number of connections made.", total.conns},
                {"node_ipvs_incoming_packets_total", "The total number of incoming packets.", total.inpkts},
                {"node_ipvs_outgoing_packets_total", "The total number of outgoing packets.", total.outpkts},
                {"node_ipvs_incoming_bytes_total", "The total amount of incoming data.", total.inbytes},
                {"node_ipvs_outgoing_bytes_total", "The total amount of outgoing data.", total.outbytes}};
  for (const auto& t : totals) {
    w.family(t.name, "counter", t.help);
    w.sample(t.name, "", t.v);
  }
  // As node_exporter: reals with the same labels summed (one line per label set).
  struct Backend {
    uint64_t active = 0, inactive = 0, weight = 0;
  };
  std::map<std::string, Backend> backends;
  for (const auto& s : in.dump.services)
    for (const auto& r : s.reals) {
      Backend& b = backends[ipvs_backend_labels(s.key, r)];
      b.active += r.active;
      b.inactive += r.inactive;
      // What IPVS holds: a real down by its checks is in IPVS at weight 0 (inhibit_on_failure).
      b.weight += (r.flags & DumpReal::kDown) ? 0 : uint64_t(std::max(0, r.spec.weight));
    }
  const struct {
    const char* name;
    const char* help;
    uint64_t Backend::*v;
  } gauges[] = {
      {"node_ipvs_backend_connections_active", "The current active connections by local and remote address.", &Backend::active},
      {"node_ipvs_backend_connections_inactive", "The current inactive connections by local and remote address.", &Backend::inactive},
      {"node_ipvs_backend_weight", "The current backend weight by local and remote address.", &Backend::weight}};
  for (const auto& g : gauges) {
    w.family(g.name, "gauge", g.help);
    for (const auto& [labels, b] : backends) w.sample(g.name, labels, b.*g.v);
  }

  // Per service and per real (Telegraf's ipvs fields: connections, pkts_in, ...).
  const struct {
    const char* suffix;
    const char* help;
    uint64_t Counters::*v;
  } stats[] = {{"connections_total", "Connections scheduled.", &Counters::conns},
               {"pkts_in_total", "Packets from clients.", &Counters::inpkts},
               {"pkts_out_total", "Packets to clients (NAT replies).", &Counters::outpkts},
               {"bytes_in_total", "Bytes from clients.", &Counters::inbytes},
               {"bytes_out_total", "Bytes to clients (NAT replies).", &Counters::outbytes}};
  const struct {
    const char* suffix;
    const char* help;
    uint64_t Rates::*v;
  } rates[] = {{"cps", "Connections per second (IPVS's estimator, 2 s).", &Rates::cps},
               {"pps_in", "Packets per second from clients.", &Rates::inpps},
               {"pps_out", "Packets per second to clients.", &Rates::outpps},
               {"bps_in", "Bytes per second from clients.", &Rates::inbps},
               {"bps_out", "Bytes per second to clients.", &Rates::outbps}};
  // Each service's and real's labels once (a real's appear in 19 families).
  std::vector<std::string> svc_labels;
  std::vector<std::vector<std::string>> rl_labels;
  for (const auto& s : in.dump.services) {
    svc_labels.push_back(service_labels(s.key));
    auto& v = rl_labels.emplace_back();
    for (const auto& r : s.reals) v.push_back(real_labels(s.key, r));
  }
  auto each_real = [&](auto&& f) {
    for (size_t i = 0; i < in.dump.services.size(); ++i)
      for (size_t j = 0; j < in.dump.services[i].reals.size(); ++j) f(in.dump.services[i].reals[j], rl_labels[i][j]);
  };
  for (const auto& st : stats) {
    const std::string name = fmt::format("lbd_service_{}", st.suffix);
    w.family(name.c_str(), "counter", st.help);
    for (size_t i = 0; i < in.dump.services.size(); ++i) w.sample(name, svc_labels[i], in.dump.services[i].stats.*st.v);
  }
  for (const auto& rt : rates) {
    const std::string name = fmt::format("lbd_service_{}", rt.suffix);
    w.family(name.c_str(), "gauge", rt.help);
    for (size_t i = 0; i < in.dump.services.size(); ++i) w.sample(name, svc_labels[i], in.dump.services[i].rates.*rt.v);
  }
  for (const auto& st : stats) {
    const std::string name = fmt::format("lbd_real_{}", st.suffix);
    w.family(name.c_str(), "counter", st.help);
    each_real([&](const DumpReal& r, const std::string& labels) { w.sample(name, labels, r.stats.*st.v); });
  }
  for (const auto& rt : rates) {
    const std::string name = fmt::format("lbd_real_{}", rt.suffix);
    w.family(name.c_str(), "gauge", rt.help);
    each_real([&](const DumpReal& r, const std::string& labels) { w.sample(name, labels, r.rates.*rt.v); });
  }
  const struct {
    const char* name;
    const char* help;
    uint64_t (*v)(const DumpReal&);
  } real_gauges[] = {
      {"lbd_real_active_connections", "Active connections (ESTABLISHED TCP).", [](const DumpReal& r) { return uint64_t(r.active); }},
      {"lbd_real_inactive_connections", "Inactive connections (other TCP states, UDP).", [](const DumpReal& r) { return uint64_t(r.inactive); }},
      {"lbd_real_persistent_connections", "Persistence templates pointing at the real.", [](const DumpReal& r) { return uint64_t(r.persist_conns); }},
      {"lbd_real_weight", "The configured weight (-w).", [](const DumpReal& r) { return uint64_t(std::max(0, r.spec.weight)); }},
      {"lbd_real_up", "1 while the real passes its checks (or has none), 0 while down.", [](const DumpReal& r) { return uint64_t(!(r.flags & DumpReal::kDown)); }},
      {"lbd_real_sorry_server", "1 while the real stands in as the service's sorry server.", [](const DumpReal& r) { return uint64_t(bool(r.flags & DumpReal::kSorry)); }}};
  for (const auto& g : real_gauges) {
    w.family(g.name, "gauge", g.help);
    each_real([&](const DumpReal& r, const std::string& labels) { w.sample(g.name, labels, g.v(r)); });
  }
  // The checks: the last one's duration and result, per checked real.
  w.family("lbd_real_check_duration_seconds", "gauge", "How long the last check took.");
  std::string ok_lines;
  for (const auto& h : in.health) {
    if (!h.checked_by_engine || !h.checked) continue;
    const std::string labels =
        fmt::format("proto=\"{}\",local_address=\"{}\",local_port=\"{}\",remote_address=\"{}\",remote_port=\"{}\"",
                    protocol_info(h.service.protocol).name, to_string(h.service.vip), h.service.port,
                    to_string(h.addr), h.port);
    w.sample("lbd_real_check_duration_seconds", labels, h.last_duration_s);
    ok_lines += fmt::format("lbd_real_check_ok{{{}}} {}\n", labels, h.last == "ok" ? 1 : 0);
  }
  w.family("lbd_real_check_ok", "gauge", "1 if the last check passed, 0 if it failed.");
  w.out += ok_lines;

  // lbd's own counts: drops by reason, per worker, then every other --lbd-counters count.
  w.family("lbd_drops_total", "counter", "Frames dropped by the data path, by reason (lbadm --lbd-counters).");
  for (const Counter& c : in.counters)
    if (c.name.starts_with("drop_"))
      w.sample("lbd_drops_total", fmt::format("reason=\"{}\"", prometheus_escape(c.name.substr(5))), c.value);
  std::map<std::string, std::string> per_worker;  // family -> its samples
  for (const Counter& c : in.counters) {
    if (!c.name.starts_with("worker") || c.name == "workers") continue;
    const size_t us = c.name.find('_');
    if (us == std::string::npos) continue;
    const std::string what = c.name.substr(us + 1), worker = c.name.substr(6, us - 6);
    const std::string family = what == "conns_current" ? "lbd_worker_connections" : "lbd_worker_" + what + "_total";
    per_worker[family] += fmt::format("{}{{worker=\"{}\"}} {}\n", family, worker, c.value);
  }
  for (const auto& [family, samples] : per_worker) {
    const bool gauge = !family.ends_with("_total");
    w.family(family.c_str(), gauge ? "gauge" : "counter", "Per worker (a thread with its share of the clients).");
    w.out += samples;
  }
  for (const Counter& c : in.counters) {
    if (c.name.starts_with("drop_") || (c.name.starts_with("worker") && c.name != "workers")) continue;
    const std::string name = c.gauge ? "lbd_" + c.name : "lbd_" + c.name + "_total";
    w.family(name.c_str(), c.gauge ? "gauge" : "counter", "lbadm --lbd-counters' count of that name.");
    w.sample(name, "", c.value);
  }
  w.family("lbd_connections_capacity", "gauge", "Connections the table holds at most (--max-connections).");
  w.sample("lbd_connections_capacity", "", in.capacity);
  w.family("lbd_info", "gauge", "lbd's version and fast path.");
  w.sample("lbd_info", fmt::format("version=\"{}\",offload=\"{}\"", prometheus_escape(in.version), prometheus_escape(in.offload)),
           uint64_t(1));
  return w.out;
}

}  // namespace lbd

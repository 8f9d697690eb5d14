// See json_output.hpp; README "JSON output" documents every field.
#include "lb/ctl/json_output.hpp"

#include <algorithm>

#include "health/spec.hpp"
#include "lb/ctl/listing.hpp"

namespace lbd {
namespace {

using json = nlohmann::ordered_json;

json counters_of(const Counters& c) {
  return {{"conns", c.conns}, {"inpkts", c.inpkts}, {"outpkts", c.outpkts},
          {"inbytes", c.inbytes}, {"outbytes", c.outbytes}};
}

json rates_of(const Rates& r) {
  return {{"cps", r.cps}, {"inpps", r.inpps}, {"outpps", r.outpps}, {"inbps", r.inbps}, {"outbps", r.outbps}};
}

json real_json(const DumpReal& r) {
  // A tunnel real's encapsulation as --tun-info names it (null for DR and NAT).
  json tunnel = nullptr;
  if (r.spec.fwd == FwdMethod::kTunnel) {
    tunnel = {{"type", tun_type_name(r.spec.tun.type)}};
    if (r.spec.tun.type == TunType::kGue) tunnel["port"] = r.spec.tun.port;
    if (r.spec.tun.type != TunType::kIpip) tunnel["checksum"] = kTunCsumOptions[uint8_t(r.spec.tun.csum)] + 4;
  }
  return {{"address", to_string(r.spec.addr)},
          {"port", r.spec.port},
          {"forward", fwd_name(r.spec.fwd)},
          {"weight", r.spec.weight},
          {"u_threshold", r.spec.u_threshold},
          {"l_threshold", r.spec.l_threshold},
          {"active_conns", r.active},
          {"inactive_conns", r.inactive},
          {"persist_conns", r.persist_conns},
          {"state", (r.flags & DumpReal::kDown) ? "down" : "up"},
          {"sorry_server", bool(r.flags & DumpReal::kSorry)},
          {"health", health::redact_secrets(r.health())},
          {"stats", counters_of(r.stats)},
          {"rates", rates_of(r.rates)},
          {"tunnel", tunnel}};
}

json service_json(DumpService s, bool sort) {
  if (sort) std::sort(s.reals.begin(), s.reals.end(), real_order);
  json reals = json::array();
  for (const auto& r : s.reals) reals.push_back(real_json(r));
  const std::string health = health::redact_secrets(health::format_service_health(s.options.health));
  // A fwmark service: "FWM" with its mark, no address or port (as -L prints it).
  return {{"protocol", s.key.fwmark ? "FWM" : protocol_info(s.key.protocol).name},
          {"address", s.key.fwmark ? json(nullptr) : json(to_string(s.key.vip))},
          {"port", s.key.port},
          {"fwmark", s.key.fwmark},
          {"scheduler", s.options.scheduler},
          {"sched_flags", s.options.sched_flags ? sched_flags_text(s.options.scheduler, s.options.sched_flags) : ""},
          {"persistent", s.options.persistent},
          {"netmask", to_string(s.options.netmask)},
          {"ops", s.options.ops},
          {"health", health},
          {"stats", counters_of(s.stats)},
          {"rates", rates_of(s.rates)},
          {"reals", std::move(reals)}};
}

json endpoint(const IpAddr& a, uint16_t port) { return {{"address", to_string(a)}, {"port", port}}; }

}  // namespace

Result<json> listing_json(const CliCommand& cmd, const Dump& dump) {
  json out = {{"schema", kJsonSchema}};
  if (cmd.has(kOptTimeout)) {
    out["timeouts"] = {{"tcp", dump.timeouts.tcp}, {"tcpfin", dump.timeouts.tcpfin}, {"udp", dump.timeouts.udp}};
    return out;
  }
  if (cmd.has(kOptDaemon)) {
    json ds = json::array();
    for (const DumpDaemon& d : dump.daemons)
      ds.push_back(json{{"role", d.role}, {"mcast_interface", d.spec.mcast_ifn}, {"syncid", d.spec.syncid},
                    {"maxlen", d.spec.maxlen}, {"group", to_string(d.spec.group)}, {"port", d.spec.port}, {"ttl", d.spec.ttl}});
    out["daemons"] = std::move(ds);
    return out;
  }
  if (cmd.has(kOptConnection)) {
    json cs = json::array();
    for (const DumpConn& c : dump.conns)
      cs.push_back(json{{"protocol", protocol_info(c.protocol).name}, {"state", c.state}, {"expires", c.expires},
                    {"client", endpoint(c.caddr, c.cport)}, {"virtual", endpoint(c.vaddr, c.vport)},
                    {"real", endpoint(c.daddr, c.dport)}});
    out["connections"] = std::move(cs);
    return out;
  }
  const bool sort = !cmd.has(kOptNoSort);
  std::vector<DumpService> services = dump.services;
  if (sort) std::sort(services.begin(), services.end(), service_order);
  json ss = json::array();
  for (const auto& s : services) {
    if (cmd.has(kOptService) && !(s.key == cmd.service)) continue;
    ss.push_back(service_json(s, sort));
  }
  if (cmd.has(kOptService) && ss.empty()) return Status::error(ESRCH, "No such service");
  if (!cmd.has(kOptService)) out["table_size"] = dump.table_size;
  out["services"] = std::move(ss);
  return out;
}

json counters_json(const std::string& offload, const std::vector<Counter>& counters) {
  json c = json::object();
  for (const Counter& x : counters) c[x.name] = x.value;
  return {{"schema", kJsonSchema}, {"offload", offload}, {"counters", std::move(c)}};
}

json health_json(const std::vector<RealHealthView>& reals, uint64_t stalled_ms, const std::string& stalled_in) {
  json rs = json::array();
  for (const auto& r : reals) {
    json j = {{"service", {{"protocol", protocol_info(r.service.protocol).name},
                           {"address", to_string(r.service.vip)}, {"port", r.service.port}}},
              {"address", to_string(r.addr)},
              {"port", r.port},
              {"checked_by_engine", r.checked_by_engine},
              {"state", r.up ? "up" : "down"}};
    if (r.checked_by_engine) {
      j["since_s"] = r.since_s;
      j["result"] = r.checked ? json(r.last) : json(nullptr);
      j["checked_s"] = r.checked ? json(r.checked_s) : json(nullptr);
      j["duration_s"] = r.checked ? json(r.last_duration_s) : json(nullptr);
      j["ok_in_a_row"] = r.ok_run;
      j["failed_in_a_row"] = r.fail_run;
    }
    rs.push_back(std::move(j));
  }
  return {{"schema", kJsonSchema}, {"stalled_ms", stalled_ms}, {"stalled_in", stalled_in}, {"reals", std::move(rs)}};
}

}  // namespace lbd

// IPVS's sysctls as lbd's settings; see sysctl.hpp.
#include "lb/core/sysctl.hpp"

#include <cerrno>
#include <charconv>

#include <fmt/format.h>

namespace lbd {

const std::vector<SysctlDef> kSysctlDefs = {
    {"sloppy_tcp", &Sysctls::sloppy_tcp, 0, 1},
    {"expire_nodest_conn", &Sysctls::expire_nodest_conn, 0, 1},
    {"expire_quiescent_template", &Sysctls::expire_quiescent_template, 0, 1},
    {"conn_reuse_mode", &Sysctls::conn_reuse_mode, 0, 3},
    {"nat_icmp_send", &Sysctls::nat_icmp_send, 0, 1},
    {"lblc_expiration", &Sysctls::lblc_expiration, 24 * 60 * 60, 24 * 60 * 60},
    {"lblcr_expiration", &Sysctls::lblcr_expiration, 24 * 60 * 60, 24 * 60 * 60},
    {"secure_tcp", &Sysctls::secure_tcp, 0, 0},
    {"drop_entry", &Sysctls::drop_entry, 0, 0},
    {"drop_packet", &Sysctls::drop_packet, 0, 0},
    {"amemthresh", &Sysctls::amemthresh, 0, 0x7fffffff},
    {"schedule_icmp", &Sysctls::schedule_icmp, 0, 0},
    {"ignore_tunneled", &Sysctls::ignore_tunneled, 1, 1},
    {"backup_only", &Sysctls::backup_only, 0, 1},
    {"sync_persist_mode", &Sysctls::sync_persist_mode, 0, 1},
    {"sync_version", &Sysctls::sync_version, 1, 1},
    {"sync_threshold", &Sysctls::sync_threshold, 0, 0x7fffffff, &Sysctls::sync_period},
    {"sync_refresh_period", &Sysctls::sync_refresh_period, 0, 24 * 60 * 60},
    {"sync_retries", &Sysctls::sync_retries, 0, 3},
};

namespace {

// Why lbd takes only some values of a sysctl.
std::string_view only_value_why(std::string_view name) {
  if (name == "secure_tcp" || name == "drop_entry" || name == "drop_packet")
    return "lbd's SYN-flood defence is its own (embryonic entries evicted first, shorter SYN timeouts "
           "under pressure; see the README), IPVS's DoS modes are not implemented";
  if (name == "lblc_expiration" || name == "lblcr_expiration")
    return "lbd's lblc and lblcr caches expire after IPVS's default, 24 hours (not settable yet)";
  if (name == "schedule_icmp") return "lbd does not schedule ICMP errors that match no connection";
  if (name == "ignore_tunneled")
    return "lbd never decapsulates what reaches the director, so tunnelled packets are never scheduled";
  if (name == "sync_version")
    return "lbd sends and reads version 1 sync messages (the kernel's default; version 0 carries no "
           "timeouts and no templates' timeouts)";
  return "";
}

}  // namespace

std::string sysctl_value(const Sysctls& s, const SysctlDef& d) {
  return d.second ? fmt::format("{},{}", s.*d.field, s.*d.second) : fmt::format("{}", s.*d.field);
}

namespace {

bool parse_number(std::string_view t, uint64_t& v) {
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  return !t.empty() && ec == std::errc{} && p == t.data() + t.size() && v <= 0xffffffffULL;
}

}  // namespace

Status set_sysctl(Sysctls& s, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos)
    return Status::invalid(fmt::format("--lbd-sysctl `{}': expected NAME=VALUE", assignment));
  const std::string_view name = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  for (const SysctlDef& d : kSysctlDefs) {
    if (name != d.name) continue;
    uint64_t v = 0;
    if (d.second) {  // IPVS's proc_do_sync_threshold: 0 <= A, and A < B unless B is 0
      const size_t comma = value.find(',');
      uint64_t b = 0;
      if (comma == std::string_view::npos || !parse_number(value.substr(0, comma), v) ||
          !parse_number(value.substr(comma + 1), b) || v > d.max || b > d.max)
        return Status::invalid(fmt::format("--lbd-sysctl {}: `{}' is not two numbers A,B (IPVS's \"3 50\" is 3,50)",
                                           name, value));
      if (b && v >= b)
        return Status::invalid(fmt::format("--lbd-sysctl {}={}: the threshold must be below the period (or the "
                                           "period 0)", name, value));
      s.*d.field = uint32_t(v);
      s.*d.second = uint32_t(b);
      return Status::ok();
    }
    if (!parse_number(value, v))
      return Status::invalid(fmt::format("--lbd-sysctl {}: `{}' is not a number", name, value));
    if (v < d.min || v > d.max) {
      if (d.min == d.max)
        return Status::invalid(fmt::format("--lbd-sysctl {}={}: lbd takes only {}={}: {}", name, v, name, d.min,
                                           only_value_why(name)));
      return Status::invalid(fmt::format("--lbd-sysctl {}={}: expected {} to {}", name, v, d.min, d.max));
    }
    s.*d.field = uint32_t(v);
    return Status::ok();
  }
  if (name == "sloppy_udp")
    return Status::invalid("--lbd-sysctl sloppy_udp: IPVS has no such sysctl: every UDP datagram may create a "
                           "connection already (in IPVS as in lbd)");
  if (name == "sloppy_sctp") return Status::invalid("--lbd-sysctl sloppy_sctp: lbd has no SCTP services");
  std::string known;
  for (const SysctlDef& d : kSysctlDefs) known += fmt::format("{}{}", known.empty() ? "" : ", ", d.name);
  return Status::invalid(fmt::format("--lbd-sysctl `{}': unknown (lbd takes {})", name, known));
}

std::vector<std::string> changed_sysctls(const Sysctls& s) {
  const Sysctls defaults;
  std::vector<std::string> out;
  for (const SysctlDef& d : kSysctlDefs)
    if (sysctl_value(s, d) != sysctl_value(defaults, d)) out.push_back(fmt::format("{}={}", d.name, sysctl_value(s, d)));
  return out;
}

std::string sysctl_listing(const Sysctls& s) {
  std::string out;
  for (const SysctlDef& d : kSysctlDefs) out += fmt::format("{} = {}\n", d.name, sysctl_value(s, d));
  return out;
}

}  // namespace lbd

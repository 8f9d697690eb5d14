// Command execution; see commands.hpp.
#include "lb/ctl/commands.hpp"

#include "lb/ctl/control_protocol.hpp"

#include <cerrno>
#include <map>
#include <unordered_map>
#include <sstream>

#include <fmt/format.h>

#include "health/protocols.hpp"

namespace lbd {
namespace {

Status unsupported(const std::string& what) {
  return Status::error(ENOSYS, fmt::format("{} is not supported by lbd yet", what));
}

Status check_supported(const CliCommand& c) {
  if (c.has(kOptService) && c.service.protocol != kProtoTcp && c.service.protocol != kProtoUdp)
    return unsupported("an SCTP service");
  // IPVS without the engine's module says ENOENT; lbd has no persistence engine (sip).
  if (c.has(kOptPe))
    return Status::error(ENOENT, fmt::format("persistence engine '{}' not found", c.pe));
  return Status::ok();
}

// A real's effective check (the service's with its overrides) must be runnable.
Status check_real_health(const health::ServiceHealth& svc, const std::string& overrides,
                         const IpAddr& addr, uint16_t port) {
  const health::CheckSpec eff = health::effective_check(svc.check, overrides);
  if (!eff.kind) return Status::ok();
  if (const Status st = health::validate_check(eff); !st.is_ok())
    return Status::error(kLbdInvalid, fmt::format("health check of {}: {}", addr_port(addr, port), st.message()));
  return Status::ok();
}

Status add_or_edit_service(const CliCommand& c, ServiceTable& services) {
  ServiceOptions opt = c.svc_options;
  const Service* cur = services.find(c.service);
  // -A starts from the defaults; -E changes only the keys it gives (health kept without it).
  opt.health = c.cmd == Command::kEditService && cur ? cur->options.health : health::ServiceHealth{};
  if (c.has(kOptHealth)) {
    auto parsed = health::parse_service_health(c.health_text, opt.health);
    if (!parsed) return Status::error(kLbdInvalid, "illegal health specification: " + parsed.message());
    opt.health = std::move(parsed).value();
  }
  if (opt.health.sorry_addr) {
    if (opt.health.sorry_addr->v6() != c.service.vip.v6())
      return Status::error(kLbdInvalid, fmt::format("illegal health specification: sorry={} is not of the "
                                                    "service's address family", *opt.health.sorry_addr));
    if (Status s = check_real_address(*opt.health.sorry_addr); !s.is_ok()) return s;
  }
  if (c.cmd == Command::kAddService) return services.add_service(c.service, opt);
  if (cur)
    for (uint32_t id : cur->reals) {
      const Real& r = services.real(id);
      if (Status s = check_real_health(opt.health, r.health_override, r.addr, r.port); !s.is_ok()) return s;
    }
  return services.edit_service(c.service, opt);
}

Status add_or_edit_real(const CliCommand& c, ServiceTable& services) {
  // (A fwmark service's NAT real without a port keeps each packet's: its replies, from any
  // port, come through the fwmark queue.)
  if (c.service.port == 0 && !c.service.fwmark && c.real.port == 0 && c.real.fwd == FwdMethod::kMasq)
    return unsupported("a NAT real server without a port on a port-zero service");
  if (const Service* svc = services.find(c.service)) {
    std::string overrides = c.real.health.value_or("");
    if (!c.real.health && c.cmd == Command::kEditReal)
      if (const Real* r = services.find_real(c.service, c.real.addr, c.real.port)) overrides = r->health_override;
    if (Status s = check_real_health(svc->options.health, overrides, c.real.addr, c.real.port); !s.is_ok())
      return s;
  }
  return c.cmd == Command::kAddReal ? services.add_real(c.service, c.real)
                                    : services.edit_real(c.service, c.real);
}

}  // namespace

Status execute(const CliCommand& c, ServiceTable& services, Timeouts& timeouts) {
  if (Status s = check_supported(c); !s.is_ok()) return s;
  switch (c.cmd) {
    case Command::kAddService:
    case Command::kEditService: return add_or_edit_service(c, services);
    case Command::kDeleteService: return services.delete_service(c.service);
    case Command::kFlush: services.flush(); return Status::ok();
    case Command::kAddReal:
    case Command::kEditReal: return add_or_edit_real(c, services);
    case Command::kDeleteReal: return services.delete_real(c.service, c.real.addr, c.real.port);
    case Command::kZero:
      return services.zero(c.has(kOptService) ? std::optional<ServiceKey>(c.service) : std::nullopt);
    case Command::kSetTimeout:
      if (c.timeouts.tcp) timeouts.tcp = c.timeouts.tcp;
      if (c.timeouts.tcpfin) timeouts.tcpfin = c.timeouts.tcpfin;
      if (c.timeouts.udp) timeouts.udp = c.timeouts.udp;
      return Status::ok();
    case Command::kSetSysctl:
      if (c.sysctl.empty()) return Status::invalid("--lbd-sysctl needs NAME=VALUE here");
      return set_sysctl(timeouts.sysctl, c.sysctl);
    case Command::kStartDaemon:
    case Command::kStopDaemon:
      return Status::error(EINVAL, "the sync daemon is lbd's, not a rule: send it to lbd (lbadm --start-daemon)");
    default: return Status::error(EINVAL, "not a command that changes the table");
  }
}

std::variant<CliCommand, Status> parse_request(const std::string& req, std::vector<std::string>& args) {
  if (!decode_args(req, args)) return Status::error(EINVAL, "malformed request (bad escape)");
  auto parsed = parse_command(args, "lbadm");
  if (auto* e = std::get_if<CliError>(&parsed)) return Status::error(EINVAL, e->message);
  return std::get<CliCommand>(std::move(parsed));
}

Status parse_rules(const std::string& text, std::vector<CliCommand>& out, const NameLookup& names) {
  out.clear();
  std::istringstream in(text);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::vector<std::string> tokens = split_line(line);
    auto r = parse_command(tokens, "lbadm", names, true);
    if (auto* e = std::get_if<CliError>(&r)) {
      // ipvsadm's "Try `ipvsadm -h'" names nothing: say which line and what it starts with.
      if (e->message.rfind("Try `", 0) == 0)
        return Status::error(EINVAL, fmt::format("line {}: `{}': no command (expected -A, -a, -E, -e, -D, "
                                                 "-d, -C, -Z, --set or --lbd-sysctl)", lineno, health::printable(tokens[0], 64)));
      return Status::error(EINVAL, fmt::format("line {}: {}", lineno, e->message));
    }
    auto& cmd = std::get<CliCommand>(r);
    switch (cmd.cmd) {
      case Command::kList: case Command::kSave: case Command::kHelp: case Command::kVersion:
        return Status::error(EINVAL, fmt::format("line {}: not a rule: {}", lineno, line));
      default: break;
    }
    if (Status s = check_supported(cmd); !s.is_ok())
      return Status::error(s.code(), fmt::format("line {}: {}", lineno, s.message()));
    cmd.line = uint32_t(lineno);
    out.push_back(std::move(cmd));
  }
  return Status::ok();
}

std::vector<CliCommand> configuration_commands(const ServiceTable& services) {
  std::vector<CliCommand> v;
  services.for_each_service([&](const Service& s) {
    CliCommand a;
    a.cmd = Command::kAddService;
    a.options = 1ULL << kOptService | 1ULL << kOptScheduler;
    a.service = s.key;
    a.svc_options = s.options;
    a.health_text = health::format_service_health(s.options.health);
    if (!a.health_text.empty()) a.options |= 1ULL << kOptHealth;
    v.push_back(a);
    // Oldest first, so that re-adding (each at the head) rebuilds the same list order.
    for (auto it = s.reals.rbegin(); it != s.reals.rend(); ++it) {
      const Real& r = services.real(*it);
      CliCommand d;
      d.cmd = Command::kAddReal;
      d.options = 1ULL << kOptService | 1ULL << kOptReal | 1ULL << kOptForward | 1ULL << kOptWeight;
      d.service = s.key;
      d.real = RealSpec{r.addr, r.port, r.fwd, r.dest.weight, r.health_override};
      d.real.tun = r.tun;
      d.real.u_threshold = r.u_threshold;
      d.real.l_threshold = r.l_threshold;
      if (!r.health_override.empty()) d.options |= 1ULL << kOptHealth;
      v.push_back(d);
    }
  });
  return v;
}

// A rule's refusal, naming its line (its own, else its place) and the rule, secrets redacted.
static Status at_line(const CliCommand& rule, size_t index, const Status& s) {
  return Status::error(s.code(), fmt::format("line {}: {}: {}", rule.line ? rule.line : index + 1,
                                             health::redact_secrets(join_args(canonical_args(rule))), s.message()));
}

Status apply_rules_atomically(const std::vector<CliCommand>& rules, ServiceTable& current,
                              Timeouts& timeouts) {
  ServiceTable scratch;
  Timeouts scratch_timeouts = timeouts;
  {
    ServiceTable::Batch batch(scratch);
    for (const auto& c : configuration_commands(current))
      if (Status s = execute(c, scratch, scratch_timeouts); !s.is_ok()) return s;
    for (size_t i = 0; i < rules.size(); ++i) {
      if (Status s = execute(rules[i], scratch, scratch_timeouts); !s.is_ok())
        return at_line(rules[i], i, s);
    }
  }
  ServiceTable::Batch batch(current);
  for (const auto& c : rules) {
    Status s = execute(c, current, timeouts);
    (void)s;  // proven to succeed by the dry run on an identical configuration
  }
  return Status::ok();
}

Status reload_rules(const std::vector<CliCommand>& rules, ServiceTable& live, Timeouts& timeouts,
                    size_t& changes, std::vector<std::string>* what) {
  changes = 0;
  auto say = [what](std::string line) {
    if (what) what->push_back(health::redact_secrets(line));
  };
  ServiceTable want;
  Timeouts want_timeouts;
  {
    ServiceTable::Batch batch(want);
    for (size_t i = 0; i < rules.size(); ++i) {
      if (Status s = execute(rules[i], want, want_timeouts); !s.is_ok())
        return at_line(rules[i], i, s);
    }
  }
  // Each side as -A/-a lines: equal lines mean equal definitions (health included).
  struct Side {
    std::map<std::string, std::string> service_line;          // "proto vip port" → -A line
    std::map<std::string, std::vector<CliCommand>> reals;     // ... → -a commands, oldest first
    std::map<std::string, std::unordered_map<RealEndpoint, size_t, RealEndpoint::Hash>> real_at;  // ... → index
  };
  auto endpoint = [](const CliCommand& c) { return RealEndpoint{c.real.addr, c.real.port}; };
  auto describe = [&](const ServiceTable& t) {
    Side side;
    for (const auto& c : configuration_commands(t)) {
      const std::string k = to_string(c.service);
      if (c.cmd == Command::kAddService) {
        side.service_line[k] = join_args(canonical_args(c));
      } else {
        side.real_at[k][endpoint(c)] = side.reals[k].size();
        side.reals[k].push_back(c);
      }
    }
    return side;
  };
  const Side have = describe(live), wanted = describe(want);
  auto find_real = [&](const Side& side, const std::string& k, const CliCommand& r) -> const CliCommand* {
    const auto m = side.real_at.find(k);
    if (m == side.real_at.end()) return nullptr;
    const auto at = m->second.find(endpoint(r));
    return at == m->second.end() ? nullptr : &side.reals.at(k)[at->second];
  };
  ServiceTable::Batch batch(live);
  auto applied = [&](Status s) {
    if (s.is_ok()) ++changes;  // checked on `want`: cannot fail here
  };
  // Services that go, with their reals (their connections end as with -D).
  std::vector<ServiceKey> gone;
  live.for_each_service([&](const Service& s) {
    if (!wanted.service_line.count(to_string(s.key))) gone.push_back(s.key);
  });
  for (const auto& k : gone) {
    say(fmt::format("-D {} {}:{}", protocol_info(k.protocol).flag, k.vip, k.port));
    applied(live.delete_service(k));
  }
  want.for_each_service([&](const Service& ws) {
    const std::string k = to_string(ws.key);
    static const std::vector<CliCommand> kNone;
    const auto wi = wanted.reals.find(k);
    const auto& want_reals = wi == wanted.reals.end() ? kNone : wi->second;
    if (!have.service_line.count(k)) {
      say(wanted.service_line.at(k));
      applied(live.add_service(ws.key, ws.options));
    } else if (have.service_line.at(k) != wanted.service_line.at(k)) {
      say("-E" + wanted.service_line.at(k).substr(2));
      applied(live.edit_service(ws.key, ws.options));
    }
    const auto hi = have.reals.find(k);
    const auto& have_reals = hi == have.reals.end() ? kNone : hi->second;
    for (const auto& hr : have_reals)
      if (!find_real(wanted, k, hr)) {
        say(fmt::format("-d {} {}:{} -r {}:{}", protocol_info(ws.key.protocol).flag, ws.key.vip, ws.key.port,
                        hr.real.addr, hr.real.port));
        applied(live.delete_real(ws.key, hr.real.addr, hr.real.port));
      }
    for (const auto& wr : want_reals) {
      const CliCommand* hr = find_real(have, k, wr);
      const std::string line = join_args(canonical_args(wr));
      if (!hr) {
        say(line);
        applied(live.add_real(ws.key, wr.real));
      } else if (join_args(canonical_args(*hr)) != line) {
        say("-e" + line.substr(2));
        applied(live.edit_real(ws.key, wr.real));
      }
    }
  });
  if (timeouts.tcp != want_timeouts.tcp || timeouts.tcpfin != want_timeouts.tcpfin ||
      timeouts.udp != want_timeouts.udp || timeouts.sysctl != want_timeouts.sysctl) {
    if (timeouts.tcp != want_timeouts.tcp || timeouts.tcpfin != want_timeouts.tcpfin || timeouts.udp != want_timeouts.udp)
      say(fmt::format("--set {} {} {}", want_timeouts.tcp, want_timeouts.tcpfin, want_timeouts.udp));
    if (timeouts.sysctl != want_timeouts.sysctl)
      for (const std::string& a : changed_sysctls(want_timeouts.sysctl)) say("--lbd-sysctl " + a);
    timeouts = want_timeouts;
    ++changes;
  }
  return Status::ok();
}

}  // namespace lbd

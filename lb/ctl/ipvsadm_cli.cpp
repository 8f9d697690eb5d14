// ipvsadm's command-line grammar and checks; see ipvsadm_cli.hpp.
#include "lb/ctl/ipvsadm_cli.hpp"

#include <algorithm>

#include <cctype>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lbd {
namespace {

const char* const kOptNames[kOptCount] = {
    "numeric", "connection", "service-address", "scheduler", "persistent", "netmask",
    "real-server", "forwarding-method", "weight", "u-threshold", "l-threshold",
    "mcast-interface", "timeout", "daemon", "stats", "rate", "thresholds", "persistent-conn",
    "nosort", "syncid", "exact", "ops", "pe", "sched-flags", "mcast-group", "mcast-port",
    "mcast-ttl", "sync-maxlen", "tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum",
    "tun-remcsum", "health"};

const char* const kCmdNames[] = {"",        "add-service",   "edit-service", "delete-service",
                                 "flush",   "list",          "add-server",   "delete-server",
                                 "edit-server", "set",       "start-daemon", "stop-daemon",
                                 "restore", "save",          "zero",         "lbd-sysctl"};

// ipvsadm's commands_v_options: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
//                                   n c s s p M r f w x y m t d s r t p s s e o p b g p t s t t t n c r h
const char* const kMatrix[] = {
    /*ADD*/     "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx ",
    /*EDIT*/    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx ",
    /*DEL*/     "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*FLUSH*/   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*LIST*/    " 11xxxxxxxxx11       xxxxxxx xxxxxx",
    /*ADDSRV*/  "xx+xxx+    xxxxxxxxxxxxxxxxxx      ",
    /*DELSRV*/  "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*EDITSRV*/ "xx+xxx+    xxxxxxxxxxxxxxxxxx      ",
    /*TIMEOUT*/ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*STARTD*/  "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxx",
    /*STOPD*/   "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxx",
    /*RESTORE*/ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*SAVE*/    " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*ZERO*/    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*SYSCTL*/  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
};
static_assert(sizeof(kMatrix) / sizeof(kMatrix[0]) == 15);

enum class Arg { kNone, kRequired, kOptional };

struct OptDef {
  char short_name;  // 0 = long only
  const char* long_name;
  Arg arg;
  Command cmd;      // kNone for options
  int opt;          // Opt bit, or -1 (no bit: --sort, -6 handled apart)
};

constexpr OptDef kDefs[] = {
    {'A', "add-service", Arg::kNone, Command::kAddService, -1},
    {'E', "edit-service", Arg::kNone, Command::kEditService, -1},
    {'D', "delete-service", Arg::kNone, Command::kDeleteService, -1},
    {'C', "clear", Arg::kNone, Command::kFlush, -1},
    {'L', "list", Arg::kNone, Command::kList, -1},
    {'l', nullptr, Arg::kNone, Command::kList, -1},
    {'a', "add-server", Arg::kNone, Command::kAddReal, -1},
    {'e', "edit-server", Arg::kNone, Command::kEditReal, -1},
    {'d', "delete-server", Arg::kNone, Command::kDeleteReal, -1},
    {'R', "restore", Arg::kNone, Command::kRestore, -1},
    {'S', "save", Arg::kNone, Command::kSave, -1},
    {'Z', "zero", Arg::kNone, Command::kZero, -1},
    {0, "set", Arg::kNone, Command::kSetTimeout, -1},
    {0, "start-daemon", Arg::kRequired, Command::kStartDaemon, -1},
    {0, "stop-daemon", Arg::kRequired, Command::kStopDaemon, -1},
    {0, "lbd-sysctl", Arg::kOptional, Command::kSetSysctl, -1},
    {'h', "help", Arg::kNone, Command::kHelp, -1},
    {'v', "version", Arg::kNone, Command::kVersion, -1},
    {'t', "tcp-service", Arg::kRequired, Command::kNone, kOptService},
    {'u', "udp-service", Arg::kRequired, Command::kNone, kOptService},
    {0, "sctp-service", Arg::kRequired, Command::kNone, kOptService},
    {'f', "fwmark-service", Arg::kRequired, Command::kNone, kOptService},
    {'s', "scheduler", Arg::kRequired, Command::kNone, kOptScheduler},
    {'p', "persistent", Arg::kOptional, Command::kNone, kOptPersistent},
    {'M', "netmask", Arg::kRequired, Command::kNone, kOptNetmask},
    {'r', "real-server", Arg::kRequired, Command::kNone, kOptReal},
    {'g', "gatewaying", Arg::kNone, Command::kNone, kOptForward},
    {'i', "ipip", Arg::kNone, Command::kNone, kOptForward},
    {'m', "masquerading", Arg::kNone, Command::kNone, kOptForward},
    {'w', "weight", Arg::kRequired, Command::kNone, kOptWeight},
    {'x', "u-threshold", Arg::kRequired, Command::kNone, kOptUThreshold},
    {'y', "l-threshold", Arg::kRequired, Command::kNone, kOptLThreshold},
    {'n', "numeric", Arg::kNone, Command::kNone, kOptNumeric},
    {'c', "connection", Arg::kNone, Command::kNone, kOptConnection},
    {0, "mcast-interface", Arg::kRequired, Command::kNone, kOptMcastIfn},
    {0, "timeout", Arg::kNone, Command::kNone, kOptTimeout},
    {0, "daemon", Arg::kNone, Command::kNone, kOptDaemon},
    {0, "stats", Arg::kNone, Command::kNone, kOptStats},
    {0, "rate", Arg::kNone, Command::kNone, kOptRate},
    {0, "thresholds", Arg::kNone, Command::kNone, kOptThresholds},
    {0, "persistent-conn", Arg::kNone, Command::kNone, kOptPersistentConn},
    {0, "sort", Arg::kNone, Command::kNone, -1},
    {0, "nosort", Arg::kNone, Command::kNone, kOptNoSort},
    {0, "syncid", Arg::kRequired, Command::kNone, kOptSyncId},
    {'X', "exact", Arg::kNone, Command::kNone, kOptExact},
    {'o', "ops", Arg::kNone, Command::kNone, kOptOps},
    {0, "pe", Arg::kRequired, Command::kNone, kOptPe},
    {'b', "sched-flags", Arg::kRequired, Command::kNone, kOptSchedFlags},
    {0, "mcast-group", Arg::kRequired, Command::kNone, kOptMcastGroup},
    {0, "mcast-port", Arg::kRequired, Command::kNone, kOptMcastPort},
    {0, "mcast-ttl", Arg::kRequired, Command::kNone, kOptMcastTtl},
    {0, "sync-maxlen", Arg::kRequired, Command::kNone, kOptSyncMaxlen},
    {0, "tun-info", Arg::kNone, Command::kNone, kOptTunInfo},
    {0, "tun-type", Arg::kRequired, Command::kNone, kOptTunType},
    {0, "tun-port", Arg::kRequired, Command::kNone, kOptTunPort},
    {0, "tun-nocsum", Arg::kNone, Command::kNone, kOptTunNoCsum},
    {0, "tun-csum", Arg::kNone, Command::kNone, kOptTunCsum},
    {0, "tun-remcsum", Arg::kNone, Command::kNone, kOptTunRemCsum},
    {0, "health", Arg::kRequired, Command::kNone, kOptHealth},
    {'6', "ipv6", Arg::kNone, Command::kNone, -1},
};

bool parse_uint(const std::string& s, uint64_t max, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > max) return false;
  out = v;
  return true;
}

// "host[:port]" as ipvsadm's parse_service(): an all-digit string is not a host.
// ipvsadm's parse_service(): "[2001:db8::1]:80" (brackets need a port), "2001:db8::1" (an
// IPv6 address alone), or "host[:port]" (IPv4, or a name the resolver turns into one).
bool parse_addr_port(const std::string& s, const NameLookup& names, IpAddr& addr,
                     uint16_t& port, bool& has_port) {
  if (s.empty() || s.find_first_not_of("0123456789") == std::string::npos) return false;
  std::string host = s, portstr;
  has_port = false;
  if (s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    portstr = s.substr(close + 2);
    has_port = true;
    if (!parse_ip(host, addr) || !addr.v6()) return false;
  } else if (parse_ip(s, addr) && addr.v6()) {
    host.clear();
  } else {
    const auto colon = s.rfind(':');
    has_port = colon != std::string::npos;
    if (has_port) {
      host = s.substr(0, colon);
      portstr = s.substr(colon + 1);
    }
    if (host.empty() || host.find_first_not_of("0123456789") == std::string::npos) return false;
    Ipv4 v4;
    if (!parse_ipv4(host, v4) && !(names.host && names.host(host, v4))) return false;
    addr = v4;
  }
  port = 0;
  if (has_port) {
    uint64_t v;
    if (parse_uint(portstr, 65535, v)) {
      port = uint16_t(v);
    } else {
      const auto named = names.service ? names.service(portstr) : std::nullopt;
      if (!named) return false;
      port = *named;
    }
  }
  return true;
}

// C's atoi() as ipvsadm reads an IPv6 -M: leading blanks, a sign, the digits that follow.
long c_atoi(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  long v = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && v < 1000000; ++i) v = v * 10 + (s[i] - '0');
  return neg ? -v : v;
}

struct Parser {
  const std::string& prog;
  const NameLookup& names;
  CliCommand c;
  std::vector<std::string> positional;
  std::string svc_text, real_text;
  uint8_t svc_proto = 0;
  bool real_has_port = false;
  std::string sched_flags_arg;
  bool reading_stream = false;  // a rules stream: messages also name the token (no argv to look at)
  // Every step returns false to stop: with `error` set (ipvsadm's message and exit code),
  // or with `done` (-h and -v act at once, as popt's callbacks do).
  std::optional<CliError> error;
  bool done = false;

  [[nodiscard]] bool fail(int code, std::string msg) {
    error = CliError{code, std::move(msg)};
    return false;
  }
  // ipvsadm's message, and in a rules stream the token it is about.
  [[nodiscard]] bool fail_at(int code, const char* msg, const std::string& token) {
    return fail(code, reading_stream ? fmt::format("{}: `{}'", msg, token) : std::string(msg));
  }

  // ipvsadm parse_sched_flags(): checked against -s (wlc when none) once all are read.
  // sh-fallback and mh-fallback are flag-1, sh-port and mh-port flag-2.
  [[nodiscard]] bool parse_sched_flags() {
    const std::string& sched = c.svc_options.scheduler;
    uint8_t flags = 0;
    std::string_view rest = sched_flags_arg;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string f(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (f.empty()) continue;  // strtok skips empty fields
      if (f == "flag-1") flags |= kSchedFlag1;
      else if (f == "flag-2") flags |= kSchedFlag2;
      else if (f == "flag-3") flags |= kSchedFlag3;
      else if (f == "sh-fallback" || f == "sh-port" || f == "mh-fallback" || f == "mh-port") {
        if (sched != f.substr(0, 2)) return fail(2, fmt::format("incompatible scheduler flag `{}'", f));
        flags |= f.ends_with("port") ? kSchedFlag2 : kSchedFlag1;
      } else {
        return fail(2, fmt::format("invalid scheduler flag `{}'", f));
      }
    }
    c.svc_options.sched_flags = flags;
    return true;
  }

  [[nodiscard]] bool set_command(Command cmd) {
    if (c.cmd != Command::kNone) return fail(2, "multiple commands specified");
    c.cmd = cmd;
    return true;
  }
  [[nodiscard]] bool set_option(int opt) {
    if (c.has(Opt(opt))) return fail(2, fmt::format("multiple '{}' options specified", kOptNames[opt]));
    c.options |= uint64_t(1) << opt;
    return true;
  }

  [[nodiscard]] bool apply(const OptDef& d, const std::string& name, const std::optional<std::string>& arg) {
    if (d.cmd != Command::kNone) {
      if (d.cmd == Command::kHelp || d.cmd == Command::kVersion) {
        c.cmd = d.cmd;
        done = true;  // -h / -v act at once, as popt's callbacks do
        return false;
      }
      if (!set_command(d.cmd)) return false;
      if (d.cmd == Command::kSetSysctl && arg) {
        Sysctls scratch;
        if (const Status st = set_sysctl(scratch, *arg); !st.is_ok()) return fail(2, st.message());
        c.sysctl = *arg;
      }
      if (d.cmd == Command::kStartDaemon || d.cmd == Command::kStopDaemon) {
        c.daemon_state = *arg;
        if (*arg != "master" && *arg != "backup")
          return fail(2, d.cmd == Command::kStartDaemon ? "illegal start-daemon parameter specified"
                                                        : "illegal start_daemon specified");
      }
      return true;
    }
    if (d.opt < 0) {
      if (std::strcmp(d.long_name, "ipv6") == 0) {
        // ipvsadm: -6 makes the fwmark service IPv6, and must follow -f.
        if (c.fwmark == 0) return fail(2, "-6 used before -f\n");
        c.service.vip = IpAddr(Ipv6{});
        return true;
      }
      return true;  // --sort: accepted and ignored, as ipvsadm does
    }
    if (!set_option(d.opt)) return false;
    uint64_t v = 0;
    switch (d.opt) {
      case kOptService:
        if (name == "f" || name == "fwmark-service") {
          if (!parse_uint(*arg, 0xffffffffULL, v) || v == 0)
            return fail(2, fmt::format("invalid fwmark value `{}' specified", *arg));
          c.fwmark = uint32_t(v);
          c.service = fwmark_key(c.fwmark);  // ipvsadm: protocol TCP, no address, no port
        } else {
          svc_proto = (name == "t" || name == "tcp-service") ? kProtoTcp
                      : (name == "u" || name == "udp-service") ? kProtoUdp : kProtoSctp;
          svc_text = *arg;
          bool has_port;
          if (!parse_addr_port(*arg, names, c.service.vip, c.service.port, has_port))
            return fail_at(2, "illegal virtual server address[:port] specified", *arg);
          c.service.protocol = svc_proto;
        }
        break;
      case kOptScheduler: c.svc_options.scheduler = *arg; break;
      case kOptPersistent:
        c.svc_options.persistent = 360;  // IPVS_SVC_PERSISTENT_TIMEOUT
        if (arg) {
          if (!parse_uint(*arg, 2678400, v) || v == 0)
            return fail(2, fmt::format("invalid timeout value `{}' specified", *arg));
          c.svc_options.persistent = uint32_t(v);
        }
        break;
      case kOptNetmask: {
        // As ipvsadm: a prefix length when the service given so far is IPv6, a mask otherwise.
        if (c.service.vip.v6()) {
          const long prefix = c_atoi(*arg);
          if (prefix < 1 || prefix > 128) return fail(2, "illegal ipv6 netmask specified");
          c.svc_options.netmask6 = uint8_t(prefix);
          break;
        }
        Ipv4 mask;
        if (!parse_ipv4(*arg, mask) && !(names.host && names.host(*arg, mask)))
          return fail(2, "illegal virtual server persistent mask specified");
        c.svc_options.netmask = mask;
        break;
      }
      case kOptOps: c.svc_options.ops = true; break;
      case kOptPe: c.pe = *arg; break;
      case kOptSchedFlags: sched_flags_arg = *arg; break;
      case kOptReal:
        real_text = *arg;
        if (!parse_addr_port(*arg, names, c.real.addr, c.real.port, real_has_port))
          return fail_at(2, "illegal real server address[:port] specified", *arg);
        break;
      case kOptForward:
        c.real.fwd = *fwd_from_name(name);  // the table's -g/-i/-m rows are kFwdMethods
        break;
      case kOptWeight:
        if (!parse_uint(*arg, 65535, v)) return fail(2, "illegal weight specified");
        c.real.weight = int32_t(v);
        break;
      case kOptUThreshold:
        if (!parse_uint(*arg, 0x7fffffff, v)) return fail(2, "illegal u_threshold specified");
        c.real.u_threshold = uint32_t(v);
        break;
      case kOptLThreshold:
        if (!parse_uint(*arg, 0x7fffffff, v)) return fail(2, "illegal l_threshold specified");
        c.real.l_threshold = uint32_t(v);
        break;
      case kOptTunType:
        if (const auto t = tun_type_from_name(*arg)) c.real.tun.type = *t;
        else return fail(2, "illegal tunnel type specified");
        break;
      case kOptTunPort:
        if (!parse_uint(*arg, 65535, v) || v == 0) return fail(2, "illegal tunnel port specified");
        c.real.tun.port = uint16_t(v);
        break;
      case kOptTunNoCsum: break;  // IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM is 0: the default
      case kOptTunCsum: c.real.tun.csum = TunCsum::kCsum; break;
      case kOptTunRemCsum: c.real.tun.csum = TunCsum::kRemCsum; break;
      case kOptHealth: c.health_text = *arg; break;
      case kOptSyncId:
        if (!parse_uint(*arg, 255, v)) return fail(2, "illegal syncid specified");
        c.daemon.syncid = uint8_t(v);
        break;
      case kOptMcastIfn:
        if (arg->empty() || arg->size() >= 16) return fail(2, "illegal mcast-interface specified");
        c.daemon.mcast_ifn = *arg;
        break;
      case kOptSyncMaxlen:
        if (!parse_uint(*arg, 65535 - 20 - 8, v) || v == 0) return fail(2, "illegal sync-maxlen specified");
        c.daemon.maxlen = uint32_t(v);
        break;
      case kOptMcastGroup: {
        Ipv4 g;
        if (arg->find(':') != std::string::npos)
          return fail(2, "lbd supports IPv4 services only: an IPv6 mcast-group is not available yet");
        if (!parse_ipv4(*arg, g) || (g.b[0] & 0xf0) != 0xe0)
          return fail(2, fmt::format("invalid IPv4 mcast-group `{}'", *arg));
        c.daemon.group = g;
        break;
      }
      case kOptMcastPort:
        if (!parse_uint(*arg, 65535, v) || v == 0) return fail(2, "illegal mcast-port specified");
        c.daemon.port = uint16_t(v);
        break;
      case kOptMcastTtl:
        if (!parse_uint(*arg, 255, v) || v == 0) return fail(2, "illegal mcast-ttl specified");
        c.daemon.ttl = uint8_t(v);
        break;
      default: break;
    }
    return true;
  }

  const OptDef* find_short(char ch) {
    for (const auto& d : kDefs)
      if (d.short_name == ch) return &d;
    return nullptr;
  }
  const OptDef* find_long(const std::string& n) {
    for (const auto& d : kDefs)
      if (d.long_name && n == d.long_name) return &d;
    return nullptr;
  }

  [[nodiscard]] bool parse(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a.size() > 2 && a[0] == '-' && a[1] == '-') {
        std::string name = a.substr(2);
        std::optional<std::string> val;
        if (auto eq = name.find('='); eq != std::string::npos) {
          val = name.substr(eq + 1);
          name = name.substr(0, eq);
        }
        const OptDef* d = find_long(name);
        if (!d) return fail(255, fmt::format("{}: unknown option", a));
        if (d->arg == Arg::kRequired && !val) {
          if (i + 1 >= args.size()) return fail(255, fmt::format("{}: missing argument", a));
          val = args[++i];
        } else if (d->arg == Arg::kOptional && !val && i + 1 < args.size() &&
                   !args[i + 1].empty() && args[i + 1][0] != '-') {
          val = args[++i];
        } else if (d->arg == Arg::kNone && val) {
          return fail(255, fmt::format("{}: option does not take an argument", a));
        }
        if (!apply(*d, name, val)) return false;
      } else if (a.size() > 1 && a[0] == '-') {
        for (size_t k = 1; k < a.size(); ++k) {
          const OptDef* d = find_short(a[k]);
          if (!d) return fail(255, fmt::format("-{}: unknown option", a[k]));
          std::optional<std::string> val;
          if (d->arg != Arg::kNone) {
            if (k + 1 < a.size()) {
              val = a.substr(k + 1);
            } else if (i + 1 < args.size() &&
                       (d->arg == Arg::kRequired || (!args[i + 1].empty() && args[i + 1][0] != '-'))) {
              val = args[++i];
            } else if (d->arg == Arg::kRequired) {
              return fail(255, fmt::format("-{}: missing argument", a[k]));
            }
            if (!apply(*d, std::string(1, a[k]), val)) return false;
            break;
          }
          if (!apply(*d, std::string(1, a[k]), val)) return false;
        }
      } else {
        positional.push_back(a);
      }
    }
    return true;
  }

  // ipvsadm's tunnel_opt_check(): its tunnel_types_v_options table, rows ipip, gue, gre;
  // columns --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum ('+' compulsory, 'x'
  // illegal, '1' at most one of them).
  [[nodiscard]] bool check_tunnel_options() {
    static constexpr std::array<std::array<char, 4>, 3> kTunnelMatrix = {{
        {'x', 'x', 'x', 'x'},
        {'+', '1', '1', '1'},
        {'x', '1', '1', 'x'},
    }};
    static constexpr std::array<Opt, 4> kTunnelOpts = {kOptTunPort, kOptTunNoCsum, kOptTunCsum, kOptTunRemCsum};
    return check_row(kTunnelMatrix[uint8_t(c.real.tun.type)].data(), kTunnelOpts,
                     fmt::format("'{}' tunnel type", tun_type_name(c.real.tun.type)));
  }

  // One row of a legality matrix ('+' compulsory, 'x' illegal, '1' at most one of them) over
  // `opts`, with ipvsadm's messages about `subject` ("'add-service' command").
  [[nodiscard]] bool check_row(const char* row, std::span<const Opt> opts, const std::string& subject) {
    int last = -1;
    for (size_t j = 0; j < opts.size(); ++j) {
      const Opt k = opts[j];
      if (!c.has(k)) {
        if (row[j] == '+')
          return fail(2, fmt::format("You need to supply the '{}' option for the {}", kOptNames[k], subject));
        continue;
      }
      if (row[j] == 'x') return fail(2, fmt::format("Illegal '{}' option with the {}", kOptNames[k], subject));
      if (row[j] == '1') {
        if (last < 0) {
          last = k;
          continue;
        }
        return fail(2, fmt::format("The option '{}' conflicts with the '{}' option in the {}", kOptNames[k],
                                   kOptNames[last], subject));
      }
    }
    return true;
  }

  [[nodiscard]] bool check() {
    if (c.cmd == Command::kNone)
      return fail(255, fmt::format("Try `{0} -h' or '{0} --help' for more information.", prog));
    if (c.cmd == Command::kSetTimeout) {
      if (positional.size() != 3) return fail(2, "--set option requires 3 timeout values");
      uint32_t* dst[] = {&c.timeouts.tcp, &c.timeouts.tcpfin, &c.timeouts.udp};
      for (size_t k = 0; k < 3; ++k) {
        uint64_t v;
        if (!parse_uint(positional[k], 2678400, v))
          return fail(2, fmt::format("invalid timeout value `{}' specified", positional[k]));
        *dst[k] = uint32_t(v);
      }
      positional.clear();
    }
    if (!positional.empty()) return fail(2, fmt::format("unexpected argument {}", positional[0]));
    if (!sched_flags_arg.empty() && !parse_sched_flags()) return false;

    // generic_opt_check()
    static constexpr auto kAllOpts = [] {
      std::array<Opt, kOptCount> a{};
      for (int k = 0; k < kOptCount; ++k) a[size_t(k)] = Opt(k);
      return a;
    }();
    if (!check_row(kMatrix[int(c.cmd) - 1], kAllOpts, fmt::format("'{}' command", kCmdNames[int(c.cmd)])))
      return false;
    const uint64_t kConnTimeoutDaemon =
        1ULL << kOptConnection | 1ULL << kOptTimeout | 1ULL << kOptDaemon;
    const uint64_t kStatsRateThr = 1ULL << kOptStats | 1ULL << kOptRate | 1ULL << kOptThresholds;
    const uint64_t kTimeoutDaemon = 1ULL << kOptTimeout | 1ULL << kOptDaemon;
    if (c.cmd == Command::kList &&
        (((c.options & kConnTimeoutDaemon) && (c.options & kStatsRateThr)) ||
         ((c.options & kTimeoutDaemon) && c.has(kOptPersistentConn))))
      return fail(2, "options conflicts in the list command");

    if ((c.cmd == Command::kAddService || c.cmd == Command::kEditService) &&
        c.service.port == 0 && c.fwmark == 0 && !c.has(kOptPersistent))
      return fail(2, "Zero port specified for non-persistent service");
    if (c.has(kOptOps) && c.service.protocol != kProtoUdp && c.fwmark == 0)
      return fail(2, "One-Packet Scheduling is only for UDP virtual services");
    if ((c.options >> kOptTunType & 0x1f) && c.real.fwd != FwdMethod::kTunnel)
      return fail(2, "Tunnel options conflict with forward method");
    if ((c.cmd == Command::kAddReal || c.cmd == Command::kEditReal) && !check_tunnel_options()) return false;
    if ((c.cmd == Command::kAddReal || c.cmd == Command::kEditReal) && c.real.addr.v6() != c.service.vip.v6() &&
        c.real.fwd != FwdMethod::kTunnel)
      return fail(2, "Different address family is allowed only for tunneling servers");
    if (c.has(kOptHealth)) {
      const bool real = c.cmd == Command::kAddReal || c.cmd == Command::kEditReal;
      const bool inherit = c.cmd == Command::kEditReal && c.health_text == "inherit";
      if (inherit) {
        c.real.health = std::string();  // given, and empty: no override
      } else if (real) {
        auto canonical = health::parse_real_health(c.health_text);
        if (!canonical) return fail(2, "illegal health specification: " + canonical.message());
        c.real.health = std::move(canonical).value();
      } else if (const auto parsed = health::parse_service_health(c.health_text); !parsed) {
        return fail(2, "illegal health specification: " + parsed.message());
      }
    }

    if (c.cmd == Command::kAddReal || c.cmd == Command::kEditReal ||
        c.cmd == Command::kDeleteReal) {
      // ipvsadm: port omitted = the service's; DR and TUN cannot map ports.
      if (!real_has_port || (c.fwmark == 0 && c.real.fwd != FwdMethod::kMasq))
        c.real.port = c.service.port;
    }
    return true;
  }
};

}  // namespace

std::variant<CliCommand, CliError> parse_command(const std::vector<std::string>& in,
                                                 const std::string& prog,
                                                 const NameLookup& names,
                                                 bool reading_stream) {
  std::vector<std::string> args;
  for (const auto& a : in)
    if (!reading_stream || (a != "ipvsadm" && a != "lbadm")) args.push_back(a);
  Parser p{.prog = prog, .names = names, .reading_stream = reading_stream};
  if (args.empty()) {  // ipvsadm alone lists the table
    p.c.cmd = Command::kList;
    return p.c;
  }
  if (!p.parse(args)) return p.done ? std::variant<CliCommand, CliError>(p.c) : *p.error;
  if (reading_stream && p.c.cmd == Command::kRestore)
    return CliError{255, fmt::format("Try `{0} -h' or '{0} --help' for more information.", prog)};
  if (!p.check()) return *p.error;
  return p.c;
}

void append_service_flags(std::vector<std::string>& a, const ServiceOptions& o, const std::string& pe,
                          const std::optional<std::string>& health) {
  a.insert(a.end(), {"-s", o.scheduler});
  if (o.persistent) {
    a.insert(a.end(), {"-p", std::to_string(o.persistent)});
    if (o.netmask != kHostNetmask) a.insert(a.end(), {"-M", to_string(o.netmask)});
    if (o.netmask6 != 128) a.insert(a.end(), {"-M", std::to_string(o.netmask6)});  // an IPv6 service's prefix
  }
  if (!pe.empty()) a.insert(a.end(), {"--pe", pe});
  if (o.ops) a.push_back("-o");
  if (o.sched_flags) a.insert(a.end(), {"-b", sched_flags_text(o.scheduler, o.sched_flags)});
  if (health) a.insert(a.end(), {"--health", *health});
}

void append_real_flags(std::vector<std::string>& a, const RealSpec& r, const std::optional<std::string>& health) {
  a.insert(a.end(), {std::string("-") + fwd_info(r.fwd).flag, "-w", std::to_string(r.weight)});
  // ipvsadm's print_tunnel_rule(): the type always; GUE's port; GUE's and GRE's checksum.
  if (r.fwd == FwdMethod::kTunnel) {
    a.insert(a.end(), {"--tun-type", tun_type_name(r.tun.type)});
    if (r.tun.type == TunType::kGue) a.insert(a.end(), {"--tun-port", std::to_string(r.tun.port)});
    if (r.tun.type != TunType::kIpip) a.push_back(std::string("--") + kTunCsumOptions[uint8_t(r.tun.csum)]);
  }
  if (r.u_threshold) a.insert(a.end(), {"-x", std::to_string(r.u_threshold)});
  if (r.l_threshold) a.insert(a.end(), {"-y", std::to_string(r.l_threshold)});
  if (health) a.insert(a.end(), {"--health", *health});
}

std::vector<std::string> canonical_args(const CliCommand& c) {
  std::vector<std::string> a;
  auto svc = [&] {
    if (c.service.fwmark) {
      a.push_back("-f");
      a.push_back(std::to_string(c.service.fwmark));
      if (c.service.vip.v6()) a.push_back("-6");
      return;
    }
    a.push_back(protocol_info(c.service.protocol).flag);
    a.push_back(addr_port(c.service.vip, c.service.port));
  };
  auto real = [&] {
    a.push_back("-r");
    a.push_back(addr_port(c.real.addr, c.real.port));
  };
  switch (c.cmd) {
    case Command::kAddService:
    case Command::kEditService:
      a.push_back(c.cmd == Command::kAddService ? "-A" : "-E");
      svc();
      // --health as given: -E changes only the keys it names.
      append_service_flags(a, c.svc_options, c.pe, c.has(kOptHealth) ? std::optional(c.health_text) : std::nullopt);
      break;
    case Command::kDeleteService: a.push_back("-D"); svc(); break;
    case Command::kFlush: a.push_back("-C"); break;
    case Command::kAddReal:
    case Command::kEditReal:
      a.push_back(c.cmd == Command::kAddReal ? "-a" : "-e");
      svc();
      real();
      append_real_flags(a, c.real,
                        c.has(kOptHealth) && c.real.health
                            ? std::optional(c.real.health->empty() ? std::string("inherit") : *c.real.health)
                            : std::nullopt);
      break;
    case Command::kDeleteReal: a.push_back("-d"); svc(); real(); break;
    case Command::kZero:
      a.push_back("-Z");
      if (c.has(kOptService)) svc();
      break;
    case Command::kSetSysctl:
      a.push_back("--lbd-sysctl");
      if (!c.sysctl.empty()) a.push_back(c.sysctl);
      break;
    case Command::kStartDaemon:
      a.insert(a.end(), {"--start-daemon", c.daemon_state, "--mcast-interface", c.daemon.mcast_ifn, "--syncid",
                         std::to_string(c.daemon.syncid)});
      if (c.daemon.maxlen) a.insert(a.end(), {"--sync-maxlen", std::to_string(c.daemon.maxlen)});
      a.insert(a.end(), {"--mcast-group", to_string(c.daemon.group), "--mcast-port", std::to_string(c.daemon.port),
                         "--mcast-ttl", std::to_string(c.daemon.ttl)});
      break;
    case Command::kStopDaemon: a.insert(a.end(), {"--stop-daemon", c.daemon_state}); break;
    case Command::kSetTimeout:
      a.push_back("--set");
      a.push_back(std::to_string(c.timeouts.tcp));
      a.push_back(std::to_string(c.timeouts.tcpfin));
      a.push_back(std::to_string(c.timeouts.udp));
      break;
    default: break;
  }
  return a;
}

std::string join_args(const std::vector<std::string>& args, char sep) {
  return fmt::format("{}", fmt::join(args, std::string_view(&sep, 1)));
}

std::vector<std::string> split_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : line) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string usage_text(const std::string& prog) {
  // ipvsadm 1.31's usage_exit() wording; lbd's own commands and options marked "[lbd]".
  return fmt::format(
      "lbadm v0.1.0 (ipvsadm v1.31 compatible, lbd userspace IPVS v1.2.1)\n"
      "Usage:\n"
      "  {0} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n"
      "  {0} -D virtual-service\n"
      "  {0} -C\n"
      "  {0} -R\n"
      "  {0} -S [-n]\n"
      "  {0} -a|e virtual-service -r server-address [options]\n"
      "  {0} -d virtual-service -r server-address\n"
      "  {0} -L|l [virtual-service] [options]\n"
      "  {0} -Z [virtual-service]\n"
      "  {0} --set tcp tcpfin udp\n"
      "  {0} --start-daemon {{master|backup}} [daemon-options]\n"
      "  {0} --stop-daemon {{master|backup}}\n"
      "  {0} --lbd-sysctl [NAME=VALUE]\n"
      "  {0} --lbd-counters|--lbd-health [--json]\n"
      "  {0} --from-keepalived FILE\n"
      "  {0} -h\n"
      "\n"
      "Commands:\n"
      "Either long or short options are allowed.\n"
      "  --add-service     -A        add virtual service with options\n"
      "  --edit-service    -E        edit virtual service with options\n"
      "  --delete-service  -D        delete virtual service\n"
      "  --clear           -C        clear the whole table\n"
      "  --restore         -R        restore rules from stdin\n"
      "  --save            -S        save rules to stdout\n"
      "  --add-server      -a        add real server with options\n"
      "  --edit-server     -e        edit real server with options\n"
      "  --delete-server   -d        delete real server\n"
      "  --list            -L|-l     list the table\n"
      "  --zero            -Z        zero counters in a service or all services\n"
      "  --set tcp tcpfin udp        set connection timeout values\n"
      "  --start-daemon              start connection sync daemon\n"
      "  --stop-daemon               stop connection sync daemon\n"
      "  --lbd-sysctl [NAME=VALUE]   [lbd] set one of IPVS's sysctls (sloppy_tcp, expire_nodest_conn,\n"
      "                              expire_quiescent_template, conn_reuse_mode, nat_icmp_send, ...),\n"
      "                              or list them all; -S saves them\n"
      "  --lbd-counters              [lbd] lbd's counters: forwarding, drops by reason, health, workers\n"
      "  --lbd-health                [lbd] each real's health: state, since when, last check and result\n"
      "  --from-keepalived FILE      [lbd] print keepalived.conf's virtual servers as lbd rules\n"
      "  --help            -h        display this help message\n"
      "  --version         -v        display the version\n"
      "\n"
      "virtual-service:\n"
      "  --tcp-service|-t  service-address   service-address is host[:port]\n"
      "  --udp-service|-u  service-address   service-address is host[:port]\n"
      "  --sctp-service    service-address   service-address is host[:port] (refused: no SCTP in lbd)\n"
      "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n"
      "                                      [lbd: marked packets reach lbd by NFQUEUE, lbd(8)]\n"
      "\n"
      "Options:\n"
      "  --ipv6         -6                   fwmark entry uses IPv6\n"
      "  --scheduler    -s scheduler         one of {1},\n"
      "                                      the default scheduler is wlc.\n"
      "  --pe            engine              alternate persistence engine may be sip,\n"
      "                                      not set by default (refused: lbd has none).\n"
      "  --persistent   -p [timeout]         persistent service\n"
      "  --netmask      -M netmask           persistent granularity mask\n"
      "  --real-server  -r server-address    server-address is host (and port)\n"
      "  --gatewaying   -g                   gatewaying (direct routing) (default)\n"
      "  --ipip         -i                   ipip encapsulation (tunneling)\n"
      "  --masquerading -m                   masquerading (NAT)\n"
      "  --tun-type      type                one of ipip|gue|gre,\n"
      "                                      the default tunnel type is ipip.\n"
      "  --tun-port      port                tunnel destination port\n"
      "  --tun-nocsum                        tunnel encapsulation without checksum\n"
      "  --tun-csum                          tunnel encapsulation with checksum\n"
      "  --tun-remcsum                       tunnel encapsulation with remote checksum\n"
      "  --weight       -w weight            capacity of real server\n"
      "  --u-threshold  -x uthreshold        upper threshold of connections\n"
      "  --l-threshold  -y lthreshold        lower threshold of connections\n"
      "  --health        spec                [lbd] health check and failure handling, KEY=VALUE,...\n"
      "                                      (check=tcp|http|mysql|exec|none, interval=, timeout=,\n"
      "                                      rise=, fall=, port=, path=, status=, sorry=, ...; man lbadm)\n"
      "  --connection   -c                   output of current IPVS connections\n"
      "  --timeout                           output of timeout (tcp tcpfin udp)\n"
      "  --daemon                            output of daemon information\n"
      "  --stats                             output of statistics information\n"
      "  --rate                              output of rate information\n"
      "  --exact        -X                   expand numbers (display exact values)\n"
      "  --thresholds                        output of thresholds information\n"
      "  --persistent-conn                   output of persistent connection info\n"
      "  --tun-info                          output of tunnel information\n"
      "  --nosort                            disable sorting output of service/server entries\n"
      "  --sort                              does nothing, for backwards compatibility\n"
      "  --ops          -o                   one-packet scheduling\n"
      "  --numeric      -n                   numeric output of addresses and ports\n"
      "  --sched-flags  -b flags             scheduler flags (comma-separated)\n"
      "  --json                              [lbd] -L (with -c, --stats, --rate, --timeout, --daemon),\n"
      "                                      --lbd-counters and --lbd-health as JSON\n"
      "  --lbd-secrets                       [lbd] -S writes check passwords instead of <redacted>\n"
      "  --socket PATH                       [lbd] first argument: lbd's control socket\n"
      "                                      (default /run/lbd/lbd.sock, or $LBD_SOCKET)\n"
      "Daemon Options:\n"
      "  --syncid sid                        syncid for connection sync (default=255)\n"
      "  --sync-maxlen length                Max sync message length (default=1472)\n"
      "  --mcast-interface interface         multicast interface for connection sync\n"
      "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"
      "  --mcast-port port                   UDP port (default=8848)\n"
      "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
      prog, join_args(sched::scheduler_names(), '|'));
}

std::vector<std::pair<char, std::string>> parser_options() {
  std::vector<std::pair<char, std::string>> v;
  for (const OptDef& d : kDefs) v.emplace_back(d.short_name, d.long_name ? d.long_name : "");
  return v;
}

}  // namespace lbd

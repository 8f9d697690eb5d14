// ipvsadm's command line, parsed into a plain struct: the same parser serves lbadm's argv,
// each line of a rules file or `-R` input, and the daemon's control socket (which receives
// the canonical form that format_command() writes). Messages and exit codes are ipvsadm's
// (ipvsadm.c 1.31: popt table, commands_v_options, process_options). Pure: no I/O except
// through the injected name resolver.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "lb/core/service_table.hpp"
#include "lb/core/sync_message.hpp"
#include "lb/core/tcp_state.hpp"

namespace lbd {

enum class Command {
  kNone, kAddService, kEditService, kDeleteService, kFlush, kList, kAddReal, kDeleteReal,
  kEditReal, kSetTimeout, kStartDaemon, kStopDaemon, kRestore, kSave, kZero,
  kSetSysctl,  // lbd's extension: --lbd-sysctl NAME=VALUE (without one: lbadm lists them)
  kHelp, kVersion
};

// Options in ipvsadm's order (optnames[]); the legality matrix is indexed by these.
enum Opt : int {
  kOptNumeric, kOptConnection, kOptService, kOptScheduler, kOptPersistent, kOptNetmask,
  kOptReal, kOptForward, kOptWeight, kOptUThreshold, kOptLThreshold, kOptMcastIfn,
  kOptTimeout, kOptDaemon, kOptStats, kOptRate, kOptThresholds, kOptPersistentConn,
  kOptNoSort, kOptSyncId, kOptExact, kOptOps, kOptPe, kOptSchedFlags, kOptMcastGroup,
  kOptMcastPort, kOptMcastTtl, kOptSyncMaxlen, kOptTunInfo, kOptTunType, kOptTunPort,
  kOptTunNoCsum, kOptTunCsum, kOptTunRemCsum,
  kOptHealth,  // lbd's extension: --health KEY=VALUE,... on -A/-E/-a/-e
  kOptCount
};

struct CliCommand {
  Command cmd = Command::kNone;
  uint64_t options = 0;  // bit per Opt given
  bool has(Opt o) const { return options >> o & 1; }

  ServiceKey service;
  uint32_t fwmark = 0;   // -f (also in service.fwmark)
  ServiceOptions svc_options;  // -s -p -M -o -b (and --health)
  std::string pe;              // --pe (parsed; lbd has no persistence engine)
  RealSpec real;               // -r -g/-i/-m -w -x -y --tun-*
  Timeouts timeouts{0, 0, 0};  // --set; 0 = keep
  std::string health_text;     // --health, as given (validated for the command)
  std::string daemon_state;    // --start-daemon/--stop-daemon argument
  sync::DaemonSpec daemon;      // --mcast-interface, --syncid, --sync-maxlen, --mcast-*
  std::string sysctl;          // --lbd-sysctl NAME=VALUE (checked), or "" (list them)
  uint32_t line = 0;           // line number when read from a rules stream
};

struct CliError {
  int exit_code;        // 2: fail(); 255: popt errors and try-help
  std::string message;  // without the trailing newline
};

// The names a command may hold, resolved by the caller (lbadm and the rules file: the
// system's resolver, lb/ctl/names.hpp); either may be empty (numbers only).
using HostResolver = std::function<bool(const std::string& name, Ipv4& out)>;
using ServiceResolver = std::function<std::optional<uint16_t>(const std::string& name)>;
struct NameLookup {
  HostResolver host;        // "web-1" → an IPv4 address
  ServiceResolver service;  // "http" → 80 (ipvsadm: getservbyname)
};

// `args` excludes the program name; `prog` is used in messages ("Try `prog -h' ...").
// Tokens equal to "ipvsadm" or "lbadm" are dropped when reading a rules stream, as ipvsadm
// -R does.
std::variant<CliCommand, CliError> parse_command(const std::vector<std::string>& args,
                                                 const std::string& prog,
                                                 const NameLookup& names = {},
                                                 bool reading_stream = false);

// The canonical, numeric form of a command (ipvsadm -S lines for -A and -a), which
// parse_command() reads back to the same command.
std::vector<std::string> canonical_args(const CliCommand& c);
std::string join_args(const std::vector<std::string>& args, char sep = ' ');

// The words of an -A/-E line after the service, and of an -a/-e line after "-r REAL", in
// the order ipvsadm -S writes them: the one place that order is written, for the
// canonical form lbadm sends and for -S.
//   service: -s SCHED [-p T [-M MASK]] [--pe PE] [-o] [-b FLAGS], then lbd's --health H
//   real:    -g|-m|-i -w W [--tun-type T], then lbd's -x U -y L (ipvsadm -S drops them) and
//            --health H
// `health` is the text to write, or nothing.
void append_service_flags(std::vector<std::string>& a, const ServiceOptions& o, const std::string& pe,
                          const std::optional<std::string>& health);
void append_real_flags(std::vector<std::string>& a, const RealSpec& r,
                       const std::optional<std::string>& health);

// Splits a rules-file / -R line into tokens on blanks, tabs and CR.
std::vector<std::string> split_line(const std::string& line);

std::string usage_text(const std::string& prog);
// Every option the parser takes, (short or 0, long or ""): -h lists each (a test checks).
std::vector<std::pair<char, std::string>> parser_options();
// lbadm's own arguments, handled before the parser (lbadm_main.cpp); -h lists them too.
inline constexpr const char* kLbadmOwnOptions[] = {"--socket", "--lbd-secrets", "--json", "--lbd-counters",
                                                   "--lbd-health", "--from-keepalived"};

}  // namespace lbd

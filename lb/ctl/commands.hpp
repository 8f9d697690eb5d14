// Applies a parsed ipvsadm command to the service table: the single entry point shared by
// the control socket, the rules file and -R. Features lbd does not have yet are refused
// with ENOSYS and a message naming them, never silently ignored.
#pragma once

#include <cerrno>
#include <string>
#include <variant>
#include <vector>

#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/core/service_table.hpp"
#include "lb/base/status.hpp"
#include "lb/core/tcp_state.hpp"

namespace lbd {

// The code of a refusal by lbd's own checks (a health specification): lbadm prints the
// reason as it is, where IPVS's EINVAL would get libipvs's generic "Invalid operation".
constexpr int kLbdInvalid = EDOM;

Status execute(const CliCommand& cmd, ServiceTable& services, Timeouts& timeouts);

// A control request that is a command (lbadm's arguments, escaped as control_protocol
// encodes them): the command, or why not (EINVAL: a bad escape, or ipvsadm's message).
// `args` receives the decoded arguments (for the log).
std::variant<CliCommand, Status> parse_request(const std::string& req, std::vector<std::string>& args);

// Parses and checks a whole rules stream (ipvsadm -S format, blank lines and # comments
// allowed). All or nothing: on the first bad line returns an error naming its number, and
// `out` is unusable. Applying it to a table with the same configuration as the one it was
// checked against cannot fail. Host names resolve through `resolve` (none: numeric only).
Status parse_rules(const std::string& text, std::vector<CliCommand>& out,
                   const NameLookup& names = {});

// Checks `rules` by applying them to a copy of `current`'s configuration (the dry run),
// then applies them to `current`. Either every line takes effect or none does.
Status apply_rules_atomically(const std::vector<CliCommand>& rules, ServiceTable& current,
                              Timeouts& timeouts);

// The commands that rebuild `services` from empty (what -S prints, as commands).
std::vector<CliCommand> configuration_commands(const ServiceTable& services);

// Reload (SIGHUP): makes `live` what `rules` build from an empty table (timeouts from
// their defaults and the file's --set), changing only what differs, so services and reals
// that stay keep their connections, counters and scheduler state. `rules` are checked on a
// scratch table first: on error nothing changes. `changes` counts what was done.
// `what`, if given, receives each change as the command that makes it (-A/-E/-D, -a/-e/-d,
// --set, --lbd-sysctl), passwords redacted: a reload logs what it changed.
Status reload_rules(const std::vector<CliCommand>& rules, ServiceTable& live, Timeouts& timeouts,
                    size_t& changes, std::vector<std::string>* what = nullptr);

}  // namespace lbd

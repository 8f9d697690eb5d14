// ipvsadm's listings (-L, -L -c, --stats, --timeout, -S) rendered byte for byte from a
// Dump, with ipvsadm's printf formats, sorting and name resolution (injected: lbadm passes
// the system resolver, tests pass numeric-only).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "lb/base/status.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

namespace lbd {

struct NameResolver {
  // Host name for an address, or empty to print it numerically.
  std::function<std::string(Ipv4)> host;
  // Service name for a port and protocol ("tcp"/"udp"), or empty for the number.
  std::function<std::string(uint16_t, const char*)> service;
};

// ipvsadm's order of services and of reals (libipvs's compare functions, quirks included).
bool service_order(const DumpService& a, const DumpService& b);
bool real_order(const DumpReal& a, const DumpReal& b);

// The text lbadm prints for a list or save command, or why not ("No such service": a
// named service does not exist).
Result<std::string> render_listing(const CliCommand& cmd, const Dump& dump, const NameResolver& names);

}  // namespace lbd

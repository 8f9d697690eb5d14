// Fuzzes the server side of the control protocol: a client's bytes framed as lbd's
// ControlServer frames them (a line, or a RESTORE block), then taken as lbd takes a request
// (parse_request and execute, or a RESTORE's rules applied whole) on a table that already
// holds services and reals. Checked: no crash, and a refused request changes nothing — the
// table's configuration, written out as rules, is what it was.
#include <string>

#include "lb/ctl/commands.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/control_server.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

using namespace lbd;

namespace {

std::string configuration(const ServiceTable& t, const Timeouts& to) {
  std::string s = std::to_string(to.tcp) + " " + std::to_string(to.tcpfin) + " " + std::to_string(to.udp) + "\n";
  for (const auto& c : configuration_commands(t)) s += join_args(canonical_args(c)) + "\n";
  return s;
}

void start(ServiceTable& t, Timeouts& to) {
  std::vector<CliCommand> rules;
  const char* text =
      "-A -t 198.18.0.100:80 -s wlc -p 60\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 2\n"
      "-a -t 198.18.0.100:80 -r 198.18.0.12:8080 -m -x 10 -y 5\n-A -u 198.18.0.101:53 -s rr -o\n"
      "-a -u 198.18.0.101:53 -r 198.18.0.13:53 -i\n";
  if (!parse_rules(text, rules).is_ok() || !apply_rules_atomically(rules, t, to).is_ok()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto req = framed_request(std::string(reinterpret_cast<const char*>(data), size));
  if (!req) return 0;
  ServiceTable t;
  Timeouts to;
  start(t, to);
  const std::string before = configuration(t, to);
  if (req->rfind("RESTORE\n", 0) == 0) {
    std::vector<CliCommand> rules;
    Status st = parse_rules(restore_rules(*req), rules);
    if (st.is_ok()) st = apply_rules_atomically(rules, t, to);
    if (!st.is_ok() && configuration(t, to) != before) __builtin_trap();  // all or nothing
    return 0;
  }
  std::vector<std::string> args;
  auto parsed = parse_request(*req, args);
  if (auto* cmd = std::get_if<CliCommand>(&parsed)) {
    if (!execute(*cmd, t, to).is_ok() && configuration(t, to) != before) __builtin_trap();
  }
  return 0;
}

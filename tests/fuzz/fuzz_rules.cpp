// Fuzzes a rules file as lbd reads one (--rules at start, SIGHUP): parse_rules, then the
// whole file applied to a table. Checked: no crash; an accepted file's configuration,
// written back as rules (what lbd's dry runs and -S rely on), parses and applies to an
// empty table as the same configuration; and reloading the same file onto the result
// changes nothing.
#include <string>

#include "lb/ctl/commands.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

using namespace lbd;

namespace {

std::string as_rules(const ServiceTable& t) {
  std::string s;
  for (const auto& c : configuration_commands(t)) s += join_args(canonical_args(c)) + "\n";
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<CliCommand> rules;
  if (!parse_rules(text, rules).is_ok()) return 0;
  ServiceTable a;
  Timeouts ta;
  if (!apply_rules_atomically(rules, a, ta).is_ok()) return 0;
  const std::string written = as_rules(a);
  std::vector<CliCommand> again;
  if (!parse_rules(written, again).is_ok()) __builtin_trap();
  ServiceTable b;
  Timeouts tb;
  if (!apply_rules_atomically(again, b, tb).is_ok()) __builtin_trap();
  if (as_rules(b) != written) __builtin_trap();
  size_t changes = 0;
  if (!reload_rules(rules, a, ta, changes).is_ok() || changes != 0 || as_rules(a) != written) __builtin_trap();
  return 0;
}

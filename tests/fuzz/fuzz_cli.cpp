// Fuzzes the ipvsadm command line and the rules parser. Checked: no crash, and every
// accepted table-changing command's canonical form parses back to the same canonical form
// (what lbadm sends is exactly what lbd executes).
#include <string>

#include "lb/ctl/commands.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

using namespace lbd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto r = parse_command(split_line(text), "lbadm", {}, true);
  if (auto* c = std::get_if<CliCommand>(&r)) {
    const auto canon = canonical_args(*c);
    if (!canon.empty()) {
      auto again = parse_command(canon, "lbadm");
      if (!std::holds_alternative<CliCommand>(again)) __builtin_trap();
      if (canonical_args(std::get<CliCommand>(again)) != canon) __builtin_trap();
    }
  }
  std::vector<CliCommand> rules;
  if (parse_rules(text, rules).is_ok()) {
    ServiceTable t;
    Timeouts to;
    (void)apply_rules_atomically(rules, t, to);
  }
  return 0;
}

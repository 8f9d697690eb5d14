// Fuzzes lbadm --from-keepalived's reader on any text: it refuses or imports, never
// crashes, and what it imports is rules lbd's own parser takes (what is printed loads).
#include <cstdint>
#include <string>
#include <vector>

#include "lb/ctl/commands.hpp"
#include "lb/ctl/keepalived_import.hpp"

using namespace lbd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto r = import_keepalived_text(text, "fuzz.conf");
  if (!r) return 0;
  std::vector<CliCommand> rules;
  if (!parse_rules(r->rules, rules).is_ok()) __builtin_trap();
  return 0;
}

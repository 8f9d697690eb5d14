// The list of check kinds. A new kind: its file in this folder, and its name in the two
// lines below.
#include "health/check.hpp"

namespace lbd::health {

namespace kinds { extern const CheckKind tcp, http, mysql, exec; }
constexpr const CheckKind* kKinds[] = {&kinds::tcp, &kinds::http, &kinds::mysql, &kinds::exec};

std::span<const CheckKind* const> check_kinds() { return kKinds; }

const CheckKind* find_check(std::string_view name) {
  for (const CheckKind* k : kKinds)
    if (name == k->name) return k;
  return nullptr;
}

}  // namespace lbd::health

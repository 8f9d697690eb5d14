// The list of check kinds. A new kind: its file in this folder, and its name in the two
// lines below.
#include "health/check.hpp"

namespace lbd::health {

namespace kinds { extern const CheckKind tcp, http, https, mysql, exec, dns, udp; }
constexpr const CheckKind* kKinds[] = {&kinds::tcp, &kinds::http, &kinds::https, &kinds::mysql,
                                       &kinds::exec, &kinds::dns, &kinds::udp};

std::span<const CheckKind* const> check_kinds() { return kKinds; }

const CheckKind* find_check(std::string_view name) {
  for (const CheckKind* k : kKinds)
    if (name == k->name) return k;
  return nullptr;
}

}  // namespace lbd::health

// Log sink; see log.hpp.
#include "lb/log.hpp"

#include <cstdio>

namespace lbd::log {

static constexpr Level kMinLevel = Level::kInfo;

void write(Level level, const char* component, const std::string& message) {
  if (level < kMinLevel) return;
  static const char* const names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "lbd: %s: %s: %s\n", names[int(level)], component, message.c_str());
  std::fflush(stderr);
}

}  // namespace lbd::log

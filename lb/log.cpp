// Log sink; see log.hpp.
#include "lb/log.hpp"

#include <cstdio>

namespace lbd::log {

static Level g_min = Level::kInfo;

void set_min_level(Level level) { g_min = level; }

void write(Level level, const char* component, const std::string& message) {
  if (level < g_min) return;
  static const char* const names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "lbd: %s: %s: %s\n", names[int(level)], component, message.c_str());
  std::fflush(stderr);
}

}  // namespace lbd::log

// Log sink; see log.hpp.
#include "lb/base/log.hpp"

#include <cstdio>
#include <string>
#include <string_view>

namespace lbd::log {

static constexpr Level kMinLevel = Level::kInfo;

std::string one_line(std::string_view message) {
  std::string line;
  line.reserve(message.size());
  for (unsigned char ch : message) {
    if (ch < 0x20 || ch == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      line += "\\x";
      line += hex[ch >> 4];
      line += hex[ch & 15];
    } else {
      line += char(ch);
    }
  }
  return line;
}

void write(Level level, const char* component, const std::string& message) {
  if (level < kMinLevel) return;
  static const char* const names[] = {"debug", "info", "warning", "error"};
  const std::string line = one_line(message);
  std::fprintf(stderr, "lbd: %s: %s: %s\n", names[int(level)], component, line.c_str());
  std::fflush(stderr);
}

}  // namespace lbd::log

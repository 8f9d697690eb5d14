// Logging for lbd: one macro, a level and a component, fmt formatting, to stderr (journald
// picks it up under systemd). Never called per packet: the data path only counts.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace lbd::log {

enum class Level { kDebug, kInfo, kWarn, kError };
void write(Level level, const char* component, const std::string& message);
// What write() prints of `message`: one line, each control byte (a newline, ESC, ...) as
// \xNN, so no message ends early, forges the next line or drives a terminal.
std::string one_line(std::string_view message);

}  // namespace lbd::log

#define LBD_LOG(level, component, ...) \
  ::lbd::log::write(::lbd::log::Level::level, component, fmt::format(__VA_ARGS__))

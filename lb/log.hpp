// Logging for lbd: one macro, a level and a component, fmt formatting, to stderr (journald
// picks it up under systemd). Never called per packet: the data path only counts.
#pragma once

#include <fmt/format.h>

namespace lbd::log {

enum class Level { kDebug, kInfo, kWarn, kError };
void write(Level level, const char* component, const std::string& message);

}  // namespace lbd::log

#define LBD_LOG(level, component, ...) \
  ::lbd::log::write(::lbd::log::Level::level, component, fmt::format(__VA_ARGS__))

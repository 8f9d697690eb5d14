// The rise/fall state machine of one real's health, as a pure function of its results:
// `fall` consecutive failures take an up real down, `rise` consecutive successes bring a
// down real back; a result that agrees with the state resets the opposite run. A real
// starts up (it was serving before any check), so a new check never interrupts traffic.
#pragma once

#include <cstdint>

namespace lbd::health {

struct State {
  bool up = true;
  uint32_t ok_run = 0;    // consecutive successes
  uint32_t fail_run = 0;  // consecutive failures
};

enum class Change : uint8_t { kNone, kWentDown, kWentUp };

inline Change record(State& s, bool ok, uint32_t rise, uint32_t fall) {
  if (ok) {
    ++s.ok_run;
    s.fail_run = 0;
    if (!s.up && s.ok_run >= rise) {
      s.up = true;
      return Change::kWentUp;
    }
  } else {
    ++s.fail_run;
    s.ok_run = 0;
    if (s.up && s.fail_run >= fall) {
      s.up = false;
      return Change::kWentDown;
    }
  }
  return Change::kNone;
}

}  // namespace lbd::health

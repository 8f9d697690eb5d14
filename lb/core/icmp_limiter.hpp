// The kernel's icmp_msgs_per_sec for the ICMP errors lbd sends: one window per second,
// shared by every error, at most kPerSecond in it.
#pragma once

#include <cstdint>

namespace lbd {

class IcmpLimiter {
 public:
  static constexpr uint32_t kPerSecond = 1000;
  // Whether one more error may be sent now (and it is counted if so).
  bool allow(uint64_t now_ms) {
    if (now_ms / 1000 != window_) {
      window_ = now_ms / 1000;
      in_window_ = 0;
    }
    if (in_window_ >= kPerSecond) return false;
    ++in_window_;
    return true;
  }

 private:
  uint64_t window_ = 0;  // the second in_window_ counts in
  uint32_t in_window_ = 0;
};

}  // namespace lbd

// The held frames' pool; see held_frames.hpp.
#include "lb/core/held_frames.hpp"

#include <algorithm>

namespace lbd {

bool HeldFrames::hold(std::span<const uint8_t> frame, uint32_t real_id, FwdMethod method, int in_ifindex,
                      uint64_t now_ms) {
  if (used_ == held_.size() || frame.size() > kFrameMax) return false;
  for (auto& h : held_) {
    if (h.used) continue;
    h = {real_id, uint16_t(frame.size()), true, method, in_ifindex, now_ms, {}};
    std::copy(frame.begin(), frame.end(), h.frame.begin());
    ++used_;
    return true;
  }
  return false;
}

}  // namespace lbd

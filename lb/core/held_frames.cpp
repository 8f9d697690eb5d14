// The held frames' pool; see held_frames.hpp.
#include "lb/core/held_frames.hpp"

#include <algorithm>

namespace lbd {

bool HeldFrames::hold(std::span<const uint8_t> frame, uint32_t real_id, FwdMethod method, int in_ifindex,
                      uint64_t now_ms) {
  if (used_ == held_.size() || frame.size() > kFrameMax) return false;
  for (auto& h : held_) {
    if (h.used) continue;
    // Field by field: an aggregate assignment would zero the 1.5 KB buffer first.
    h.real_id = real_id;
    h.len = uint16_t(frame.size());
    h.used = true;
    h.method = method;
    h.in_ifindex = in_ifindex;
    h.since_ms = now_ms;
    std::copy(frame.begin(), frame.end(), h.frame.begin());
    ++used_;
    return true;
  }
  return false;
}

}  // namespace lbd

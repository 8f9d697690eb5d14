// Frames waiting for their real's next hop (the first SYN after `lbadm -a`, before the
// neighbour is resolved), instead of lost to a 1 s retransmission: a fixed pool, no
// allocation. The data path holds them and, after next hops were refreshed, takes back
// those whose real is resolved (to send) or that waited longer than kHoldMs (to drop).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "forwarding/method.hpp"

namespace lbd {

class HeldFrames {
 public:
  static constexpr size_t kFrames = 64;
  static constexpr size_t kFrameMax = 1514;
  static constexpr uint64_t kHoldMs = 1000;

  struct Held {
    uint32_t real_id = 0;
    uint16_t len = 0;
    bool used = false;
    FwdMethod method{};
    int in_ifindex = 0;
    uint64_t since_ms = 0;
    std::array<uint8_t, kFrameMax + 64> frame{};  // room for an IPIP header or an ICMP error
  };

  // Copies `frame` in; false if the pool is full or the frame larger than kFrameMax.
  bool hold(std::span<const uint8_t> frame, uint32_t real_id, FwdMethod method, int in_ifindex, uint64_t now_ms);
  size_t count() const { return used_; }

  // Calls f(held, resolved) for each frame whose real `resolved(real_id)` says is ready, or
  // which has waited kHoldMs (resolved false), and frees it after.
  template <class Resolved, class F>
  void release(uint64_t now_ms, Resolved&& resolved, F&& f) {
    if (!used_) return;
    for (auto& h : held_) {
      if (!h.used) continue;
      const bool ready = resolved(h.real_id);
      if (!ready && now_ms - h.since_ms < kHoldMs) continue;
      f(h, ready);
      h.used = false;
      --used_;
    }
  }

 private:
  std::vector<Held> held_ = std::vector<Held>(kFrames);
  size_t used_ = 0;
};

}  // namespace lbd

// The data path's parts alone: the later fragments' table, the held frames' pool and the
// ICMP error limiter, each on crafted packets and an injected clock.
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/core/fragments.hpp"
#include "lb/core/held_frames.hpp"
#include "lb/core/icmp_limiter.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
ParsedPacket fragment(const char* src, uint16_t id, uint8_t protocol = kProtoUdp) {
  ParsedPacket p;
  p.saddr = ip(src);
  p.daddr = ip("198.18.0.100");
  p.ip_id = id;
  p.protocol = protocol;
  return p;
}
}  // namespace

TEST_CASE("fragments: a later fragment finds its datagram's route until kFragmentMs, and no other's") {
  FragmentTable t;
  FragmentTable::Route r;
  r.method = FwdMethod::kMasq;
  r.real_id = 7;
  t.remember(fragment("198.18.0.1", 42), r, 1000);
  const auto* got = t.find(fragment("198.18.0.1", 42), 1000 + FragmentTable::kFragmentMs);
  REQUIRE(got);
  CHECK(got->real_id == 7);
  CHECK(got->method == FwdMethod::kMasq);
  CHECK_FALSE(t.find(fragment("198.18.0.1", 42), 1001 + FragmentTable::kFragmentMs));  // expired
  CHECK_FALSE(t.find(fragment("198.18.0.1", 43), 1000));               // another IP id
  CHECK_FALSE(t.find(fragment("198.18.0.2", 42), 1000));               // another source
  CHECK_FALSE(t.find(fragment("198.18.0.1", 42, kProtoTcp), 1000));    // another protocol
}

TEST_CASE("fragments: a datagram in an occupied slot replaces the older one (direct-mapped)") {
  FragmentTable t(1);  // one slot: every datagram collides
  FragmentTable::Route a, b;
  a.real_id = 1;
  b.real_id = 2;
  t.remember(fragment("198.18.0.1", 1), a, 0);
  t.remember(fragment("198.18.0.1", 2), b, 0);
  CHECK_FALSE(t.find(fragment("198.18.0.1", 1), 0));
  REQUIRE(t.find(fragment("198.18.0.1", 2), 0));
  CHECK(t.find(fragment("198.18.0.1", 2), 0)->real_id == 2);
}

TEST_CASE("held frames: a bounded pool; released when resolved, or dropped after kHoldMs") {
  HeldFrames h;
  const std::vector<uint8_t> frame(100, 0xab);
  CHECK_FALSE(h.hold(std::vector<uint8_t>(HeldFrames::kFrameMax + 1), 1, FwdMethod::kRoute, 3, 0));
  for (size_t i = 0; i < HeldFrames::kFrames; ++i) REQUIRE(h.hold(frame, uint32_t(i % 2), FwdMethod::kRoute, 3, 0));
  CHECK_FALSE(h.hold(frame, 0, FwdMethod::kRoute, 3, 0));  // full
  CHECK(h.count() == HeldFrames::kFrames);
  // Real 1 resolves: its frames are released ready, byte for byte; real 0's wait.
  size_t ready = 0, dropped = 0;
  h.release(10, [](uint32_t id) { return id == 1; }, [&](const HeldFrames::Held& x, bool ok) {
    CHECK(x.real_id == 1);
    CHECK(x.in_ifindex == 3);
    CHECK(std::vector<uint8_t>(x.frame.begin(), x.frame.begin() + x.len) == frame);
    (ok ? ready : dropped)++;
  });
  CHECK(ready == HeldFrames::kFrames / 2);
  CHECK(dropped == 0);
  CHECK(h.count() == HeldFrames::kFrames / 2);
  // Real 0 never resolves: kept until kHoldMs, then given back as not ready.
  h.release(HeldFrames::kHoldMs - 1, [](uint32_t) { return false; }, [&](const HeldFrames::Held&, bool) { ++dropped; });
  CHECK(dropped == 0);
  h.release(HeldFrames::kHoldMs, [](uint32_t) { return false; }, [&](const HeldFrames::Held&, bool ok) {
    CHECK_FALSE(ok);
    ++dropped;
  });
  CHECK(dropped == HeldFrames::kFrames / 2);
  CHECK(h.count() == 0);
}

TEST_CASE("ICMP limiter: kPerSecond errors in a second, then none until the next one") {
  IcmpLimiter l;
  uint32_t sent = 0;
  for (uint32_t i = 0; i < IcmpLimiter::kPerSecond + 50; ++i) sent += l.allow(5000 + i % 1000);
  CHECK(sent == IcmpLimiter::kPerSecond);
  CHECK(l.allow(6000));  // a new window
}

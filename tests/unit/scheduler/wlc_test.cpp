// wlc: minimise overhead/weight with IPVS's integer comparison; ties keep the earlier real.
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

TEST_CASE("wlc with equal weights and connections held open cycles newest first") {
  SchedHarness h("wlc", {{"A", 1}, {"B", 1}, {"C", 1}});
  CHECK(h.picks(6, true) == "C B A C B A");
}

TEST_CASE("wlc 3:1 with connections held open gives 3 to 1") {
  SchedHarness h("wlc", {{"A", 1}, {"B", 3}});  // list: B A
  // overheads (B,A): 0,0 → B; 256,0 → A; 256,256 → B (256*1 vs 256*3: B's 256/3 < A's 256)...
  CHECK(h.picks(8, true) == "B A B B B A B B");
}

TEST_CASE("wlc compares loh*w_dest > doh*w_least exactly") {
  SchedHarness h("wlc", {{"A", 2}, {"B", 1}});  // list: B A
  h.view("B").active_conns = 1;   // 256 / 1
  h.view("A").active_conns = 2;   // 512 / 2: equal → B (earlier) kept
  CHECK(h.picks(1) == "B");
  h.view("A").inactive_conns = 1;  // 513 / 2 > 256: B
  CHECK(h.picks(1) == "B");
  h.view("B").inactive_conns = 1;  // 257 / 1 vs 513 / 2 = 256.5: A wins
  CHECK(h.picks(1) == "A");
}

TEST_CASE("wlc ignores quiesced and unavailable reals; none when all are") {
  SchedHarness h("wlc", {{"A", 1}, {"B", 0}});
  CHECK(h.picks(2, true) == "A A");
  h.view("A").available = false;
  CHECK(h.picks(1) == "-");
}

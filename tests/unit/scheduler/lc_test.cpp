// lc: least overhead (active*256 + inactive), ties to the earliest in list order.
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

TEST_CASE("lc with connections held open cycles newest first") {
  SchedHarness h("lc", {{"A", 1}, {"B", 5}, {"C", 1}});  // weight does not matter to lc
  CHECK(h.picks(6, true) == "C B A C B A");
}

TEST_CASE("lc weighs one active connection as 256 inactive ones") {
  SchedHarness h("lc", {{"A", 1}, {"B", 1}});  // list: B A
  h.view("B").active_conns = 1;
  h.view("A").inactive_conns = 255;
  CHECK(h.picks(1) == "A");
  h.view("A").inactive_conns = 256;  // tie: the earlier in the list (B) wins
  CHECK(h.picks(1) == "B");
  h.view("A").inactive_conns = 257;
  CHECK(h.picks(1) == "B");
}

TEST_CASE("lc skips quiesced reals") {
  SchedHarness h("lc", {{"A", 0}, {"B", 1}});
  h.view("B").active_conns = 100;
  CHECK(h.picks(1) == "B");
}

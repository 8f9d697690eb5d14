// rr: IPVS order (newest first), cursor kept across adds, moved back on deleting its real.
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

TEST_CASE("rr walks the list newest first and wraps") {
  SchedHarness h("rr", {{"A", 1}, {"B", 1}, {"C", 1}});
  CHECK(h.picks(7) == "C B A C B A C");
}

TEST_CASE("rr skips quiesced (weight 0) and unavailable reals") {
  SchedHarness h("rr", {{"A", 1}, {"B", 0}, {"C", 1}});
  CHECK(h.picks(4) == "C A C A");
  h.view("C").available = false;
  CHECK(h.picks(2) == "A A");
  h.view("A").weight = 0;
  CHECK(h.picks(1) == "-");
}

TEST_CASE("rr keeps its cursor on the real when one is added at the head") {
  SchedHarness h("rr", {{"A", 1}, {"B", 1}});
  CHECK(h.picks(1) == "B");
  h.add("C", 1);  // list: C B A, cursor still B
  CHECK(h.picks(4) == "A C B A");
}

TEST_CASE("rr moves its cursor to the previous real when the cursor's real is deleted") {
  SchedHarness h("rr", {{"A", 1}, {"B", 1}, {"C", 1}});  // C B A
  CHECK(h.picks(2) == "C B");
  h.remove("B");  // cursor goes to C
  CHECK(h.picks(3) == "A C A");
  h.remove("A");  // A was the cursor and first after C: cursor → C
  CHECK(h.picks(2) == "C C");
}

TEST_CASE("rr with no reals picks none") {
  SchedHarness h("rr");
  CHECK(h.picks(1) == "-");
}

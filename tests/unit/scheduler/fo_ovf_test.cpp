// fo and ovf: active/standby by weight. Sequences worked out by hand from ip_vs_fo.c (the
// highest weight, first among equals) and ip_vs_ovf.c (the highest weight whose active
// connections do not exceed it).
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

TEST_CASE("fo: all to the highest weight, the first in list order among equals") {
  SchedHarness h("fo", {{"standby", 1}, {"B", 3}, {"C", 3}});  // list: C B standby
  CHECK(h.picks(4, true) == "C C C C");  // its connections never matter
  h.edit("C", 0);                         // quiesced
  CHECK(h.picks(2) == "B B");
  h.view("B").overloaded = true;
  CHECK(h.picks(1) == "standby");
  h.view("B").overloaded = false;
  h.view("B").available = false;  // health-down
  CHECK(h.picks(1) == "standby");
  h.edit("standby", 5);
  h.view("B").available = true;
  CHECK(h.picks(1) == "standby");  // now the highest
  h.remove("standby");
  CHECK(h.picks(1) == "B");
}

TEST_CASE("ovf: the highest weight until it holds more than its weight, then the next") {
  SchedHarness h("ovf", {{"A", 2}, {"B", 1}});  // list: B A
  // A (w 2) takes while active <= 2: three; then B (w 1) two; then none is under its weight.
  CHECK(h.picks(6, true) == "A A A B B -");
  h.view("A").active_conns = 1;  // one of A's closed
  CHECK(h.picks(1) == "A");
  h.edit("B", 5);  // B now the highest, and under its weight
  CHECK(h.picks(1) == "B");
  h.view("B").available = false;
  h.view("A").active_conns = 0;
  CHECK(h.picks(1) == "A");
  h.remove("A");
  CHECK(h.picks(1) == "-");
}

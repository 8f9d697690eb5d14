// sed and nq: (active + 1) / weight, inactive connections not counted; nq first sends a
// new connection to an idle real. Sequences worked out by hand from ip_vs_sed.c and
// ip_vs_nq.c (the comparison loh * w_dest > doh * w_least, ties to the earlier real).
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

TEST_CASE("sed 3:1 with connections held open: B takes three, then A one") {
  SchedHarness h("sed", {{"A", 1}, {"B", 3}});  // list: B A
  // (B,A) overheads 1,1 → B; 2,1: 2*1 > 1*3? no → B; 3,1 → B; 4,1: 4 > 3 → A; 4,2: 4 > 6? no → B ...
  CHECK(h.picks(8, true) == "B B B A B B B A");
}

TEST_CASE("sed counts only active connections") {
  SchedHarness h("sed", {{"A", 1}, {"B", 1}});  // list: B A
  h.view("B").inactive_conns = 1000;  // wlc would avoid B; sed does not look
  CHECK(h.picks(1) == "B");
  h.view("B").active_conns = 1;  // 2 vs 1 → A
  CHECK(h.picks(1) == "A");
}

TEST_CASE("nq sends to an idle real first, then as sed") {
  SchedHarness h("nq", {{"A", 1}, {"B", 3}});  // list: B A
  // B idle → B; B busy, A idle → A; then (B,A) 2,2: 2*1 > 2*3? no → B; 3,2; 4,2; 5,2; 6,2 → B;
  // 7,2: 7 > 6 → A.
  CHECK(h.picks(8, true) == "B A B B B B B A");
  SchedHarness fast("nq", {{"slow", 1}, {"fast", 100}});  // list: fast slow
  CHECK(fast.picks(2, true) == "fast slow");  // never queue behind the fast one while slow is idle
}

TEST_CASE("sed and nq skip quiesced, overloaded and health-down reals; none when all are") {
  for (const char* name : {"sed", "nq"}) {
    INFO(name);
    SchedHarness h(name, {{"A", 1}, {"B", 1}, {"C", 1}});  // list: C B A
    h.edit("C", 0);
    h.view("B").overloaded = true;
    CHECK(h.picks(3, true) == "A A A");
    h.view("A").available = false;
    CHECK(h.picks(1) == "-");
    h.edit("C", 2);  // weight back: C again
    CHECK(h.picks(1) == "C");
    h.remove("C");
    CHECK(h.picks(1) == "-");
  }
}

// wrr: IPVS's interleaved gcd/max-weight walk, and its reset when reals change.
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;

// Reals are added oldest first so that the list reads A B C (IPVS inserts at the head).
// Note: each add runs ip_vs_wrr_dest_changed(), which keeps a non-zero cw that is not above
// the new mw. Adding C, B, A one by one therefore leaves cw at C's mw, and the first round
// takes every real before the classic interleaving starts: the kernel's exact sequence.
static void add_abc(SchedHarness& h, int a, int b, int c) {
  h.add("C", c);
  h.add("B", b);
  h.add("A", a);
}

TEST_CASE("wrr 4:3:2 interleaves as A A B A B C A B C after the first round") {
  SchedHarness h("wrr");
  add_abc(h, 4, 3, 2);
  CHECK(h.picks(21) == "A B C A A B A B C A B C A A B A B C A B C");
}

TEST_CASE("wrr 4:2:2 uses the gcd step (di 2, mw 3): A A B C") {
  SchedHarness h("wrr");
  add_abc(h, 4, 2, 2);
  CHECK(h.picks(11) == "A B C A A B C A A B C");
}

TEST_CASE("wrr 3:2:1 gives exactly 3:2:1 in every 6 picks") {
  SchedHarness h("wrr");
  add_abc(h, 3, 2, 1);
  CHECK(h.picks(12) == "A B C A A B A B C A A B");
}

TEST_CASE("wrr follows list order (newest first) within each weight level") {
  SchedHarness h("wrr", {{"A", 4}, {"B", 3}, {"C", 2}});  // list C B A; cw is 1 after the adds
  CHECK(h.picks(9) == "C B A A B A C B A");
}

TEST_CASE("wrr never picks a quiesced real, and none when all weights are 0") {
  SchedHarness h("wrr");
  add_abc(h, 2, 0, 1);
  CHECK(h.picks(6) == "A C A A C A");
  h.edit("A", 0);
  h.edit("C", 0);
  CHECK(h.picks(2) == "- -");
}

TEST_CASE("wrr restarts from the list head after a weight edit") {
  SchedHarness h("wrr");
  add_abc(h, 4, 3, 2);
  CHECK(h.picks(4) == "A B C A");  // cw is now 4, cursor on A
  h.edit("C", 1);                  // di 1, mw 4: cw 4 kept, position back to the head
  CHECK(h.picks(5) == "A A B A B");
}

TEST_CASE("wrr skips an unavailable real and still finds lower weights") {
  SchedHarness h("wrr");
  add_abc(h, 4, 1, 1);
  h.view("A").available = false;
  CHECK(h.picks(4) == "B C B C");
}

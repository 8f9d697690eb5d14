// lblc and lblcr: the cache by destination address, worked out by hand from ip_vs_lblc.c
// and ip_vs_lblcr.c: a cached real serves while usable and not "overloaded" (more active
// connections than its weight while another real is below half its own); wlc otherwise;
// lblcr's set grows, serves its least loaded member and, unchanged for 24 h, drops its most
// loaded; the 60 s timer's full check (every 30th run) drops entries unused for 24 h.
#include <catch2/catch.hpp>

#include "harness.hpp"

using lbd::test::SchedHarness;
using namespace lbd::sched;

namespace {
constexpr uint32_t X = 0xc6120100u, X2 = 0xc6120101u, Y = 0xc6120102u;  // destinations
std::string pick(SchedHarness& h, uint32_t daddr, uint32_t now) {
  const auto i = h.s->pick({6, 0xc6120001u, daddr, 40000, 80, now}, h.views);
  return i ? h.names[*i] : "-";
}
}  // namespace

TEST_CASE("lblc: a destination keeps its real until that real is overloaded, quiesced or gone") {
  SchedHarness h("lblc", {{"A", 1}, {"B", 1}});  // list B A
  CHECK(pick(h, X, 1000) == "B");        // wlc: a tie, the earlier
  h.view("B").active_conns = 1;          // A is now less loaded, but B is not overloaded (1 > 1: no)
  CHECK(pick(h, X, 1001) == "B");
  CHECK(pick(h, Y, 1001) == "A");        // a new destination: wlc
  h.view("B").active_conns = 2;          // 2 > 1 and A below half its weight (0 < 1): overloaded
  CHECK(pick(h, X, 1002) == "A");        // rescheduled, and remembered
  h.view("B").active_conns = 0;
  CHECK(pick(h, X, 1003) == "A");
  h.edit("A", 0);
  CHECK(pick(h, X, 1004) == "B");        // quiesced: wlc again
  h.edit("A", 1);
  h.remove("B");
  CHECK(pick(h, X, 1005) == "A");        // deleted
  h.view("A").available = false;
  CHECK(pick(h, X, 1006) == "-");
}

TEST_CASE("lblc: an entry unused for 24 h goes at the timer's next full check (every 30 min)") {
  SchedHarness h("lblc", {{"A", 1}, {"B", 1}});  // list B A
  // The timer starts with the first flow (t=1000); full checks at 1000 + 1800 k; 87400 is one.
  CHECK(pick(h, X, 1000) == "B");
  CHECK(pick(h, X2, 1000) == "B");
  h.view("B").active_conns = 1;  // from now on wlc would give A; the cache gives B
  CHECK(pick(h, X, 87399) == "B");   // still cached (expires at 87400), used again
  CHECK(pick(h, X2, 87400) == "A");  // the full check at 87400 dropped it: wlc
  CHECK(pick(h, X, 87400) == "B");   // used at 87399: kept
}

TEST_CASE("lblcr: the set grows when its real is overloaded and serves its least loaded member") {
  SchedHarness h("lblcr", {{"A", 1}, {"B", 1}});  // list B A
  CHECK(pick(h, X, 1000) == "B");  // set {B}
  h.view("B").active_conns = 2;     // overloaded (A below half)
  CHECK(pick(h, X, 1000) == "A");  // wlc: A joins, set {A, B}
  CHECK(pick(h, X, 50000) == "A"); // the least loaded of the set (0 vs 512)
  // 24 h after the set last changed: its most loaded member (B) leaves; A still serves.
  h.view("A").active_conns = 1;
  CHECK(pick(h, X, 87401) == "A");
  // B is now the less loaded; were it still in the set it would serve. The set is {A}.
  h.view("B").active_conns = 0;
  CHECK(pick(h, X, 87402) == "A");
  h.view("A").available = false;    // no usable member: wlc over the service
  CHECK(pick(h, X, 87403) == "B");
}

// twos with a scripted random source: the two weighted picks and the comparison worked out
// by hand from ip_vs_twos.c (r % (total + 1), subtract weights in list order until <= 0;
// the second wins if w2 * o1 > w1 * o2).
#include <catch2/catch.hpp>

#include <deque>

#include "harness.hpp"

using lbd::test::SchedHarness;
using namespace lbd::sched;

namespace {
struct Script {
  std::deque<uint32_t> values;
  uint32_t operator()() {
    const uint32_t v = values.front();
    values.pop_front();
    return v;
  }
};
std::string pick(SchedHarness& h) {
  const auto i = h.s->pick({}, h.views);
  return i ? h.names[*i] : "-";
}
}  // namespace

TEST_CASE("twos: two weighted random picks, the less loaded by overhead/weight wins") {
  auto script = std::make_shared<Script>();
  SchedHarness h("rr");
  h.s = make_twos([script] { return (*script)(); });
  h.add("A", 1);
  h.add("B", 1);
  h.add("C", 2);  // list C B A, total 4: r % 5
  // r1 0 → C (0 - 2 <= 0); r2 4 → 4-2=2, 2-1=1, 1-1=0 → A. Overheads equal (0): C.
  script->values = {0, 4};
  CHECK(pick(h) == "C");
  h.view("C").active_conns = 1;  // C overhead 256: A wins (1 * 256 > 2 * 0)
  script->values = {0, 4};
  CHECK(pick(h) == "A");
  // r1 3 → C leaves 1, B leaves 0 → B; r2 2 → C (2 - 2 = 0). B: o=0, C: o=256; w2*o1 = 2*0 > 1*256? no: B.
  script->values = {3, 2};
  CHECK(pick(h) == "B");
  // Values past total wrap by the modulo: 7 % 5 = 2 → C; 9 % 5 = 4 → A.
  h.view("C").active_conns = 0;
  script->values = {7, 9};
  CHECK(pick(h) == "C");
}

TEST_CASE("twos: quiesced, overloaded and down reals are never drawn; none when all are") {
  auto script = std::make_shared<Script>();
  SchedHarness h("rr");
  h.s = make_twos([script] { return (*script)(); });
  h.add("A", 1);
  h.add("B", 3);
  h.add("C", 2);  // list C B A
  h.edit("C", 0);
  h.view("B").overloaded = true;  // only A: total 1, r % 2
  script->values = {1, 0};
  CHECK(pick(h) == "A");
  h.view("A").available = false;
  CHECK(pick(h) == "-");  // no draw at all
  CHECK(script->values.empty());
}

// sh and dh: 256-bucket tables as ip_vs_sh.c and ip_vs_dh.c fill them, and the buckets a
// client (sh: its source, dh: its destination) hashes to. Expected reals written by hand
// from the kernel's fill (sh: each real `weight` consecutive buckets in list order; dh: one
// each) and its fallback walk (bucket (2 × hash + offset) mod 256: the kernel adds the hash
// to an offset that already holds it).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "harness.hpp"
#include "scheduler/hash.hpp"

using lbd::test::SchedHarness;
using namespace lbd::sched;

namespace {

constexpr uint32_t kBase = 0xc6120000u;  // 198.18.0.0

// For each bucket 0..255, an address in 198.18.0.0/15 that hash_32 puts there.
std::map<uint32_t, uint32_t> address_per_bucket() {
  std::map<uint32_t, uint32_t> m;
  for (uint32_t a = kBase; m.size() < 256; ++a) m.emplace(hash_32(a, 8), a);
  return m;
}

std::string pick(SchedHarness& h, const Flow& f) {
  const auto i = h.s->pick(f, h.views);
  return i ? h.names[*i] : "-";
}
Flow from(uint32_t saddr, uint16_t sport = 40000) { return {6, saddr, kBase + 100, sport, 80}; }

}  // namespace

TEST_CASE("sh: each real takes weight consecutive buckets in list order; a client keeps its bucket") {
  SchedHarness h("sh", {{"A", 1}, {"B", 2}, {"C", 3}});  // list C B A: C C C B B A, round and round
  const auto at = address_per_bucket();
  std::map<std::string, int> share;
  for (const auto& [bucket, addr] : at) {
    const char* want = bucket % 6 < 3 ? "C" : bucket % 6 < 5 ? "B" : "A";
    INFO("bucket " << bucket);
    CHECK(pick(h, from(addr)) == want);
    CHECK(pick(h, from(addr, 40001)) == want);  // the port is not hashed without sh-port
    ++share[want];
  }
  CHECK(share == std::map<std::string, int>{{"A", 42}, {"B", 85}, {"C", 129}});  // 256 = 42 × 6 + 4
}

TEST_CASE("sh: an unusable real in the bucket gives none; sh-fallback walks the kernel's way") {
  SchedHarness h("sh", {{"A", 1}, {"B", 2}, {"C", 3}});
  h.edit("C", 0);  // quiesced: still one bucket (++count >= 0): C B B A, round and round
  const auto at = address_per_bucket();
  for (const auto& [bucket, addr] : at) {
    INFO("bucket " << bucket);
    const char* want = bucket % 4 == 0 ? "-" : bucket % 4 == 3 ? "A" : "B";
    CHECK(pick(h, from(addr)) == want);
  }
  h.s->set_options({kFlagFallback});
  // A C bucket k falls back to bucket 2k + 1 (offset 0 gives 2k: C again), a B.
  for (const auto& [bucket, addr] : at)
    if (bucket % 4 == 0) CHECK(pick(h, from(addr)) == "B");
  h.view("B").overloaded = true;  // 2k + 1 and 2k + 2 are B's: 2k + 3 is A's
  for (const auto& [bucket, addr] : at)
    if (bucket % 4 != 3) CHECK(pick(h, from(addr)) == "A");
  h.view("A").available = false;  // health says down: nothing usable in the whole walk
  CHECK(pick(h, from(at.at(0))) == "-");
}

TEST_CASE("sh-port: the source port joins the hash (hash_32(port + address))") {
  SchedHarness h("sh", {{"A", 1}, {"B", 1}});  // list B A: B A B A ...
  h.s->set_options({kFlagPort});
  const uint32_t addr = kBase + 7;
  for (uint16_t port : {1000, 1001, 1002, 1003, 50000}) {
    INFO("port " << port);
    CHECK(pick(h, from(addr, port)) == (hash_32(uint32_t(port) + addr, 8) % 2 == 0 ? "B" : "A"));
  }
  Flow icmp = from(addr, 1001);
  icmp.protocol = 1;  // no ports: port 0
  CHECK(pick(h, icmp) == (hash_32(addr, 8) % 2 == 0 ? "B" : "A"));
}

TEST_CASE("sh: a deleted real's buckets are refilled over the rest") {
  SchedHarness h("sh", {{"A", 1}, {"B", 2}, {"C", 3}});
  h.remove("B");  // list C A: C C C A
  for (const auto& [bucket, addr] : address_per_bucket()) CHECK(pick(h, from(addr)) == (bucket % 4 < 3 ? "C" : "A"));
  h.remove("C");
  h.remove("A");
  CHECK(pick(h, from(kBase)) == "-");
}

TEST_CASE("dh: one bucket per real round and round, by the destination; weights do not count") {
  SchedHarness h("dh", {{"A", 1}, {"B", 5}, {"C", 1}});  // list C B A: C B A C B A ...
  const char* names[] = {"C", "B", "A"};
  for (const auto& [bucket, addr] : address_per_bucket()) {
    Flow f{6, kBase + 1, addr, 40000, 80};  // addr as the destination
    CHECK(pick(h, f) == names[bucket % 3]);
    f.saddr = kBase + 2;  // the source does not matter
    CHECK(pick(h, f) == names[bucket % 3]);
  }
  h.edit("B", 0);
  const auto at = address_per_bucket();
  CHECK(pick(h, Flow{6, kBase, at.at(1), 1, 80}) == "-");  // bucket 1: B, quiesced
  CHECK(pick(h, Flow{6, kBase, at.at(0), 1, 80}) == "C");
}

// mh: the lookup table as ip_vs_mh.c builds it, checked slot by slot against a transcription
// of the kernel's ip_vs_mh_permutate/ip_vs_mh_populate written here from its source (the
// kernel's list walk, its gcd and shift), through the picks of 20,000 clients; the
// disruption when one real of ten leaves; quiesce keeps a real's slots (last_weight).
#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include "harness.hpp"
#include "scheduler/hash.hpp"

using lbd::test::SchedHarness;
using namespace lbd::sched;

namespace {

constexpr uint32_t M = 4093;
constexpr uint64_t kHash1 = 2654435761UL, kHash2 = 2654446892UL;
constexpr uint32_t kBase = 0xc6120000u;  // 198.18.0.0

unsigned mh_hashkey(uint32_t addr, uint16_t port, uint64_t key, unsigned offset) {
  const uint32_t v = offset + port + addr;  // (offset + ntohs(port) + ntohl(addr_fold))
  return hsiphash_u32(v, key, key);
}

struct Dest {
  uint32_t addr;
  uint16_t port;
  int last_weight;
};

// The kernel's table for `dests` in list order: index of the dest per slot, -1 none.
std::vector<int> kernel_table(const std::vector<Dest>& dests) {
  int g = 0;  // ip_vs_mh_gcd_weight
  for (const Dest& d : dests)
    if (d.last_weight > 0) g = g > 0 ? std::gcd(d.last_weight, g) : d.last_weight;
  std::vector<int> lookup(M, -1);
  if (g < 1) return lookup;
  int weight = 0;  // ip_vs_mh_shift_weight
  for (const Dest& d : dests) weight = std::max(weight, d.last_weight);
  const int mw = weight / g;
  const int fls = mw ? 32 - __builtin_clz(unsigned(mw)) : 0;
  const int rshift = std::max(0, fls - 12 / 2);
  struct Setup {
    unsigned offset, skip, perm;
    int turns;
  };
  std::vector<Setup> ds;  // ip_vs_mh_permutate
  for (const Dest& d : dests) {
    Setup s{};
    s.offset = mh_hashkey(d.addr, d.port, kHash1, 0) % M;
    s.skip = mh_hashkey(d.addr, d.port, kHash2, 0) % (M - 1) + 1;
    s.perm = s.offset;
    const int t = (d.last_weight / g) >> rshift;
    s.turns = t ? t : (d.last_weight != 0);
    ds.push_back(s);
  }
  std::vector<bool> table(M);  // ip_vs_mh_populate
  const size_t head = dests.size();  // the list head: p == &svc->destinations
  size_t p = head;
  unsigned n = 0;
  int dt_count = 0;
  while (n < M) {
    if (p == head) p = 0;
    size_t d = 0;
    while (p != head) {
      if (ds[d].turns < 1) {
        p = p + 1 == dests.size() ? head : p + 1;
        ++d;
        continue;
      }
      unsigned c = ds[d].perm;
      while (table[c]) {
        ds[d].perm += ds[d].skip;
        if (ds[d].perm >= M) ds[d].perm -= M;
        c = ds[d].perm;
      }
      table[c] = true;
      lookup[c] = int(p);
      if (++n == M) return lookup;
      if (++dt_count >= ds[d].turns) {
        dt_count = 0;
        p = p + 1 == dests.size() ? head : p + 1;
        ++d;
      }
    }
  }
  return lookup;
}

// The reals of `h` as the kernel's dests, in list order.
std::vector<Dest> dests_of(SchedHarness& h) {
  std::vector<Dest> v;
  for (const auto* d : h.views) v.push_back({d->addr, d->port, d->last_weight});
  return v;
}

SchedHarness& add(SchedHarness& h, const std::string& name, uint32_t addr, int weight) {
  auto& d = h.add(name, weight);
  d.addr = addr;
  d.port = 80;
  d.last_weight = weight;
  h.s->reals_changed(h.views);  // the table from the addresses just set
  return h;
}

std::string pick(SchedHarness& h, uint32_t client, uint16_t port = 40000) {
  const auto i = h.s->pick({6, client, kBase + 100, port, 80}, h.views);
  return i ? h.names[*i] : "-";
}

// Every one of 20,000 clients gets the real the kernel's table gives its slot.
void check_against_kernel(SchedHarness& h) {
  const auto table = kernel_table(dests_of(h));
  int mismatches = 0;
  for (uint32_t c = 0; c < 20000; ++c) {
    const uint32_t client = kBase + 0x10000 + c;
    const int slot = table[mh_hashkey(client, 0, kHash1, 0) % M];
    const std::string want = slot < 0 || !h.views[size_t(slot)]->schedulable() ? "-" : h.names[size_t(slot)];
    mismatches += pick(h, client) != want;
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("mh: the table is the kernel's, for equal, unequal and widely different weights") {
  for (const auto& weights : std::vector<std::vector<int>>{{1, 1, 1}, {1, 2, 3}, {100, 200, 300}, {1000, 1}, {7}}) {
    SchedHarness h("mh");
    for (size_t i = 0; i < weights.size(); ++i) add(h, "r" + std::to_string(i), kBase + 11 + uint32_t(i), weights[i]);
    INFO("weights " << weights.size() << " first " << weights[0]);
    check_against_kernel(h);
  }
}

TEST_CASE("mh: slots in proportion to the weights") {
  SchedHarness h("mh");
  add(h, "A", kBase + 11, 1);
  add(h, "B", kBase + 12, 3);
  int a = 0, b = 0;
  for (uint32_t c = 0; c < 40000; ++c) (pick(h, kBase + 0x10000 + c) == "A" ? a : b)++;
  CHECK(double(b) / a == Approx(3.0).epsilon(0.1));
}

TEST_CASE("mh: two directors with the same reals build the same table") {
  SchedHarness one("mh"), two("mh");
  for (SchedHarness* h : {&one, &two})
    for (uint32_t i = 0; i < 5; ++i) add(*h, "r" + std::to_string(i), kBase + 11 + i, int(i + 1));
  for (uint32_t c = 0; c < 5000; ++c) CHECK(pick(one, kBase + 0x20000 + c) == pick(two, kBase + 0x20000 + c));
}

TEST_CASE("mh: one real of ten leaves: its clients move, about 1/10 of the slots change") {
  SchedHarness h("mh");
  for (uint32_t i = 0; i < 10; ++i) add(h, "r" + std::to_string(i), kBase + 11 + i, 1);
  constexpr uint32_t kClients = 40000;
  std::vector<std::string> before;
  for (uint32_t c = 0; c < kClients; ++c) before.push_back(pick(h, kBase + 0x10000 + c));
  h.remove("r4");
  check_against_kernel(h);
  uint32_t moved = 0, kept_others = 0, others = 0;
  for (uint32_t c = 0; c < kClients; ++c) {
    const std::string now = pick(h, kBase + 0x10000 + c);
    CHECK(now != "r4");
    moved += now != before[c];
    if (before[c] != "r4") {
      ++others;
      kept_others += now == before[c];
    }
  }
  // r4's clients (about a tenth) must move; Maglev moves few of the others.
  CHECK(double(moved) / kClients == Approx(0.1).margin(0.03));
  CHECK(double(kept_others) / others > 0.97);
}

TEST_CASE("mh: a quiesced real keeps its slots (last_weight): its clients get none, or fall back") {
  SchedHarness h("mh");
  add(h, "A", kBase + 11, 2);
  add(h, "B", kBase + 12, 2);
  std::vector<std::string> before;
  for (uint32_t c = 0; c < 4000; ++c) before.push_back(pick(h, kBase + 0x10000 + c));
  h.edit("A", 0);
  REQUIRE(h.view("A").last_weight == 2);  // as __ip_vs_update_dest() keeps it
  for (uint32_t c = 0; c < 4000; ++c) CHECK(pick(h, kBase + 0x10000 + c) == (before[c] == "A" ? "-" : "B"));
  h.s->set_options({kFlagFallback});
  for (uint32_t c = 0; c < 4000; ++c) CHECK(pick(h, kBase + 0x10000 + c) == "B");
  h.view("B").available = false;
  CHECK(pick(h, kBase + 0x10000) == "-");
}

TEST_CASE("mh: a real added with weight 0 has no slot; no real, no pick") {
  SchedHarness h("mh");
  CHECK(pick(h, kBase) == "-");
  add(h, "A", kBase + 11, 0);
  CHECK(pick(h, kBase) == "-");
  add(h, "B", kBase + 12, 1);
  for (uint32_t c = 0; c < 1000; ++c) CHECK(pick(h, kBase + 0x10000 + c) == "B");
  check_against_kernel(h);
}

TEST_CASE("mh-port: the source port joins the slot's hash") {
  SchedHarness h("mh");
  for (uint32_t i = 0; i < 4; ++i) add(h, "r" + std::to_string(i), kBase + 11 + i, 1);
  const auto table = kernel_table(dests_of(h));
  h.s->set_options({kFlagPort});
  const uint32_t client = kBase + 0x10005;
  for (uint16_t port : {1024, 2048, 33333, 65535}) {
    const int slot = table[mh_hashkey(client, port, kHash1, 0) % M];
    CHECK(pick(h, client, port) == h.names[size_t(slot)]);
  }
}

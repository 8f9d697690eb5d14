// Connection table: lookups, deletion without tombstones, bounded capacity, and expiry on
// an injected clock, including timeouts extended after arming and budgets.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "lb/core/conn_table.hpp"

using namespace lbd;

namespace {
ConnKey key(uint32_t i) {
  return ConnKey{Be32::from_host(0xc6120000u + (i >> 16)), Be32::from_host(0xc6120064u),
                 uint16_t(i), 80, kProtoTcp};
}
}  // namespace

TEST_CASE("inserted connections are found; absent ones are not") {
  ConnTable t(1000, 42);
  for (uint32_t i = 0; i < 1000; ++i) REQUIRE(t.insert(key(i), 100));
  CHECK(t.size() == 1000);
  for (uint32_t i = 0; i < 1000; ++i) {
    Conn* c = t.find(key(i));
    REQUIRE(c);
    CHECK(c->key == key(i));
  }
  CHECK_FALSE(t.find(key(5000)));
}

TEST_CASE("a full table refuses new connections and changes nothing") {
  ConnTable t(10, 1);
  for (uint32_t i = 0; i < 10; ++i) REQUIRE(t.insert(key(i), 100));
  CHECK_FALSE(t.insert(key(10), 100));
  CHECK(t.size() == 10);
  CHECK_FALSE(t.find(key(10)));
}

TEST_CASE("random inserts and erases agree with a reference map") {
  ConnTable t(4096, 7);
  std::map<uint32_t, bool> ref;
  std::mt19937 rng(9);
  for (int step = 0; step < 50000; ++step) {
    const uint32_t k = rng() % 6000;
    Conn* c = t.find(key(k));
    CHECK(bool(c) == ref.count(k));
    if (c) {
      t.erase(c);
      ref.erase(k);
    } else if (t.size() < t.capacity()) {
      REQUIRE(t.insert(key(k), 10));
      ref[k] = true;
    }
  }
  CHECK(t.size() == ref.size());
  for (auto& [k, _] : ref) CHECK(t.find(key(k)));
}

TEST_CASE("connections expire when their time comes, not before") {
  ConnTable t(100, 3);
  t.insert(key(1), 10);
  t.insert(key(2), 20);
  std::vector<uint16_t> expired;
  auto on = [&](Conn& c) { expired.push_back(c.key.cport); };
  CHECK(t.expire(9, 100, on) == 0);
  CHECK(t.expire(10, 100, on) == 1);
  CHECK(expired == std::vector<uint16_t>{1});
  CHECK_FALSE(t.find(key(1)));
  CHECK(t.expire(19, 100, on) == 0);
  CHECK(t.expire(25, 100, on) == 1);
  CHECK(t.size() == 0);
}

TEST_CASE("a timeout extended after arming is honoured (lazy re-arm)") {
  ConnTable t(100, 3);
  Conn* c = t.insert(key(1), 10);
  c->expires = 50;  // a packet moved it
  auto nothing = [](Conn&) {};
  CHECK(t.expire(10, 100, nothing) == 0);
  CHECK(t.find(key(1)));
  CHECK(t.expire(49, 100, nothing) == 0);
  CHECK(t.expire(50, 100, nothing) == 1);
}

TEST_CASE("timeouts longer than one wheel turn still expire exactly") {
  ConnTable t(100, 3);
  t.insert(key(1), 900 + 3 * ConnTable::kWheelSlots);
  auto nothing = [](Conn&) {};
  for (uint32_t now = 0; now < 900 + 3 * ConnTable::kWheelSlots; now += 7)
    REQUIRE(t.expire(now, 100, nothing) == 0);
  CHECK(t.expire(900 + 3 * ConnTable::kWheelSlots, 100, nothing) == 1);
}

TEST_CASE("expiry work per call is bounded by the budget") {
  ConnTable t(1000, 3);
  for (uint32_t i = 0; i < 1000; ++i) t.insert(key(i), 5);
  auto nothing = [](Conn&) {};
  CHECK(t.expire(5, 300, nothing) == 300);
  CHECK(t.size() == 700);
  CHECK(t.expire(5, 300, nothing) == 300);
  CHECK(t.expire(6, 1000, nothing) == 400);
  CHECK(t.size() == 0);
}

TEST_CASE("erasing a connection takes it off the wheel") {
  ConnTable t(10, 3);
  Conn* a = t.insert(key(1), 10);
  t.insert(key(2), 10);
  t.erase(a);
  int n = 0;
  CHECK(t.expire(10, 100, [&](Conn& c) { n += c.key.cport; }) == 1);
  CHECK(n == 2);
}

TEST_CASE("memory per connection is stated") {
  CHECK(ConnTable::bytes_per_connection() == sizeof(Conn) + 40);  // two indexes at load <= 1/2, the embryo ring
  // IPv6's 16-byte addresses: 96 bytes, of which a packet reads the first 64 (conn.hpp asserts it).
  CHECK(sizeof(Conn) == 96);
}

TEST_CASE("entries inserted before the first expiry walk keep their own times") {
  // lbd's first timer tick may come after the first packets: a 30 s persistence template,
  // then a connection that a FIN shortens to 2 s.
  ConnTable t(64, 7);
  Conn* templ = t.insert(key(1), 1030);
  Conn* conn = t.insert(key(2), 1060);
  REQUIRE(templ);
  REQUIRE(conn);
  t.set_expires(*conn, 1002);
  std::vector<uint32_t> gone;
  for (uint32_t now = 1000; now <= 1004; ++now)
    t.expire(now, 100, [&](Conn& c) { gone.push_back(c.key.cport); });
  CHECK(gone == std::vector<uint32_t>{key(2).cport});  // at 1002, not at the template's 1030
  for (uint32_t now = 1005; now <= 1031; ++now)
    t.expire(now, 100, [&](Conn& c) { gone.push_back(c.key.cport); });
  CHECK(gone == std::vector<uint32_t>{key(2).cport, key(1).cport});
}

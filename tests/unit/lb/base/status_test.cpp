// The error convention: a Status says ok or why not; a Result holds a value or the Status
// of why there is none.
#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include "lb/base/status.hpp"

using namespace lbd;

TEST_CASE("Status: ok, or a code and a message; in() names what it was about") {
  CHECK(Status::ok().is_ok());
  const Status st = Status::error(ENOENT, "no such file");
  CHECK_FALSE(st.is_ok());
  CHECK(st.code() == ENOENT);
  CHECK(Status::invalid("bad key").code() == EINVAL);
  const Status named = st.in("rules: ");
  CHECK(named.code() == ENOENT);
  CHECK(named.message() == "rules: no such file");
  CHECK(Status::ok().in("rules: ").is_ok());
}

TEST_CASE("Result: a value, or the failed Status; an ok Status is no value") {
  const Result<std::string> good = std::string("text");
  REQUIRE(good);
  CHECK(*good == "text");
  CHECK(good->size() == 4);
  CHECK(good.status().is_ok());
  CHECK(good.message().empty());
  const Result<int> bad = Status::error(E2BIG, "too large");
  CHECK_FALSE(bad);
  CHECK(bad.status().code() == E2BIG);
  CHECK(bad.message() == "too large");
  const Result<int> odd = Status::ok();  // a bug's shape: still a failure, never a value
  CHECK_FALSE(odd);
  CHECK(odd.status().code() == EIO);
  Result<std::string> moved = std::string("abc");
  const std::string taken = std::move(moved).value();
  CHECK(taken == "abc");
}

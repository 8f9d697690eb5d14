// The kernel's hash functions: SipHash checked against the reference vectors of the
// SipHash paper (2-4) and against Python's own SipHash-1-3 (PYTHONHASHSEED=0 makes its key
// zero: `hash(struct.pack('<I', v))`), hash_32 against its definition.
#include <catch2/catch.hpp>

#include <array>

#include "scheduler/hash.hpp"

using namespace lbd::sched;

TEST_CASE("SipHash-2-4 gives the paper's vectors (key 00..0f)") {
  const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  std::array<uint8_t, 15> msg{};
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = uint8_t(i);
  CHECK(siphash(msg.data(), 0, k0, k1, 2, 4) == 0x726fdb47dd0e0e31ULL);
  CHECK(siphash(msg.data(), 15, k0, k1, 2, 4) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("SipHash-1-3 (the kernel's hsiphash on 64-bit) gives Python's values for a zero key") {
  std::array<uint8_t, 15> msg{};
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = uint8_t(i);
  CHECK(siphash(msg.data(), 15, 0, 0, 1, 3) == 0xf30eb725bb91c9eaULL);
  const uint8_t v1[4] = {0x01, 0x02, 0x03, 0x04};
  CHECK(siphash(v1, 4, 0, 0, 1, 3) == 0xe7b1a066360ba9d4ULL);
  CHECK(hsiphash_u32(0x04030201u, 0, 0) == 0x360ba9d4u);  // the low 32 bits
  CHECK(hsiphash_u32(0xc612000bu, 0, 0) == 0x1d540266u);
  CHECK(hsiphash_u32(0, 0, 0) == 0x9ac48af0u);
}

TEST_CASE("hash_32: the golden-ratio multiply, its top bits") {
  CHECK(hash_32(0, 8) == 0);
  CHECK(hash_32(1, 8) == 0x61);          // 0x61C88647 >> 24
  CHECK(hash_32(2, 8) == 0xC3);          // 0xC3910C8E >> 24
  CHECK(hash_32(1, 32) == 0x61C88647u);
}

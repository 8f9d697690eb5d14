// The kernel's hash functions the hashing schedulers use, bit for bit: hash_32()
// (include/linux/hash.h: the golden-ratio multiply, sh) and hsiphash() as a 64-bit kernel
// computes it (lib/siphash.c: there "HalfSipHash" is SipHash-1-3 with a 64-bit state and
// the 64-bit result cut to 32 bits; mh). Pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace lbd::sched {

// hash_32(val, bits): val * GOLDEN_RATIO_32, its top `bits` bits.
constexpr uint32_t hash_32(uint32_t val, unsigned bits) { return uint32_t(val * 0x61C88647u) >> (32 - bits); }

// SipHash-c-d of `len` bytes with the key (k0, k1), as the reference implementation.
constexpr uint64_t siphash(const uint8_t* data, size_t len, uint64_t k0, uint64_t k1, int c, int d) {
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  auto round = [&] {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  };
  auto compress = [&](uint64_t m) {
    v3 ^= m;
    for (int i = 0; i < c; ++i) round();
    v0 ^= m;
  };
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t m = 0;
    for (int k = 0; k < 8; ++k) m |= uint64_t(data[i + size_t(k)]) << (8 * k);
    compress(m);
  }
  uint64_t b = uint64_t(len) << 56;
  for (size_t k = 0; i + k < len; ++k) b |= uint64_t(data[i + k]) << (8 * k);
  compress(b);
  v2 ^= 0xff;
  for (int k = 0; k < d; ++k) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// The kernel's hsiphash(&v, sizeof v, key) of one u32 on a 64-bit machine (little-endian
// bytes), key = {k0, k1}.
constexpr uint32_t hsiphash_u32(uint32_t v, uint64_t k0, uint64_t k1) {
  const uint8_t bytes[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  return uint32_t(siphash(bytes, 4, k0, k1, 1, 3));
}

// The 256-bucket table sh and dh keep: each bucket a real's index in the list, -1 none.
struct Buckets {
  static constexpr unsigned kBits = 8;
  static constexpr uint32_t kSize = 1u << kBits;
  std::array<int32_t, kSize> at;
  Buckets() { at.fill(-1); }
};

}  // namespace lbd::sched

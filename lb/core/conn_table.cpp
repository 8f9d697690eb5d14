// Connection table; see conn_table.hpp for layout, bounds and thread safety.
#include "lb/core/conn_table.hpp"

#include <bit>
#include <cstring>

namespace lbd {
namespace {

// 64x64→128 multiply folded to 64 bits: a fast keyed mixer (wyhash's "mum").
inline uint64_t mum(uint64_t a, uint64_t b) {
  const __uint128_t r = __uint128_t(a) * b;
  return uint64_t(r) ^ uint64_t(r >> 64);
}

}  // namespace

ConnTable::ConnTable(ConnSlab slab, uint64_t seed)
    : capacity_(slab.capacity()),
      mask_(std::bit_ceil(uint32_t(capacity_) * 2u) - 1),
      seed0_(seed ^ 0xa0761d6478bd642fULL),
      seed1_(std::rotl(seed, 29) ^ 0xe7037ed1a0b428dbULL),
      slab_mem_(std::move(slab)),
      slab_(slab_mem_.entries()),
      index_(size_t(mask_) + 1, Bucket{0, 0}),
      reply_index_(size_t(mask_) + 1, Bucket{0, 0}),
      wheel_(kWheelSlots, 0),
      embryos_(std::bit_ceil(capacity_)),
      embryo_mask_(embryos_.size() - 1) {
  free_.reserve(capacity_);
  for (uint32_t i = capacity_; i > 0; --i) free_.push_back(i);
}

uint32_t ConnTable::hash(const ConnKey& k) const {
  // Every bit of both addresses counts (an IPv6 client chooses 64 of them): the addresses'
  // halves and the ports folded through two keyed multiplications.
  uint64_t c[2], v[2];
  std::memcpy(c, k.caddr.b.data(), 16);
  std::memcpy(v, k.vaddr.b.data(), 16);
  const uint64_t ports = uint64_t(k.cport) << 32 | uint64_t(k.vport) << 16 | k.protocol;
  const uint64_t hi = mum(c[0] ^ seed1_, v[0] ^ seed0_);
  return uint32_t(mum(c[1] ^ seed0_ ^ hi, v[1] ^ ports ^ seed1_) ^ seed0_);
}

// Linear probing in `index` for the connection with hash `h` that `matches`.
template <class Matches>
Conn* ConnTable::probe(const std::vector<Bucket>& index, uint32_t h, Matches&& matches) {
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    const Bucket b = index[i];
    if (!b.slot) return nullptr;
    if (b.tag == h && matches(slab_[b.slot - 1])) return &slab_[b.slot - 1];
  }
}

Conn* ConnTable::find(const ConnKey& key) {
  return probe(index_, hash(key), [&](const Conn& c) { return c.key == key; });
}

Conn* ConnTable::find_reply(const ConnKey& reply) {
  return probe(reply_index_, hash(reply), [&](const Conn& c) { return reply_key(c) == reply; });
}

bool ConnTable::index_reply(Conn* c) {
  const ConnKey k = reply_key(*c);
  if (find_reply(k)) return false;
  index_insert(reply_index_, hash(k), slot_of(c));
  c->reply_indexed = true;
  return true;
}

Conn* ConnTable::insert(const ConnKey& key, uint32_t expires) {
  if (free_.empty()) return nullptr;
  const uint32_t slot1 = free_.back();
  free_.pop_back();
  const uint32_t h = hash(key);
  index_insert(index_, h, slot1);
  if (!wheel_started_) {  // the wheel starts at the first armed second, so none is skipped
    wheel_now_ = expires;
    wheel_started_ = true;
  }
  Conn& c = slab_[slot1 - 1];
  c = Conn{};
  c.key = key;
  c.hash = h;
  c.expires = expires;
  wheel_link(slot1, expires);
  ++size_;
  return &c;
}

void ConnTable::erase(Conn* c) {
  const uint32_t slot1 = slot_of(c);
  wheel_unlink(slot1);
  erase_detached(slot1);
}

void ConnTable::erase_detached(uint32_t slot1) {
  Conn& c = slab_[slot1 - 1];
  index_remove(index_, mask_, c.hash, slot1);
  if (c.reply_indexed) index_remove(reply_index_, mask_, hash(reply_key(c)), slot1);
  // Free is all zero (what a next lbd skips); its note in the embryo ring is stale now.
  std::memset(static_cast<void*>(&c), 0, sizeof c);
  free_.push_back(slot1);
  --size_;
}

void ConnTable::index_insert(std::vector<Bucket>& index, uint32_t h, uint32_t slot1) {
  uint32_t i = h & mask_;
  while (index[i].slot) i = (i + 1) & mask_;
  index[i] = Bucket{h, slot1};
}

void ConnTable::index_remove(std::vector<Bucket>& index, uint32_t mask, uint32_t h,
                             uint32_t slot1) {
  uint32_t i = h & mask;
  while (index[i].slot != slot1) i = (i + 1) & mask;
  index_erase(index, mask, i);
}

// Linear-probing deletion without tombstones: shift back every later entry of the probe
// run that may live at the hole (its home is not cyclically within (hole, j]).
void ConnTable::index_erase(std::vector<Bucket>& index, uint32_t mask, uint32_t hole) {
  uint32_t j = hole;
  for (;;) {
    j = (j + 1) & mask;
    if (!index[j].slot) break;
    const uint32_t home = index[j].tag & mask;
    const bool home_in_range = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!home_in_range) {
      index[hole] = index[j];
      hole = j;
    }
  }
  index[hole] = Bucket{0, 0};
}

void ConnTable::wheel_link(uint32_t slot1, uint32_t expires) {
  // A time already behind the wheel would wait a whole turn: arm it at the next second due.
  // Before the first expire() the wheel stands at the first entry's expiry (insert knows
  // no clock): an earlier entry moves it back instead, as no second has been walked yet.
  // (Clamping then made a 2 s FIN_WAIT wait for a 30 s template inserted before it.)
  if (wheel_started_ && int32_t(expires - wheel_now_) < 0) {
    if (wheel_walked_)
      expires = wheel_now_;
    else
      wheel_now_ = expires;
  }
  uint32_t& head = wheel_[expires % kWheelSlots];
  Conn& c = slab_[slot1 - 1];
  c.armed = expires;
  c.wheel_prev = 0;
  c.wheel_next = head;
  if (head) slab_[head - 1].wheel_prev = slot1;
  head = slot1;
}

void ConnTable::wheel_unlink(uint32_t slot1) {
  Conn& c = slab_[slot1 - 1];
  if (c.wheel_prev) {
    slab_[c.wheel_prev - 1].wheel_next = c.wheel_next;
  } else {
    uint32_t& head = wheel_[c.armed % kWheelSlots];
    if (head == slot1) head = c.wheel_next;  // else: detached by an expire() walk
  }
  if (c.wheel_next) slab_[c.wheel_next - 1].wheel_prev = c.wheel_prev;
  c.wheel_prev = c.wheel_next = 0;
}

}  // namespace lbd

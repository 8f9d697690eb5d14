// The connection table: a fixed-capacity slab of connections, two open-addressing indexes
// (linear probing, 8-byte buckets holding a hash tag and a slot, load <= 1/2) and a
// one-second timer wheel with lazy re-arming, so a packet that extends a timeout only
// stores a number. The hash is keyed with a seed chosen at start: the key is client-chosen.
//
// Thread safety: none; the table belongs to the one thread that runs the data path.
// Full: insert() returns nullptr and nothing changes (the caller counts the drop).
// The first index finds a connection by the client's packets (client → VIP:vport), the
// second by the real server's replies (RIP:rport → client), for NAT connections only.
// Memory: sizeof(Conn) + 4 * 8 bytes of index + 8 of embryo ring per connection of capacity.
// The entries themselves are a ConnSlab's (conn_slab.hpp): shared memory another lbd can
// adopt them from, or anonymous memory. An erased entry is zeroed there.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "lb/core/conn.hpp"
#include "lb/core/conn_slab.hpp"

namespace lbd {

class ConnTable {
 public:
  static constexpr uint32_t kWheelSlots = 1024;  // one-second slots; longer timeouts re-arm

  ConnTable(uint32_t capacity, uint64_t seed) : ConnTable(ConnSlab::anonymous(capacity ? capacity : 1), seed) {}
  // A table on `slab`'s entries (which must be all free: a new slab).
  ConnTable(ConnSlab slab, uint64_t seed);
  const ConnSlab& slab() const { return slab_mem_; }

  Conn* find(const ConnKey& key);
  // Inserts a new connection (key must not be present) expiring at `expires`.
  Conn* insert(const ConnKey& key, uint32_t expires);
  void erase(Conn* c);
  // Sets when `c` expires. Later is just a number (the wheel re-arms lazily); earlier (a
  // FIN or RST shortening the timeout) moves it on the wheel, so counts drop on time.
  void set_expires(Conn& c, uint32_t expires) {
    c.expires = expires;
    if (int32_t(expires - c.armed) < 0) {
      const uint32_t slot1 = slot_of(&c);
      wheel_unlink(slot1);
      wheel_link(slot1, expires);
    }
  }
  // Stable handles: a connection's slot + 1, and back.
  uint32_t slot_of(const Conn* c) const { return uint32_t(c - slab_.data()) + 1; }
  Conn& at_slot(uint32_t slot1) { return slab_[slot1 - 1]; }

  // The reply index: reply_key(c) = (c.daddr, c.key.caddr, c.dport, c.key.cport, protocol).
  static ConnKey reply_key(const Conn& c) {
    return ConnKey{c.daddr, c.key.caddr, c.dport, c.key.cport, c.key.protocol};
  }
  Conn* find_reply(const ConnKey& reply);
  // Indexes `c` (daddr/dport set) by its reply key; false if another connection has it.
  bool index_reply(Conn* c);

  // Expires connections whose time has come, up to `budget` of them, calling
  // on_expire(Conn&) before each is freed. Returns how many were expired. If on_expire
  // returns a bool, false keeps the connection (it has moved c.expires on).
  template <class F>
  size_t expire(uint32_t now, size_t budget, F&& on_expire);

  template <class F>
  void for_each(F&& f) const {
    for (const auto& b : index_)
      if (b.slot) f(slab_[b.slot - 1]);
  }

  // The same walk in steps: visits the entries of index positions [from, from + n) and
  // returns where the next step starts (index_positions() at the end). Between steps the
  // table may change: an entry inserted or moved meanwhile can be missed or seen twice, as
  // in IPVS's /proc/net/ip_vs_conn, which walks its hash table under RCU bucket by bucket.
  template <class F>
  size_t for_each_from(size_t from, size_t n, F&& f) const {
    const size_t end = std::min(index_.size(), from + n);
    for (size_t i = from; i < end; ++i)
      if (index_[i].slot) f(slab_[index_[i].slot - 1]);
    return end;
  }
  size_t index_positions() const { return index_.size(); }

  // Embryonic connections (Conn::kEmbryonic) in the order they were made: a SYN flood
  // fills a table with entries no client will ever complete, and the oldest of them is
  // what a new connection may take the place of. note_embryonic() when one is made (O(1));
  // oldest_embryonic() skips entries that completed or went since (O(1) amortized).
  void note_embryonic(const Conn& c) {
    embryos_[embryo_tail_++ & embryo_mask_] = {slot_of(&c), c.hash};
    if (embryo_tail_ - embryo_head_ > embryos_.size()) ++embryo_head_;  // the oldest note lost
  }
  Conn* oldest_embryonic() {
    while (embryo_head_ != embryo_tail_) {
      const Embryo e = embryos_[embryo_head_++ & embryo_mask_];
      Conn& c = slab_[e.slot1 - 1];
      if ((c.flags & Conn::kEmbryonic) && c.hash == e.hash) return &c;
    }
    return nullptr;
  }

  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  bool full() const { return free_.empty(); }
  static constexpr size_t bytes_per_connection() { return sizeof(Conn) + 4 * sizeof(Bucket) + 8; }

 private:
  struct Bucket {
    uint32_t tag;
    uint32_t slot;  // slab index + 1; 0 = empty
  };
  uint32_t hash(const ConnKey& k) const;
  void wheel_link(uint32_t slot1, uint32_t expires);
  void wheel_unlink(uint32_t slot1);
  template <class Matches>
  Conn* probe(const std::vector<Bucket>& index, uint32_t h, Matches&& matches);
  void index_insert(std::vector<Bucket>& index, uint32_t h, uint32_t slot1);
  static void index_erase(std::vector<Bucket>& index, uint32_t mask, uint32_t bucket);
  static void index_remove(std::vector<Bucket>& index, uint32_t mask, uint32_t h, uint32_t slot1);
  void erase_detached(uint32_t slot1);  // erase a connection already off the wheel

  uint32_t capacity_;
  uint32_t mask_;
  uint64_t seed0_, seed1_;
  ConnSlab slab_mem_;
  std::span<Conn> slab_;
  std::vector<Bucket> index_;
  std::vector<Bucket> reply_index_;
  std::vector<uint32_t> free_;     // free slab slots (slot + 1)
  std::vector<uint32_t> wheel_;    // head per second slot (slot + 1)
  uint32_t wheel_now_ = 0;         // next second to process
  bool wheel_started_ = false;
  bool wheel_walked_ = false;      // expire() has run: wheel_now_ follows the clock
  uint32_t size_ = 0;
  struct Embryo {
    uint32_t slot1, hash;  // the connection's slot and hash when noted: a reused slot differs
  };
  std::vector<Embryo> embryos_;  // a ring, capacity rounded up to a power of two
  uint64_t embryo_head_ = 0, embryo_tail_ = 0;
  uint64_t embryo_mask_ = 0;
};

template <class F>
size_t ConnTable::expire(uint32_t now, size_t budget, F&& on_expire) {
  if (!wheel_started_) {
    wheel_now_ = now;
    wheel_started_ = true;
  } else if (int64_t(now) - int64_t(wheel_now_) > 2 * int64_t(kWheelSlots)) {
    wheel_now_ = now - kWheelSlots;  // a long gap: one turn visits every slot anyway
  }
  wheel_walked_ = true;
  size_t done = 0;
  while (wheel_now_ <= now) {
    // Detach the slot, then expire or re-arm each entry; the slot is empty while we walk.
    uint32_t& head = wheel_[wheel_now_ % kWheelSlots];
    uint32_t s = head;
    head = 0;
    while (s) {
      Conn& c = slab_[s - 1];
      const uint32_t next = c.wheel_next;
      c.wheel_prev = c.wheel_next = 0;
      if (c.expires > now) {
        wheel_link(s, c.expires);  // extended since armed, or armed a wheel turn ahead
      } else if (done < budget) {
        if constexpr (std::is_same_v<decltype(on_expire(c)), bool>) {
          if (!on_expire(c)) {
            wheel_link(s, c.expires > now ? c.expires : now + 1);
            s = next;
            continue;
          }
        } else {
          on_expire(c);
        }
        erase_detached(s);
        ++done;
      } else {
        wheel_link(s, wheel_now_);  // over budget: stays due in this slot for the next call
      }
      s = next;
    }
    if (done >= budget) return done;
    ++wheel_now_;
  }
  return done;
}

}  // namespace lbd

// The connection table's entries in memory that outlives the process: a memfd holding a
// header and `capacity` Conn entries, mapped shared. The next lbd (a restart under
// systemd, which keeps the memfd in its file descriptor store; or lbd --takeover, which
// is passed it over the control socket) maps the same memory and adopts the connections
// from it (handover.hpp), also when this lbd was killed: the entries are the table's own,
// written by the data path as it runs, not a copy made at exit.
//
// A free entry is all zero (protocol 0: no connection has it). The layout is versioned:
// a Conn that changes is a new kSlabVersion; version 1 (before IPv6) is read and converted,
// any other version is refused (the new lbd starts empty, and says so).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/core/conn.hpp"

namespace lbd {

struct SlabHeader {
  char magic[8];       // "LBDCONN\0"
  uint32_t version;    // kSlabVersion
  uint32_t conn_size;  // sizeof(Conn)
  uint32_t capacity;   // entries after the header
  uint32_t header_size;
  uint8_t reserved[40];
};
static_assert(sizeof(SlabHeader) == 64);

// Bump with any change to Conn, ConnKey or what their fields mean.
inline constexpr uint32_t kSlabVersion = 2;  // 2: IPv6 (16-byte addresses)
inline constexpr char kSlabMagic[8] = {'L', 'B', 'D', 'C', 'O', 'N', 'N', 0};

class ConnSlab {
 public:
  // Private anonymous memory (unit tests, benchmarks, lbd without a handover).
  static ConnSlab anonymous(uint32_t capacity);
  // A memfd another process can be given; throws std::runtime_error naming the call.
  static ConnSlab shared(uint32_t capacity);
  // A previous lbd's slab, mapped read-only; why not if it is not one this lbd can read
  // (another layout version, a size that does not match its header).
  static Result<ConnSlab> open(UniqueFd fd);

  ConnSlab(ConnSlab&& o) noexcept;
  ConnSlab& operator=(ConnSlab&& o) noexcept;
  ConnSlab(const ConnSlab&) = delete;
  ConnSlab& operator=(const ConnSlab&) = delete;
  ~ConnSlab();

  std::span<Conn> entries() { return {entries_, capacity_}; }
  std::span<const Conn> entries() const { return {entries_, capacity_}; }
  uint32_t capacity() const { return capacity_; }
  int fd() const { return fd_.get(); }  // -1: anonymous
  // The entries that may be in use, as [first, last) index ranges: the memfd's pages never
  // written are skipped (SEEK_DATA/SEEK_HOLE), so a large table mostly empty is read only
  // where it holds something (and its holes are not made pages by reading them).
  std::vector<std::pair<uint32_t, uint32_t>> written_ranges() const;

 private:
  ConnSlab() = default;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  Conn* entries_ = nullptr;
  uint32_t capacity_ = 0;
  UniqueFd fd_;
};

}  // namespace lbd

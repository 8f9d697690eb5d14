// Connection slabs; see conn_slab.hpp.
#include "lb/core/conn_slab.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

namespace lbd {
namespace {

size_t slab_bytes(uint32_t capacity) { return sizeof(SlabHeader) + size_t(capacity) * sizeof(Conn); }

}  // namespace

static std::vector<std::pair<uint32_t, uint32_t>> data_ranges(int fd, size_t map_size, uint32_t capacity,
                                                              size_t entry_size);

ConnSlab ConnSlab::anonymous(uint32_t capacity) {
  ConnSlab s;
  s.map_size_ = slab_bytes(capacity);
  // Zero pages until used: a table of a million entries costs what it holds.
  s.map_ = mmap(nullptr, s.map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (s.map_ == MAP_FAILED) {
    s.map_ = nullptr;
    throw std::bad_alloc();
  }
  s.capacity_ = capacity;
  s.entries_ = reinterpret_cast<Conn*>(static_cast<char*>(s.map_) + sizeof(SlabHeader));
  return s;
}

ConnSlab ConnSlab::shared(uint32_t capacity) {
  UniqueFd fd(memfd_create("lbd-conns", MFD_CLOEXEC));
  if (!fd) throw std::runtime_error(fmt::format("memfd_create: {}", std::strerror(errno)));
  const size_t bytes = slab_bytes(capacity);
  if (ftruncate(fd.get(), off_t(bytes)) < 0)
    throw std::runtime_error(fmt::format("connection table of {} entries: ftruncate: {}", capacity, std::strerror(errno)));
  void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) throw std::runtime_error(fmt::format("connection table: mmap: {}", std::strerror(errno)));
  ConnSlab s;
  s.map_ = map;
  s.map_size_ = bytes;
  s.capacity_ = capacity;
  s.fd_ = std::move(fd);
  auto* h = static_cast<SlabHeader*>(map);
  std::memcpy(h->magic, kSlabMagic, sizeof h->magic);
  h->version = kSlabVersion;
  h->conn_size = sizeof(Conn);
  h->capacity = capacity;
  h->header_size = sizeof(SlabHeader);
  s.entries_ = reinterpret_cast<Conn*>(static_cast<char*>(map) + sizeof(SlabHeader));
  return s;
}

Result<ConnSlab> ConnSlab::open(UniqueFd fd) {
  struct stat st{};
  if (fstat(fd.get(), &st) < 0) return Status::error(errno, fmt::format("fstat: {}", std::strerror(errno)));
  if (size_t(st.st_size) < sizeof(SlabHeader))
    return Status::invalid(fmt::format("{} bytes: too short for a connection table", st.st_size));
  void* map = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return Status::error(errno, fmt::format("mmap: {}", std::strerror(errno)));
  ConnSlab s;  // unmaps on every return below
  s.map_ = map;
  s.map_size_ = size_t(st.st_size);
  s.fd_ = std::move(fd);
  const auto* h = static_cast<const SlabHeader*>(map);
  if (std::memcmp(h->magic, kSlabMagic, sizeof h->magic) != 0) return Status::invalid("not an lbd connection table");
  if (h->version == 1 && h->conn_size == sizeof(ConnV1) && h->header_size == sizeof(SlabHeader)) {
    // An lbd before IPv6: its entries converted into private memory of this layout (the
    // adopted connections are inserted into this lbd's own table; the copy is dropped then).
    if (sizeof(SlabHeader) + uint64_t(h->capacity) * sizeof(ConnV1) != s.map_size_)
      return Status::invalid(fmt::format("a version 1 table of {} entries in {} bytes: truncated or corrupt",
                                         h->capacity, s.map_size_));
    ConnSlab c = anonymous(h->capacity);
    const auto* old = reinterpret_cast<const ConnV1*>(static_cast<const char*>(map) + sizeof(SlabHeader));
    for (const auto& [first, last] : data_ranges(s.fd_.get(), s.map_size_, h->capacity, sizeof(ConnV1)))
      for (uint32_t i = first; i < last; ++i)
        if (old[i].protocol) c.entries_[i] = from_v1(old[i]);
    return c;
  }
  if (h->version != kSlabVersion || h->conn_size != sizeof(Conn) || h->header_size != sizeof(SlabHeader))
    return Status::invalid(fmt::format("connection table layout version {} ({}-byte entries); this lbd reads "
                                       "version {} ({}-byte entries)", h->version, h->conn_size, kSlabVersion,
                                       sizeof(Conn)));
  if (slab_bytes(h->capacity) != s.map_size_)
    return Status::invalid(fmt::format("a table of {} entries in {} bytes: truncated or corrupt", h->capacity,
                                       s.map_size_));
  s.capacity_ = h->capacity;
  s.entries_ = reinterpret_cast<Conn*>(static_cast<char*>(map) + sizeof(SlabHeader));
  return s;
}

// The [first, last) index ranges of entries of `entry_size` bytes (after the header) that
// lie on pages of the memfd ever written (SEEK_DATA/SEEK_HOLE).
static std::vector<std::pair<uint32_t, uint32_t>> data_ranges(int fd, size_t map_size, uint32_t capacity,
                                                              size_t entry_size) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  const off_t end = off_t(map_size);
  off_t pos = off_t(sizeof(SlabHeader));
  while (pos < end) {
    const off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only holes from here
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    const auto first = uint32_t((std::max<off_t>(data, off_t(sizeof(SlabHeader))) - off_t(sizeof(SlabHeader))) / off_t(entry_size));
    const auto last = uint32_t(std::min<uint64_t>(capacity, (uint64_t(hole) - sizeof(SlabHeader) + entry_size - 1) / entry_size));
    if (first < last) {
      if (!out.empty() && out.back().second >= first)
        out.back().second = std::max(out.back().second, last);
      else
        out.push_back({first, last});
    }
    pos = hole;
  }
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> ConnSlab::written_ranges() const {
  if (!fd_) {
    std::vector<std::pair<uint32_t, uint32_t>> out;
    if (capacity_) out.push_back({0, capacity_});
    return out;
  }
  return data_ranges(fd_.get(), map_size_, capacity_, sizeof(Conn));
}

ConnSlab::ConnSlab(ConnSlab&& o) noexcept
    : map_(std::exchange(o.map_, nullptr)),
      map_size_(std::exchange(o.map_size_, 0)),
      entries_(std::exchange(o.entries_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)),
      fd_(std::move(o.fd_)) {}

ConnSlab& ConnSlab::operator=(ConnSlab&& o) noexcept {
  if (this != &o) {
    if (map_) munmap(map_, map_size_);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    entries_ = std::exchange(o.entries_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    fd_ = std::move(o.fd_);
  }
  return *this;
}

ConnSlab::~ConnSlab() {
  if (map_) munmap(map_, map_size_);
  map_ = nullptr;
}

}  // namespace lbd

// The handover's directory and adoption; see handover.hpp.
#include "lb/core/handover.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>

#include "lb/core/data_path.hpp"

namespace lbd {
namespace {

// The memfd: this header, then two slots of slot_bytes each from kSlotsAt. `layout` is
// slot_bytes << 1 | the current slot, one aligned word written last: a reader sees the
// old slot or the new one, whole.
struct DirHeader {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  uint64_t layout;
  uint8_t reserved2[40];
};
static_assert(sizeof(DirHeader) == 64);
struct SlotHeader {
  uint64_t written_ms, stopped_ms;
  uint32_t pid, reals, services, reserved;
};
static_assert(sizeof(SlotHeader) == 32);
constexpr char kDirMagic[8] = {'L', 'B', 'D', 'R', 'E', 'A', 'L', 'S'};
constexpr uint64_t kSlotsAt = 4096;

bool pwrite_all(int fd, const void* p, size_t n, uint64_t off) {
  const auto* b = static_cast<const char*>(p);
  while (n) {
    const ssize_t w = pwrite(fd, b, n, off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w, n -= size_t(w), off += uint64_t(w);
  }
  return true;
}

bool pread_all(int fd, void* p, size_t n, uint64_t off) {
  auto* b = static_cast<char*>(p);
  while (n) {
    const ssize_t r = pread(fd, b, n, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r, n -= size_t(r), off += uint64_t(r);
  }
  return true;
}

}  // namespace

HandoverDirectory::HandoverDirectory() : fd_(memfd_create("lbd-table", MFD_CLOEXEC)) {
  if (!fd_) throw std::runtime_error(fmt::format("memfd_create: {}", std::strerror(errno)));
  DirHeader h{};
  std::memcpy(h.magic, kDirMagic, sizeof h.magic);
  h.version = kDirectoryVersion;
  h.layout = 0;  // no slot yet: a reader finds nothing to adopt
  if (!pwrite_all(fd_.get(), &h, sizeof h, 0))
    throw std::runtime_error(fmt::format("connection table directory: {}", std::strerror(errno)));
}

bool HandoverDirectory::write(const HandoverState& s) {
  const int fd = fd_.get();
  DirHeader h{};
  if (!pread_all(fd, &h, sizeof h, 0)) return false;
  uint64_t slot_bytes = h.layout >> 1;
  const uint64_t need = sizeof(SlotHeader) + s.reals.size() * sizeof(HandoverReal) +
                        s.services.size() * sizeof(HandoverService);
  uint32_t slot = slot_bytes ? current_ ^ 1u : 0;
  if (need > slot_bytes) {
    // Grown at least twofold: the new slot 1 lies past both old slots, which stay readable
    // until the layout word names the new size.
    slot_bytes = std::max<uint64_t>(std::bit_ceil(need), std::max<uint64_t>(slot_bytes * 2, 64 << 10));
    if (ftruncate(fd, off_t(kSlotsAt + 2 * slot_bytes)) < 0) return false;
    slot = 1;
  }
  const uint64_t at = kSlotsAt + slot * slot_bytes;
  const SlotHeader sh{s.written_ms, s.stopped_ms, s.pid, uint32_t(s.reals.size()), uint32_t(s.services.size()), 0};
  if (!pwrite_all(fd, &sh, sizeof sh, at) ||
      !pwrite_all(fd, s.reals.data(), s.reals.size() * sizeof(HandoverReal), at + sizeof sh) ||
      !pwrite_all(fd, s.services.data(), s.services.size() * sizeof(HandoverService),
                  at + sizeof sh + s.reals.size() * sizeof(HandoverReal)))
    return false;
  const uint64_t layout = slot_bytes << 1 | slot;
  if (!pwrite_all(fd, &layout, sizeof layout, offsetof(DirHeader, layout))) return false;
  current_ = slot;
  return true;
}

Result<HandoverState> HandoverDirectory::read(int fd) {
  struct stat st{};
  if (fstat(fd, &st) < 0) return Status::error(errno, fmt::format("fstat: {}", std::strerror(errno)));
  DirHeader h{};
  if (!pread_all(fd, &h, sizeof h, 0) || std::memcmp(h.magic, kDirMagic, sizeof h.magic) != 0)
    return Status::invalid("not an lbd connection table directory");
  if (h.version != kDirectoryVersion && h.version != 1)
    return Status::invalid(fmt::format("directory layout version {}; this lbd reads version {}", h.version,
                                       kDirectoryVersion));
  const bool v1 = h.version == 1;  // an lbd before IPv6: IPv4 records, converted
  const size_t real_size = v1 ? sizeof(HandoverRealV1) : sizeof(HandoverReal);
  const size_t service_size = v1 ? sizeof(HandoverServiceV1) : sizeof(HandoverService);
  const uint64_t slot_bytes = h.layout >> 1;
  if (slot_bytes == 0) return Status::invalid("an empty directory (its lbd stopped before its first write)");
  const uint64_t at = kSlotsAt + (h.layout & 1) * slot_bytes;
  SlotHeader sh{};
  if (at + slot_bytes > uint64_t(st.st_size) || !pread_all(fd, &sh, sizeof sh, at))
    return Status::invalid("a directory truncated");
  const uint64_t need = sizeof sh + uint64_t(sh.reals) * real_size + uint64_t(sh.services) * service_size;
  if (need > slot_bytes) return Status::invalid("a directory slot larger than its size: corrupt");
  HandoverState s;
  s.written_ms = sh.written_ms;
  s.stopped_ms = sh.stopped_ms;
  s.pid = sh.pid;
  if (v1) {
    std::vector<HandoverRealV1> reals(sh.reals);
    std::vector<HandoverServiceV1> services(sh.services);
    if (!pread_all(fd, reals.data(), reals.size() * sizeof(HandoverRealV1), at + sizeof sh) ||
        !pread_all(fd, services.data(), services.size() * sizeof(HandoverServiceV1),
                   at + sizeof sh + reals.size() * sizeof(HandoverRealV1)))
      return Status::invalid("a directory truncated");
    for (const HandoverRealV1& o : reals) {
      HandoverReal r;
      r.id = o.id;
      r.protocol = o.protocol;
      r.flags = o.flags;
      r.vip = o.vip;
      r.addr = o.addr;
      r.vport = o.vport;
      r.port = o.port;
      r.stats = o.stats;
      s.reals.push_back(r);
    }
    for (const HandoverServiceV1& o : services) {
      HandoverService v;
      v.protocol = o.protocol;
      v.port = o.port;
      v.vip = o.vip;
      v.stats = o.stats;
      s.services.push_back(v);
    }
    return s;
  }
  s.reals.resize(sh.reals);
  s.services.resize(sh.services);
  if (!pread_all(fd, s.reals.data(), s.reals.size() * sizeof(HandoverReal), at + sizeof sh) ||
      !pread_all(fd, s.services.data(), s.services.size() * sizeof(HandoverService),
                 at + sizeof sh + s.reals.size() * sizeof(HandoverReal)))
    return Status::invalid("a directory truncated");
  return s;
}

HandoverState handover_state(ServiceTable& services) {
  HandoverState s;
  services.for_each_real([&](Real& r) {
    HandoverReal e;
    e.id = r.id;
    e.protocol = r.service_key.protocol;
    e.vip = r.service_key.vip;
    e.vport = r.service_key.port;
    e.fwmark = r.service_key.fwmark;
    e.addr = r.addr;
    e.port = r.port;
    e.stats = r.stats;
    if (r.health_down && !r.sorry) e.flags |= HandoverReal::kDown;
    s.reals.push_back(e);
  });
  services.for_each_service([&](const Service& svc) {
    HandoverService e;
    e.protocol = svc.key.protocol;
    e.port = svc.key.port;
    e.vip = svc.key.vip;
    e.fwmark = svc.key.fwmark;
    e.stats = svc.stats;
    s.services.push_back(e);
  });
  return s;
}

AdoptCounts adopt_connections(DataPath& dp, ServiceTable& services, std::span<const ConnSlab> slabs,
                              const HandoverState& dir,
                              const std::function<bool(const IpAddr&, uint32_t)>& mine, uint32_t now_s) {
  // The previous lbd's real ids, mapped to this table's reals (a sorry server is a real too).
  std::vector<Real*> reals;     // by the previous lbd's id
  std::vector<uint32_t> marks;  // by the previous lbd's id: its service's mark, configured now or not
  for (const HandoverReal& e : dir.reals) {
    if (e.fwmark && e.id <= (1u << 24)) {
      if (marks.size() <= e.id) marks.resize(e.id + 1, 0);
      marks[e.id] = e.fwmark;
    }
    const ServiceKey key{e.protocol, e.vip, e.vport, e.fwmark};
    Real* r = services.find_real(key, e.addr, e.port);
    if (const Service* s = services.find(key); !r && s && s->sorry_id != Service::kNoSorry) {
      Real& sorry = services.real(s->sorry_id);
      if (sorry.addr == e.addr && sorry.port == e.port) r = &sorry;
    }
    if (!r || r->deleted || e.id > (1u << 24)) continue;  // ids are dense: a larger one is not lbd's
    if (reals.size() <= e.id) reals.resize(e.id + 1, nullptr);
    reals[e.id] = r;
  }
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> ranges;
  for (const ConnSlab& slab : slabs) ranges.push_back(slab.written_ranges());
  AdoptCounts n;
  // Templates first: a connection of a persistent service names its template by slot.
  std::unordered_map<uint64_t, Conn*> templates;  // slab index << 32 | old slot + 1
  for (const bool templ_pass : {true, false}) {
    for (size_t si = 0; si < slabs.size(); ++si) {
      const std::span<const Conn> entries = slabs[si].entries();
      for (const auto& [first, last] : ranges[si]) {
        for (uint32_t i = first; i < last; ++i) {
          const Conn& old = entries[i];
          if (old.key.protocol == 0 || bool(old.flags & Conn::kTemplate) != templ_pass ||
              !mine(old.key.caddr, old.real_id < marks.size() ? marks[old.real_id] : 0))
            continue;
          if (int32_t(old.expires - now_s) <= 0 && !(old.flags & Conn::kOffloaded)) {
            ++n.expired;
            continue;
          }
          Real* real = old.real_id < reals.size() ? reals[old.real_id] : nullptr;
          if (!real) {
            ++n.no_real;
            continue;
          }
          Conn* templ = nullptr;
          if (!templ_pass && old.control) {
            const auto t = templates.find(uint64_t(si) << 32 | old.control);
            templ = t == templates.end() ? nullptr : t->second;  // not taken: the connection goes alone
          }
          Conn* c = dp.adopt(old, *real, templ, now_s);
          if (!c) {
            ++n.refused;
            continue;
          }
          ++n.adopted;
          if (templ_pass) templates.emplace(uint64_t(si) << 32 | (i + 1), c);
        }
      }
    }
  }
  return n;
}

size_t adopt_health(ServiceTable& services, const HandoverState& dir) {
  size_t n = 0;
  for (const HandoverReal& e : dir.reals) {
    if (!(e.flags & HandoverReal::kDown)) continue;
    const ServiceKey key{e.protocol, e.vip, e.vport, e.fwmark};
    Real* r = services.find_real(key, e.addr, e.port);
    const Service* s = services.find(key);
    if (!r || r->deleted || r->health_down || !s) continue;
    if (!health::effective_check(s->options.health.check, r->health_override).kind) continue;  // no check now
    services.set_health(*r, false);
    ++n;
  }
  return n;
}

void adopt_counters(ServiceTable& services, const HandoverState& dir) {
  for (const HandoverReal& e : dir.reals)
    if (Real* r = services.find_real(ServiceKey{e.protocol, e.vip, e.vport, e.fwmark}, e.addr, e.port))
      r->stats += e.stats;
  for (const HandoverService& e : dir.services)
    if (Service* s = services.find(ServiceKey{e.protocol, e.vip, e.port, e.fwmark})) s->stats += e.stats;
}

}  // namespace lbd

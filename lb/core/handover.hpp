// A restart that loses no connection: what one lbd leaves the next. The connections are
// its tables' own entries (ConnSlab, shared memory); what they refer to — real ids — and
// what it counted are in a directory, a second memfd the control thread rewrites after
// every change and every 2 s (and a last time at a clean stop). Both reach the next lbd
// through systemd's file descriptor store (a restart, an upgrade, a watchdog kill) or the
// control socket (lbd --takeover), and it adopts them: each connection into the table of
// the worker that owns its client, on the real with the same service, address and port
// (its state, timeout, template and NAT reply index as they were), and each real's and
// service's counters. A connection whose real is no longer configured is not taken.
//
// The directory is double-buffered (a slot written whole, then made current), so a
// process killed while writing it leaves the previous slot, and versioned like the slab.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/core/conn_slab.hpp"
#include "lb/core/service_table.hpp"

namespace lbd {

class DataPath;

struct HandoverReal {
  uint32_t id = 0;
  uint8_t protocol = 0;
  static constexpr uint8_t kDown = 1;  // down by its checks (a previous lbd without it: 0, up)
  uint8_t flags = 0;
  uint8_t reserved[2]{};
  IpAddr vip, addr;
  uint16_t vport = 0, port = 0;
  uint32_t fwmark = 0;  // its service's firewall mark (0: none; an lbd before it wrote 0 here)
  Counters stats;
};
static_assert(sizeof(HandoverReal) == 88 && std::is_trivially_copyable_v<HandoverReal>);

struct HandoverService {
  uint8_t protocol = 0;
  uint8_t reserved = 0;
  uint16_t port = 0;
  IpAddr vip;
  uint32_t fwmark = 0;  // as HandoverReal's
  Counters stats;
};
static_assert(sizeof(HandoverService) == 64 && std::is_trivially_copyable_v<HandoverService>);

// Version 1's records (an lbd before IPv6: IPv4 addresses), read and converted, so the
// restart that installs IPv6 keeps its connections too.
struct HandoverRealV1 {
  uint32_t id = 0;
  uint8_t protocol = 0;
  uint8_t flags = 0;
  uint8_t reserved[2]{};
  Ipv4 vip, addr;
  uint16_t vport = 0, port = 0;
  uint32_t reserved2 = 0;
  Counters stats;
};
static_assert(sizeof(HandoverRealV1) == 64 && std::is_trivially_copyable_v<HandoverRealV1>);
struct HandoverServiceV1 {
  uint8_t protocol = 0;
  uint8_t reserved = 0;
  uint16_t port = 0;
  Ipv4 vip;
  Counters stats;
};
static_assert(sizeof(HandoverServiceV1) == 48 && std::is_trivially_copyable_v<HandoverServiceV1>);

// What the directory holds.
struct HandoverState {
  std::vector<HandoverReal> reals;
  std::vector<HandoverService> services;
  uint64_t written_ms = 0;  // monotonic (the box's clock: it survives the process)
  uint64_t stopped_ms = 0;  // a clean stop: when the workers stopped (the slabs are final); 0: none
  uint32_t pid = 0;         // of the lbd that wrote it
};

// Bump with any change to the records or the layout below.
inline constexpr uint32_t kDirectoryVersion = 2;  // 2: IPv6 (16-byte addresses)

class HandoverDirectory {
 public:
  // A new memfd; throws std::runtime_error naming the call.
  HandoverDirectory();
  int fd() const { return fd_.get(); }
  // Writes `s` into the slot not current, then makes it current; false (errno) if the
  // memfd could not grow.
  bool write(const HandoverState& s);
  // A previous lbd's directory: its current slot, or why not.
  static Result<HandoverState> read(int fd);

 private:
  UniqueFd fd_;
  uint32_t current_ = 0;
};

// The directory of `services` (every real, deleted ones still referenced too).
HandoverState handover_state(ServiceTable& services);

// The reals the previous lbd had down by their checks, down here too while they are still
// checked (they come back by passing their checks, not by a restart); how many.
size_t adopt_health(ServiceTable& services, const HandoverState& dir);

struct AdoptCounts {
  uint64_t adopted = 0;
  uint64_t expired = 0;    // their time had come
  uint64_t no_real = 0;    // their real is not configured any more
  uint64_t refused = 0;    // the table full, the key there already, a NAT reply tuple taken
  AdoptCounts& operator+=(const AdoptCounts& o) {  // several workers' adoptions
    adopted += o.adopted, expired += o.expired, no_real += o.no_real, refused += o.refused;
    return *this;
  }
};

// Adopts into `dp` (on `services`) the connections of `slabs` that `mine(client, fwmark)`
// says this table owns (`fwmark`: their service's mark, 0 if none): templates first, then
// the connections they control. Entries due by `now_s` are left.
AdoptCounts adopt_connections(DataPath& dp, ServiceTable& services, std::span<const ConnSlab> slabs,
                              const HandoverState& dir,
                              const std::function<bool(const IpAddr&, uint32_t)>& mine, uint32_t now_s);
// The previous lbd's counters added to `services`' reals and services (one table's: the
// sum over workers is what listings show).
void adopt_counters(ServiceTable& services, const HandoverState& dir);

}  // namespace lbd

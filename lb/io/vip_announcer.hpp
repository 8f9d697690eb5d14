// What lbd tells the routers (lbd --announce-table N): a route `VIP/32 dev lbd-announce`
// (an IPv6 VIP's `VIP/128`) in routing table N for each VIP that can take a new connection now (ServiceTable::
// serving_vips), for a routing daemon (BIRD's kernel protocol with `learn`) to announce by
// BGP. Nothing routes by table N: the routes are only the announcement.
//
// lbd-announce is a TUN device that is not persistent: the kernel removes it, and every
// route through it, when lbd's descriptor closes — at exit, and also when lbd is killed.
// So a VIP is never announced by a director whose lbd is not running, with no cleanup
// for a next lbd to do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"

struct nl_sock;

namespace lbd {

class VipAnnouncer {
 public:
  static constexpr const char* kDevice = "lbd-announce";
  // Creates the device (refused if one of that name exists) in routing table `table`.
  static Result<VipAnnouncer> open(uint32_t table);
  VipAnnouncer(VipAnnouncer&&) noexcept;
  VipAnnouncer& operator=(VipAnnouncer&&) noexcept;
  ~VipAnnouncer();

  // Announces exactly `vips` (sorted): adds and removes routes for the difference. The
  // routes it could not change are named in the error; the others are changed.
  Status announce(const std::vector<IpAddr>& vips);
  const std::vector<IpAddr>& announced() const { return announced_; }
  uint32_t table() const { return table_; }

 private:
  VipAnnouncer() = default;
  Status route(const IpAddr& vip, bool add);
  UniqueFd tun_;
  nl_sock* sock_ = nullptr;
  int ifindex_ = 0;
  uint32_t table_ = 0;
  std::vector<IpAddr> announced_;
};

}  // namespace lbd

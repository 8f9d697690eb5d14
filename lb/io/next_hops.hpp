// Where each real server's frames go: its route out of one of lbd's interfaces, the
// neighbour's MAC (asked of the kernel, kept fresh), the source address a tunnel leaves
// from. Runs on the control thread; the workers get the result (Real::hop) from it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lb/io/netlink_neighbours.hpp"
#include "forwarding/packet.hpp"
#include "lb/core/service_table.hpp"

namespace lbd {

struct HopInterface {
  int ifindex = 0;
  std::string name;
  MacAddr mac;
  uint16_t mtu = 1500;
};

// The address classifier learns the director's own addresses and its subnets' broadcast
// (and network) addresses: refused as reals.
void learn_local_addresses();

class NextHops {
 public:
  explicit NextHops(std::vector<HopInterface> interfaces) : interfaces_(std::move(interfaces)) {}

  // Each real's next hop in `services`; `refresh`: the kernel's routes, neighbours and
  // addresses read again first.
  void resolve(ServiceTable& services, bool refresh);
  void set_interfaces(std::vector<HopInterface> interfaces) { interfaces_ = std::move(interfaces); }
  // DR reals whose next hop is a gateway (warned once each).
  uint32_t dr_not_on_link() const { return dr_not_on_link_; }

 private:
  std::vector<HopInterface> interfaces_;
  NetlinkNeighbours nl_;
  uint32_t dr_not_on_link_ = 0;
};

}  // namespace lbd

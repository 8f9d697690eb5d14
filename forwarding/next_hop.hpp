// Where a rewritten frame leaves: interface and both MACs. Resolved by the control plane
// (forwarding/netlink_neighbours.*), read by rewrites; never looked up on the packet path.
#pragma once

#include "forwarding/packet.hpp"

namespace lbd {

struct NextHop {
  int ifindex = 0;
  MacAddr src;  // the director's MAC on ifindex
  MacAddr dst;  // the next hop's MAC
  uint16_t mtu = 1500;
  bool resolved = false;
  IpAddr src_ip;  // the director's address on ifindex (TUN: the outer source)
  friend bool operator==(const NextHop&, const NextHop&) = default;
};

}  // namespace lbd

// Route and neighbour resolution through libnl, for the control plane only: it fills each
// real server's NextHop, refreshed off the packet path. Resolution of an unknown neighbour
// is kicked with an RTM_NEWNEIGH carrying NTF_USE (the kernel then ARPs for it), so the
// data path never waits on it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "forwarding/packet.hpp"
#include "lb/base/status.hpp"

struct nl_sock;
struct nl_cache;
extern "C" void nl_socket_free(nl_sock*);
extern "C" void nl_cache_free(nl_cache*);

namespace lbd {

class NetlinkNeighbours {
 public:
  NetlinkNeighbours();  // throws std::runtime_error naming the failed step
  ~NetlinkNeighbours() = default;
  NetlinkNeighbours(const NetlinkNeighbours&) = delete;
  NetlinkNeighbours& operator=(const NetlinkNeighbours&) = delete;

  // Re-reads the kernel's IPv4 and IPv6 routes, neighbours and addresses.
  void refresh();

  struct Route {
    int ifindex = 0;
    IpAddr next_hop;  // the gateway, or the destination itself when on-link
    IpAddr pref_src;  // the route's preferred source address, zero if none
  };
  // Longest-prefix match in the main table; nullopt if no unicast route.
  std::optional<Route> route(const IpAddr& dst) const;
  // The neighbour's MAC if the kernel has a usable entry (not INCOMPLETE/FAILED).
  std::optional<MacAddr> neighbour(int ifindex, const IpAddr& addr) const;
  // Asks the kernel to resolve `addr` on `ifindex` (or to confirm a known entry: NTF_USE
  // marks it used, so STALE entries are re-probed). False with `error` on failure.
  Status request_resolution(int ifindex, const IpAddr& addr);
  // The address the director sends from on `ifindex` towards `dst` (the route's preferred
  // source, else an address of the interface whose subnet holds `next_hop`, else its
  // first), of dst's family; zero if the interface has none. (IPv6: global addresses only.)
  IpAddr source_address(int ifindex, const IpAddr& dst, const IpAddr& next_hop) const;

 private:
  // Owned: freed in reverse (the caches, then the socket), also when the constructor throws.
  std::unique_ptr<nl_sock, void (*)(nl_sock*)> sock_{nullptr, nl_socket_free};
  std::unique_ptr<nl_cache, void (*)(nl_cache*)> routes_{nullptr, nl_cache_free};
  std::unique_ptr<nl_cache, void (*)(nl_cache*)> neighbours_{nullptr, nl_cache_free};
  std::unique_ptr<nl_cache, void (*)(nl_cache*)> addresses_{nullptr, nl_cache_free};
};

}  // namespace lbd

// libnl route/neighbour lookups; see netlink_neighbours.hpp.
#include "lb/io/netlink_neighbours.hpp"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace lbd {
namespace {

nl_addr* make_addr(Ipv4 a) { return nl_addr_build(AF_INET, a.b.data(), 4); }

}  // namespace

NetlinkNeighbours::NetlinkNeighbours() {
  sock_.reset(nl_socket_alloc());
  if (!sock_) throw std::runtime_error("netlink: cannot allocate socket");
  if (int err = nl_connect(sock_.get(), NETLINK_ROUTE); err < 0)
    throw std::runtime_error(fmt::format("netlink: connect: {}", nl_geterror(err)));
  nl_cache* c = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), AF_INET, 0, &c); err < 0)
    throw std::runtime_error(fmt::format("netlink: route dump: {}", nl_geterror(err)));
  routes_.reset(c);
  if (int err = rtnl_neigh_alloc_cache(sock_.get(), &c); err < 0)
    throw std::runtime_error(fmt::format("netlink: neighbour dump: {}", nl_geterror(err)));
  neighbours_.reset(c);
  if (int err = rtnl_addr_alloc_cache(sock_.get(), &c); err < 0)
    throw std::runtime_error(fmt::format("netlink: address dump: {}", nl_geterror(err)));
  addresses_.reset(c);
}

void NetlinkNeighbours::refresh() {
  nl_cache_refill(sock_.get(), routes_.get());
  nl_cache_refill(sock_.get(), neighbours_.get());
  nl_cache_refill(sock_.get(), addresses_.get());
}

Ipv4 NetlinkNeighbours::source_address(int ifindex, Ipv4 dst, Ipv4 next_hop) const {
  if (auto r = route(dst); r && !(r->pref_src == Ipv4{})) return r->pref_src;
  Ipv4 first, on_subnet;
  for (nl_object* o = nl_cache_get_first(addresses_.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET || rtnl_addr_get_ifindex(a) != ifindex) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local || nl_addr_get_len(local) != 4) continue;
    Ipv4 addr;
    std::memcpy(addr.b.data(), nl_addr_get_binary_addr(local), 4);
    if (first == Ipv4{}) first = addr;
    const int len = rtnl_addr_get_prefixlen(a);
    const uint32_t mask = len <= 0 ? 0 : len >= 32 ? 0xffffffffu : ~(0xffffffffu >> len);
    if (on_subnet == Ipv4{} && (addr.host() & mask) == (next_hop.host() & mask)) on_subnet = addr;
  }
  return on_subnet == Ipv4{} ? first : on_subnet;
}

std::optional<NetlinkNeighbours::Route> NetlinkNeighbours::route(Ipv4 dst) const {
  std::optional<Route> best;
  int best_len = -1;
  for (nl_object* o = nl_cache_get_first(routes_.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST)
      continue;
    nl_addr* rdst = rtnl_route_get_dst(r);
    const int len = rdst ? int(nl_addr_get_prefixlen(rdst)) : 0;
    if (len <= best_len) continue;
    if (rdst && len > 0) {
      if (nl_addr_get_len(rdst) != 4) continue;
      uint32_t net;
      std::memcpy(&net, nl_addr_get_binary_addr(rdst), 4);
      const uint32_t mask = len >= 32 ? 0xffffffffu : ~(0xffffffffu >> len);
      if ((ntohl(net) & mask) != (dst.host() & mask)) continue;
    }
    if (rtnl_route_get_nnexthops(r) < 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    Route out;
    out.ifindex = rtnl_route_nh_get_ifindex(nh);
    out.next_hop = dst;
    if (nl_addr* ps = rtnl_route_get_pref_src(r); ps && nl_addr_get_len(ps) == 4)
      std::memcpy(out.pref_src.b.data(), nl_addr_get_binary_addr(ps), 4);
    if (nl_addr* gw = rtnl_route_nh_get_gateway(nh); gw && nl_addr_get_len(gw) == 4)
      std::memcpy(out.next_hop.b.data(), nl_addr_get_binary_addr(gw), 4);
    best = out;
    best_len = len;
  }
  return best;
}

std::optional<MacAddr> NetlinkNeighbours::neighbour(int ifindex, Ipv4 addr) const {
  nl_addr* a = make_addr(addr);
  rtnl_neigh* n = rtnl_neigh_get(neighbours_.get(), ifindex, a);
  nl_addr_put(a);
  if (!n) return std::nullopt;
  std::optional<MacAddr> mac;
  const int state = rtnl_neigh_get_state(n);
  nl_addr* ll = rtnl_neigh_get_lladdr(n);
  if (ll && nl_addr_get_len(ll) == 6 && !(state & (NUD_INCOMPLETE | NUD_FAILED | NUD_NONE))) {
    MacAddr m;
    std::memcpy(m.b.data(), nl_addr_get_binary_addr(ll), 6);
    mac = m;
  }
  rtnl_neigh_put(n);
  return mac;
}

Status NetlinkNeighbours::request_resolution(int ifindex, Ipv4 addr) {
  rtnl_neigh* n = rtnl_neigh_alloc();
  nl_addr* a = make_addr(addr);
  rtnl_neigh_set_ifindex(n, ifindex);
  rtnl_neigh_set_dst(n, a);
  rtnl_neigh_set_family(n, AF_INET);
  rtnl_neigh_set_flags(n, NTF_USE);
  const int err = rtnl_neigh_add(sock_.get(), n, NLM_F_CREATE | NLM_F_REPLACE);
  nl_addr_put(a);
  rtnl_neigh_put(n);
  if (err < 0) return Status::error(EIO, nl_geterror(err));
  return Status::ok();
}

}  // namespace lbd

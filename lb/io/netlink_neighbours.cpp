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

int family(const IpAddr& a) { return a.v6() ? AF_INET6 : AF_INET; }
nl_addr* make_addr(const IpAddr& a) {
  const auto bytes = a.bytes();
  return nl_addr_build(family(a), bytes.data(), unsigned(bytes.size()));
}
// An nl_addr of `like`'s family as an IpAddr; false if it is not one.
bool read_addr(nl_addr* n, const IpAddr& like, IpAddr& out) {
  if (!n || nl_addr_get_family(n) != family(like) || nl_addr_get_len(n) != like.bytes().size()) return false;
  if (like.v6()) {
    Ipv6 v;
    std::memcpy(v.b.data(), nl_addr_get_binary_addr(n), 16);
    out = IpAddr(v);
  } else {
    Ipv4 v;
    std::memcpy(v.b.data(), nl_addr_get_binary_addr(n), 4);
    out = v;
  }
  return true;
}
// Whether a and b share their first `len` bits (both of one family).
bool same_prefix(const IpAddr& a, const IpAddr& b, int len) { return masked(a, unsigned(len)) == masked(b, unsigned(len)); }
// The zero address of `like`'s family: 0.0.0.0 or ::.
IpAddr zero_of(const IpAddr& like) { return like.v6() ? IpAddr(Ipv6{}) : IpAddr(Ipv4{}); }

}  // namespace

NetlinkNeighbours::NetlinkNeighbours() {
  sock_.reset(nl_socket_alloc());
  if (!sock_) throw std::runtime_error("netlink: cannot allocate socket");
  if (int err = nl_connect(sock_.get(), NETLINK_ROUTE); err < 0)
    throw std::runtime_error(fmt::format("netlink: connect: {}", nl_geterror(err)));
  nl_cache* c = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), AF_UNSPEC, 0, &c); err < 0)
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

IpAddr NetlinkNeighbours::source_address(int ifindex, const IpAddr& dst, const IpAddr& next_hop) const {
  const IpAddr zero = zero_of(dst);
  if (auto r = route(dst); r && !(r->pref_src == zero)) return r->pref_src;
  IpAddr first = zero, on_subnet = zero;
  for (nl_object* o = nl_cache_get_first(addresses_.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex) continue;
    if (dst.v6() && rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE) continue;  // not link-local
    IpAddr addr;
    if (!read_addr(rtnl_addr_get_local(a), dst, addr)) continue;
    if (first == zero) first = addr;
    if (on_subnet == zero && same_prefix(addr, next_hop, rtnl_addr_get_prefixlen(a))) on_subnet = addr;
  }
  return on_subnet == zero ? first : on_subnet;
}

std::optional<NetlinkNeighbours::Route> NetlinkNeighbours::route(const IpAddr& dst) const {
  std::optional<Route> best;
  int best_len = -1;
  for (nl_object* o = nl_cache_get_first(routes_.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_family(r) != family(dst) || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
        rtnl_route_get_type(r) != RTN_UNICAST)
      continue;
    nl_addr* rdst = rtnl_route_get_dst(r);
    const int len = rdst ? int(nl_addr_get_prefixlen(rdst)) : 0;
    if (len <= best_len) continue;
    if (rdst && len > 0) {
      IpAddr net;
      if (!read_addr(rdst, dst, net) || !same_prefix(net, dst, len)) continue;
    }
    if (rtnl_route_get_nnexthops(r) < 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    Route out;
    out.ifindex = rtnl_route_nh_get_ifindex(nh);
    out.next_hop = dst;
    out.pref_src = zero_of(dst);
    read_addr(rtnl_route_get_pref_src(r), dst, out.pref_src);
    read_addr(rtnl_route_nh_get_gateway(nh), dst, out.next_hop);
    best = out;
    best_len = len;
  }
  return best;
}

std::optional<MacAddr> NetlinkNeighbours::neighbour(int ifindex, const IpAddr& addr) const {
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

Status NetlinkNeighbours::request_resolution(int ifindex, const IpAddr& addr) {
  rtnl_neigh* n = rtnl_neigh_alloc();
  nl_addr* a = make_addr(addr);
  rtnl_neigh_set_ifindex(n, ifindex);
  rtnl_neigh_set_dst(n, a);
  rtnl_neigh_set_family(n, family(addr));
  rtnl_neigh_set_flags(n, NTF_USE);
  const int err = rtnl_neigh_add(sock_.get(), n, NLM_F_CREATE | NLM_F_REPLACE);
  nl_addr_put(a);
  rtnl_neigh_put(n);
  if (err < 0) return Status::error(EIO, nl_geterror(err));
  return Status::ok();
}

}  // namespace lbd

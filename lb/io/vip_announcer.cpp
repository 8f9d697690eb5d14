// The announcement routes; see vip_announcer.hpp.
#include "lb/io/vip_announcer.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace lbd {

Result<VipAnnouncer> VipAnnouncer::open(uint32_t table) {
  VipAnnouncer a;
  a.table_ = table;
  a.tun_.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!a.tun_) return Status::error(errno, fmt::format("--announce-table: /dev/net/tun: {}", std::strerror(errno)));
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", kDevice);
  ifr.ifr_flags = short(IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL);  // not persistent: it goes with lbd (EXCL: 0x8000, the sign bit)
  if (ioctl(a.tun_.get(), TUNSETIFF, &ifr) < 0)
    return Status::error(errno, fmt::format("--announce-table: creating {}: {}{}", kDevice, std::strerror(errno),
                                            errno == EBUSY ? " (a device of that name exists)" : ""));
  const UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s || ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return Status::error(errno, fmt::format("{}: SIOCGIFFLAGS", kDevice));
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0)
    return Status::error(errno, fmt::format("{}: up: {}", kDevice, std::strerror(errno)));
  a.ifindex_ = int(if_nametoindex(kDevice));
  a.sock_ = nl_socket_alloc();
  if (!a.sock_) return Status::error(ENOMEM, "netlink: cannot allocate a socket");
  if (int err = nl_connect(a.sock_, NETLINK_ROUTE); err < 0)
    return Status::error(EIO, fmt::format("netlink: connect: {}", nl_geterror(err)));
  return a;
}

VipAnnouncer::VipAnnouncer(VipAnnouncer&& o) noexcept
    : tun_(std::move(o.tun_)),
      sock_(std::exchange(o.sock_, nullptr)),
      ifindex_(o.ifindex_),
      table_(o.table_),
      announced_(std::move(o.announced_)) {}

VipAnnouncer& VipAnnouncer::operator=(VipAnnouncer&& o) noexcept {
  if (this != &o) {
    if (sock_) nl_socket_free(sock_);
    tun_ = std::move(o.tun_);
    sock_ = std::exchange(o.sock_, nullptr);
    ifindex_ = o.ifindex_;
    table_ = o.table_;
    announced_ = std::move(o.announced_);
  }
  return *this;
}

VipAnnouncer::~VipAnnouncer() {
  if (sock_) nl_socket_free(sock_);  // the routes go with the device (tun_)
}

Status VipAnnouncer::route(const IpAddr& vip, bool add) {
  const int family = vip.v6() ? AF_INET6 : AF_INET;
  rtnl_route* r = rtnl_route_alloc();
  const auto bytes = vip.bytes();
  nl_addr* dst = nl_addr_build(family, const_cast<uint8_t*>(bytes.data()), bytes.size());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!r || !dst || !nh) {
    if (r) rtnl_route_put(r);
    if (dst) nl_addr_put(dst);
    if (nh) rtnl_route_nh_free(nh);
    return Status::error(ENOMEM, "netlink: out of memory");
  }
  nl_addr_set_prefixlen(dst, int(vip.width()));
  rtnl_route_set_family(r, uint8_t(family));
  rtnl_route_set_table(r, table_);
  rtnl_route_set_dst(r, dst);
  if (!vip.v6()) rtnl_route_set_scope(r, RT_SCOPE_LINK);  // IPv6 routes have no scope of their own
  rtnl_route_set_protocol(r, RTPROT_STATIC);
  rtnl_route_set_type(r, RTN_UNICAST);
  rtnl_route_nh_set_ifindex(nh, ifindex_);
  rtnl_route_add_nexthop(r, nh);  // owned by the route from here
  const int err = add ? rtnl_route_add(sock_, r, NLM_F_CREATE | NLM_F_REPLACE) : rtnl_route_delete(sock_, r, 0);
  nl_addr_put(dst);
  rtnl_route_put(r);
  if (err < 0 && !(add == false && err == -NLE_OBJ_NOTFOUND))
    return Status::error(EIO, fmt::format("{} {}/{} in table {}: {}", add ? "adding" : "removing", vip, vip.width(),
                                          table_, nl_geterror(err)));
  return Status::ok();
}

Status VipAnnouncer::announce(const std::vector<IpAddr>& vips) {
  auto less = [](const IpAddr& a, const IpAddr& b) { return a < b; };
  std::vector<IpAddr> gone, added;
  std::set_difference(announced_.begin(), announced_.end(), vips.begin(), vips.end(), std::back_inserter(gone), less);
  std::set_difference(vips.begin(), vips.end(), announced_.begin(), announced_.end(), std::back_inserter(added), less);
  std::string failed;
  for (const IpAddr& v : gone) {
    if (Status st = route(v, false); !st.is_ok()) {
      failed += (failed.empty() ? "" : "; ") + st.message();
      continue;
    }
    announced_.erase(std::find(announced_.begin(), announced_.end(), v));
  }
  for (const IpAddr& v : added) {
    if (Status st = route(v, true); !st.is_ok()) {
      failed += (failed.empty() ? "" : "; ") + st.message();
      continue;
    }
    announced_.insert(std::lower_bound(announced_.begin(), announced_.end(), v, less), v);
  }
  return failed.empty() ? Status::ok() : Status::error(EIO, failed);
}

}  // namespace lbd

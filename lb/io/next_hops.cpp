// Next hops of the real servers; see next_hops.hpp.
#include "lb/io/next_hops.hpp"

#include "lb/base/host.hpp"
#include "lb/base/log.hpp"

#include <algorithm>

namespace lbd {

void learn_local_addresses() {
  set_address_classifier([local = local_ipv4(), local6 = local_addresses()](const IpAddr& a) {
    if (a.v6()) {
      if (std::find(local6.begin(), local6.end(), a) != local6.end()) return AddrType::kLocal;
      return classify_address(a);
    }
    for (const LocalAddress& l : local) {
      if (l.addr == a.v4()) return AddrType::kLocal;
      if (l.has_broadcast() && (l.broadcast() == a.v4() || l.network() == a.v4())) return AddrType::kBroadcast;
    }
    return classify_address(a);
  });
}

void NextHops::resolve(ServiceTable& services, bool refresh) {
  if (refresh) {
    nl_.refresh();
    learn_local_addresses();
  }
  uint32_t not_on_link = 0;
  services.for_each_real([&](Real& r) {
    if (r.deleted) return;
    NextHop hop;
    const auto route = nl_.route(r.addr);
    const HopInterface* out = nullptr;
    if (route)
      for (auto& i : interfaces_)
        if (i.ifindex == route->ifindex) out = &i;
    if (!route || !out) {
      if (r.hop.resolved || r.hop.ifindex == 0) {
        LBD_LOG(kWarn, "neighbour", "real server {} is not reachable through an lbd interface{}",
                r.addr, route ? "" : " (no route)");
        r.hop.ifindex = -1;  // warned
      }
      r.hop.resolved = false;
      return;
    }
    // DR rewrites only the MAC: a real behind a router gets the router's MAC, and the router
    // routes the VIP wherever it routes it. IPVS does the same; say so, and count it.
    if (r.fwd == FwdMethod::kRoute && !(route->next_hop == r.addr)) {
      ++not_on_link;
      if (!r.dr_gateway_warned)
        LBD_LOG(kWarn, "neighbour", "DR real server {} is not on-link: frames go to gateway {} (DR needs "
                "the real on the director's segment)", r.addr, route->next_hop);
      r.dr_gateway_warned = true;
    } else {
      r.dr_gateway_warned = false;
    }
    hop.ifindex = out->ifindex;
    hop.src = out->mac;
    hop.mtu = out->mtu;
    hop.src_ip = nl_.source_address(route->ifindex, r.addr, route->next_hop);
    if (r.fwd == FwdMethod::kTunnel && hop.src_ip.is_zero()) {
      if (r.hop.resolved || r.hop.ifindex == 0)
        LBD_LOG(kWarn, "neighbour", "real server {}: {} has no IPv4 address to tunnel from",
                r.addr, out->name);
      r.hop.ifindex = -1;
      r.hop.resolved = false;
      return;
    }
    // NTF_USE on every refresh: the kernel never sees lbd's traffic use this neighbour, so
    // without it the entry would age to STALE (and be collected) with nobody confirming it.
    if (const Status st = nl_.request_resolution(route->ifindex, route->next_hop); !st.is_ok())
      LBD_LOG(kWarn, "neighbour", "cannot resolve {}: {}", route->next_hop, st.message());
    if (auto mac = nl_.neighbour(route->ifindex, route->next_hop)) {
      hop.dst = *mac;
      hop.resolved = true;
      if (!r.hop.resolved || !(r.hop.dst == hop.dst))
        LBD_LOG(kInfo, "neighbour", "real server {} is at {} via {}", r.addr,
                hop.dst, out->name);
    } else if (r.hop.resolved && r.hop.ifindex == hop.ifindex) {
      hop.dst = r.hop.dst;  // entry gone or being re-probed: keep the MAC we know meanwhile
      hop.resolved = true;
    }
    r.hop = hop;
  });
  dr_not_on_link_ = not_on_link;
}

}  // namespace lbd

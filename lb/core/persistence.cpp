// Persistence (-p, -M): the template that keeps a client on its real; see data_path.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

namespace lbd {

// IPVS ip_vs_sched_persist(): the client network's template says which real; a missing or
// no longer valid one (ip_vs_check_template: the real gone, down by its checks, or a sorry
// server no longer standing in) is (re)made from a fresh schedule. A quiesced (weight 0)
// real keeps its clients, as with expire_quiescent_template=0. Each use restarts the
// template's timeout.
Conn* DataPath::persistence_template(Service& svc, const ParsedPacket& p, uint32_t now_s,
                                     DropReason& why) {
  const IpAddr snet = p.v6 ? masked(p.saddr, svc.options.netmask6)
                           : IpAddr(Ipv4::from_host(p.saddr.v4().host() & svc.options.netmask.host()));
  // A fwmark service's template is <IPPROTO_IP, snet, fwmark>: one real for the client
  // network's connections to every address and port the mark takes (ip_vs_sched_persist():
  // `union nf_inet_addr fwmark = { .ip = htonl(svc->fwmark) }`, so an IPv6 service's is the
  // mark in the address's first 32 bits, 0:1:: for mark 1).
  IpAddr mark_addr = Ipv4::from_host(svc.key.fwmark);
  if (svc.key.fwmark && svc.key.vip.v6()) {
    Ipv6 a{};
    const Be32 m = Be32::from_host(svc.key.fwmark);
    std::copy(m.b.begin(), m.b.end(), a.b.begin());
    mark_addr = IpAddr(a);
  }
  const ConnKey tkey = svc.key.fwmark
                           ? ConnKey{snet, mark_addr, 0, 0, uint8_t(kTemplateProtocolBit)}
                           : ConnKey{snet, svc.key.vip, 0, svc.key.port, uint8_t(p.protocol | kTemplateProtocolBit)};
  const uint32_t until = now_s + svc.options.persistent;
  Conn* t = conns_.find(tkey);
  if (t) {
    const Real& r = services_.real(t->real_id);
    // expire_quiescent_template: a real of weight 0 keeps no client (IPVS ip_vs_check_template()).
    const bool valid = !r.deleted && !r.health_down &&
                       r.sorry == services_.service(r.service_id).sorry_active &&
                       !(timeouts_.sysctl.expire_quiescent_template && r.dest.weight == 0);
    if (valid) {
      t->expires = until;
      return t;
    }
  }
  Real* real = schedule(svc, p, now_s);
  if (!real) {
    why = DropReason::kNoRealServer;
    return nullptr;
  }
  if (t) {
    services_.unbind_conn(services_.real(t->real_id), false, true);
    t->expires = until;
  } else {
    t = make_room() ? conns_.insert(tkey, until) : nullptr;
    if (!t) {
      why = DropReason::kConnTableFull;
      return nullptr;
    }
    t->flags = Conn::kTemplate;
    t->state = ConnState::kNone;
  }
  t->real_id = real->id;
  t->daddr = real->addr;
  t->dport = real->port;
  t->method = real->fwd;
  services_.bind_conn(*real, false, true);
  return t;
}

}  // namespace lbd

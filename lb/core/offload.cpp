// The data path's side of the fast path: connections entered and withdrawn, what it forwarded
// folded into the counters, the reals' next hops written; see data_path.hpp and flow_cache.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/ipip.hpp"

namespace lbd {

void DataPath::set_flow_cache(FlowCache* cache) {
  flow_cache_ = cache;
  real_folded_.clear();
  hops_written_.clear();
  offloaded_of_.clear();
  fold_due_.clear();
  fold_listed_.clear();
}

// A connection the slow path has decided and whose next packets change nothing but its
// counters and timeout: established TCP, or UDP (not one-packet: each datagram is
// scheduled). A NAT connection gets a second entry for its real's replies.
void DataPath::maybe_offload(Conn& c, uint64_t now_ms) {
  if (!flow_cache_ || (c.flags & (Conn::kOffloaded | Conn::kOffloadRefused | Conn::kTemplate | Conn::kOnePacket)))
    return;
  if ((c.state != ConnState::kEstablished && c.state != ConnState::kUdp) || c.real_id >= LBD_XDP_MAX_REALS)
    return;
  const FwdMethod method = c.method;
  // The program tunnels IPv4 in IPv4 only: a tunnel with IPv6 on either side stays on this path.
  if (method == FwdMethod::kTunnel && (c.key.caddr.v6() || c.daddr.v6())) {
    c.flags |= Conn::kOffloadRefused;
    return;
  }
  // NAT: where the replies go, known before anything is entered (a client interface lbd
  // does not know: the connection stays on the slow path, not asked again).
  const auto back = method == FwdMethod::kMasq ? back_to_client(c.if_slot, c.client_mac) : std::nullopt;
  if (method == FwdMethod::kMasq && !back) {
    c.flags |= Conn::kOffloadRefused;
    return;
  }
  lbd_flow f{};
  f.real_id = c.real_id;
  f.action = method == FwdMethod::kRoute ? LBD_FLOW_DR : method == FwdMethod::kMasq ? LBD_FLOW_NAT_IN : LBD_FLOW_TUN;
  if (method == FwdMethod::kMasq) {
    std::memcpy(f.addr, c.daddr.b.data(), 16);
    std::memcpy(&f.port, Be16::from_host(c.dport).b.data(), 2);
  }
  const lbd_flow_key key = flow_key(c.key);
  if (!flow_cache_->put(key, f)) {
    ++counters_.offload_full;
    c.flags |= Conn::kOffloadRefused;  // its next packets do not ask again (a system call each)
    return;
  }
  if (method == FwdMethod::kMasq) {
    lbd_flow r{};
    r.real_id = c.real_id;
    r.action = LBD_FLOW_NAT_OUT;
    std::memcpy(r.addr, c.key.vaddr.b.data(), 16);
    std::memcpy(&r.port, Be16::from_host(c.key.vport).b.data(), 2);
    r.ifindex = uint32_t(back->ifindex);
    r.mtu = back->mtu;
    std::memcpy(r.eth_dst, back->dst.b.data(), 6);
    std::memcpy(r.eth_src, back->src.b.data(), 6);
    if (!flow_cache_->put(flow_key(ConnTable::reply_key(c)), r)) {
      flow_cache_->erase(key);
      ++counters_.offload_full;
      c.flags |= Conn::kOffloadRefused;
      return;
    }
  }
  c.flags |= Conn::kOffloaded;
  ++counters_.offload_entered;
  if (!sync_marks_.empty()) sync_now(c, now_ms);  // its later packets pass lbd no more
  if (offloaded_of_.size() <= c.real_id) {
    offloaded_of_.resize(c.real_id + 1, 0);
    fold_listed_.resize(c.real_id + 1, 0);
  }
  ++offloaded_of_[c.real_id];
  if (!fold_listed_[c.real_id]) {
    fold_listed_[c.real_id] = 1;
    fold_due_.push_back(c.real_id);
  }
}

uint64_t DataPath::last_use_ms(const Conn& c) {
  lbd_flow f;
  uint64_t last_ns = 0;
  if (flow_cache_->get(flow_key(c.key), f)) last_ns = f.last_ns;
  if (c.method == FwdMethod::kMasq && flow_cache_->get(flow_key(ConnTable::reply_key(c)), f))
    last_ns = std::max<uint64_t>(last_ns, f.last_ns);
  return last_ns / 1000000;
}

uint32_t DataPath::idle_until(const Conn& c, uint64_t last_ms) const {
  const uint32_t until = last_ms ? seconds(last_ms) + timeouts_.seconds(c.state) : c.expires;
  return int32_t(until - c.expires) > 0 ? until : c.expires;
}

uint32_t DataPath::expires_of(const Conn& c) { return offloaded(c) ? idle_until(c, last_use_ms(c)) : c.expires; }

// The entry leaves the fast path (both sides in one step each: nothing forwarded in
// between is missed); the timeout runs from the last packet either path saw.
void DataPath::withdraw(Conn& c) {
  if (!(c.flags & Conn::kOffloaded)) return;
  c.flags &= uint8_t(~Conn::kOffloaded);
  if (!flow_cache_) return;  // the fast path is gone (lbd stopping): nothing to take back
  --offloaded_of_[c.real_id];  // its use stays due for the next fold
  uint64_t last_ns = 0;
  lbd_flow f;
  if (flow_cache_->take(flow_key(c.key), f)) last_ns = f.last_ns;
  if (c.method == FwdMethod::kMasq && flow_cache_->take(flow_key(ConnTable::reply_key(c)), f))
    last_ns = std::max<uint64_t>(last_ns, f.last_ns);
  ++counters_.offload_withdrawn;
  // Only ever later (a number, no wheel move: this may run inside the wheel's own walk).
  if (const uint32_t until = idle_until(c, last_ns / 1000000); until != c.expires) conns_.set_expires(c, until);
}

void DataPath::fold_offloaded() {
  if (!flow_cache_) return;
  size_t keep = 0;
  for (const uint32_t id : fold_due_) {
    if (real_folded_.size() <= 2 * size_t(id) + 1) real_folded_.resize(2 * size_t(id) + 2, lbd_real_use{});
    Real& r = services_.real(id);
    for (const bool reply : {false, true}) {
      const lbd_real_use now = flow_cache_->real_use(id, reply);
      lbd_real_use& was = real_folded_[2 * size_t(id) + reply];
      if (now.packets == was.packets) continue;
      count(r, now.bytes - was.bytes, reply, now.packets - was.packets);
      counters_.offload_packets += now.packets - was.packets;
      counters_.offload_bytes += now.bytes - was.bytes;
      was = now;
    }
    if (offloaded_of_[id]) fold_due_[keep++] = id;  // still in the fast path: due again
    else fold_listed_[id] = 0;
  }
  fold_due_.resize(keep);
}

// What the fast path needs of a real: its next hop while the slow path would forward a
// connection's packets to it, else nothing (ifindex 0), and the packets go to lbd.
lbd_real_hop DataPath::real_hop(const Real& r, uint64_t now_ms) const {
  lbd_real_hop h{};
  const bool expiring = r.health_down &&
                        services_.service(r.service_id).options.health.on_down == health::OnDown::kExpire;
  // (And a tunnel to an IPv6 real: the program's tunnels are IPv4's.)
  if (r.deleted || expiring || !r.hop.resolved || r.hop.ifindex <= 0 || (r.fwd == FwdMethod::kTunnel && r.addr.v6()))
    return h;
  // The program tunnels in IPIP, GUE and GRE without their checksums: a GUE or GRE real
  // with a checksum keeps its packets on the slow path.
  if (r.fwd == FwdMethod::kTunnel && r.tun.type != TunType::kIpip && r.tun.csum != TunCsum::kNoCsum) return h;
  h.mtu = r.fwd == FwdMethod::kTunnel ? tunnel_mtu(r, now_ms) : r.hop.mtu;
  if (r.fwd == FwdMethod::kTunnel && h.mtu < min_tunnel_mtu(tunnel_overhead(r.tun, false), false)) return lbd_real_hop{};
  h.ifindex = uint32_t(r.hop.ifindex);
  std::memcpy(h.eth_dst, r.hop.dst.b.data(), 6);
  std::memcpy(h.eth_src, r.hop.src.b.data(), 6);
  if (r.fwd == FwdMethod::kTunnel) {
    std::memcpy(&h.tun_src, r.hop.src_ip.v4().b.data(), 4);
    std::memcpy(&h.tun_dst, r.addr.v4().b.data(), 4);
    h.tun_type = uint8_t(r.tun.type);  // LBD_TUN_* are IPVS's numbers, as TunType's
    std::memcpy(&h.tun_port, Be16::from_host(r.tun.port).b.data(), 2);
  }
  return h;
}

void DataPath::sync_real_hops(uint64_t now_ms) {
  if (!flow_cache_) return;
  services_.for_each_real([&](const Real& r) {
    if (r.id >= LBD_XDP_MAX_REALS) return;
    if (hops_written_.size() <= r.id) hops_written_.resize(r.id + 1, lbd_real_hop{});
    const lbd_real_hop h = real_hop(r, now_ms);
    if (std::memcmp(&h, &hops_written_[r.id], sizeof h) == 0) return;
    flow_cache_->set_real(r.id, h);
    hops_written_[r.id] = h;
  });
}

}  // namespace lbd

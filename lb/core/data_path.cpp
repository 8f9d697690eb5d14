// The packet path; see data_path.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/arp.hpp"
#include "forwarding/checksum.hpp"
#include "forwarding/nat.hpp"

namespace lbd {

void DataPath::refresh_config() {
  vips_ = services_.vips();
  nat_endpoints_ = services_.nat_endpoints();
  gue_endpoints_.clear();
  services_.for_each_real([&](const Real& r) {
    if (!r.deleted && r.fwd == FwdMethod::kTunnel && r.tun.type == TunType::kGue)
      gue_endpoints_.push_back({kProtoUdp, r.addr, r.tun.port});
  });
  std::sort(gue_endpoints_.begin(), gue_endpoints_.end());
  gue_endpoints_.erase(std::unique(gue_endpoints_.begin(), gue_endpoints_.end()), gue_endpoints_.end());
  config_generation_ = services_.generation();
}

std::vector<Counter> named_counters(const DataPathCounters& c) {
  std::vector<Counter> v;
  for (const auto& f : kDataPathCounterFields) v.push_back({f.name, c.*f.member});
  for (size_t i = 0; i < c.drops.size(); ++i) v.push_back({fmt::format("drop_{}", DropReason(i)), c.drops[i]});
  return v;
}

Verdict DataPath::handle_arp(std::span<uint8_t> frame, const ParsedPacket& p, int in_ifindex) {
  for (const IpAddr& vip : vips_) {
    if (vip.v6() || !is_arp_request_for(frame, p, vip.v4())) continue;
    // A standby director must not draw the VIP's traffic to itself (split brain).
    if (vip_arp_ == VipArp::kNever || (vip_arp_ == VipArp::kActive && passive()))
      return drop(DropReason::kVipArpOff);
    // A reply goes to the asker's MAC: a group address would make lbd flood the segment
    // with VIP announcements on a forger's behalf (the kernel's arp_process() ignores them).
    if (!arp_sender_unicast(frame)) return drop(DropReason::kBadArpSender);
    if (const InterfaceInfo* itf = interface(in_ifindex)) {
      arp_request_to_reply(frame, itf->mac);
      ++counters_.arp_replies;
      ++counters_.tx_frames;
      return Verdict::send(in_ifindex);
    }
  }
  return drop(DropReason::kNoService);
}

std::optional<NextHop> DataPath::back_to_client(uint8_t if_slot, const MacAddr& client_mac) const {
  // (A connection learnt from sync has no client MAC until the client's next packet.)
  if (if_slot >= interfaces_.size() || client_mac.is_zero()) return std::nullopt;
  const InterfaceInfo& out = interfaces_[if_slot];
  return NextHop{out.ifindex, out.mac, client_mac, out.mtu, true, {}};
}

uint16_t DataPath::tunnel_mtu(const Real& real, uint64_t now_ms) {
  return real.tun_pmtu && seconds(now_ms) < real.tun_pmtu_until ? std::min(real.tun_pmtu, real.hop.mtu)
                                                                : real.hop.mtu;
}

Conn* DataPath::new_connection(const Frame& f, DropReason& why) {
  const ParsedPacket& p = f.p;
  Service* svc = services_.find_for_packet(p.protocol, p.daddr, p.dport, mark_);
  if (!svc) {
    // Not for a service: from a NAT real's service port it is a reply nobody is waiting for.
    const ServiceTable::Endpoint src{p.protocol, p.saddr, p.sport};
    why = std::binary_search(nat_endpoints_.begin(), nat_endpoints_.end(), src)
              ? DropReason::kOrphanReply
              : DropReason::kNoService;
    return nullptr;
  }
  // IPVS tcp_conn_schedule(): only a SYN (never a RST) creates a TCP connection, or, with
  // sloppy_tcp, any other packet too: a flow another director (or this one before a
  // restart) began goes on from here.
  if (p.protocol == kProtoTcp && ((p.tcp_flags & tcp_flag::kRst) ||
                                  (!(p.tcp_flags & tcp_flag::kSyn) && !timeouts_.sysctl.sloppy_tcp))) {
    why = DropReason::kNotSyn;
    return nullptr;
  }
  // What creates state must be what a receiver would accept: a forged or corrupted SYN
  // would hold an entry (and a real's count) that no client ever completes. Later packets
  // of a connection are not verified: the real's own stack does that.
  if (!csum::packet_valid(f.bytes, p)) {  // a first fragment: its IP header (its L4 sum spans all fragments)
    why = DropReason::kBadChecksum;
    return nullptr;
  }
  const uint32_t now_s = seconds(f.now_ms);
  Conn* templ = nullptr;
  Real* chosen = nullptr;
  if (svc->options.persistent) {
    templ = persistence_template(*svc, p, now_s, why);
    if (!templ) return nullptr;
    chosen = &services_.real(templ->real_id);
  } else {
    chosen = schedule(*svc, p, now_s);
    if (!chosen) {
      why = DropReason::kNoRealServer;
      return nullptr;
    }
  }
  Real& real = *chosen;
  const ConnState initial = p.protocol == kProtoTcp ? ConnState::kNone : ConnState::kUdp;
  Conn* c = make_room() ? conns_.insert(packet_key(p), now_s + timeouts_.seconds(initial)) : nullptr;
  if (!c) {
    why = DropReason::kConnTableFull;
    return nullptr;
  }
  c->real_id = real.id;
  c->daddr = real.addr;
  c->dport = real.port ? real.port : p.dport;  // a port-zero service's real keeps the port
  c->method = real.fwd;
  c->state = initial;
  if (svc->options.ops) c->flags |= Conn::kOnePacket;
  // Embryonic until its client sends more than the SYN.
  if (p.protocol == kProtoTcp && (p.tcp_flags & tcp_flag::kSyn)) c->flags |= Conn::kEmbryonic;
  c->inactive = p.protocol != kProtoTcp;  // UDP connections count as InActConn, as in IPVS
  if (!attach(*c, real, templ)) {
    // The real would see two connections with one 4-tuple (the same client port to two
    // services mapped onto one RIP:rport): refuse the second, as its replies are ambiguous.
    why = DropReason::kNatTupleBusy;
    return nullptr;
  }
  ++real.stats.conns;
  ++svc->stats.conns;
  ++counters_.conns_created;
  return c;
}

Conn* DataPath::adopt(const Conn& old, Real& real, Conn* templ, uint32_t now_s) {
  if (conns_.find(old.key)) return nullptr;
  uint32_t expires = old.expires;
  if (old.flags & Conn::kOffloaded) expires = std::max(expires, now_s + timeouts_.seconds(old.state));
  Conn* c = conns_.insert(old.key, expires);
  if (!c) return nullptr;
  c->state = old.state;
  c->inactive = old.inactive;
  c->daddr = old.daddr;
  c->dport = old.dport;
  c->client_mac = old.client_mac;
  c->if_slot = old.if_slot < interfaces_.size() ? old.if_slot : 0;  // the same --interface order
  c->method = old.method;
  c->flags = old.flags & (Conn::kTemplate | Conn::kOnePacket | Conn::kEmbryonic);
  c->real_id = real.id;
  return attach(*c, real, templ) ? c : nullptr;
}

bool DataPath::attach(Conn& c, Real& real, Conn* templ) {
  const bool is_template = c.flags & Conn::kTemplate;
  if (!is_template && c.method == FwdMethod::kMasq && !conns_.index_reply(&c)) {
    conns_.erase(&c);
    return false;
  }
  if (c.flags & Conn::kEmbryonic) conns_.note_embryonic(c);
  if (!sync_marks_.empty()) mark(c) = {};
  if (templ) {
    c.control = conns_.slot_of(templ);
    ++templ->control;
  }
  services_.bind_conn(real, c.inactive, is_template);
  return true;
}

// A table three quarters full: a SYN nobody has followed up lives seconds, not a minute
// (a flood's entries go by themselves; a real client's ACK comes one round trip later).
uint32_t DataPath::conn_timeout(const Conn& c, bool* shortened) const {
  const uint32_t t = timeouts_.seconds(c.state);
  if ((c.flags & Conn::kEmbryonic) && conns_.size() >= conns_.capacity() / 4 * 3 &&
      t > kEmbryonicPressureSeconds) {
    if (shortened) *shortened = true;
    return kEmbryonicPressureSeconds;
  }
  return t;
}

// A full table: the oldest embryonic connection (a TCP entry whose client never sent more
// than its SYN — what a SYN flood fills the table with) gives its place to the new one.
// False when there is none: every entry is a connection that has proved its client real.
bool DataPath::make_room() {
  if (!conns_.full()) return true;
  Conn* victim = conns_.oldest_embryonic();
  if (!victim) return false;
  release(*victim);
  ++counters_.embryonic_evicted;
  return true;
}

// The scheduler's pick; the sorry server alone while the service has no quorum (every real
// down, unless quorum= says otherwise: keepalived then takes the reals still up out too).
Real* DataPath::schedule(Service& svc, const ParsedPacket& p, uint32_t now_s) {
  if (svc.sorry_active) return &services_.real(svc.sorry_id);
  const sched::Flow flow{p.protocol, p.saddr.fold(), p.daddr.fold(), p.sport, p.dport, now_s};
  const auto pick = svc.scheduler->pick(flow, svc.views);
  return pick ? &services_.real(svc.reals[*pick]) : nullptr;
}

// What a connection holds: its real's counts, and its template's control count.
void DataPath::unbind(const Conn& c) {
  const bool templ = c.flags & Conn::kTemplate;
  services_.unbind_conn(services_.real(c.real_id), c.inactive, templ);
  if (!templ && c.control) --conns_.at_slot(c.control).control;
}

void DataPath::release(Conn& c) {
  withdraw(c);
  unbind(c);
  conns_.erase(&c);
  ++counters_.conns_expired;
}

Verdict DataPath::process(std::span<uint8_t> frame, int in_ifindex, uint64_t now_ms,
                          size_t capacity, uint32_t mark) {
  ++counters_.rx_frames;
  mark_ = mark;
  ParsedPacket p;
  DropReason why{};
  const bool whole = parse_frame(frame, p, why);
  if (config_generation_ != services_.generation()) refresh_config();
  if (passive() && (!whole || p.ether_type != kEtherTypeArp)) return drop(DropReason::kBackupOnly);
  if (!whole) {
    if (why == DropReason::kFragment && p.fragment)
      return handle_fragment(Frame{frame, std::max(capacity, frame.size()), p, in_ifindex, now_ms});
    return drop(why);
  }
  if (p.ether_type == kEtherTypeArp) return handle_arp(frame, p, in_ifindex);
  const Frame f{frame, std::max(capacity, frame.size()), p, in_ifindex, now_ms};
  if (p.protocol == (p.v6 ? kProtoIcmpv6 : kProtoIcmp)) return handle_icmp(f);

  return dispatch(f);
}

// A TCP/UDP packet, or the first fragment of one: its connection (the client's side, a
// NAT reply, or a new one), then that side's path. A first fragment also tells the later
// fragments where it went.
Verdict DataPath::dispatch(const Frame& f) {
  const ParsedPacket& p = f.p;
  const ConnKey key = packet_key(p);
  Conn* c = conns_.find(key);
  if (c && ((c->flags & Conn::kOnePacket) || reusable_for_new_syn(*c, p))) {
    // IPVS conn_reuse_mode: a new SYN on a finished connection, or on one whose real is
    // down or gone, starts a new connection (scheduled afresh) instead of reviving it.
    // One-packet scheduling: every datagram is scheduled on its own (the entry only
    // stays, for NAT, to take the real's replies back).
    release(*c);
    ++counters_.conns_rescheduled;
    c = nullptr;
  }
  bool reply = false;
  if (!c && (c = conns_.find_reply(key))) reply = true;
  if (!c) {
    DropReason why{};
    c = new_connection(f, why);
    if (!c) {
      if (why == DropReason::kNoRealServer) return port_unreachable(f);
      // nat_icmp_send: a NAT real's packet nobody waits for is answered, not dropped silently
      // (never a RST: IPVS does not answer those either).
      if (why == DropReason::kOrphanReply && timeouts_.sysctl.nat_icmp_send &&
          !(p.protocol == kProtoTcp && (p.tcp_flags & tcp_flag::kRst)))
        return unreachable_to_sender(f, why);
      return drop(why);
    }
  }
  if (p.first_fragment) remember_fragments(p, *c, reply, f.now_ms);
  return reply ? reply_packet(f, *c) : client_packet(f, *c);
}

// IPVS ip_vs_in_hook() with conn_reuse_mode and is_new_conn_expected(): a new SYN on an
// entry whose connection has ended (TIME_WAIT, CLOSE; with bit 2 also a DR/TUN FIN_WAIT)
// starts a new connection, unless a persistence template controls it (the same real
// anyway); with expire_nodest_conn, so does one on a real of weight 0. lbd adds: a real
// deleted or down by its checks never keeps a new SYN, whatever the mode.
bool DataPath::reusable_for_new_syn(const Conn& c, const ParsedPacket& p) {
  if (p.protocol != kProtoTcp || (p.tcp_flags & (tcp_flag::kSyn | tcp_flag::kAck | tcp_flag::kRst)) != tcp_flag::kSyn)
    return false;
  const Real& real = services_.real(c.real_id);
  if (real.deleted || real.health_down) return true;
  const Sysctls& sc = timeouts_.sysctl;
  if (!sc.conn_reuse_mode) return false;
  if (sc.expire_nodest_conn && real.dest.weight == 0) return true;
  if (c.control) return false;
  return c.state == ConnState::kTimeWait || c.state == ConnState::kClose ||
         ((sc.conn_reuse_mode & 2) && c.state == ConnState::kFinWait && c.method != FwdMethod::kMasq);
}

void DataPath::remember_fragments(const ParsedPacket& p, const Conn& c, bool reply, uint64_t now_ms) {
  fragments_.remember(p, {reply, c.method, c.if_slot, c.client_mac, c.key.vaddr, c.real_id}, now_ms);
}

Verdict DataPath::handle_fragment(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (p.protocol != kProtoTcp && p.protocol != kProtoUdp) return drop(DropReason::kFragment);
  if (p.first_fragment) return dispatch(f);  // as a whole packet would go
  const FragmentTable::Route* route = fragments_.find(p, f.now_ms);
  if (!route) return drop(DropReason::kFragmentUnmatched);
  const FragmentTable::Route& e = *route;
  Real& real = services_.real(e.real_id);
  if (real.deleted) return drop(DropReason::kRealUnavailable);
  if (e.reply) {
    const auto back = back_to_client(e.if_slot, e.client_mac);
    if (!back) return drop(DropReason::kNextHopUnresolved);
    count(real, p.ip_len, true);
    nat_rewrite_address(f.bytes, p, NatSide::kSource, e.vaddr);
    return finish_l2(f, *back, back->mtu);
  }
  count(real, p.ip_len, false);
  if (!real.hop.resolved) return drop(DropReason::kNextHopUnresolved);
  switch (e.method) {
    case FwdMethod::kMasq:
      nat_rewrite_address(f.bytes, p, NatSide::kDestination, real.addr);
      return finish_l2(f, real.hop, real.hop.mtu);
    case FwdMethod::kRoute: return finish_l2(f, real.hop, real.hop.mtu);
    case FwdMethod::kTunnel: return tunnel(f, real);
  }
  return drop(DropReason::kFragment);
}

void DataPath::count(Real& real, uint64_t bytes, bool reply, uint64_t packets) {
  Service& svc = services_.service(real.service_id);
  for (Counters* c : {&real.stats, &svc.stats}) {
    (reply ? c->outpkts : c->inpkts) += packets;
    (reply ? c->outbytes : c->inbytes) += bytes;
  }
}

void DataPath::update_tcp_state(Conn& c, Real& real, TcpTable table, uint8_t flags) {
  const ConnState next = tcp_next_state(table, flags, c.state);
  if (next == c.state) return;
  const bool inactive = !state_is_active(next);
  if (inactive != c.inactive) {
    services_.set_inactive(real, inactive);
    c.inactive = inactive;
  }
  c.state = next;
  // The fast path forwards only what leaves the state as it is.
  if ((c.flags & Conn::kOffloaded) && next != ConnState::kEstablished) withdraw(c);
}

// A packet from the client: account it, then forward it to its real server.
Verdict DataPath::client_packet(const Frame& f, Conn& c) {
  Real& real = services_.real(c.real_id);
  if (real.deleted) {
    if (timeouts_.sysctl.expire_nodest_conn) {
      // IPVS: the connection ends now, and the packet is taken as a new one (with
      // sloppy_tcp, a mid-stream packet is scheduled to another real, which resets it).
      release(c);
      DropReason why{};
      Conn* fresh = new_connection(f, why);
      if (!fresh) return why == DropReason::kNoRealServer ? port_unreachable(f) : drop(DropReason::kRealUnavailable);
      return client_packet(f, *fresh);
    }
    withdraw(c);
    return drop(DropReason::kRealUnavailable);
  }
  if (real.health_down &&
      services_.service(real.service_id).options.health.on_down == health::OnDown::kExpire) {
    // IPVS expire_nodest_conn for a failed real: the connection ends here; the client's
    // next SYN is scheduled anew.
    release(c);
    return drop(DropReason::kRealDown);
  }
  const FwdMethod method = c.method;
  // Replies (NAT) and errors (TUN) go back to where the client's packets come from.
  const auto* eth = reinterpret_cast<const EthHdr*>(f.bytes.data());
  if (const InterfaceInfo* itf = interface(f.in_ifindex)) {
    c.client_mac = eth->src;
    c.if_slot = uint8_t(itf - interfaces_.data());
  }
  if (f.p.protocol == kProtoTcp) {
    update_tcp_state(c, real, method == FwdMethod::kMasq ? TcpTable::kInput : TcpTable::kInputOnly,
                     f.p.tcp_flags);
    if (!(f.p.tcp_flags & tcp_flag::kSyn)) c.flags &= uint8_t(~Conn::kEmbryonic);  // its client answered
  }
  bool shortened = false;
  conns_.set_expires(c, seconds(f.now_ms) + conn_timeout(c, &shortened));
  counters_.embryonic_short_timeouts += shortened;
  count(real, f.p.ip_len, false);
  if (!sync_marks_.empty()) sync_after_packet(c, f.now_ms);
  maybe_offload(c, f.now_ms);
  // IPVS frees a one-packet connection once its packet is on its way: with DR/TUN there is
  // no reply to wait for (a NAT one stays for the replies, until the flow's next datagram).
  // What follows needs only the real.
  const uint16_t port = c.dport;
  if ((c.flags & Conn::kOnePacket) && method != FwdMethod::kMasq) release(c);

  if (!real.hop.resolved) {
    if (unresolved_.size() < 64 && std::find(unresolved_.begin(), unresolved_.end(), real.id) ==
                                       unresolved_.end())
      unresolved_.push_back(real.id);  // capacity reserved at construction: no allocation
    if (hold(f, real.id, method)) return {};
    return drop(DropReason::kNextHopUnresolved);
  }
  return forward(f, method, real, port);
}

// A NAT real server's reply: back to VIP:vport, out to the client.
Verdict DataPath::reply_packet(const Frame& f, Conn& c) {
  Real& real = services_.real(c.real_id);
  if (real.deleted) {
    withdraw(c);
    return drop(DropReason::kRealUnavailable);
  }
  if (f.p.protocol == kProtoTcp) update_tcp_state(c, real, TcpTable::kOutput, f.p.tcp_flags);
  conns_.set_expires(c, seconds(f.now_ms) + conn_timeout(c));  // a real's SYN-ACK proves no client
  count(real, f.p.ip_len, true);
  maybe_offload(c, f.now_ms);
  const auto back = back_to_client(c.if_slot, c.client_mac);
  if (!back) return drop(DropReason::kNextHopUnresolved);
  // (A super-frame's checksums are computed in full when it is segmented.)
  if (f.p.ip_len <= back->mtu && csum::complete_partial(f.bytes, f.p)) ++counters_.checksums_completed;
  nat_rewrite(f.bytes, f.p, NatSide::kSource, c.key.vaddr, c.key.vport);
  ++counters_.nat_replies;
  return finish_l2(f, *back, back->mtu);
}

size_t DataPath::expire(uint64_t now_ms, size_t budget) {
  const uint32_t now_s = seconds(now_ms);
  const size_t n = conns_.expire(now_s, budget, [&](Conn& c) {
    if (offloaded(c)) {
      // Its packets went by the fast path: the timeout runs from the last of them.
      const uint32_t until = idle_until(c, last_use_ms(c));
      if (int32_t(until - now_s) > 0) {
        c.expires = until;
        if (!sync_marks_.empty()) sync_now(c, now_ms);  // alive: the backup's copy is due too
        return false;
      }
      withdraw(c);
    }
    if ((c.flags & Conn::kTemplate) && c.control) {
      // A template outlives the connections it controls (IPVS re-arms it in full).
      const Real& r = services_.real(c.real_id);
      const uint32_t timeout = r.deleted ? 60 : services_.service(r.service_id).options.persistent;
      c.expires = now_s + std::max<uint32_t>(timeout, 1);
      if (!sync_marks_.empty()) sync_now(c, now_ms);
      return false;
    }
    unbind(c);
    return true;
  });
  counters_.conns_expired += n;
  return n;
}

}  // namespace lbd

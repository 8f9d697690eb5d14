// The packet path; see data_path.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/arp.hpp"
#include "forwarding/checksum.hpp"
#include "forwarding/dr.hpp"
#include "forwarding/icmp.hpp"
#include "forwarding/ipip.hpp"
#include "forwarding/nat.hpp"

namespace lbd {

void DataPath::refresh_config() {
  vips_ = services_.vips();
  nat_endpoints_ = services_.nat_endpoints();
  config_generation_ = services_.generation();
}

std::vector<Counter> named_counters(const DataPathCounters& c) {
  std::vector<Counter> v;
  for (const auto& f : kDataPathCounterFields) v.push_back({f.name, c.*f.member});
  for (size_t i = 0; i < c.drops.size(); ++i) v.push_back({fmt::format("drop_{}", DropReason(i)), c.drops[i]});
  return v;
}

Verdict DataPath::handle_arp(std::span<uint8_t> frame, const ParsedPacket& p, int in_ifindex) {
  for (const Ipv4& vip : vips_) {
    if (!is_arp_request_for(frame, p, vip)) continue;
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

// The kernel's icmp_msgs_per_sec: one window per second, shared by every error lbd sends.
bool DataPath::icmp_allowed(uint64_t now_ms) {
  if (now_ms / 1000 != icmp_window_) {
    icmp_window_ = now_ms / 1000;
    icmp_in_window_ = 0;
  }
  if (icmp_in_window_ >= kIcmpPerSecond) {
    ++counters_.icmp_rate_limited;
    return false;
  }
  ++icmp_in_window_;
  return true;
}

// Replaces the frame by the ICMP error `e` quoting [quote_off, +quote_len) of it: the
// verdict that sends it, or an empty one when the rate limit or the buffer says no. Callers
// count what happened to the frame that caused it.
Verdict DataPath::icmp_error(const Frame& f, const IcmpError& e, size_t quote_off,
                             size_t quote_len, int out_ifindex) {
  if (!icmp_allowed(f.now_ms)) return {};
  const size_t len = write_icmp_error({f.bytes.data(), f.capacity}, quote_off, quote_len, e);
  if (!len) return {};
  ++counters_.tx_frames;
  return Verdict::send(out_ifindex, len);
}

std::optional<NextHop> DataPath::back_to_client(uint8_t if_slot, const MacAddr& client_mac) const {
  if (if_slot >= interfaces_.size()) return std::nullopt;
  const InterfaceInfo& out = interfaces_[if_slot];
  return NextHop{out.ifindex, out.mac, client_mac, out.mtu, true, {}};
}

uint16_t DataPath::tunnel_mtu(const Real& real, uint64_t now_ms) {
  return real.tun_pmtu && seconds(now_ms) < real.tun_pmtu_until ? std::min(real.tun_pmtu, real.hop.mtu)
                                                                : real.hop.mtu;
}

// IPVS ip_vs_leave(): no real server for a new connection → ICMP port unreachable to the
// client (TCP and UDP alike), so it fails at once instead of retrying into silence.
Verdict DataPath::port_unreachable(const Frame& f) {
  const InterfaceInfo* itf = interface(f.in_ifindex);
  if (!itf) return drop(DropReason::kNoRealServer);
  drop(DropReason::kNoRealServer);
  const Verdict v = icmp_error(
      f, error_to_sender(f.bytes, f.p, icmp_code::kPortUnreachable, 0, itf->mac), f.p.l3_off,
      f.p.ip_len, f.in_ifindex);
  if (v.transmit) ++counters_.icmp_unreachable_sent;
  return v;
}

Conn* DataPath::new_connection(const Frame& f, DropReason& why) {
  const ParsedPacket& p = f.p;
  Service* svc = services_.find_for_packet(p.protocol, p.daddr, p.dport);
  if (!svc) {
    // Not for a service: from a NAT real's service port it is a reply nobody is waiting for.
    const ServiceTable::Endpoint src{p.protocol, p.saddr, p.sport};
    why = std::binary_search(nat_endpoints_.begin(), nat_endpoints_.end(), src)
              ? DropReason::kOrphanReply
              : DropReason::kNoService;
    return nullptr;
  }
  // IPVS tcp_conn_schedule(): only a SYN (and never a RST) creates a TCP connection.
  if (p.protocol == kProtoTcp &&
      ((p.tcp_flags & tcp_flag::kRst) || !(p.tcp_flags & tcp_flag::kSyn))) {
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
    chosen = schedule(*svc, p);
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
  if (real.fwd == FwdMethod::kMasq && !conns_.index_reply(c)) {
    // The real would see two connections with one 4-tuple (the same client port to two
    // services mapped onto one RIP:rport): refuse the second, as its replies are ambiguous.
    conns_.erase(c);
    why = DropReason::kNatTupleBusy;
    return nullptr;
  }
  if (svc->options.ops) c->flags |= Conn::kOnePacket;
  if (p.protocol == kProtoTcp) {
    c->flags |= Conn::kEmbryonic;  // until its client sends more than the SYN
    conns_.note_embryonic(*c);
  }
  if (templ) {
    c->control = conns_.slot_of(templ);
    ++templ->control;
  }
  c->inactive = p.protocol != kProtoTcp;  // UDP connections count as InActConn, as in IPVS
  services_.bind_conn(real, c->inactive);
  ++real.stats.conns;
  ++svc->stats.conns;
  ++counters_.conns_created;
  return c;
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

// The scheduler's pick, or the sorry server while every real is down by its checks.
Real* DataPath::schedule(Service& svc, const ParsedPacket& p) {
  const sched::Flow flow{p.protocol, p.saddr.host(), p.daddr.host(), p.sport, p.dport};
  const auto pick = svc.scheduler->pick(flow, svc.views);
  if (!pick && !svc.sorry_active) return nullptr;
  return &services_.real(pick ? svc.reals[*pick] : svc.sorry_id);
}

// IPVS ip_vs_sched_persist(): the client network's template says which real; a missing or
// no longer valid one (ip_vs_check_template: the real gone, down by its checks, or a sorry
// server no longer standing in) is (re)made from a fresh schedule. A quiesced (weight 0)
// real keeps its clients, as with expire_quiescent_template=0. Each use restarts the
// template's timeout.
Conn* DataPath::persistence_template(Service& svc, const ParsedPacket& p, uint32_t now_s,
                                     DropReason& why) {
  const Ipv4 snet = Ipv4::from_host(p.saddr.host() & svc.options.netmask.host());
  const ConnKey tkey{snet, svc.key.vip, 0, svc.key.port,
                     uint8_t(p.protocol | kTemplateProtocolBit)};
  const uint32_t until = now_s + svc.options.persistent;
  Conn* t = conns_.find(tkey);
  if (t) {
    const Real& r = services_.real(t->real_id);
    const bool valid = !r.deleted && !r.health_down &&
                       !(r.sorry && !services_.service(r.service_id).sorry_active);
    if (valid) {
      t->expires = until;
      return t;
    }
  }
  Real* real = schedule(svc, p);
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
                          size_t capacity) {
  ++counters_.rx_frames;
  ParsedPacket p;
  DropReason why{};
  const bool whole = parse_frame(frame, p, why);
  if (config_generation_ != services_.generation()) refresh_config();
  if (!whole) {
    if (why == DropReason::kFragment && p.fragment)
      return handle_fragment(Frame{frame, std::max(capacity, frame.size()), p, in_ifindex, now_ms});
    return drop(why);
  }
  if (p.ether_type == kEtherTypeArp) return handle_arp(frame, p, in_ifindex);
  const Frame f{frame, std::max(capacity, frame.size()), p, in_ifindex, now_ms};
  if (p.protocol == kProtoIcmp) return handle_icmp(f);

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
    if (!c) return why == DropReason::kNoRealServer ? port_unreachable(f) : drop(why);
  }
  if (p.first_fragment) remember_fragments(p, *c, reply, f.now_ms);
  return reply ? reply_packet(f, *c) : client_packet(f, *c);
}

bool DataPath::reusable_for_new_syn(const Conn& c, const ParsedPacket& p) {
  if (p.protocol != kProtoTcp || (p.tcp_flags & (tcp_flag::kSyn | tcp_flag::kAck | tcp_flag::kRst)) != tcp_flag::kSyn)
    return false;
  if (c.state == ConnState::kTimeWait || c.state == ConnState::kClose) return true;
  const Real& real = services_.real(c.real_id);
  return real.deleted || real.health_down;
}

DataPath::FragEntry& DataPath::frag_slot(const ParsedPacket& p) {
  const uint32_t h = (p.saddr.host() * 0x9e3779b1u) ^ (p.daddr.host() * 0x85ebca6bu) ^
                     (uint32_t(p.ip_id) << 8 | p.protocol) * 0xc2b2ae35u;
  return frags_[(h >> 16) % frags_.size()];
}

void DataPath::remember_fragments(const ParsedPacket& p, const Conn& c, bool reply,
                                  uint64_t now_ms) {
  FragEntry& e = frag_slot(p);
  e = FragEntry{p.saddr, p.daddr, p.ip_id, p.protocol, true, reply, c.method, c.if_slot,
                c.client_mac, c.key.vaddr, c.real_id, now_ms + kFragmentMs};
}

Verdict DataPath::handle_fragment(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (p.protocol != kProtoTcp && p.protocol != kProtoUdp) return drop(DropReason::kFragment);
  if (p.first_fragment) return dispatch(f);  // as a whole packet would go
  FragEntry& e = frag_slot(p);
  if (!e.used || !(e.saddr == p.saddr) || !(e.daddr == p.daddr) || e.id != p.ip_id ||
      e.protocol != p.protocol || f.now_ms > e.until_ms)
    return drop(DropReason::kFragmentUnmatched);
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
void DataPath::maybe_offload(Conn& c) {
  if (!flow_cache_ || (c.flags & (Conn::kOffloaded | Conn::kOffloadRefused | Conn::kTemplate | Conn::kOnePacket)))
    return;
  if ((c.state != ConnState::kEstablished && c.state != ConnState::kUdp) || c.real_id >= LBD_XDP_MAX_REALS)
    return;
  const FwdMethod method = c.method;
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
    std::memcpy(&f.addr, c.daddr.b.data(), 4);
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
    std::memcpy(&r.addr, c.key.vaddr.b.data(), 4);
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
  if (r.deleted || expiring || !r.hop.resolved || r.hop.ifindex <= 0) return h;
  h.mtu = r.fwd == FwdMethod::kTunnel ? tunnel_mtu(r, now_ms) : r.hop.mtu;
  if (r.fwd == FwdMethod::kTunnel && h.mtu < 68 + kIpipOverhead) return lbd_real_hop{};
  h.ifindex = uint32_t(r.hop.ifindex);
  std::memcpy(h.eth_dst, r.hop.dst.b.data(), 6);
  std::memcpy(h.eth_src, r.hop.src.b.data(), 6);
  if (r.fwd == FwdMethod::kTunnel) {
    std::memcpy(&h.tun_src, r.hop.src_ip.b.data(), 4);
    std::memcpy(&h.tun_dst, r.addr.b.data(), 4);
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

// A packet from the client: account it, then forward it to its real server.
Verdict DataPath::client_packet(const Frame& f, Conn& c) {
  Real& real = services_.real(c.real_id);
  if (real.deleted) {
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
  maybe_offload(c);
  // IPVS frees a one-packet connection once its packet is on its way: with DR/TUN there is
  // no reply to wait for (a NAT one stays for the replies, until the flow's next datagram).
  // What follows needs only the real.
  if ((c.flags & Conn::kOnePacket) && method != FwdMethod::kMasq) release(c);

  if (!real.hop.resolved) {
    if (unresolved_.size() < 64 && std::find(unresolved_.begin(), unresolved_.end(), real.id) ==
                                       unresolved_.end())
      unresolved_.push_back(real.id);  // capacity reserved at construction: no allocation
    if (hold(f, real.id, method)) return {};
    return drop(DropReason::kNextHopUnresolved);
  }
  return forward(f, method, real);
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
  maybe_offload(c);
  const auto back = back_to_client(c.if_slot, c.client_mac);
  if (!back) return drop(DropReason::kNextHopUnresolved);
  // (A super-frame's checksums are computed in full when it is segmented.)
  if (f.p.ip_len <= back->mtu && csum::complete_partial(f.bytes, f.p)) ++counters_.checksums_completed;
  nat_rewrite(f.bytes, f.p, NatSide::kSource, c.key.vaddr, c.key.vport);
  ++counters_.nat_replies;
  return finish_l2(f, *back, back->mtu);
}

// Sends at layer 2 (DR, and NAT after its rewrite) with forwarding/'s MTU policy.
Verdict DataPath::finish_l2(const Frame& f, const NextHop& hop, uint16_t mtu) {
  Verdict v = Verdict::send(hop.ifindex);
  switch (xmit_l2(f.bytes, f.p, hop, mtu)) {
    case XmitStatus::kTooBig: return drop(DropReason::kFrameTooBig);
    case XmitStatus::kSegment:
      v.segment_mtu = mtu;
      ++counters_.superframes_segmented;
      break;
    case XmitStatus::kFragment: v.fragment_mtu = mtu; break;
    case XmitStatus::kSend: break;
  }
  ++counters_.tx_frames;
  return v;
}

bool DataPath::hold(const Frame& f, uint32_t real_id, FwdMethod method) {
  if (held_used_ == held_.size() || f.bytes.size() > kHeldFrameMax) return false;
  for (auto& h : held_) {
    if (h.used) continue;
    h.used = true;
    h.real_id = real_id;
    h.method = method;
    h.in_ifindex = f.in_ifindex;
    h.len = uint16_t(f.bytes.size());
    h.since_ms = f.now_ms;
    std::copy(f.bytes.begin(), f.bytes.end(), h.frame.begin());
    ++held_used_;
    ++counters_.frames_held;
    return true;
  }
  return false;
}

Verdict DataPath::forward(const Frame& f, FwdMethod method, Real& real) {
  if (method == FwdMethod::kTunnel) return tunnel(f, real);
  // Complete an offloaded checksum (NAT: while it still matches the original addresses);
  // a super-frame's are computed in full when it is segmented.
  if (f.p.ip_len <= real.hop.mtu && csum::complete_partial(f.bytes, f.p))
    ++counters_.checksums_completed;
  if (method == FwdMethod::kMasq && f.p.protocol != kProtoIcmp)
    nat_rewrite(f.bytes, f.p, NatSide::kDestination, real.addr, real.port);
  return finish_l2(f, real.hop, real.hop.mtu);
}

// IPVS ip_vs_tunnel_xmit(): IPIP to the real server, with its ensure_mtu_is_adequate().
Verdict DataPath::tunnel(const Frame& f, Real& real) {
  const ParsedPacket& p = f.p;
  const uint16_t mtu = tunnel_mtu(real, f.now_ms);
  if (mtu < 68 + kIpipOverhead) return drop(DropReason::kTunnelMtuTooSmall);
  const InterfaceInfo* in = interface(f.in_ifindex);
  const bool superframe = in && p.ip_len > in->mtu && p.protocol == kProtoTcp;
  const bool relaying_error = p.protocol == kProtoIcmp && is_icmp_error(p.icmp_type);
  if (!superframe && p.ip_len + kIpipOverhead > mtu && p.dont_fragment && !relaying_error) {
    // The client does path MTU discovery: tell it the tunnel's MTU, drop the packet.
    if (!in) return drop(DropReason::kFragNeeded);
    drop(DropReason::kFragNeeded);
    const Verdict v = icmp_error(
        f, error_to_sender(f.bytes, p, icmp_code::kFragNeeded, uint16_t(mtu - kIpipOverhead), in->mac),
        p.l3_off, p.ip_len, f.in_ifindex);
    if (v.transmit) ++counters_.icmp_frag_needed_sent;
    return v;
  }
  auto* eth = reinterpret_cast<EthHdr*>(f.bytes.data());
  eth->dst = real.hop.dst;
  eth->src = real.hop.src;
  if (superframe) {
    ++counters_.tunnelled;
    ++counters_.tx_frames;
    // A local sender's GSO frame: segments sized for the tunnel, each then encapsulated.
    ++counters_.superframes_segmented;
    Verdict v = Verdict::send(real.hop.ifindex);
    v.segment_mtu = uint16_t(mtu - kIpipOverhead);
    v.encapsulate = true;
    v.tun_src = real.hop.src_ip;
    v.tun_dst = real.addr;
    return v;
  }
  if (csum::complete_partial(f.bytes, p)) ++counters_.checksums_completed;
  const size_t len = ipip_encapsulate({f.bytes.data(), f.capacity}, p, real.hop.src_ip,
                                      real.addr, tunnel_ip_id_++);
  if (!len) return drop(DropReason::kFrameTooBig);
  ++counters_.tunnelled;
  ++counters_.tx_frames;
  Verdict v = Verdict::send(real.hop.ifindex, len);
  if (p.ip_len + kIpipOverhead > mtu) {
    if (relaying_error) {  // an ICMP error keeps its DF; the outer packet may be cut
      auto* outer = reinterpret_cast<Ipv4Hdr*>(f.bytes.data() + p.l3_off);
      outer->frag_off = Be16{};
      outer->check = Be16{};
      outer->check = Be16::from_host(csum::ipv4_header({f.bytes.data() + p.l3_off, sizeof(Ipv4Hdr)}));
    }
    v.fragment_mtu = mtu;
    ++counters_.tunnel_fragmented;
  }
  return v;
}

// ICMP: echo to a VIP, and errors about a connection (IPVS ip_vs_in_icmp / ip_vs_out_icmp).
Verdict DataPath::handle_icmp(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (p.icmp_type == icmp_type::kEchoRequest) return handle_echo(f);
  if (!is_icmp_error(p.icmp_type)) return drop(DropReason::kUnhandledIcmp);
  IcmpQuote q;
  if (!parse_quote(f.bytes, p.l4_off + sizeof(IcmpHdr), p.l3_off + p.ip_len, q))
    return drop(DropReason::kTruncatedIcmpQuote);
  if (q.protocol == kProtoIpip) return icmp_about_tunnel(f, q);
  if (q.protocol != kProtoTcp && q.protocol != kProtoUdp) return drop(DropReason::kUnhandledIcmp);

  // From a client, about a packet it got from VIP:vport: to the connection's real server.
  const ConnKey conn_key{q.daddr, q.saddr, q.dport, q.sport, q.protocol};
  if (Conn* c = conns_.find(conn_key)) {
    Real& real = services_.real(c->real_id);
    if (real.deleted || !real.hop.resolved) return drop(DropReason::kRealUnavailable);
    ++counters_.icmp_errors_forwarded;
    count(real, p.ip_len, false);
    const FwdMethod method = c->method;
    if (method == FwdMethod::kMasq)
      nat_rewrite_icmp(f.bytes, p, q, NatSide::kDestination, real.addr, real.port);
    return forward(f, method, real);
  }
  // From a NAT real server, about a packet from the client: to the client, as the VIP.
  const ConnKey reply_key{q.daddr, q.saddr, q.dport, q.sport, q.protocol};
  if (Conn* c = conns_.find_reply(reply_key)) {
    const auto back = back_to_client(c->if_slot, c->client_mac);
    if (!back) return drop(DropReason::kNextHopUnresolved);
    ++counters_.icmp_errors_forwarded;
    count(services_.real(c->real_id), p.ip_len, true);
    nat_rewrite_icmp(f.bytes, p, q, NatSide::kSource, c->key.vaddr, c->key.vport);
    return finish_l2(f, *back, back->mtu);
  }
  return drop(DropReason::kIcmpNoConnection);
}

// An ICMP error about one of our IPIP packets (a router on the way to a TUN real server):
// as IPVS does, the client hears of it. Frag-needed lowers the tunnel's path MTU and, if
// the client set DF, gets it a frag-needed with room for the IPIP header; other errors are
// relayed with their type and code. The quote is the client's own packet.
Verdict DataPath::icmp_about_tunnel(const Frame& f, const IcmpQuote& outer) {
  IcmpQuote inner;
  if (!parse_quote(f.bytes, outer.l4_off, outer.end, inner))
    return drop(DropReason::kTruncatedIcmpQuote);
  Real* real = nullptr;
  MacAddr client_mac;
  uint8_t if_slot = 0;
  bool about_connection = false;
  if (inner.protocol == kProtoIcmp) {  // about a ping we passed on
    const EchoPeer& peer = echo_peers_[echo_slot(inner.saddr)];
    if (!(peer.client == inner.saddr)) return drop(DropReason::kIcmpNoConnection);
    real = tunnel_real(outer.daddr);
    client_mac = peer.mac;
    if_slot = peer.if_slot;
  } else {
    Conn* c = conns_.find(ConnKey{inner.saddr, inner.daddr, inner.sport, inner.dport, inner.protocol});
    if (c && c->method == FwdMethod::kTunnel) {
      real = &services_.real(c->real_id);
      client_mac = c->client_mac;
      if_slot = c->if_slot;
      about_connection = true;
    }
  }
  if (!real || !(real->addr == outer.daddr) || if_slot >= interfaces_.size())
    return drop(DropReason::kIcmpNoConnection);
  // The quote must be a packet lbd sent: from the address lbd tunnels from, to that real.
  // Anyone on the client side can quote a made-up IPIP header.
  if (!(outer.saddr == real->hop.src_ip)) return drop(DropReason::kPmtuNotOurs);
  const InterfaceInfo& out = interfaces_[if_slot];
  IcmpError e;
  e.type = f.p.icmp_type;
  e.code = f.p.icmp_code;
  e.src = inner.daddr;  // the VIP
  e.dst = inner.saddr;  // the client
  e.eth_src = out.mac;
  e.eth_dst = client_mac;
  if (e.type == icmp_type::kDestUnreachable && e.code == icmp_code::kFragNeeded) {
    const auto* icmp = reinterpret_cast<const IcmpHdr*>(f.bytes.data() + f.p.l4_off);
    // As the kernel's __ip_rt_update_pmtu(): never below min_pmtu. Only a report about a
    // live connection changes the real's path MTU (a ping is no connection).
    const uint16_t reported = std::max(icmp->seq.host(), kMinPmtu);
    if (about_connection && reported <= tunnel_mtu(*real, f.now_ms)) {
      real->tun_pmtu = reported;
      real->tun_pmtu_until = seconds(f.now_ms) + kPmtuSeconds;
      ++counters_.tunnel_pmtu_updates;
      if (pmtu_learnt_.size() < 64 && std::find(pmtu_learnt_.begin(), pmtu_learnt_.end(), real->id) ==
                                          pmtu_learnt_.end())
        pmtu_learnt_.push_back(real->id);  // capacity reserved at construction
    }
    // Client does not do PMTU discovery: its packets are fragmented from now on; done.
    if (!outer.dont_fragment) return drop(DropReason::kIcmpNoConnection);
    const uint16_t mtu = std::min(reported, tunnel_mtu(*real, f.now_ms));
    e.mtu = mtu > 68 + kIpipOverhead ? uint16_t(mtu - kIpipOverhead) : mtu;
  }
  const Verdict v = icmp_error(f, e, inner.ip_off, inner.end - inner.ip_off, out.ifindex);
  if (!v.transmit) return drop(DropReason::kIcmpNotSent);
  ++counters_.icmp_errors_forwarded;
  return v;
}

// A tunnel real server with this address (slow path: ICMP errors only).
Real* DataPath::tunnel_real(Ipv4 addr) {
  Real* found = nullptr;
  services_.for_each_real([&](Real& r) {
    if (!found && !r.deleted && r.fwd == FwdMethod::kTunnel && r.addr == addr) found = &r;
  });
  return found;
}

// A ping to a VIP. A VIP with DR or TUN real servers passes it to one of them (the real
// owns the VIP and answers; the ping then measures the whole path, tunnel MTU included),
// chosen by a hash of the client and the echo id so one ping run sticks to one real. A VIP
// with only NAT real servers is answered by lbd itself.
Verdict DataPath::handle_echo(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (std::find(vips_.begin(), vips_.end(), p.daddr) == vips_.end())
    return drop(DropReason::kUnhandledIcmp);
  uint32_t candidates = 0;
  const uint32_t h = (p.saddr.host() * 0x9e3779b1u) ^ (uint32_t(p.sport) * 0x85ebca6bu);
  Real* chosen = nullptr;
  services_.for_each_service([&](const Service& s) {
    if (!(s.key.vip == p.daddr)) return;
    for (uint32_t id : s.reals) {
      Real& r = services_.real(id);
      if (r.fwd == FwdMethod::kMasq || !r.dest.schedulable() || !r.hop.resolved) continue;
      // Reservoir choice over the candidates, driven by the hash: uniform and stable.
      ++candidates;
      if ((h ^ (candidates * 0x27d4eb2fu)) % candidates == 0) chosen = &r;
    }
  });
  if (chosen) {
    if (const InterfaceInfo* itf = interface(f.in_ifindex)) {
      EchoPeer& peer = echo_peers_[echo_slot(p.saddr)];
      peer.client = p.saddr;
      peer.mac = reinterpret_cast<const EthHdr*>(f.bytes.data())->src;
      peer.if_slot = uint8_t(itf - interfaces_.data());
    }
    ++counters_.echo_forwarded;
    return forward(f, chosen->fwd, *chosen);
  }
  if (!interface(f.in_ifindex)) return drop(DropReason::kUnhandledIcmp);
  echo_request_to_reply(f.bytes, p);
  ++counters_.echo_replies;
  ++counters_.tx_frames;
  return Verdict::send(f.in_ifindex);
}

size_t DataPath::expire(uint64_t now_ms, size_t budget) {
  const uint32_t now_s = seconds(now_ms);
  const size_t n = conns_.expire(now_s, budget, [&](Conn& c) {
    if (offloaded(c)) {
      // Its packets went by the fast path: the timeout runs from the last of them.
      const uint32_t until = idle_until(c, last_use_ms(c));
      if (int32_t(until - now_s) > 0) {
        c.expires = until;
        return false;
      }
      withdraw(c);
    }
    if ((c.flags & Conn::kTemplate) && c.control) {
      // A template outlives the connections it controls (IPVS re-arms it in full).
      const Real& r = services_.real(c.real_id);
      const uint32_t timeout = r.deleted ? 60 : services_.service(r.service_id).options.persistent;
      c.expires = now_s + std::max<uint32_t>(timeout, 1);
      return false;
    }
    unbind(c);
    return true;
  });
  counters_.conns_expired += n;
  return n;
}

}  // namespace lbd

// The packet path; see data_path.hpp.
#include "lb/data_path.hpp"

#include <algorithm>

#include "forwarding/arp.hpp"
#include "forwarding/checksum.hpp"
#include "forwarding/dr.hpp"
#include "forwarding/icmp.hpp"

namespace lbd {

void DataPath::refresh_vips() {
  vips_ = services_.vips();
  vips_generation_ = services_.generation();
}

Verdict DataPath::handle_arp(std::span<uint8_t> frame, const ParsedPacket& p, int in_ifindex) {
  if (vips_generation_ != services_.generation()) refresh_vips();
  for (const Ipv4& vip : vips_) {
    if (!is_arp_request_for(frame, p, vip)) continue;
    if (const InterfaceInfo* itf = interface(in_ifindex)) {
      arp_request_to_reply(frame, itf->mac);
      ++counters_.arp_replies;
      ++counters_.tx_frames;
      return {true, in_ifindex, 0, 0};
    }
  }
  return drop(DropReason::kNoService);
}

// IPVS ip_vs_leave(): no real server for a new connection → ICMP port unreachable to the
// client (TCP and UDP alike), so it fails at once instead of retrying into silence. The
// frame is still counted as a drop; the reply is rate-limited like the kernel's.
Verdict DataPath::port_unreachable(std::span<uint8_t> frame, size_t capacity,
                                   const ParsedPacket& p, int in_ifindex, uint64_t now_ms) {
  const Verdict dropped = drop(DropReason::kNoRealServer);
  const InterfaceInfo* itf = interface(in_ifindex);
  if (!itf) return dropped;
  if (now_ms / 1000 != icmp_window_) {
    icmp_window_ = now_ms / 1000;
    icmp_in_window_ = 0;
  }
  if (icmp_in_window_ >= kIcmpPerSecond) {
    ++counters_.icmp_rate_limited;
    return dropped;
  }
  const size_t len = make_dest_unreachable(frame, capacity, p, 3, itf->mac);
  if (!len) return dropped;
  ++icmp_in_window_;
  ++counters_.icmp_unreachable_sent;
  ++counters_.tx_frames;
  return {true, in_ifindex, 0, len};
}

Conn* DataPath::new_connection(const ConnKey& key, const ParsedPacket& p, uint32_t now_s,
                               DropReason& why) {
  Service* svc = services_.find(ServiceKey{p.protocol, p.daddr, p.dport});
  if (!svc) {
    why = DropReason::kNoService;
    return nullptr;
  }
  // IPVS tcp_conn_schedule(): only a SYN (and never a RST) creates a TCP connection.
  if (p.protocol == kProtoTcp &&
      ((p.tcp_flags & tcp_flag::kRst) || !(p.tcp_flags & tcp_flag::kSyn))) {
    why = DropReason::kNotSyn;
    return nullptr;
  }
  const sched::Flow flow{p.protocol, p.saddr.host(), p.daddr.host(), p.sport, p.dport};
  const auto pick = svc->scheduler->pick(flow, svc->views);
  if (!pick) {
    why = DropReason::kNoRealServer;
    return nullptr;
  }
  Real& real = services_.real(svc->reals[*pick]);
  const ConnState initial = p.protocol == kProtoTcp ? ConnState::kNone : ConnState::kUdp;
  Conn* c = conns_.insert(key, now_s + timeouts_.seconds(initial));
  if (!c) {
    why = DropReason::kConnTableFull;
    return nullptr;
  }
  c->real_id = real.id;
  c->state = initial;
  c->inactive = p.protocol != kProtoTcp;  // UDP connections count as InActConn, as in IPVS
  services_.bind_conn(real, c->inactive);
  ++real.stats.conns;
  ++svc->stats.conns;
  ++counters_.conns_created;
  return c;
}

Verdict DataPath::process(std::span<uint8_t> frame, int in_ifindex, uint64_t now_ms,
                          size_t capacity) {
  ++counters_.rx_frames;
  ParsedPacket p;
  DropReason why{};
  if (!parse_frame(frame, p, why)) return drop(why);
  if (p.ether_type == kEtherTypeArp) return handle_arp(frame, p, in_ifindex);

  const uint32_t now_s = seconds(now_ms);
  const ConnKey key{p.saddr, p.daddr, p.sport, p.dport, p.protocol};
  Conn* c = conns_.find(key);
  if (!c) {
    c = new_connection(key, p, now_s, why);
    if (!c) {
      if (why == DropReason::kNoRealServer)
        return port_unreachable(frame, std::max(capacity, frame.size()), p, in_ifindex, now_ms);
      return drop(why);
    }
  }
  Real& real = services_.real(c->real_id);
  if (real.deleted) return drop(DropReason::kRealUnavailable);

  if (p.protocol == kProtoTcp) {
    const TcpTable table = real.fwd == FwdMethod::kMasq ? TcpTable::kInput : TcpTable::kInputOnly;
    const ConnState next = tcp_next_state(table, p.tcp_flags, c->state);
    if (next != c->state) {
      const bool inactive = !state_is_active(next);
      if (inactive != c->inactive) {
        services_.set_inactive(real, inactive);
        c->inactive = inactive;
      }
      c->state = next;
    }
  }
  c->expires = now_s + timeouts_.seconds(c->state);

  ++real.stats.inpkts;
  real.stats.inbytes += p.ip_len;
  Service& svc = services_.service(real.service_id);
  ++svc.stats.inpkts;
  svc.stats.inbytes += p.ip_len;

  if (!real.hop.resolved) {
    if (unresolved_.size() < 64 && std::find(unresolved_.begin(), unresolved_.end(), real.id) ==
                                       unresolved_.end())
      unresolved_.push_back(real.id);  // capacity reserved at construction: no allocation
    if (hold(frame, real.id, now_ms)) return {};
    return drop(DropReason::kNextHopUnresolved);
  }
  return forward(frame, p, real);
}

bool DataPath::hold(std::span<const uint8_t> frame, uint32_t real_id, uint64_t now_ms) {
  if (held_used_ == held_.size() || frame.size() > held_[0].frame.size()) return false;
  for (auto& h : held_) {
    if (h.used) continue;
    h.used = true;
    h.real_id = real_id;
    h.len = uint16_t(frame.size());
    h.since_ms = now_ms;
    std::copy(frame.begin(), frame.end(), h.frame.begin());
    ++held_used_;
    ++counters_.frames_held;
    return true;
  }
  return false;
}

Verdict DataPath::forward(std::span<uint8_t> frame, const ParsedPacket& p, Real& real) {
  switch (rewrite_dr(frame, p, real.hop)) {
    case RewriteStatus::kOk:
      if (csum::complete_partial(frame, p)) ++counters_.checksums_completed;
      ++counters_.tx_frames;
      return {true, real.hop.ifindex, 0, 0};
    case RewriteStatus::kNeedsSegmentation:  // segmentation computes full checksums
      ++counters_.superframes_segmented;
      ++counters_.tx_frames;
      return {true, real.hop.ifindex, real.hop.mtu, 0};
    case RewriteStatus::kFrameTooBig: break;
  }
  return drop(DropReason::kFrameTooBig);
}

size_t DataPath::expire(uint64_t now_ms, size_t budget) {
  const size_t n = conns_.expire(seconds(now_ms), budget, [&](Conn& c) {
    services_.unbind_conn(services_.real(c.real_id), c.inactive);
  });
  counters_.conns_expired += n;
  return n;
}

}  // namespace lbd

// Connection sync in the data path: which connections a master reports and when
// (net/netfilter/ipvs/ip_vs_sync.c ip_vs_sync_conn, ip_vs_sync_conn_needed with the
// sysctls sync_threshold, sync_refresh_period and sync_retries), and how a backup takes a report
// (ip_vs_proc_conn). The sockets are the worker's and the control thread's.
#include "lb/core/data_path.hpp"

namespace lbd {
namespace {

// A template reported with no timeout (a version 0 peer): IPVS's 3 minutes.
constexpr uint32_t kTemplateDefaultTimeout = 3 * 60;

uint32_t fwd_flags(FwdMethod m) {
  switch (m) {
    case FwdMethod::kMasq: return sync::flag::kMasq;
    case FwdMethod::kTunnel: return sync::flag::kTunnel;
    case FwdMethod::kRoute: return sync::flag::kDroute;
  }
  return sync::flag::kDroute;
}

// The TCP states IPVS reports (others are too young to be worth a backup's entry).
bool syncable_tcp_state(ConnState s) {
  return s == ConnState::kEstablished || s == ConnState::kFinWait || s == ConnState::kClose ||
         s == ConnState::kCloseWait || s == ConnState::kTimeWait;
}

}  // namespace

void DataPath::set_sync_master(bool on) {
  if (!on) {
    sync_marks_ = {};
    sync_out_ = {};
    return;
  }
  if (!sync_marks_.empty()) return;
  sync_marks_.assign(size_t(conns_.capacity()) + 1, SyncMark{});  // by slot + 1
  sync_out_.reserve(kSyncQueue);
}

sync::Record DataPath::sync_record(const Conn& c) const {
  sync::Record r;
  const bool templ = c.flags & Conn::kTemplate;
  r.protocol = uint8_t(c.key.protocol & ~kTemplateProtocolBit);
  // A template counts as inactive in IPVS (its dest's conn_flags carry INACTIVE).
  r.flags = fwd_flags(c.method) | (c.inactive || templ ? sync::flag::kInactive : 0) |
            (templ ? sync::flag::kTemplate : 0);
  r.state = templ || c.state == ConnState::kUdp ? 0 : uint16_t(c.state);
  r.cport = c.key.cport;
  r.vport = c.key.vport;
  r.dport = c.dport;
  r.timeout = sync_timeout(c);
  r.ipv6 = c.key.caddr.v6();  // struct ip_vs_sync_v6 (queue_sync() keeps the families one)
  r.caddr = c.key.caddr;
  r.vaddr = c.key.vaddr;
  r.daddr = c.daddr;
  // A fwmark service's connections and templates carry the mark (IPVS cp->fwmark): the
  // backup finds the service by it (a template's protocol is IPPROTO_IP, its vaddr the mark).
  r.fwmark = services_.service(services_.real(c.real_id).service_id).key.fwmark;
  return r;
}

void DataPath::queue_sync(const Conn& c) {
  // A record's three addresses are of one family (IPVS: "we do not support heterogeneous
  // pools with synchronization"): a connection tunnelled across families is not synced
  // (counted). A template's destination is its real's too.
  if (c.key.caddr.v6() != c.daddr.v6()) {
    ++counters_.sync_mixed_family;
    return;
  }
  if (sync_out_.size() >= kSyncQueue) {
    ++counters_.sync_queue_full;
    return;
  }
  sync_out_.push_back(sync_record(c));
  ++counters_.sync_queued;
}

uint32_t DataPath::sync_timeout(const Conn& c) const {
  if (!(c.flags & Conn::kTemplate)) return timeouts_.seconds(c.state);
  const Real& real = services_.real(c.real_id);
  return real.deleted ? kTemplateDefaultTimeout : services_.service(real.service_id).options.persistent;
}

// IPVS ip_vs_sync_conn_needed(), in milliseconds where it counts jiffies.
bool DataPath::sync_needed(const Conn& c, uint32_t pkts, uint64_t now_ms) {
  SyncMark& m = mark(c);
  const Sysctls& sc = timeouts_.sysctl;
  const bool templ = c.flags & Conn::kTemplate;
  const uint32_t now = uint32_t(now_ms), timeout = sync_timeout(c) * 1000u, orig = m.endtime;
  uint32_t n = (now + timeout) & ~3u;  // when the backup's copy would expire
  auto set = [&] {
    m.old_state = c.state;
    m.endtime = n;
    return true;
  };
  if (only_template_sent(c)) return false;
  if (!templ && c.key.protocol == kProtoTcp) {
    if (!syncable_tcp_state(c.state)) return false;
    // A change to a state other than ESTABLISHED is sent at once; ESTABLISHED waits for
    // the threshold like any other packet.
    if (c.state != m.old_state && c.state != ConnState::kEstablished) return set();
  }
  const uint32_t refresh = sc.sync_refresh_period * 1000u;
  if (refresh) {
    // Not while the backup's expiry would move by less than the period (or half the
    // timeout, at least 10 s), but for sync_retries more sends, each an eighth of the
    // period after the last.
    const int32_t diff = int32_t(n - orig);
    const uint32_t min_diff = std::max(timeout / 2, 10'000u);
    if (uint32_t(diff < 0 ? -int64_t(diff) : diff) < std::min(refresh, min_diff)) {
      const uint32_t retries = orig & 3;
      if (retries >= sc.sync_retries) return false;
      if (int32_t(now - (orig - timeout + refresh / 8)) < 0) return false;
      n |= retries + 1;
    }
  }
  if (sc.sync_period) {
    if (!templ && pkts % sc.sync_period != sc.sync_threshold) return false;
  } else if (!refresh && pkts != sc.sync_threshold) {
    return false;
  }
  return set();
}

void DataPath::sync_after_packet(Conn& c, uint64_t now_ms) {
  uint32_t pkts = ++mark(c).in_pkts;
  Conn* cp = &c;
  while (true) {
    // A one-packet connection is never sent; its template is.
    if (!(cp->flags & Conn::kOnePacket) && sync_needed(*cp, pkts, now_ms)) queue_sync(*cp);
    if ((cp->flags & Conn::kTemplate) || !cp->control) return;
    cp = &conns_.at_slot(cp->control);
    pkts = ++mark(*cp).in_pkts;
  }
}

void DataPath::sync_now(Conn& c, uint64_t now_ms) {
  const bool templ = c.flags & Conn::kTemplate;
  if ((c.flags & Conn::kOnePacket) || (!templ && c.key.protocol == kProtoTcp && !syncable_tcp_state(c.state)))
    return;
  if (!only_template_sent(c)) {
    queue_sync(c);
    mark(c) = {mark(c).in_pkts, c.state, uint32_t(now_ms + sync_timeout(c) * 1000u) & ~3u};
  }
  if (!templ && c.control) queue_sync(conns_.at_slot(c.control));
}

void DataPath::apply_sync(const sync::Record& r, uint64_t now_ms) {
  const uint32_t now_s = seconds(now_ms);
  const bool templ = r.flags & sync::flag::kTemplate;
  if (r.protocol != kProtoTcp && r.protocol != kProtoUdp && !(r.fwmark && templ)) {  // FTP's templates (IPPROTO_IP)
    ++counters_.sync_no_real;
    return;
  }
  // The real of this director's service with the same address and port (IPVS
  // ip_vs_find_dest). lbd keeps no connection without a real: one it does not have is
  // counted, and the record is taken again once the real is configured.
  const Service* svc = r.fwmark ? services_.find(r.ipv6 ? fwmark_key6(r.fwmark) : fwmark_key(r.fwmark))
                                : services_.find_for_packet(r.protocol, r.vaddr, r.vport);
  Real* real = svc ? services_.find_real(svc->key, r.daddr, r.dport) : nullptr;
  if (svc && !real) real = services_.find_real(svc->key, r.daddr, 0);  // a port-zero service's real
  if (!real || real->deleted) {
    ++counters_.sync_no_real;
    return;
  }
  const ConnKey key{r.caddr, r.vaddr, r.cport, r.vport, uint8_t(r.protocol | (templ ? kTemplateProtocolBit : 0))};
  const ConnState state = templ ? ConnState::kNone : r.protocol == kProtoUdp ? ConnState::kUdp : ConnState(r.state);
  const bool inactive = r.flags & sync::flag::kInactive;
  const uint32_t timeout = r.timeout ? r.timeout : templ ? kTemplateDefaultTimeout : timeouts_.seconds(state);
  Conn* c = conns_.find(key);
  if (c && !templ && (c->daddr != r.daddr || c->dport != r.dport)) {
    // Another real now: the master rescheduled it. An inactive report about the old one
    // is the end of the connection it replaced: ignored.
    if (inactive) return;
    release(*c);
    c = nullptr;
  }
  if (c) {
    if (!templ && c->inactive != inactive) {
      services_.set_inactive(services_.real(c->real_id), inactive);
      c->inactive = inactive;
    }
    c->state = state;
    if ((c->flags & Conn::kOffloaded) && state != ConnState::kEstablished && state != ConnState::kUdp) withdraw(*c);
    conns_.set_expires(*c, now_s + timeout);
    ++counters_.sync_updated;
  } else {
    c = make_room() ? conns_.insert(key, now_s + timeout) : nullptr;
    if (!c) {
      ++counters_.sync_not_applied;
      return;
    }
    c->state = state;
    c->inactive = !templ && inactive;
    c->daddr = r.daddr;
    c->dport = r.dport;
    c->method = real->fwd;  // the connection takes this director's forwarding method, as in IPVS
    c->flags = templ ? Conn::kTemplate : 0;
    c->real_id = real->id;
    if (!attach(*c, *real, nullptr)) {
      ++counters_.sync_not_applied;
      return;
    }
    ++counters_.sync_created;
  }
  // A backup's copy starts at the threshold (IPVS): once it is master, its next packet of
  // the connection is not the one that sends it again.
  if (!sync_marks_.empty()) mark(*c) = {uint16_t(timeouts_.sysctl.sync_threshold), state, 0};
}

}  // namespace lbd

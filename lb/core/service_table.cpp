// Service and real-server configuration; see service_table.hpp for the contracts.
#include "lb/core/service_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>

namespace lbd {

static void set_overloaded(sched::DestView& d, bool v) {
  d.overloaded = v;
  // Written only when it changes: the workers' reads keep their copies of the line.
  if (d.shared && d.shared->overloaded.load(std::memory_order_relaxed) != v)
    d.shared->overloaded.store(v, std::memory_order_relaxed);
}

// Only a real with a threshold needs every worker's total: the others share nothing
// (no cache line moves between workers for them).
static bool has_threshold(const Real& r) { return r.u_threshold != 0 || r.l_threshold != 0; }

// One more (+1) or one fewer (-1) connection in this copy's count, and in the shared one.
static void count_conn(Real& r, bool inactive, int delta) {
  (inactive ? r.dest.inactive_conns : r.dest.active_conns) += uint32_t(delta);
  if (r.dest.shared && has_threshold(r)) r.dest.shared->conns.fetch_add(uint32_t(delta), std::memory_order_relaxed);
}

// The thresholds of `r` become (u, l): a copy that starts (or stops) counting its
// connections in the shared total adds (or takes back) those it has.
static void set_thresholds(Real& r, uint32_t u, uint32_t l) {
  const bool had = has_threshold(r);
  r.u_threshold = u;
  r.l_threshold = l;
  if (!r.dest.shared || had == has_threshold(r)) return;
  const uint32_t mine = r.dest.active_conns + r.dest.inactive_conns;
  r.dest.shared->conns.fetch_add(had ? uint32_t(-int64_t(mine)) : mine, std::memory_order_relaxed);
}


const char* protocol_token(uint8_t protocol) {
  return protocol_info(protocol).token;
}

std::vector<IpAddr> ServiceTable::vips() const {
  std::vector<IpAddr> v;
  for_each_service([&](const Service& s) {
    if (!s.key.fwmark && std::find(v.begin(), v.end(), s.key.vip) == v.end()) v.push_back(s.key.vip);
  });
  return v;
}

std::vector<IpAddr> ServiceTable::serving_vips() const {
  std::vector<IpAddr> v;
  for_each_service([&](const Service& s) {
    bool serving = s.sorry_active;
    for (size_t i = 0; i < s.reals.size() && !serving; ++i) {
      const Real& r = reals_[s.reals[i]];
      serving = !r.deleted && r.dest.weight > 0 && r.dest.available;
    }
    if (serving && !s.key.fwmark) v.push_back(s.key.vip);
  });
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<ServiceTable::Endpoint> ServiceTable::nat_endpoints() const {
  std::vector<Endpoint> v;
  for_each_service([&](const Service& s) {
    if (s.key.fwmark) return;  // their replies come through the fwmark queue
    auto add = [&](uint32_t id) {
      const Real& r = reals_[id];
      if (r.fwd == FwdMethod::kMasq) v.push_back({s.key.protocol, r.addr, r.port});
    };
    for (uint32_t id : s.reals) add(id);
    if (s.sorry_id != Service::kNoSorry) add(s.sorry_id);
  });
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string sched_flags_text(const std::string& scheduler, uint8_t flags) {
  std::string t;
  auto add = [&](uint8_t bit, const char* name) {
    if (flags & bit) t += t.empty() ? name : std::string(",") + name;
  };
  if (scheduler == "sh") {
    add(kSchedFlag1, "sh-fallback");
    add(kSchedFlag2, "sh-port");
  } else if (scheduler == "mh") {
    add(kSchedFlag1, "mh-fallback");
    add(kSchedFlag2, "mh-port");
  } else {
    add(kSchedFlag1, "flag-1");
    add(kSchedFlag2, "flag-2");
    add(kSchedFlag3, "flag-3");
  }
  return t;
}

// ip_vs_est.c estimation_timer(): rates scaled by 2^10 (2^5 for bytes) over 2 seconds,
// smoothed with a 1/4 weight.
void estimate(RateEstimator& e, const Counters& c) {
  auto step = [](uint64_t now, uint64_t& last, int64_t& avg, int shift) {
    const int64_t rate = int64_t((now - last) << shift);
    last = now;
    avg += (rate - avg) >> 2;
  };
  step(c.conns, e.last_conns, e.cps, 9);
  step(c.inpkts, e.last_inpkts, e.inpps, 9);
  step(c.outpkts, e.last_outpkts, e.outpps, 9);
  step(c.inbytes, e.last_inbytes, e.inbps, 4);
  step(c.outbytes, e.last_outbytes, e.outbps, 4);
}

// ip_vs_read_estimator(): rounded back to units per second.
Rates read_rates(const RateEstimator& e) {
  auto r = [](int64_t v, int shift, int64_t half) { return v <= 0 ? 0 : uint64_t((v + half) >> shift); };
  return Rates{r(e.cps, 10, 0x1FF), r(e.inpps, 10, 0x1FF), r(e.outpps, 10, 0x1FF),
               r(e.inbps, 5, 0xF), r(e.outbps, 5, 0xF)};
}

void ServiceTable::estimate_rates() {
  for (auto& s : services_)
    if (s.in_use) estimate(s.rate, s.stats);
  for (auto& r : reals_)
    if (r.in_use) estimate(r.rate, r.stats);
}

std::string to_string(const ServiceKey& k) {
  if (k.fwmark) return fmt::format("FWM {}", k.fwmark);
  if (k.vip.v6()) return fmt::format("{} [{}]:{}", protocol_info(k.protocol).name, k.vip, k.port);
  return fmt::format("{} {}:{}", protocol_info(k.protocol).name, k.vip, k.port);
}

AddrType classify_address(const IpAddr& addr) {
  if (addr.v6()) {
    // ipv6_addr_type(): ff00::/8 multicast, ::1 loopback, :: not an address (refused as
    // IPVS refuses any non-unicast one).
    if (addr.b[0] == 0xff) return AddrType::kMulticast;
    if (addr.is_zero()) return AddrType::kBroadcast;
    if (addr == IpAddr(Ipv6{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}})) return AddrType::kLocal;
    return AddrType::kUnicast;
  }
  const uint32_t h = addr.v4().host();
  if ((h >> 24) == 0 || h == 0xffffffffu || (h >> 28) == 0xf) return AddrType::kBroadcast;
  if ((h >> 28) == 0xe) return AddrType::kMulticast;
  if ((h >> 24) == 127) return AddrType::kLocal;
  return AddrType::kUnicast;
}

static std::function<AddrType(const IpAddr&)>& address_classifier() {
  static std::function<AddrType(const IpAddr&)> f = classify_address;
  return f;
}

void set_address_classifier(std::function<AddrType(const IpAddr&)> f) {
  address_classifier() = f ? std::move(f) : classify_address;
}

// ip_vs_new_dest(): only a unicast real (IPVS also takes a local one; lbd cannot serve it).
Status check_real_address(const IpAddr& a) {
  switch (address_classifier()(a)) {
    case AddrType::kUnicast: return Status::ok();
    case AddrType::kLocal:
      return Status::error(ENOSYS, fmt::format("real server {} is an address of this director: lbd "
                                               "forwards only (a local real is not supported)", a));
    case AddrType::kBroadcast:
    case AddrType::kMulticast: break;
  }
  return Status::error(EINVAL, fmt::format("real server {} is not a unicast address", a));
}

static sched::SchedulerOptions scheduler_options(const ServiceOptions& opt) { return {opt.sched_flags}; }

static std::string real_name(const IpAddr& a, uint16_t port) { return addr_port(a, port); }

// IPVS's family rule (ip_vs_add_dest(): another family than the service's only for a
// tunnel: IPv4 in IPv6, IPv6 in IPv4).
static Status check_family(const ServiceKey& key, const RealSpec& spec) {
  if (spec.addr.v6() != key.vip.v6() && spec.fwd != FwdMethod::kTunnel)
    return Status::error(EAFNOSUPPORT, fmt::format("real server {} is not of service {}'s address family (only a "
                                                   "tunnel crosses families)", addr_port(spec.addr, spec.port), key));
  return Status::ok();
}

Status ServiceTable::add_service(const ServiceKey& key, const ServiceOptions& opt) {
  if (find(key)) return Status::error(EEXIST, fmt::format("service {} already exists", key));
  auto sched = sched::make_scheduler(opt.scheduler, scheduler_options(opt));
  if (!sched)
    return Status::error(ENOENT, fmt::format("scheduler '{}' not found", opt.scheduler));
  uint32_t id;
  if (!free_services_.empty()) {
    id = free_services_.back();
    free_services_.pop_back();
  } else {
    id = uint32_t(services_.size());
    services_.emplace_back();
  }
  Service& s = services_[id];
  s = Service{};
  s.id = id;
  s.key = key;
  s.options = opt;
  s.scheduler = std::move(sched);
  s.in_use = true;
  s.scheduler->reals_changed({});
  sync_sorry(s);
  if (key.port == 0) ++port_zero_services_;
  if ((services_.size() - free_services_.size()) * 2 > lookup_.size()) {
    rebuild_lookup();  // grows: load stays at most 1/2
  } else {
    uint32_t i = key_hash(key) & lookup_mask_;
    while (lookup_[i]) i = (i + 1) & lookup_mask_;
    lookup_[i] = id + 1;
  }
  ++generation_;
  return Status::ok();
}

Status ServiceTable::edit_service(const ServiceKey& key, const ServiceOptions& opt) {
  Service* s = find(key);
  if (!s) return Status::error(ESRCH, fmt::format("service {} not found", key));
  auto sched = sched::make_scheduler(opt.scheduler, scheduler_options(opt));
  if (!sched)
    return Status::error(ENOENT, fmt::format("scheduler '{}' not found", opt.scheduler));
  settle(*s);
  if (opt.scheduler != s->options.scheduler) {
    s->scheduler = std::move(sched);
    s->scheduler->reals_changed(s->views);
  } else {
    s->scheduler->set_options(scheduler_options(opt));  // its state kept, as IPVS's -E
  }
  s->options = opt;
  sync_sorry(*s);
  ++generation_;
  return Status::ok();
}

Status ServiceTable::delete_service(const ServiceKey& key) {
  Service* s = find(key);
  if (!s) return Status::error(ESRCH, fmt::format("service {} not found", key));
  // Every real at once (one by one would rebuild the views per real: O(reals^2)).
  settle(*s);
  for (uint32_t id : s->reals) retire(reals_[id]);
  s->reals.clear();
  s->real_ids.clear();
  s->views.clear();
  s->options.health.sorry_addr.reset();
  sync_sorry(*s);
  if (s->key.port == 0) --port_zero_services_;
  s->in_use = false;
  s->scheduler.reset();
  free_services_.push_back(s->id);
  rebuild_lookup();
  ++generation_;
  return Status::ok();
}

void ServiceTable::flush() {
  for (auto& s : services_) {
    if (!s.in_use) continue;
    const ServiceKey key = s.key;
    (void)delete_service(key);
  }
}

std::optional<uint32_t> ServiceTable::real_id(const Service& s, const IpAddr& addr, uint16_t port) const {
  const auto it = s.real_ids.find(RealEndpoint{addr, port});
  if (it == s.real_ids.end()) return std::nullopt;
  return it->second;
}

void ServiceTable::settle(Service& s) {
  if (!s.unsettled) return;
  s.unsettled = false;
  // Reals deleted in the batch left a hole each: closed in one pass.
  s.reals.erase(std::remove(s.reals.begin(), s.reals.end(), kRemovedSlot), s.reals.end());
  rebuild_views(s);
  s.scheduler->reals_changed(s.views);
  refresh_sorry(s);
}

void ServiceTable::unsettle(Service& s) {
  if (!s.unsettled) unsettled_.push_back(s.id);
  s.unsettled = true;
}

void ServiceTable::settle_all() {
  for (uint32_t id : unsettled_)
    if (services_[id].in_use) settle(services_[id]);
  unsettled_.clear();
}

// ip_vs_add_dest / ip_vs_edit_dest: a negative weight, or -y above -x, is ERANGE.
static Status check_range(const RealSpec& spec) {
  if (spec.weight < 0) return Status::error(ERANGE, "weight out of range");
  if (spec.l_threshold > spec.u_threshold)
    return Status::error(ERANGE, "lower threshold above the upper threshold");
  return Status::ok();
}

Status ServiceTable::add_real(const ServiceKey& key, const RealSpec& spec) {
  Service* s = find(key);
  if (!s) return Status::error(ESRCH, fmt::format("service {} not found", key));
  if (real_id(*s, spec.addr, spec.port))
    return Status::error(EEXIST, fmt::format("real server {} already exists in service {}",
                                             real_name(spec.addr, spec.port), key));
  if (Status st = check_range(spec); !st.is_ok()) return st;
  if (Status st = check_family(key, spec); !st.is_ok()) return st;
  if (Status st = check_real_address(spec.addr); !st.is_ok()) return st;
  Real* r = from_trash(key, spec.addr, spec.port);
  if (!r) {
    r = &allocate_real();
    r->service_key = key;
    r->addr = spec.addr;
    r->port = spec.port;
  }
  r->deleted = false;
  r->health_override = spec.health.value_or("");
  // start=down (keepalived's alpha): a checked real takes no connection before its checks pass.
  const health::CheckSpec check = health::effective_check(s->options.health.check, r->health_override);
  r->health_down = check.kind && check.start_down;
  r->dest.available = !r->health_down;
  r->service_id = s->id;
  r->fwd = spec.fwd;
  r->tun = spec.tun;
  r->dest.weight = r->dest.last_weight = spec.weight;
  r->dest.addr = spec.addr.fold();
  r->dest.port = spec.port;
  set_thresholds(*r, spec.u_threshold, spec.l_threshold);
  set_overloaded(r->dest, false);
  s->reals.push_front(r->id);  // IPVS list_add: new reals go to the head
  s->real_ids[RealEndpoint{r->addr, r->port}] = r->id;
  ++generation_;
  if (batch_depth_ > 0) {
    unsettle(*s);
    return Status::ok();
  }
  rebuild_views(*s);
  s->scheduler->real_added(s->views, 0);
  refresh_sorry(*s);
  return Status::ok();
}

// IPVS's dest trash: a deleted real of a service with this key that connections still use.
Real* ServiceTable::from_trash(const ServiceKey& key, const IpAddr& addr, uint16_t port) {
  if (trash_ == 0) return nullptr;  // the common case: no scan
  for (Real& t : reals_)
    if (t.in_use && t.deleted && !t.sorry && t.service_key == key && t.addr == addr && t.port == port) {
      --trash_;
      return &t;
    }
  return nullptr;
}

Real& ServiceTable::allocate_real() {
  uint32_t id;
  if (!free_reals_.empty()) {
    id = free_reals_.back();
    free_reals_.pop_back();
  } else {
    id = uint32_t(reals_.size());
    reals_.emplace_back();
  }
  Real& r = reals_[id];
  r = Real{};
  r.id = id;
  r.in_use = true;
  return r;
}

Status ServiceTable::edit_real(const ServiceKey& key, const RealSpec& spec) {
  Service* s = find(key);
  if (!s) return Status::error(ESRCH, fmt::format("service {} not found", key));
  const auto id = real_id(*s, spec.addr, spec.port);
  if (!id)
    return Status::error(ENOENT, fmt::format("real server {} not found in service {}",
                                             real_name(spec.addr, spec.port), key));
  if (Status st = check_range(spec); !st.is_ok()) return st;
  if (Status st = check_family(key, spec); !st.is_ok()) return st;
  Real& r = reals_[*id];
  r.fwd = spec.fwd;
  r.tun = spec.tun;
  r.dest.weight = spec.weight;
  if (spec.weight != 0) r.dest.last_weight = spec.weight;  // __ip_vs_update_dest(): the latest non-zero
  // __ip_vs_update_dest(): no upper threshold, or a higher one, ends an overload at once.
  if (spec.u_threshold == 0 || spec.u_threshold > r.u_threshold) set_overloaded(r.dest, false);
  set_thresholds(r, spec.u_threshold, spec.l_threshold);
  if (spec.health) r.health_override = *spec.health;
  ++generation_;
  if (batch_depth_ > 0) {
    unsettle(*s);  // the scheduler hears of it when the batch settles (wrr: once, not per edit)
    return Status::ok();
  }
  s->scheduler->real_edited(s->views, size_t(std::find(s->reals.begin(), s->reals.end(), *id) - s->reals.begin()));
  refresh_sorry(*s);  // a weight counts towards the quorum
  return Status::ok();
}

Status ServiceTable::delete_real(const ServiceKey& key, const IpAddr& addr, uint16_t port) {
  Service* s = find(key);
  if (!s) return Status::error(ESRCH, fmt::format("service {} not found", key));
  const auto id = real_id(*s, addr, port);
  if (!id)
    return Status::error(ENOENT, fmt::format("real server {} not found in service {}",
                                             real_name(addr, port), key));
  remove_real_from_service(*s, size_t(std::find(s->reals.begin(), s->reals.end(), *id) - s->reals.begin()));
  if (batch_depth_ == 0) refresh_sorry(*s);
  ++generation_;
  return Status::ok();
}

Real* ServiceTable::find_real(const ServiceKey& key, const IpAddr& addr, uint16_t port) {
  Service* s = find(key);
  if (!s) return nullptr;
  const auto id = real_id(*s, addr, port);
  return id ? &reals_[*id] : nullptr;
}

bool ServiceTable::set_health(Real& r, bool up) {
  r.health_down = !up;
  r.dest.available = up && !r.deleted;
  if (r.sorry || r.deleted) return false;
  return refresh_sorry(services_[r.service_id]);
}

// The sorry server is a Real outside the service's list: scheduled only while sorry_active.
void ServiceTable::sync_sorry(Service& s) {
  const auto& h = s.options.health;
  const uint16_t port = h.sorry_port ? h.sorry_port : s.key.port;
  const FwdMethod fwd = h.sorry_fwd;
  if (s.sorry_id != Service::kNoSorry) {
    Real& old = reals_[s.sorry_id];
    if (h.sorry_addr && old.addr == *h.sorry_addr && old.port == port && old.fwd == fwd) {
      refresh_sorry(s);
      return;
    }
    retire(old);
    s.sorry_id = Service::kNoSorry;
  }
  if (h.sorry_addr) {
    Real& r = allocate_real();
    r.service_key = s.key;
    r.service_id = s.id;
    r.addr = *h.sorry_addr;
    r.port = port;
    r.fwd = fwd;
    r.sorry = true;
    s.sorry_id = r.id;
  }
  refresh_sorry(s);
}

bool ServiceTable::refresh_sorry(Service& s) {
  bool any_up = false;
  uint64_t live = 0;
  for (uint32_t id : s.reals) {
    const Real& r = reals_[id];
    any_up |= !r.health_down;
    if (!r.health_down) live += uint64_t(std::max(0, r.dest.weight));
  }
  s.live_weight = live;
  const auto& h = s.options.health;
  if (!h.quorum) {
    s.quorum = any_up;
  } else if (s.quorum && (live == 0 || int64_t(live) < int64_t(h.quorum) - int64_t(h.hysteresis))) {
    s.quorum = false;  // keepalived's update_quorum_state(): lost
  } else if (!s.quorum && live > 0 && live >= uint64_t(h.quorum) + h.hysteresis) {
    s.quorum = true;  // gained
  }
  const bool active = s.sorry_id != Service::kNoSorry && !s.quorum;
  const bool changed = active != s.sorry_active;
  s.sorry_active = active;
  return changed;
}

void ServiceTable::remove_real_from_service(Service& s, size_t index) {
  Real& r = reals_[s.reals[index]];
  s.real_ids.erase(RealEndpoint{r.addr, r.port});
  if (batch_depth_ > 0) {
    // In a batch the list keeps a hole, closed when the batch settles, and the scheduler
    // hears of all changes at once (rr's cursor then restarts at the list head).
    s.reals[index] = kRemovedSlot;
    unsettle(s);
    retire(r);
    return;
  }
  const sched::DestView* removed = &r.dest;  // outside a batch the list is settled
  s.reals.erase(s.reals.begin() + long(index));
  rebuild_views(s);
  s.scheduler->real_removed(s.views, removed, index);
  retire(r);
}

// A real leaves its service: freed now, or kept in the trash while connections use it.
void ServiceTable::retire(Real& r) {
  r.deleted = true;
  r.dest.available = false;
  if (r.conn_refs == 0 && !deferred_release_)
    release_real(r);
  else
    ++trash_;
}

std::vector<uint32_t> ServiceTable::unreferenced_deleted() const {
  std::vector<uint32_t> ids;
  if (trash_ == 0) return ids;
  for (const Real& r : reals_)
    if (r.in_use && r.deleted && r.conn_refs == 0) ids.push_back(r.id);
  return ids;
}

void ServiceTable::release_deleted(uint32_t id) {
  if (id >= reals_.size()) return;
  Real& r = reals_[id];
  if (!r.in_use || !r.deleted || r.conn_refs != 0) return;
  --trash_;
  release_real(r);
}

void ServiceTable::release_real(Real& r) {
  r.in_use = false;
  free_reals_.push_back(r.id);
}

Status ServiceTable::zero(const std::optional<ServiceKey>& key) {
  if (key) {
    Service* s = find(*key);
    if (!s) return Status::error(ESRCH, fmt::format("service {} not found", *key));
    s->stats = {};
    s->rate = {};
    for (uint32_t id : s->reals) {
      reals_[id].stats = {};
      reals_[id].rate = {};
    }
    return Status::ok();
  }
  for (auto& s : services_) {
    s.stats = {};
    s.rate = {};
  }
  for (auto& r : reals_) {
    r.stats = {};
    r.rate = {};
  }
  return Status::ok();
}

// Every worker's connections to `r` (IPVS's thresholds count them all).
static uint64_t total_conns(const Real& r) {
  if (r.dest.shared && has_threshold(r)) return r.dest.shared->conns.load(std::memory_order_relaxed);
  return uint64_t(r.dest.active_conns) + r.dest.inactive_conns;
}

void ServiceTable::share_counts(Real& r, sched::SharedDest* shared) {
  if (r.dest.shared == shared) return;
  r.dest.shared = shared;
  if (has_threshold(r)) shared->conns.fetch_add(r.dest.active_conns + r.dest.inactive_conns, std::memory_order_relaxed);
  if (r.dest.overloaded) shared->overloaded.store(true, std::memory_order_relaxed);
}

void ServiceTable::bind_conn(Real& r, bool inactive, bool templ) {
  ++r.conn_refs;
  if (templ)
    ++r.persist_conns;
  else
    count_conn(r, inactive, 1);
  if (r.u_threshold != 0 && total_conns(r) >= r.u_threshold) set_overloaded(r.dest, true);
}

void ServiceTable::unbind_conn(Real& r, bool inactive, bool templ) {
  if (templ)
    --r.persist_conns;
  else
    count_conn(r, inactive, -1);
  // The overload ends below the lower threshold, else below 3/4 of the upper one.
  if (r.l_threshold != 0) {
    if (total_conns(r) < r.l_threshold) set_overloaded(r.dest, false);
  } else if (r.u_threshold != 0) {
    if (total_conns(r) * 4 < uint64_t(r.u_threshold) * 3) set_overloaded(r.dest, false);
  } else {
    set_overloaded(r.dest, false);
  }
  if (--r.conn_refs == 0 && r.deleted && !deferred_release_) {
    --trash_;
    release_real(r);
  }
}

void ServiceTable::set_inactive(Real& r, bool inactive) {  // the total, shared or not, stays
  if (inactive) {
    --r.dest.active_conns;
    ++r.dest.inactive_conns;
  } else {
    ++r.dest.active_conns;
    --r.dest.inactive_conns;
  }
}

void ServiceTable::rebuild_views(Service& s) {
  s.views.clear();
  for (uint32_t id : s.reals) s.views.push_back(&reals_[id].dest);
}

void ServiceTable::rebuild_lookup() {
  size_t n = 0;
  for (const auto& s : services_) n += s.in_use;
  const uint32_t size = std::bit_ceil(uint32_t(std::max<size_t>(n * 2, 8)));
  lookup_.assign(size, 0);
  lookup_mask_ = size - 1;
  for (const auto& s : services_) {
    if (!s.in_use) continue;
    uint32_t i = key_hash(s.key) & lookup_mask_;
    while (lookup_[i]) i = (i + 1) & lookup_mask_;
    lookup_[i] = s.id + 1;
  }
}

}  // namespace lbd

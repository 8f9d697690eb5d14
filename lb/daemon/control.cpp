// The control thread's commands, listings and publishing to the workers; see control.hpp.
#include "lb/daemon/control.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lb/ctl/commands.hpp"
#include "lb/base/host.hpp"
#include "lb/base/log.hpp"
#include "lb/io/systemd.hpp"
#include "lb/core/traffic_model.hpp"
#include "lb/daemon/rules_file.hpp"

namespace lbd {

void Control::gather() {
  std::vector<ShardCounts> shards(workers_.size());
  on_each_worker([&](Worker& w) { shards[w.index()] = w.counts(); });
  for (auto& sh : shards) sh.reals.resize(services_.real_slots()), sh.services.resize(services_.service_slots());
  services_.for_each_real([&](Real& r) {
    Counters st{};
    uint32_t active = 0, inactive = 0, persist = 0;
    for (const auto& sh : shards) {
      const auto& x = sh.reals[r.id];
      st += x.stats;
      active += x.active;
      inactive += x.inactive;
      persist += x.persist;
    }
    r.stats = st;
    r.dest.active_conns = active;
    r.dest.inactive_conns = inactive;
    r.persist_conns = persist;
  });
  for (size_t id = 0; id < services_.service_slots(); ++id) {
    Service& s = services_.service(uint32_t(id));
    if (!s.in_use) continue;
    Counters st{};
    for (const auto& sh : shards) {
      st += sh.services[id];
    }
    s.stats = st;
  }
  free_unused_reals(shards);
  last_counts_ = std::move(shards);
}

void Control::free_unused_reals(const std::vector<ShardCounts>& shards) {
  if (services_.trash() == 0) return;
  std::vector<uint32_t> unused = services_.unreferenced_deleted();
  for (const auto& sh : shards)
    std::erase_if(unused, [&](uint32_t id) {
      return std::find(sh.unreferenced.begin(), sh.unreferenced.end(), id) == sh.unreferenced.end();
    });
  if (unused.empty()) return;
  for (uint32_t id : unused) services_.release_deleted(id);
  on_each_worker([&](Worker& w) {
    for (uint32_t id : unused) w.services().release_deleted(id);
  });
}

Dump Control::make_dump() {
  Dump d;
  d.table_size = cfg_.max_connections;
  d.timeouts = timeouts_;
  for (const auto* sd : {&sync_master_, &sync_backup_})
    if (*sd) {
      DumpDaemon dd{sd == &sync_master_ ? "master" : "backup", (*sd)->spec};
      dd.spec.maxlen = (*sd)->sock.maxlen;
      d.daemons.push_back(std::move(dd));
    }
  services_.for_each_service([&](const Service& s) {
    DumpService ds{.key = s.key, .options = s.options, .stats = s.stats, .rates = read_rates(s.rate)};
    auto add = [&](const Real& r, uint8_t flags) {
      RealSpec spec(r.addr, r.port, r.fwd, r.dest.weight, r.health_override);
      spec.tun = r.tun;
      spec.u_threshold = r.u_threshold;
      spec.l_threshold = r.l_threshold;
      ds.reals.push_back({.spec = spec, .active = r.dest.active_conns, .inactive = r.dest.inactive_conns,
                          .persist_conns = r.persist_conns, .stats = r.stats, .flags = flags,
                          .rates = read_rates(r.rate)});
    };
    for (uint32_t id : s.reals) {
      const Real& r = services_.real(id);
      add(r, r.health_down ? DumpReal::kDown : 0);
    }
    // The sorry server shows as a real while it stands in (as keepalived adds it to IPVS).
    if (s.sorry_active) add(services_.real(s.sorry_id), DumpReal::kSorry);
    d.services.push_back(std::move(ds));
  });
  return d;
}

std::vector<Counter> Control::counters() {
  DataPathCounters c;
  uint64_t conns = 0, kdrops = 0;
  for (const auto& sh : last_counts_) {
    c += sh.dp;
    conns += sh.conns;
    kdrops += sh.kernel_drops;
  }
  std::vector<Counter> v = named_counters(c);
  v.push_back({"conns_current", conns, true});
  v.push_back({"vips_announced", announcer_ ? announcer_->announced().size() : 0, true});
  v.push_back({"sync_received", sync_received_});
  for (size_t i = 1; i < sync_refused_.size(); ++i)
    v.push_back({fmt::format("sync_refused_{}", sync::refusal_name(sync::Refusal(i))), sync_refused_[i]});
  for (size_t i = 1; i < sync_skipped_.size(); ++i)
    v.push_back({fmt::format("sync_skipped_{}", sync::skip_name(sync::Skip(i))), sync_skipped_[i]});
  v.push_back({"offload_tx_lost", xdp_tx_lost_});
  if (xdp_) {
    const auto x = xdp_->stats();
    for (size_t i = 0; i < x.size(); ++i) v.push_back({fmt::format("xdp_{}", XdpFlowCache::kStatNames[i]), x[i]});
  }
  if (health_) {
    const auto h = health_->stats();
    v.insert(v.end(), {{"health_checks", h.checks},
                       {"health_check_failures", h.failures},
                       {"health_late_p50_us", h.late_p50_us, true},
                       {"health_late_p99_us", h.late_p99_us, true},
                       {"health_late_max_us", h.late_max_us, true},
                       {"health_stalls", health_stalls_},
                       {"health_stalled", health_stalled_, true}});
  }
  if (fwmark_)
    v.insert(v.end(), {{"fwmark_queued", fwmark_->queued()},
                       {"fwmark_accepted", fwmark_->accepted()},
                       {"fwmark_queue_overflows", fwmark_->overflows()}});
  v.insert(v.end(), {{"capture_kernel_drops", kdrops},
                     {"capture_broad_filters", uint64_t(std::count(broad_filter_.begin(), broad_filter_.end(), true)), true},
                     {"dr_reals_not_on_link", hops_->dr_not_on_link(), true},
                     {"guard_restored", guard_restored_},
                     {"interfaces_lost", interfaces_lost_},
                     {"interfaces_back", interfaces_back_},
                     {"control_clients_dropped", control_->dropped_clients()},
                     {"handover_adopted", handover_adopted_},
                     {"handover_not_adopted", handover_not_adopted_},
                     {"handover_dark_ms", handover_dark_ms_, true},
                     {"reloads_ok", reloads_ok_},
                     {"reloads_failed", reloads_failed_},
                     {"workers", workers_.size(), true}});
  if (http_) v.insert(v.end(), {{"metrics_requests", http_->requests()}, {"metrics_refused", http_->refused()}});
  // Each worker's share: how evenly the fanout spreads the clients.
  for (size_t i = 0; i < last_counts_.size(); ++i)
    v.insert(v.end(), {{fmt::format("worker{}_conns_current", i), last_counts_[i].conns, true},
                       {fmt::format("worker{}_conns_created", i), last_counts_[i].dp.conns_created},
                       {fmt::format("worker{}_rx_frames", i), last_counts_[i].dp.rx_frames}});
  return v;
}

std::string Control::offload_name() const { return xdp_ ? fmt::format("xdp-{}", xdp_mode_) : "off"; }

// --lbd-counters: the fast path's mode, then every count as "name value".
std::string Control::counters_text() {
  std::string s = fmt::format("offload {}\n", offload_name());
  for (const Counter& c : counters()) s += fmt::format("{} {}\n", c.name, c.value);
  return s;
}

void Control::prepare_shared_counts() {
  if (workers_.size() < 2) return;
  if (shared_counts_.size() < services_.real_slots()) shared_counts_.resize(services_.real_slots());
  services_.for_each_real([&](Real& r) {
    if (r.dest.shared) return;
    sched::SharedDest& s = shared_counts_[r.id];  // its id's last real had no connection left
    s.conns = 0;
    s.overloaded = false;
    services_.share_counts(r, &s);
  });
}

void Control::share_counts(Worker& w) {
  if (workers_.size() < 2) return;
  w.services().for_each_real([&](Real& r) {
    if (!r.dest.shared && r.id < shared_counts_.size()) w.services().share_counts(r, &shared_counts_[r.id]);
  });
}

void Control::apply_everywhere(const std::function<Status(ServiceTable&, Timeouts&)>& change) {
  prepare_shared_counts();
  on_each_worker([&](Worker& w) {
    // The same change to a table with the same configuration: it cannot fail.
    if (const Status st = change(w.services(), w.timeouts()); !st.is_ok())
      LBD_LOG(kError, "control", "worker {} refused a change the control thread took: {}", w.index(), st.message());
    share_counts(w);
  });
  configuration_changed();
  announce_vips();
  gather();  // listings right after the change; deleted reals nobody uses freed now
}

std::string Control::handle_restore(const std::string& req) {
  std::vector<CliCommand> rules;
  Status st = parse_rules(restore_rules(req), rules);
  if (st.is_ok()) st = apply_rules_atomically(rules, services_, timeouts_);
  if (!st.is_ok()) {
    LBD_LOG(kWarn, "control", "restore refused, nothing changed: {}", st.message());
    return status_reply(st);
  }
  LBD_LOG(kInfo, "control", "restored {} rules", rules.size());
  apply_everywhere([&](ServiceTable& t, Timeouts& to) { return apply_rules_atomically(rules, t, to); });
  return status_reply(Status::ok());
}

void Control::with_flag_sysctls(std::vector<CliCommand>& rules) const {
  std::vector<CliCommand> flags;
  for (const std::string& a : cfg_.sysctls) {
    CliCommand c;
    c.cmd = Command::kSetSysctl;
    c.sysctl = a;
    flags.push_back(std::move(c));
  }
  rules.insert(rules.begin(), flags.begin(), flags.end());
}

// SIGHUP, first half: the file is read, parsed and its names resolved on a thread of its
// own (a dead name server can take seconds), while the workers forward. A SIGHUP during a
// reload reloads again once it ends.
void Control::start_reload() {
  if (reload_thread_.joinable()) {
    reload_again_ = true;
    return;
  }
  notify_systemd(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", monotonic_ms() * 1000));
  reload_thread_ = std::thread([this] {
    reload_status_ = read_rules(cfg_.rules_path, !cfg_.rules_path_given, reload_rules_);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(reload_fd_.get(), &one, sizeof one);
  });
}

// Second half, on the control thread: the parsed rules applied as a difference (linear in
// the rules), to the control thread's table and then to each worker's.
void Control::finish_reload() {
  uint64_t n;
  [[maybe_unused]] auto r = read(reload_fd_.get(), &n, sizeof n);
  reload_thread_.join();
  size_t changes = 0;
  std::vector<std::string> what;
  Status st = reload_status_;
  if (st.is_ok()) {
    with_flag_sysctls(reload_rules_);
    st = reload_rules(reload_rules_, services_, timeouts_, changes, &what);
  }
  if (!st.is_ok()) {
    ++reloads_failed_;
    LBD_LOG(kError, "rules", "reload: {}; running rules kept", st.message());
    notify_systemd("READY=1\nSTATUS=reload failed, running rules kept (see the log)");
  } else {
    LBD_LOG(kInfo, "rules", "reloaded {}: {} rules, {} changes{}", cfg_.rules_path, reload_rules_.size(), changes,
            what.empty() ? "" : ":");
    // What changed, as the commands that make it (the first 100; the count says the rest).
    for (size_t i = 0; i < what.size() && i < 100; ++i) LBD_LOG(kInfo, "rules", "  {}", what[i]);
    if (what.size() > 100) LBD_LOG(kInfo, "rules", "  ... and {} more", what.size() - 100);
    apply_everywhere([&](ServiceTable& t, Timeouts& to) {
      size_t ignored = 0;
      return reload_rules(reload_rules_, t, to, ignored);
    });
    ++reloads_ok_;
    notify_systemd("READY=1\nSTATUS=rules reloaded");
  }
  reload_rules_.clear();
  if (std::exchange(reload_again_, false)) start_reload();
}

// The services at once, then the connections a step at a time as lbadm reads them, worker
// after worker: a listing of a million connections holds a worker for one step at a time
// (a copy of 16384 entries), never the control thread's formatting.
Reply Control::dump_with_conns() {
  std::string head = encode_dump(make_dump());
  head.resize(head.size() - kEnd.size());  // without its "END\n": the connections follow
  struct Cursor {
    size_t worker = 0, pos = 0;
  };
  auto at = std::make_shared<Cursor>();
  return {std::move(head), [this, at](std::string& out) {
            if (at->worker >= workers_.size()) {
              out += kEnd;
              return true;
            }
            Dump step;
            bool done = false;
            std::latch copied(1);
            workers_[at->worker]->post([&](Worker& w) {
              const uint32_t now_s = DataPath::seconds(monotonic_ms());
              at->pos = w.conns().for_each_from(at->pos, 16384, [&](const Conn& c) {
                // A persistence template: client port 0, state NONE (IPVS's template entries).
                const bool templ = c.flags & Conn::kTemplate;
                const uint32_t expires = w.data_path().expires_of(c);  // offloaded: from its last packet
                step.conns.push_back({uint8_t(c.key.protocol & ~kTemplateProtocolBit), c.key.caddr,
                                      c.key.vaddr, c.daddr, c.key.cport, c.key.vport, c.dport,
                                      templ ? "NONE" : state_name(c.state),
                                      expires > now_s ? expires - now_s : 0});
              });
              done = at->pos >= w.conns().index_positions();
              copied.count_down();
            });
            copied.wait();
            out += encode_conns(step);
            if (done) {
              ++at->worker;
              at->pos = 0;
            }
            if (at->worker < workers_.size()) return false;
            out += kEnd;
            return true;
          }};
}

Reply Control::handle_request(const std::string& req) {
  // What the workers and the fast path forwarded is in every listing and counter.
  if (req == "DUMP" || req == "DUMP CONNS" || req.starts_with("COUNTERS")) gather();  // O(reals) per worker
  if (req == "DUMP") return {encode_dump(make_dump()), {}};
  if (req == "DUMP CONNS") return dump_with_conns();
  if (req == "COUNTERS") return {counters_text() + std::string(kEnd), {}};
  if (req == "HEALTH") return {health_text() + std::string(kEnd), {}};
  if (req == "COUNTERS JSON")
    return {counters_json(offload_name(), counters()).dump(2) + "\n" + std::string(kEnd), {}};
  if (req == "HEALTH JSON") return {health_json_text() + std::string(kEnd), {}};
  if (handed_over_)
    return {status_reply(Status::error(EBUSY, "this lbd has handed its connections over and is stopping")), {}};
  if (req == "TAKEOVER") return handle_takeover();
  if (req.rfind("RESTORE\n", 0) == 0) return {handle_restore(req), {}};
  std::vector<std::string> args;
  auto parsed = parse_request(req, args);
  if (auto* e = std::get_if<Status>(&parsed)) return {status_reply(*e), {}};
  const CliCommand& cmd = std::get<CliCommand>(parsed);
  if (cmd.cmd == Command::kStartDaemon || cmd.cmd == Command::kStopDaemon) {
    const Status st = sync_daemon_command(cmd);
    LBD_LOG(kInfo, "sync", "{}: {}", join_args(args), st.is_ok() ? "done" : st.message());
    return {status_reply(st), {}};
  }
  const Status st = execute(cmd, services_, timeouts_);
  if (!st.is_ok()) {
    LBD_LOG(kInfo, "control", "refused: {}: {}", health::redact_secrets(join_args(args)), st.message());
    return {fmt::format("ERR {} {}\n", st.code(), st.message()), {}};
  }
  LBD_LOG(kInfo, "control", "applied: {}", health::redact_secrets(join_args(args)));
  apply_everywhere([&](ServiceTable& t, Timeouts& to) { return execute(cmd, t, to); });
  return {"OK\n", {}};
}

// The widest persistence netmask of the services: a persistent client's connections (and
// its template) must all be one worker's.
static Ipv4 steering_mask(const ServiceTable& services) {
  uint32_t mask = 0xffffffffu;
  services.for_each_service([&](const Service& s) {
    if (s.options.persistent && !s.key.vip.v6()) mask &= s.options.netmask.host();
  });
  return Ipv4::from_host(mask);
}
// The same for IPv6 clients: the shortest persistence prefix of the IPv6 services.
static uint8_t steering_prefix6(const ServiceTable& services) {
  uint8_t prefix = 128;
  services.for_each_service([&](const Service& s) {
    if (s.options.persistent && s.key.vip.v6()) prefix = std::min(prefix, s.options.netmask6);
  });
  return prefix;
}

void Control::configuration_changed() {
  if (services_.generation() == applied_generation_) return;
  applied_generation_ = services_.generation();
  const TrafficModel model = traffic_model(services_, local_addresses());
  if (steering_) {
    const Ipv4 mask = steering_mask(services_);
    if (!(mask == steer_mask_))
      LBD_LOG(kWarn, "workers", "clients now go to workers by their address masked with {} (the widest "
              "persistence netmask; it was {}): established connections of clients that move to another "
              "worker are lost", mask, steer_mask_);
    steer_mask_ = mask;
    steer_prefix6_ = steering_prefix6(services_);
    if (const Status st = steering_->configure(services_.vips(), mask, steer_prefix6_, model.gue_ports); !st.is_ok())
      LBD_LOG(kError, "workers", "fanout program: {}: replies may reach the wrong worker", st.message());
  }
  set_capture_filters(model);
  if (const Status st = guard_->apply(model); !st.is_ok()) LBD_LOG(kError, "guard", "nftables update failed: {}", st.message());
  if (fwmark_) {
    if (const Status st = fwmark_->apply(model.fwmarks, model.fwmarks6, model.fwmark_nat_addrs, model.local);
        !st.is_ok())
      LBD_LOG(kError, "fwmark", "nftables update failed: {}", st.message());
  } else if (!(model.fwmarks.empty() && model.fwmarks6.empty()) && !std::exchange(fwmark_warned_, true)) {
    LBD_LOG(kError, "fwmark", "firewall-mark services are configured but the fwmark queue is not bound (see "
            "the start-up log): they get no packets");
  }
  resolve_next_hops(true);
  configure_health();
  write_directory();  // what the connections' real ids now mean
  publish_status();
}

// The firewall-mark services' queue, read by worker 0: every packet of those services
// (both ways) comes through it, so one worker holds all their connections. Without it
// (no nfnetlink_queue, or the queue number taken) lbd runs, and says so.
void Control::start_fwmark_queue() {
  try {
    fwmark_ = std::make_unique<FwmarkQueue>(
        FwmarkQueue::Options{uint16_t(cfg_.fwmark_queue), cfg_.fwmark_fail == "open"});
    workers_[0]->set_fwmark_queue(fwmark_.get());
  } catch (const std::exception& e) {
    LBD_LOG(kWarn, "fwmark", "{}: firewall-mark services (-f) will get no packets", e.what());
  }
}

void Control::set_capture_filters(const TrafficModel& model) {
  std::vector<CaptureFilter> filters;
  for (const auto& itf : interfaces_) filters.push_back(capture_filter(model, itf.mac));
  std::vector<uint8_t> broad(interfaces_.size());
  on_each_worker([&](Worker& w) {
    for (size_t i = 0; i < interfaces_.size(); ++i) {
      CaptureFilter filter = filters[i];
      for (const CaptureClass cls : kCaptureClasses) {
        Capture& cap = *w.captures(cls)[i];
        const Status st = cap.set_filter(class_filter(filter, cls));
        if (st.is_ok()) continue;
        // Never keep the old filter: it would not see a new service's traffic, which the
        // guard then drops. The broad filter cannot miss one.
        if (w.index() == 0)
          LBD_LOG(kError, "capture", "{}: cannot set the capture filter ({}): capturing every IPv4 frame "
                  "to {} instead", cap.name(), st.message(), cap.mac());
        filter = broad_capture_filter(cap.mac());
        for (const CaptureClass again : kCaptureClasses)
          if (const Status broad_st = w.captures(again)[i]->set_filter(class_filter(filter, again)); !broad_st.is_ok())
            LBD_LOG(kError, "capture", "{}: cannot set even the broad capture filter: {}", cap.name(),
                    broad_st.message());
        break;
      }
      for (const CaptureClass cls : kCaptureClasses) w.captures(cls)[i]->broad_filter = filter.broad;
      if (w.index() == 0) broad[i] = filter.broad;
    }
  });
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    if (bool(broad[i]) != broad_filter_[i])
      LBD_LOG(kInfo, "capture", "{}: {}", interfaces_[i].name,
              broad[i] ? fmt::format("{} services: capturing every IPv4 frame to {} and sorting in lbd "
                                     "(a precise filter this large compiles too slowly)",
                                     services_.service_count(), interfaces_[i].mac)
                       : std::string("precise capture filter again"));
    broad_filter_[i] = broad[i];
  }
}

void Control::resolve_next_hops(bool refresh) {
  hops_->resolve(services_, refresh);
  std::vector<NextHop> hops(services_.real_slots());
  services_.for_each_real([&](const Real& r) { hops[r.id] = r.hop; });
  if (hops == hops_published_) return;
  hops_published_ = hops;
  auto shared = std::make_shared<const std::vector<NextHop>>(std::move(hops));
  for (auto& w : workers_)
    w->post([shared](Worker& x) {
      const auto& h = *shared;
      x.services().for_each_real([&](Real& r) {
        if (r.id < h.size()) r.hop = h[r.id];
      });
      const uint64_t now = monotonic_ms();
      x.data_path().sync_real_hops(now);
      x.data_path().release_held(now, [&x](std::span<const uint8_t> f, const Verdict& v) {
        x.send(f.data(), f.size(), v, nullptr);
      });
      x.flush_all();
    });
}

void Control::on_worker_events() {
  uint64_t n;
  [[maybe_unused]] auto r = read(events_fd_.get(), &n, sizeof n);
  bool resolve = false;
  std::vector<Worker::Events::Pmtu> pmtu;
  for (auto& w : workers_) {
    Worker::Events e = w->take_events();
    resolve |= !e.unresolved.empty();
    pmtu.insert(pmtu.end(), e.pmtu.begin(), e.pmtu.end());
    // Its sockets closed everywhere; opened again at the next look (watch_interfaces).
    for (const size_t slot : e.failed_slots)
      if (interfaces_[slot].ifindex) interface_lost(slot, e.capture_failed);
  }
  if (resolve) resolve_next_hops(true);
  if (pmtu.empty()) return;
  // A tunnel's path MTU one worker learnt holds for every worker's connections to it.
  for (const auto& p : pmtu) {
    Real& real = services_.real(p.real_id);
    real.tun_pmtu = p.pmtu;
    real.tun_pmtu_until = p.until;
  }
  for (auto& w : workers_)
    w->post([pmtu](Worker& x) {
      for (const auto& p : pmtu) {
        Real& real = x.services().real(p.real_id);
        if (!real.in_use) continue;
        real.tun_pmtu = p.pmtu;
        real.tun_pmtu_until = p.until;
      }
      x.data_path().sync_real_hops(monotonic_ms());
    });
}

}  // namespace lbd

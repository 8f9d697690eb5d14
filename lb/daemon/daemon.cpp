// lbd's main loop: the control thread's start, poll loop and orderly stop; see daemon.hpp
// and control.hpp.
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstring>

#include "lb/ctl/commands.hpp"
#include "lb/base/host.hpp"
#include "lb/base/log.hpp"
#include "lb/io/systemd.hpp"
#include "lb/core/traffic_model.hpp"
#include "lb/daemon/control.hpp"
#include "lb/ctl/names.hpp"
#include "lb/daemon/rules_file.hpp"

namespace lbd {

void Control::refresh_mtus() {
  bool changed = false;
  for (auto& itf : interfaces_) {
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", itf.name.c_str());
    if (!itf.ifindex || ioctl(ifreq_fd_.get(), SIOCGIFMTU, &ifr) < 0 || ifr.ifr_mtu <= 0 || ifr.ifr_mtu > 65535 ||
        uint16_t(ifr.ifr_mtu) == itf.mtu)
      continue;
    LBD_LOG(kWarn, "capture", "{}: MTU {} (was {}): frames are cut to it from now on", itf.name, ifr.ifr_mtu,
            itf.mtu);
    itf.mtu = uint16_t(ifr.ifr_mtu);
    changed = true;
  }
  if (changed) publish_interfaces();  // the reals' next hops take it at the resolve that follows
}

void Control::publish_interfaces() {
  hops_->set_interfaces(interfaces_);
  std::vector<InterfaceInfo> infos;
  for (const auto& itf : interfaces_) infos.push_back({itf.ifindex, itf.mac, itf.mtu});
  on_each_worker([&](Worker& w) {
    w.data_path().set_interfaces(infos);
    w.data_path().set_vip_arp(*vip_arp_from_name(cfg_.vip_arp));
    for (size_t i = 0; i < interfaces_.size(); ++i)
      for (const CaptureClass cls : kCaptureClasses) w.captures(cls)[i]->set_mtu(interfaces_[i].mtu);
  });
}

// A deleted interface is not always reported on the capture socket (its DOWN event comes
// first, which libpcap treats as survivable, and an unhooked socket gets no UNREGISTER
// error), so it is looked for by name. One that goes down is let go too, and taken again
// once up: the kernel hooks its sockets again by itself, but puts the members of a fanout
// group back in the order they come up, and the fanout program's choice is an index into
// that order (with two workers, replies would reach the wrong one).
void Control::watch_interfaces() {
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    HopInterface& itf = interfaces_[i];
    const int index = interface_index(itf.name);
    if (index < 0) continue;  // cannot tell now (out of descriptors...)
    const bool up = index > 0 && interface_up(itf.name);
    if (itf.ifindex && index == itf.ifindex && up) continue;
    if (itf.ifindex) interface_lost(i, index == itf.ifindex ? "the interface is down" : "the interface disappeared");
    if (up) interface_back(i);
  }
}

bool Control::interface_up(const std::string& name) const {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  return ioctl(ifreq_fd_.get(), SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
}

void Control::interface_lost(size_t slot, const std::string& why) {
  HopInterface& itf = interfaces_[slot];
  LBD_LOG(kError, "capture", "{}: {}: its traffic stops, the other interfaces' goes on; lbd takes it again "
          "when it is back", itf.name, why);
  on_each_worker([&](Worker& w) { w.detach(slot); });
  if (xdp_) {
    xdp_->detach(itf.ifindex);
    std::erase_if(xdp_tx_, [&](const auto& t) { return t.first == itf.ifindex; });
  }
  itf.ifindex = 0;  // no real's next hop is on it, no reply is sent on it
  ++interfaces_lost_;
  publish_interfaces();
  resolve_next_hops(true);
}

void Control::interface_back(size_t slot) {
  HopInterface& itf = interfaces_[slot];
  // Each worker's sockets opened again (they take nothing yet), then joined in new fanout
  // groups, and only then given their filter: no frame reaches a worker not its own.
  std::vector<std::string> errors(workers_.size());
  on_each_worker([&](Worker& w) {
    try {
      w.attach(slot);
    } catch (const std::exception& e) {
      errors[w.index()] = e.what();
    }
  });
  std::string error;
  for (const auto& e : errors)
    if (error.empty()) error = e;
  if (error.empty() && steering_) {
    try {
      for (const CaptureClass cls : kCaptureClasses) {
        int group = -1;
        for (auto& w : workers_)
          w->captures(cls)[slot]->join_fanout(group, w->index() == 0 ? steering_->program_fd() : -1);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!error.empty()) {  // again at the next look (1 s), e.g. once it is up
    on_each_worker([&](Worker& w) { w.detach(slot); });
    LBD_LOG(kWarn, "capture", "{} is back but cannot be captured yet: {}", itf.name, error);
    return;
  }
  const Capture& cap = *workers_[0]->captures()[slot];
  itf = {cap.ifindex(), itf.name, cap.mac(), cap.mtu()};
  ++interfaces_back_;
  LBD_LOG(kInfo, "capture", "{} is back (index {}, MAC {}): capturing and forwarding on it again", itf.name,
          itf.ifindex, itf.mac);
  publish_interfaces();
  const TrafficModel model = traffic_model(services_, local_addresses());
  set_capture_filters(model);
  if (const Status st = guard_->interface_back(itf.name, model); !st.is_ok())
    LBD_LOG(kError, "guard", "{}: the nftables guard cannot take it again: {}", itf.name, st.message());
  if (xdp_) attach_offload(itf);
  resolve_next_hops(true);
}

// `fd`, owned, or std::runtime_error naming the call that failed (lbd does not start).
static UniqueFd checked(int fd, const char* call) {
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", call, std::strerror(errno)));
  return UniqueFd(fd);
}

int Control::interface_index(const std::string& name) const {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (ioctl(ifreq_fd_.get(), SIOCGIFINDEX, &ifr) == 0) return ifr.ifr_ifindex;
  return errno == ENODEV ? 0 : -1;
}

int Control::run() {
  // Signals are the control thread's (its signalfd): blocked before any thread starts, so
  // every thread (workers, health, reloads) inherits the mask.
  const sigset_t mask = block_signals({SIGTERM, SIGINT, SIGHUP});
  // Refuse a second lbd before anything else (with --takeover, the running one is asked
  // to stop only once the rules are known good: its socket is taken after).
  auto make_control = [this] {
    control_ = std::make_unique<ControlServer>(cfg_.socket_path,
                                               [this](const std::string& r) { return handle_request(r); });
  };
  if (!cfg_.takeover) make_control();
  learn_local_addresses();
  services_.defer_release();  // real ids stay those of the workers' tables

  // Rules next: a bad file stops lbd before it changes the box (or, with --takeover,
  // before the running lbd is asked to stop). Only the default path may be absent; a
  // given path that is missing, unreadable or not a file is an error.
  std::vector<CliCommand> rules;
  Status st = read_rules(cfg_.rules_path, !cfg_.rules_path_given, rules);
  if (st.is_ok()) {
    with_flag_sysctls(rules);
    st = apply_rules_atomically(rules, services_, timeouts_);
  }
  if (!st.is_ok()) {
    LBD_LOG(kError, "rules", "{}; nothing applied, not starting", st.message());
    return 1;
  }
  // The workers' tables (in memfds the next lbd can adopt), made before a takeover stops
  // the running lbd: building a large one's indexes is not dark time.
  const uint32_t nworkers = cfg_.workers ? cfg_.workers : default_workers(cfg_.interfaces);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = uint64_t(monotonic_ms()) * 0x9e3779b97f4a7c15ULL;
  std::vector<std::unique_ptr<ConnTable>> tables;
  for (uint32_t i = 0; i < nworkers; ++i)  // the shards together hold --max-connections
    tables.push_back(std::make_unique<ConnTable>(
        ConnSlab::shared(std::max<uint32_t>(1, (cfg_.max_connections + nworkers - 1) / nworkers)),
        seed + i * 0x9e3779b97f4a7c15ULL));
  // The previous lbd's connections: handed over by the running one, or kept by systemd.
  previous_ = cfg_.takeover ? previous_from_takeover() : previous_from_systemd();
  if (!control_) make_control();
  // One lbd per network namespace: the capture, the nftables table and the interfaces'
  // offloads are the namespace's.
  namespace_lock_.reset(claim_in_namespace(
      "lbd-director", "another lbd is already running in this network namespace (with another control "
                      "socket): it owns the capture, the nftables guard and the offloads here; stop it first"));
  ifreq_fd_ = checked(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket");
  LBD_LOG(kInfo, "rules", "restored {} rules from {}", rules.size(), cfg_.rules_path);
  reload_fd_ = checked(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
  events_fd_ = checked(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");

  for (uint32_t i = 0; i < nworkers; ++i) {
    Worker::Config wc;
    wc.index = i;
    wc.interfaces = cfg_.interfaces;
    wc.capture_timeout_ms = cfg_.capture_timeout_ms;
    workers_.push_back(std::make_unique<Worker>(wc, std::move(tables[i])));
    workers_.back()->set_event_fd(events_fd_.get());
  }
  for (auto& c : workers_[0]->captures())
    interfaces_.push_back({c->ifindex(), c->name(), c->mac(), c->mtu()});
  broad_filter_.assign(interfaces_.size(), false);
  start_steering();
  // Before their threads start: each worker's table takes the same rules.
  prepare_shared_counts();
  on_each_worker([&](Worker& w) {
    w.services().defer_release();
    if (const Status s = apply_rules_atomically(rules, w.services(), w.timeouts()); !s.is_ok())
      throw std::runtime_error(fmt::format("worker {}: rules: {}", w.index(), s.message()));
    share_counts(w);
  });
  hops_ = std::make_unique<NextHops>(interfaces_);
  guard_ = std::make_unique<BoxGuard>(cfg_.interfaces);
  start_fwmark_queue();
  start_offload();
  // Filters, guard and next hops before the workers run: what reached the sockets before
  // their filter is sorted out by libpcap, never handled as lbd's.
  configuration_changed();
  if (previous_) adopt_previous(*previous_);
  restore_sync_daemons();
  start_handover();
  for (auto& w : workers_) w->start();
  if (previous_) {
    // From the previous lbd's workers stopping (or, if it was killed, its last word) to these starting.
    const uint64_t since = previous_->dir.stopped_ms ? previous_->dir.stopped_ms : previous_->dir.written_ms;
    handover_dark_ms_ = monotonic_ms() - since;
    LBD_LOG(kInfo, "handover", "the data path was dark for {} ms ({})", handover_dark_ms_,
            previous_->dir.stopped_ms ? "from the previous lbd's workers stopping to these starting"
                                      : "the previous lbd was killed: counted from its last directory write");
    previous_.reset();
  }
  LBD_LOG(kInfo, "workers", "{} worker{}{}", nworkers, nworkers == 1 ? "" : "s",
          cfg_.workers ? "" : " (one per receive queue of the capture interfaces, at most the CPUs lbd may use)");

  // Without these lbd would be deaf to SIGTERM or never tick: refuse to run instead.
  const UniqueFd signals = checked(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd");
  const UniqueFd timer = checked(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create");
  const int sfd = signals.get(), tfd = timer.get();
  health_ = std::make_unique<health::Engine>();
  configure_health();
  itimerspec its{{0, 100 * 1000000}, {0, 100 * 1000000}};
  if (timerfd_settime(tfd, 0, &its, nullptr) < 0)
    throw std::runtime_error(fmt::format("timerfd_settime: {}", std::strerror(errno)));

  if (cfg_.announce_table) {
    auto a = VipAnnouncer::open(cfg_.announce_table);
    if (!a) throw std::runtime_error(a.message());
    announcer_ = std::move(a).value();
    announce_vips();
  }
  start_metrics();
  LBD_LOG(kInfo, "main", "capturing on {} interface(s); control socket {}", interfaces_.size(),
          cfg_.socket_path);
  notify_systemd(fmt::format("READY=1\nSTATUS=capturing on {} interface(s)\nMAINPID={}",
                             interfaces_.size(), getpid()));
  const uint64_t watchdog_ms = watchdog_interval_ms();
  uint64_t last_watchdog = 0, last_estimate = monotonic_ms();
  uint64_t last_refresh = monotonic_ms();
  int exit_code = 0;
  std::vector<pollfd> pfds;
  uint64_t pfds_version = ~0ull;
  int pfds_sync = -1;
  enum : size_t { kSignal, kTimer, kHealth, kReload, kEvents, kGuard, kSync, kControl };
  while (running_) {
    // Rebuilt only when control clients change, or a backup sync daemon starts or stops.
    if (pfds_version != control_->version() || pfds_sync != sync_fd()) {
      pfds.clear();
      pfds.push_back({sfd, POLLIN, 0});
      pfds.push_back({tfd, POLLIN, 0});
      pfds.push_back({health_->event_fd(), POLLIN, 0});
      pfds.push_back({reload_fd_.get(), POLLIN, 0});
      pfds.push_back({events_fd_.get(), POLLIN, 0});
      pfds.push_back({guard_->event_fd(), POLLIN, 0});  // -1 (ignored) if it could not listen
      pfds.push_back({sync_fd(), POLLIN, 0});            // -1 (ignored): no backup daemon
      pfds_sync = sync_fd();
      for (const pollfd& p : control_->poll_fds()) pfds.push_back(p);
      pfds_version = control_->version();
    }
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "main", "poll: {}", std::strerror(errno));
      exit_code = 1;
      break;
    }
    if (pfds[kSignal].revents) {
      signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          start_reload();
        } else {
          LBD_LOG(kInfo, "main", "signal {}: shutting down", int(si.ssi_signo));
          running_ = false;
        }
      }
    }
    if (pfds[kEvents].revents) on_worker_events();
    if (pfds[kTimer].revents) {
      uint64_t ticks;
      while (read(tfd, &ticks, sizeof ticks) == sizeof ticks) {}
      const uint64_t now = monotonic_ms();
      control_->tick(now);
      // The control thread is alive: tell systemd's watchdog, twice per interval.
      if (watchdog_ms && now - last_watchdog >= watchdog_ms / 2) {
        notify_systemd("WATCHDOG=1");
        last_watchdog = now;
      }
      if (now - last_estimate >= kEstimatorSeconds * 1000) {
        gather();  // every worker answers: the watchdog hears of a stuck one too
        services_.estimate_rates();
        publish_status();
        write_directory();  // the counters a next lbd starts from, if this one is killed
        last_estimate += kEstimatorSeconds * 1000;
        if (now - last_estimate >= kEstimatorSeconds * 1000) last_estimate = now;  // after a stall
      }
      if (now - last_refresh >= 1000) {
        watch_interfaces();
        watch_health();
        watch_offload_tx();
        refresh_mtus();
        resolve_next_hops(true);
        announce_vips();
        last_refresh = now;
      }
    }
    if (pfds[kGuard].revents) {
      const auto restored = guard_->on_events(traffic_model(services_, local_addresses()));
      if (!restored) {
        LBD_LOG(kError, "guard", "the nftables guard was removed and cannot be restored: {}", restored.message());
      } else if (*restored) {
        ++guard_restored_;
        LBD_LOG(kWarn, "guard", "someone else's nftables change removed the guard (nft flush ruleset?): "
                "table netdev {} restored", BoxGuard::kTable);
      }
    }
    if (pfds[kSync].revents) on_sync_readable();
    if (pfds[kHealth].revents) on_health_events();
    if (pfds[kReload].revents) finish_reload();
    for (size_t i = kControl; i < pfds.size(); ++i) {
      if (!pfds[i].revents) continue;
      const uint64_t v = control_->version();
      control_->on_event(pfds[i].fd, pfds[i].revents, monotonic_ms());
      if (control_->version() != v) break;  // the fd list changed: poll again
    }
  }
  // Routers stop sending before lbd stops capturing.
  if (announcer_) LBD_LOG(kInfo, "announce", "withdrawing {} VIP(s): lbd stops", announcer_->announced().size());
  announcer_.reset();
  http_.reset();
  if (reload_thread_.joinable()) reload_thread_.join();
  reload_fd_.reset();
  notify_systemd("STOPPING=1");
  // The tables as the next lbd finds them (under systemd, in its store): final, counted.
  stop_for_handover();
  // Undo in reverse: stop checking and the workers (their captures), remove the fast path,
  // the fanout program, the guard (table, offloads), the socket.
  health_.reset();
  workers_.clear();
  xdp_.reset();
  steering_.reset();
  guard_.reset();
  control_.reset();
  events_fd_.reset();  // after the workers, which write it
  ifreq_fd_.reset();
  namespace_lock_.reset();
  LBD_LOG(kInfo, "main", "stopped; box restored");
  return exit_code;
}

int run_daemon(const DaemonConfig& config) {
  try {
    Control d(config);
    return d.run();
  } catch (const std::exception& e) {
    LBD_LOG(kError, "main", "{}", e.what());
    return 1;
  }
}

}  // namespace lbd

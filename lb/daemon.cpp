// The control thread: commands, reloads, health, next hops and listings, published to
// the workers (worker.hpp), which forward; see daemon.hpp.
#include "lb/daemon.hpp"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <chrono>
#include <latch>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "health/engine.hpp"
#include "lb/box_guard.hpp"
#include "lb/commands.hpp"
#include "lb/control_protocol.hpp"
#include "lb/control_server.hpp"
#include "lb/host.hpp"
#include "lb/log.hpp"
#include "lb/names.hpp"
#include "lb/next_hops.hpp"
#include "lb/steering.hpp"
#include "lb/systemd.hpp"
#include "lb/traffic_model.hpp"
#include "lb/worker.hpp"
#include "lb/xdp_flow_cache.hpp"

namespace lbd {
namespace {

// The largest rules file lbd reads (about 600,000 rules).
constexpr off_t kMaxRulesBytes = 64 << 20;

// The rules file's text: a regular file (a FIFO or a device would hang or never end),
// at most kMaxRulesBytes. On error, a message naming the file and why, and nullopt.
std::optional<std::string> read_rules_text(const std::string& path, std::string& error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = fmt::format("{}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  struct stat st{};
  std::string text;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    error = fmt::format("{}: not a regular file", path);
  } else if (st.st_size > kMaxRulesBytes) {
    error = fmt::format("{}: {} bytes, more than the {} MiB lbd reads", path, st.st_size, kMaxRulesBytes >> 20);
  } else {
    text.resize(size_t(st.st_size));
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = read(fd, text.data() + got, text.size() - got);
      if (n <= 0) break;
      got += size_t(n);
    }
    if (got != text.size()) error = fmt::format("{}: short read", path);
    if (error.empty() && (st.st_mode & 044) && text.find("password=") != std::string::npos)
      LBD_LOG(kWarn, "rules", "{} holds a password= and others can read it: chmod 600 it, or use password-file=",
              path);
  }
  close(fd);
  if (!error.empty()) return std::nullopt;
  return text;
}

// The rules file, parsed (host names resolved as ipvsadm -R resolves them). `missing_ok`:
// an absent file is an empty rule set (the default path). An error names file and line.
Status read_rules(const std::string& path, bool missing_ok, std::vector<CliCommand>& rules) {
  rules.clear();
  std::string error;
  const auto text = read_rules_text(path, error);
  if (!text) {
    if (missing_ok && access(path.c_str(), F_OK) < 0 && errno == ENOENT) return Status::ok();
    return Status::error(EINVAL, error);
  }
  const Status st = parse_rules(*text, rules, resolve_host);
  return st.is_ok() ? st : Status::error(st.code(), fmt::format("{}: {}", path, st.message()));
}

// A start's rules: read as above and applied whole to `services` (empty at start), or
// nothing applied. `rules_read` says how many rules the file held.
Status load_rules(const std::string& path, bool missing_ok, ServiceTable& services, Timeouts& timeouts,
                  size_t& rules_read) {
  std::vector<CliCommand> rules;
  Status st = read_rules(path, missing_ok, rules);
  if (st.is_ok()) st = apply_rules_atomically(rules, services, timeouts);
  rules_read = rules.size();
  return st;
}

class Daemon {
 public:
  explicit Daemon(const DaemonConfig& cfg) : cfg_(cfg) {}
  int run();

 private:
  Reply handle_request(const std::string& req);
  Reply dump_with_conns();
  std::string handle_restore(const std::string& req);
  // SIGHUP: the rules file again, applied as a difference (nothing changed on error).
  void start_reload();
  void finish_reload();
  // A change the control thread's table took, now taken by every worker's, in the same
  // order (so they keep the same real ids); then what follows from it on the box.
  void apply_everywhere(const std::function<Status(ServiceTable&, Timeouts&)>& change);
  void configuration_changed();
  void configure_health();
  void on_health_events();
  // Every worker's copy of the reals' health as the control thread's.
  void publish_health();
  std::string health_text();
  // Next hops resolved on the control thread, and given to every worker when they changed.
  void resolve_next_hops(bool refresh);
  void on_worker_events();
  // The workers' counts summed into the control thread's table (listings, rates, lc/wlc
  // counts as IPVS shows them), and deleted reals no worker uses any more freed everywhere.
  void gather();
  void free_unused_reals(const std::vector<ShardCounts>& shards);
  // Several workers: a zeroed shared count for each real new in the control thread's table
  // (after a change), and each worker's copies of new reals linked to theirs (after it took
  // the change, on its thread).
  void prepare_shared_counts();
  void share_counts(Worker& w);
  // f(worker) on every worker's thread; returns when each has run it.
  template <class F>
  void on_each_worker(F&& f);
  // The XDP flow cache on the capture interfaces, or a log line saying why not.
  void start_offload();
  // Native mode: an interface whose peer stops taking XDP frames (a veth peer's program
  // or GRO gone) is no longer transmitted on by the program; back when it takes them.
  void watch_offload_tx();
  // Several workers: the fanout groups and their program.
  void start_steering();
  // The interface's index now, 0 if it is gone (-1: cannot tell, e.g. out of descriptors).
  int interface_index(const std::string& name) const;
  Dump make_dump();  // services and reals (connections: dump_with_conns)
  std::string counters_text();

  const DaemonConfig& cfg_;
  ServiceTable services_;  // the control thread's: commands, listings, health, next hops
  Timeouts timeouts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<HopInterface> interfaces_;
  std::unique_ptr<NextHops> hops_;
  std::vector<NextHop> hops_published_;  // by real id: what the workers have
  std::unique_ptr<BoxGuard> guard_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<health::Engine> health_;
  std::unique_ptr<XdpFlowCache> xdp_;
  std::unique_ptr<Steering> steering_;
  Ipv4 steer_mask_{{255, 255, 255, 255}};
  XdpMode xdp_mode_ = XdpMode::kGeneric;
  std::vector<std::pair<int, bool>> xdp_tx_;  // attached interfaces, and whether the program sends on them
  uint64_t xdp_tx_lost_ = 0;                  // times an interface stopped taking XDP frames
  std::vector<ShardCounts> last_counts_;      // from the last gather()
  std::deque<sched::SharedDest> shared_counts_;  // by real id (a deque: never moved)
  std::vector<bool> broad_filter_;            // per interface: capturing every IPv4 frame
  uint64_t applied_generation_ = 0;
  int reload_fd_ = -1;  // eventfd: the reload thread has parsed the file
  int events_fd_ = -1;  // eventfd: a worker has events
  int namespace_lock_ = -1;
  int ifreq_fd_ = -1;  // kept open: an ioctl needs no new descriptor when lbd is at its limit
  std::thread reload_thread_;
  Status reload_status_ = Status::ok();
  std::vector<CliCommand> reload_rules_;
  bool reload_again_ = false;
  std::string fatal_;  // why lbd stops (a capture failed)
};

}  // namespace

template <class F>
void Daemon::on_each_worker(F&& f) {
  std::latch done(std::ptrdiff_t(workers_.size()));
  for (auto& w : workers_)
    w->post([&](Worker& x) {
      f(x);
      done.count_down();
    });
  done.wait();
}

void Daemon::gather() {
  std::vector<ShardCounts> shards(workers_.size());
  on_each_worker([&](Worker& w) { shards[w.index()] = w.counts(); });
  for (auto& sh : shards) sh.reals.resize(services_.real_slots()), sh.services.resize(services_.service_slots());
  services_.for_each_real([&](Real& r) {
    Counters st{};
    uint32_t active = 0, inactive = 0, persist = 0;
    for (const auto& sh : shards) {
      const auto& x = sh.reals[r.id];
      st.conns += x.stats.conns;
      st.inpkts += x.stats.inpkts;
      st.outpkts += x.stats.outpkts;
      st.inbytes += x.stats.inbytes;
      st.outbytes += x.stats.outbytes;
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
      const auto& x = sh.services[id];
      st.conns += x.conns;
      st.inpkts += x.inpkts;
      st.outpkts += x.outpkts;
      st.inbytes += x.inbytes;
      st.outbytes += x.outbytes;
    }
    s.stats = st;
  }
  free_unused_reals(shards);
  last_counts_ = std::move(shards);
}

void Daemon::free_unused_reals(const std::vector<ShardCounts>& shards) {
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

Dump Daemon::make_dump() {
  Dump d;
  d.table_size = cfg_.max_connections;
  d.timeouts = timeouts_;
  services_.for_each_service([&](const Service& s) {
    DumpService ds{s.key, s.options.scheduler, s.stats, {},
                   health::format_service_health(s.options.health), s.options.persistent,
                   s.options.netmask, s.options.ops, s.options.sched_flags, read_rates(s.rate)};
    auto add = [&](const Real& r, uint8_t flags) {
      ds.reals.push_back({r.addr, r.port, r.fwd, r.dest.weight, r.dest.active_conns,
                          r.dest.inactive_conns, r.stats, flags, r.health_override,
                          r.u_threshold, r.l_threshold, r.persist_conns, read_rates(r.rate)});
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

std::string Daemon::counters_text() {
  DataPathCounters c;
  uint64_t conns = 0, kdrops = 0;
  for (const auto& sh : last_counts_) {
    c += sh.dp;
    conns += sh.conns;
    kdrops += sh.kernel_drops;
  }
  std::string s = fmt::format(
      "rx_frames {}\ntx_frames {}\narp_replies {}\nchecksums_completed {}\n"
      "superframes_segmented {}\nconns_created {}\nconns_expired {}\nconns_rescheduled {}\nconns_current {}\n"
      "icmp_unreachable_sent {}\nicmp_rate_limited {}\nframes_held {}\nnat_replies {}\n"
      "tunnelled {}\ntunnel_fragmented {}\nicmp_frag_needed_sent {}\n"
      "icmp_errors_forwarded {}\ntunnel_pmtu_updates {}\necho_forwarded {}\necho_replies {}\n",
      c.rx_frames, c.tx_frames, c.arp_replies, c.checksums_completed, c.superframes_segmented,
      c.conns_created, c.conns_expired, c.conns_rescheduled, conns, c.icmp_unreachable_sent,
      c.icmp_rate_limited, c.frames_held, c.nat_replies, c.tunnelled, c.tunnel_fragmented,
      c.icmp_frag_needed_sent, c.icmp_errors_forwarded, c.tunnel_pmtu_updates,
      c.echo_forwarded, c.echo_replies);
  s += fmt::format("offload {}\noffload_entered {}\noffload_withdrawn {}\noffload_full {}\n"
                   "offload_packets {}\noffload_bytes {}\noffload_tx_lost {}\n",
                   xdp_ ? fmt::format("xdp-{}", to_string(xdp_mode_)) : "off", c.offload_entered,
                   c.offload_withdrawn, c.offload_full, c.offload_packets, c.offload_bytes, xdp_tx_lost_);
  if (xdp_) {
    const auto x = xdp_->stats();
    for (size_t i = 0; i < x.size(); ++i) s += fmt::format("xdp_{} {}\n", XdpFlowCache::kStatNames[i], x[i]);
  }
  if (health_) {
    const auto h = health_->stats();
    s += fmt::format("health_checks {}\nhealth_check_failures {}\nhealth_late_p50_us {}\n"
                     "health_late_p99_us {}\nhealth_late_max_us {}\n",
                     h.checks, h.failures, h.late_p50_us, h.late_p99_us, h.late_max_us);
  }
  s += fmt::format("capture_kernel_drops {}\n", kdrops);
  size_t broad = 0;
  for (bool b : broad_filter_) broad += b;
  s += fmt::format("capture_broad_filters {}\n", broad);
  s += fmt::format("dr_reals_not_on_link {}\n", hops_->dr_not_on_link());
  s += fmt::format("control_clients_dropped {}\n", control_->dropped_clients());
  for (size_t i = 0; i < c.drops.size(); ++i)
    s += fmt::format("drop_{} {}\n", to_string(DropReason(i)), c.drops[i]);
  // Each worker's share: how evenly the fanout spreads the clients.
  s += fmt::format("workers {}\n", workers_.size());
  for (size_t i = 0; i < last_counts_.size(); ++i)
    s += fmt::format("worker{}_conns_current {}\nworker{}_conns_created {}\nworker{}_rx_frames {}\n", i,
                     last_counts_[i].conns, i, last_counts_[i].dp.conns_created, i, last_counts_[i].dp.rx_frames);
  return s;
}

void Daemon::prepare_shared_counts() {
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

void Daemon::share_counts(Worker& w) {
  if (workers_.size() < 2) return;
  w.services().for_each_real([&](Real& r) {
    if (!r.dest.shared && r.id < shared_counts_.size()) w.services().share_counts(r, &shared_counts_[r.id]);
  });
}

void Daemon::apply_everywhere(const std::function<Status(ServiceTable&, Timeouts&)>& change) {
  prepare_shared_counts();
  on_each_worker([&](Worker& w) {
    // The same change to a table with the same configuration: it cannot fail.
    if (const Status st = change(w.services(), w.timeouts()); !st.is_ok())
      LBD_LOG(kError, "control", "worker {} refused a change the control thread took: {}", w.index(), st.message());
    share_counts(w);
  });
  configuration_changed();
  gather();  // listings right after the change; deleted reals nobody uses freed now
}

std::string Daemon::handle_restore(const std::string& req) {
  // "RESTORE\n<rules>\nEND\n"
  const std::string body = req.substr(8, req.rfind("\nEND\n") - 8 + 1);
  std::vector<CliCommand> rules;
  Status st = parse_rules(body, rules);
  if (st.is_ok()) st = apply_rules_atomically(rules, services_, timeouts_);
  if (!st.is_ok()) {
    LBD_LOG(kWarn, "control", "restore refused, nothing changed: {}", st.message());
    return fmt::format("ERR {} {}\n", st.code(), st.message());
  }
  LBD_LOG(kInfo, "control", "restored {} rules", rules.size());
  apply_everywhere([&](ServiceTable& t, Timeouts& to) { return apply_rules_atomically(rules, t, to); });
  return "OK\n";
}

// SIGHUP, first half: the file is read, parsed and its names resolved on a thread of its
// own (a dead name server can take seconds), while the workers forward. A SIGHUP during a
// reload reloads again once it ends.
void Daemon::start_reload() {
  if (reload_thread_.joinable()) {
    reload_again_ = true;
    return;
  }
  notify_systemd(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", monotonic_ms() * 1000));
  reload_thread_ = std::thread([this] {
    reload_status_ = read_rules(cfg_.rules_path, !cfg_.rules_path_given, reload_rules_);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(reload_fd_, &one, sizeof one);
  });
}

// Second half, on the control thread: the parsed rules applied as a difference (linear in
// the rules), to the control thread's table and then to each worker's.
void Daemon::finish_reload() {
  uint64_t n;
  [[maybe_unused]] auto r = read(reload_fd_, &n, sizeof n);
  reload_thread_.join();
  size_t changes = 0;
  Status st = reload_status_;
  if (st.is_ok()) st = reload_rules(reload_rules_, services_, timeouts_, changes);
  if (!st.is_ok()) {
    LBD_LOG(kError, "rules", "reload: {}; running rules kept", st.message());
    notify_systemd("READY=1\nSTATUS=reload failed, running rules kept (see the log)");
  } else {
    LBD_LOG(kInfo, "rules", "reloaded {}: {} rules, {} changes", cfg_.rules_path, reload_rules_.size(), changes);
    apply_everywhere([&](ServiceTable& t, Timeouts& to) {
      size_t ignored = 0;
      return reload_rules(reload_rules_, t, to, ignored);
    });
    notify_systemd("READY=1\nSTATUS=rules reloaded");
  }
  reload_rules_.clear();
  if (std::exchange(reload_again_, false)) start_reload();
}

// The services at once, then the connections a step at a time as lbadm reads them, worker
// after worker: a listing of a million connections holds a worker for one step at a time
// (a copy of 16384 entries), never the control thread's formatting.
Reply Daemon::dump_with_conns() {
  std::string head = encode_dump(make_dump());
  head.resize(head.size() - 4);  // without its "END\n": the connections follow
  struct Cursor {
    size_t worker = 0, pos = 0;
  };
  auto at = std::make_shared<Cursor>();
  return {std::move(head), [this, at](std::string& out) {
            if (at->worker >= workers_.size()) {
              out += "END\n";
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
            out += "END\n";
            return true;
          }};
}

Reply Daemon::handle_request(const std::string& req) {
  // What the workers and the fast path forwarded is in every listing and counter.
  if (req == "DUMP" || req == "DUMP CONNS" || req == "COUNTERS") gather();  // O(reals) per worker
  if (req == "DUMP") return {encode_dump(make_dump()), {}};
  if (req == "DUMP CONNS") return dump_with_conns();
  if (req == "COUNTERS") return {counters_text() + "END\n", {}};
  if (req == "HEALTH") return {health_text() + "END\n", {}};
  if (req.rfind("RESTORE\n", 0) == 0) return {handle_restore(req), {}};
  std::vector<std::string> args;
  if (!decode_args(req, args)) return {fmt::format("ERR {} malformed request (bad escape)\n", EINVAL), {}};
  auto parsed = parse_command(args, "lbadm");
  if (auto* e = std::get_if<CliError>(&parsed)) return {fmt::format("ERR {} {}\n", EINVAL, e->message), {}};
  const CliCommand& cmd = std::get<CliCommand>(parsed);
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
    if (s.options.persistent) mask &= s.options.netmask.host();
  });
  return Ipv4::from_host(mask);
}

void Daemon::configuration_changed() {
  if (services_.generation() == applied_generation_) return;
  applied_generation_ = services_.generation();
  const TrafficModel model = traffic_model(services_, local_ipv4_addresses());
  if (steering_) {
    const Ipv4 mask = steering_mask(services_);
    if (!(mask == steer_mask_))
      LBD_LOG(kWarn, "workers", "clients now go to workers by their address masked with {} (the widest "
              "persistence netmask; it was {}): established connections of clients that move to another "
              "worker are lost", to_string(mask), to_string(steer_mask_));
    steer_mask_ = mask;
    std::string err;
    if (!steering_->configure(services_.vips(), mask, err))
      LBD_LOG(kError, "workers", "fanout program: {}: replies may reach the wrong worker", err);
  }
  std::vector<CaptureFilter> filters;
  for (const auto& itf : interfaces_) filters.push_back(capture_filter(model, itf.mac));
  std::vector<uint8_t> broad(interfaces_.size());
  on_each_worker([&](Worker& w) {
    for (size_t i = 0; i < w.captures().size(); ++i) {
      Capture& cap = *w.captures()[i];
      std::string err;
      CaptureFilter filter = filters[i];
      if (!cap.set_filter(filter.text, err)) {
        // Never keep the old filter: it would not see a new service's traffic, which the
        // guard then drops. The broad filter cannot miss one.
        if (w.index() == 0)
          LBD_LOG(kError, "capture", "{}: cannot set the capture filter ({}): capturing every IPv4 frame "
                  "to {} instead", cap.name(), err, to_string(cap.mac()));
        filter = broad_capture_filter(cap.mac());
        if (!cap.set_filter(filter.text, err))
          LBD_LOG(kError, "capture", "{}: cannot set even the broad capture filter: {}", cap.name(), err);
      }
      cap.broad_filter = filter.broad;
      if (w.index() == 0) broad[i] = filter.broad;
    }
  });
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    if (bool(broad[i]) != broad_filter_[i])
      LBD_LOG(kInfo, "capture", "{}: {}", interfaces_[i].name,
              broad[i] ? fmt::format("{} services: capturing every IPv4 frame to {} and sorting in lbd "
                                     "(a precise filter this large compiles too slowly)",
                                     services_.service_count(), to_string(interfaces_[i].mac))
                       : std::string("precise capture filter again"));
    broad_filter_[i] = broad[i];
  }
  std::string err;
  if (!guard_->apply(model, err)) LBD_LOG(kError, "guard", "nftables update failed: {}", err);
  resolve_next_hops(true);
  configure_health();
}

void Daemon::resolve_next_hops(bool refresh) {
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

void Daemon::on_worker_events() {
  uint64_t n;
  [[maybe_unused]] auto r = read(events_fd_, &n, sizeof n);
  bool resolve = false;
  std::vector<Worker::Events::Pmtu> pmtu;
  for (auto& w : workers_) {
    Worker::Events e = w->take_events();
    resolve |= !e.unresolved.empty();
    pmtu.insert(pmtu.end(), e.pmtu.begin(), e.pmtu.end());
    if (!e.capture_failed.empty() && fatal_.empty()) fatal_ = e.capture_failed;
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

void Daemon::start_offload() {
  if (cfg_.offload == "off") {
    LBD_LOG(kInfo, "offload", "off (--offload off): lbd forwards every packet itself");
    return;
  }
  // Native XDP where every interface can transmit XDP frames (XDP_TX, redirects); generic
  // (after the kernel has built the packet) elsewhere: it always can.
  std::string why_not_native;
  std::vector<uint64_t> features;
  for (auto& c : interfaces_) {
    const auto f = xdp_features(c.ifindex);
    features.push_back(f.value_or(0));
    if (!why_not_native.empty()) continue;
    if (!f)
      why_not_native = "the kernel does not report XDP features (Linux < 6.3)";
    else if (!(*f & kXdpActBasic))
      why_not_native = c.name + "'s driver has no native XDP";
    else if (!(*f & kXdpActNdoXmit))
      why_not_native = c.name + " cannot transmit XDP frames";
    else if (driver_name(c.name) == "veth")
      // Its peer may take XDP frames by GRO alone, where they wait in its ring (measured):
      // native only when asked (--offload xdp-native, with an XDP program on the peer).
      why_not_native = c.name + " is a veth (native needs an XDP program on its peer: --offload xdp-native)";
  }
  xdp_mode_ = cfg_.offload == "xdp-native"    ? XdpMode::kNative
              : cfg_.offload == "xdp-generic" ? XdpMode::kGeneric
              : why_not_native.empty()        ? XdpMode::kNative
                                              : XdpMode::kGeneric;
  const uint32_t flows = cfg_.offload_flows ? cfg_.offload_flows
                                            : uint32_t(std::min<uint64_t>(2ull * cfg_.max_connections, 1u << 20));
  try {
    xdp_ = std::make_unique<XdpFlowCache>(flows, uint32_t(workers_.size()));
  } catch (const std::exception& e) {
    LBD_LOG(kWarn, "offload", "off: {}; lbd forwards every packet itself", e.what());
    return;
  }
  std::string names;
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    const HopInterface& c = interfaces_[i];
    if (std::string err = xdp_->attach(c.ifindex, c.name, xdp_mode_); !err.empty()) {
      LBD_LOG(kWarn, "offload", "{}: no offload on this interface: {}", c.name, err);
      continue;
    }
    const bool tx = xdp_mode_ == XdpMode::kGeneric || (features[i] & kXdpActNdoXmit);
    xdp_->allow_tx(c.ifindex, tx);
    xdp_tx_.push_back({c.ifindex, tx});
    names += (names.empty() ? "" : ", ") + c.name + (tx ? "" : " (cannot transmit: its packets go to lbd)");
  }
  if (!xdp_->attached()) {
    xdp_.reset();
    LBD_LOG(kWarn, "offload", "off: attached to no interface; lbd forwards every packet itself");
    return;
  }
  for (auto& w : workers_) w->set_flow_cache(xdp_.get());
  LBD_LOG(kInfo, "offload", "XDP flow cache on {} in {} mode, {} flows at most{}", names, to_string(xdp_mode_),
          flows, xdp_mode_ == XdpMode::kGeneric && cfg_.offload == "xdp" ? " (not native: " + why_not_native + ")" : "");
}

void Daemon::watch_offload_tx() {
  if (!xdp_ || xdp_mode_ != XdpMode::kNative) return;
  for (auto& [ifindex, tx] : xdp_tx_) {
    const auto f = xdp_features(ifindex);
    if (!f) continue;
    const bool now = *f & kXdpActNdoXmit;
    if (now == tx) continue;
    tx = now;
    xdp_->allow_tx(ifindex, now);
    if (!now) ++xdp_tx_lost_;
    LBD_LOG(kWarn, "offload", "interface {} {}", ifindex,
            now ? "takes XDP frames again: the fast path sends on it"
                : "no longer takes XDP frames (its veth peer lost its XDP program or GRO): lbd sends its packets");
  }
}

void Daemon::start_steering() {
  if (workers_.size() < 2) return;
  steering_ = std::make_unique<Steering>(uint32_t(workers_.size()));
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    int group = -1;  // a new group (the kernel's first id is 0)
    for (auto& w : workers_) w->captures()[i]->join_fanout(group, w->index() == 0 ? steering_->program_fd() : -1);
  }
}

// The engine gets one target per real whose effective check is not "none"; a real that no
// longer has a check is up again.
void Daemon::configure_health() {
  if (!health_) return;
  std::vector<health::Target> targets;
  services_.for_each_service([&](const Service& s) {
    for (uint32_t id : s.reals) {
      Real& r = services_.real(id);
      health::Target t;
      t.check = health::effective_check(s.options.health.check, r.health_override);
      if (t.check.type == health::CheckType::kNone) {
        if (r.health_down) services_.set_health(r, true);
        continue;
      }
      t.real_id = r.id;
      t.service = to_string(s.key);
      t.addr = r.addr;
      t.port = r.port;
      t.vip = s.key.vip;
      t.vport = s.key.port;
      t.protocol = s.key.protocol;
      t.notify = s.options.health.notify;
      targets.push_back(std::move(t));
    }
  });
  health_->configure(std::move(targets));
  publish_health();
}

void Daemon::publish_health() {
  std::vector<std::pair<uint32_t, bool>> down;  // every real's, by id
  services_.for_each_real([&](const Real& r) { down.push_back({r.id, r.health_down}); });
  on_each_worker([&](Worker& w) {
    for (const auto& [id, is_down] : down) {
      Real& r = w.services().real(id);
      if (r.in_use && r.health_down != is_down) w.services().set_health(r, !is_down);
    }
    // A real down with on-down=expire: off the fast path now.
    w.data_path().sync_real_hops(monotonic_ms());
  });
}

void Daemon::on_health_events() {
  for (const auto& e : health_->take_events()) {
    const health::Target& t = e.target;
    Real& r = services_.real(t.real_id);
    if (!r.in_use || r.deleted || r.sorry || !(r.addr == t.addr) || r.port != t.port)
      continue;  // the real changed since the check ran
    Service& s = services_.service(r.service_id);
    if (!(s.key == ServiceKey{t.protocol, t.vip, t.vport})) continue;
    const std::string real = health::real_name(t);
    const bool sorry_changed = services_.set_health(r, e.up);
    if (e.up)
      LBD_LOG(kWarn, "health", "{}: real {} is UP ({}): takes new connections again", t.service,
              real, e.reason);
    else
      LBD_LOG(kWarn, "health", "{}: real {} is DOWN ({}): no new connections{}", t.service, real,
              e.reason,
              s.options.health.on_down == health::OnDown::kExpire ? ", its connections expire"
                                                                   : ", its connections continue");
    if (!sorry_changed) continue;
    const Real& sorry = services_.real(s.sorry_id == Service::kNoSorry ? r.id : s.sorry_id);
    const std::string sorry_name = fmt::format("{}:{}", to_string(sorry.addr), sorry.port);
    LBD_LOG(kWarn, "health", "{}: {}", t.service,
            s.sorry_active ? "every real is down: sorry server " + sorry_name + " takes new connections"
                           : "a real is back: sorry server " + sorry_name + " stands down");
    if (!s.options.health.notify.empty())
      health_->run_command(t.service + " sorry", s.options.health.notify, s.options.health.check.exec_user,
                           {s.sorry_active ? "sorry-on" : "sorry-off", t.service, sorry_name, e.reason});
  }
  publish_health();
}

// lbadm --lbd-health: per service its check, per real its state and last result.
std::string Daemon::health_text() {
  std::map<uint32_t, health::RealStatus> st;
  if (health_)
    for (auto& x : health_->statuses()) st[x.real_id] = x;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto ago = [now](int64_t t) {
    const int64_t d = std::max<int64_t>(0, now - t);
    return d < 10000 ? fmt::format("{:.1f}s", double(d) / 1000) : fmt::format("{}s", d / 1000);
  };
  std::string out = fmt::format("{:<33} {}\n{:<33} {:<6} {:<8} {:<8} {}\n", "Prot LocalAddress:Port",
                                "Check", "  -> RemoteAddress:Port", "State", "Since", "Checked", "Result");
  services_.for_each_service([&](const Service& s) {
    const auto& h = s.options.health;
    const std::string spec = health::redact_secrets(health::format_service_health(h));
    out += fmt::format("{:<33} {}{}\n", fmt::format("{}  {}:{}", s.key.protocol == kProtoTcp ? "TCP" : "UDP",
                                                     to_string(s.key.vip), s.key.port),
                       spec.empty() ? "check=none" : spec,
                       s.sorry_active ? "  [sorry server active]" : "");
    for (uint32_t id : s.reals) {
      const Real& r = services_.real(id);
      const std::string name = fmt::format("  -> {}:{}", to_string(r.addr), r.port);
      auto it = st.find(id);
      if (it == st.end()) {
        out += fmt::format("{:<33} {:<6} {:<8} {:<8} {}\n", name, "-", "-", "-", "not checked");
        continue;
      }
      const auto& x = it->second;
      std::string result = x.checked ? fmt::format("{} ({:.1f} ms)", x.last, x.last_duration_us / 1000.0)
                                     : "no result yet";
      if (!x.state.up && x.state.ok_run) result += fmt::format(", {} ok in a row", x.state.ok_run);
      if (x.state.up && x.state.fail_run) result += fmt::format(", {} failed in a row", x.state.fail_run);
      out += fmt::format("{:<33} {:<6} {:<8} {:<8} {}\n", name, r.health_down ? "DOWN" : "UP",
                         ago(x.since_ms), x.checked ? ago(x.last_check_ms) : "-", result);
    }
  });
  return out;
}

int Daemon::interface_index(const std::string& name) const {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (ioctl(ifreq_fd_, SIOCGIFINDEX, &ifr) == 0) return ifr.ifr_ifindex;
  return errno == ENODEV ? 0 : -1;
}

int Daemon::run() {
  // Signals are the control thread's (its signalfd): blocked before any thread starts, so
  // every thread (workers, health, reloads) inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  // Refuse a second lbd before touching anything on the box.
  control_ = std::make_unique<ControlServer>(
      cfg_.socket_path, [this](const std::string& r) { return handle_request(r); });
  // One lbd per network namespace: the capture, the nftables table and the interfaces'
  // offloads are the namespace's.
  namespace_lock_ = claim_in_namespace(
      "lbd-director", "another lbd is already running in this network namespace (with another control "
                      "socket): it owns the capture, the nftables guard and the offloads here; stop it first");
  learn_local_addresses();
  ifreq_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  services_.defer_release();  // real ids stay those of the workers' tables

  // Rules first: a bad file stops lbd before it changes the box. Only the default path
  // may be absent; a given path that is missing, unreadable or not a file is an error.
  std::vector<CliCommand> rules;
  Status st = read_rules(cfg_.rules_path, !cfg_.rules_path_given, rules);
  if (st.is_ok()) st = apply_rules_atomically(rules, services_, timeouts_);
  if (!st.is_ok()) {
    LBD_LOG(kError, "rules", "{}; nothing applied, not starting", st.message());
    return 1;
  }
  LBD_LOG(kInfo, "rules", "restored {} rules from {}", rules.size(), cfg_.rules_path);
  reload_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  events_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  const uint32_t nworkers = cfg_.workers ? cfg_.workers : default_workers(cfg_.interfaces);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = uint64_t(monotonic_ms()) * 0x9e3779b97f4a7c15ULL;
  for (uint32_t i = 0; i < nworkers; ++i) {
    Worker::Config wc;
    wc.index = i;
    wc.interfaces = cfg_.interfaces;
    wc.capture_timeout_ms = cfg_.capture_timeout_ms;
    // The table is shared out: the shards together hold --max-connections.
    wc.max_connections = std::max<uint32_t>(1, (cfg_.max_connections + nworkers - 1) / nworkers);
    wc.seed = seed + i * 0x9e3779b97f4a7c15ULL;
    workers_.push_back(std::make_unique<Worker>(wc));
    workers_.back()->set_event_fd(events_fd_);
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
  start_offload();
  for (auto& w : workers_) w->start();
  LBD_LOG(kInfo, "workers", "{} worker{}{}", nworkers, nworkers == 1 ? "" : "s",
          cfg_.workers ? "" : " (one per receive queue of the capture interfaces, at most the CPUs lbd may use)");
  configuration_changed();

  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  health_ = std::make_unique<health::Engine>();
  configure_health();
  itimerspec its{{0, 100 * 1000000}, {0, 100 * 1000000}};
  timerfd_settime(tfd, 0, &its, nullptr);

  LBD_LOG(kInfo, "main", "capturing on {} interface(s); control socket {}", interfaces_.size(),
          cfg_.socket_path);
  notify_systemd(fmt::format("READY=1\nSTATUS=capturing on {} interface(s)\nMAINPID={}",
                             interfaces_.size(), getpid()));
  const uint64_t watchdog_ms = watchdog_interval_ms();
  uint64_t last_watchdog = 0, last_estimate = monotonic_ms();
  uint64_t last_refresh = monotonic_ms();
  bool running = true;
  int exit_code = 0;
  std::vector<pollfd> pfds;
  uint64_t pfds_version = ~0ull;
  enum : size_t { kSignal, kTimer, kHealth, kReload, kEvents, kControl };
  while (running) {
    if (pfds_version != control_->version()) {  // rebuilt only when control clients change
      pfds.clear();
      pfds.push_back({sfd, POLLIN, 0});
      pfds.push_back({tfd, POLLIN, 0});
      pfds.push_back({health_->event_fd(), POLLIN, 0});
      pfds.push_back({reload_fd_, POLLIN, 0});
      pfds.push_back({events_fd_, POLLIN, 0});
      for (const pollfd& p : control_->poll_fds()) pfds.push_back(p);
      pfds_version = control_->version();
    }
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "main", "poll: {}", std::strerror(errno));
      break;
    }
    if (pfds[kSignal].revents) {
      signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          start_reload();
        } else {
          LBD_LOG(kInfo, "main", "signal {}: shutting down", int(si.ssi_signo));
          running = false;
        }
      }
    }
    if (pfds[kEvents].revents) {
      on_worker_events();
      if (!fatal_.empty()) {
        LBD_LOG(kError, "capture", "{}", fatal_);
        running = false;  // stop cleanly (box restored); systemd's Restart= takes it from here
        exit_code = 1;
      }
    }
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
        last_estimate += kEstimatorSeconds * 1000;
        if (now - last_estimate >= kEstimatorSeconds * 1000) last_estimate = now;  // after a stall
      }
      if (now - last_refresh >= 1000) {
        // A deleted interface is not always reported on the capture socket (its DOWN event
        // comes first, which libpcap treats as survivable, and an unhooked socket gets no
        // UNREGISTER error), so look for it by name. Down and up again is fine: the kernel
        // re-hooks the socket.
        for (auto& c : interfaces_) {
          const int index = interface_index(c.name);
          if (index >= 0 && index != c.ifindex) {  // -1: cannot tell now (EMFILE...), not gone
            LBD_LOG(kError, "capture", "{}: the interface disappeared", c.name);
            running = false;
            exit_code = 1;
          }
        }
        watch_offload_tx();
        resolve_next_hops(true);
        last_refresh = now;
      }
    }
    if (pfds[kHealth].revents) on_health_events();
    if (pfds[kReload].revents) finish_reload();
    for (size_t i = kControl; i < pfds.size(); ++i) {
      if (!pfds[i].revents) continue;
      const uint64_t v = control_->version();
      control_->on_event(pfds[i].fd, pfds[i].revents, monotonic_ms());
      if (control_->version() != v) break;  // the fd list changed: poll again
    }
  }
  close(tfd);
  close(sfd);
  if (reload_thread_.joinable()) reload_thread_.join();
  close(reload_fd_);
  notify_systemd("STOPPING=1");
  // Undo in reverse: stop checking and the workers (their captures), remove the fast path,
  // the fanout program, the guard (table, offloads), the socket.
  health_.reset();
  workers_.clear();
  xdp_.reset();
  steering_.reset();
  guard_.reset();
  control_.reset();
  close(events_fd_);
  close(ifreq_fd_);
  close(namespace_lock_);
  LBD_LOG(kInfo, "main", "stopped; box restored");
  return exit_code;
}

int check_rules_file(const std::string& path, bool required) {
  ServiceTable scratch;
  Timeouts timeouts;
  size_t rules = 0;
  if (Status st = load_rules(path, !required, scratch, timeouts, rules); !st.is_ok()) {
    std::fprintf(stderr, "lbd: rules: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("%s: %zu rules, %zu services: would load\n", path.c_str(), rules, scratch.service_count());
  return 0;
}

int run_daemon(const DaemonConfig& config) {
  try {
    Daemon d(config);
    return d.run();
  } catch (const std::exception& e) {
    LBD_LOG(kError, "main", "{}", e.what());
    return 1;
  }
}

}  // namespace lbd

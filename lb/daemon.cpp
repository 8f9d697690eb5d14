// The daemon's event loop and control handling; see daemon.hpp.
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
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "forwarding/ipip.hpp"
#include "forwarding/netlink_neighbours.hpp"
#include "forwarding/segment.hpp"
#include "lb/box_guard.hpp"
#include "lb/capture.hpp"
#include "lb/commands.hpp"
#include "lb/control_protocol.hpp"
#include "lb/control_server.hpp"
#include "lb/data_path.hpp"
#include "lb/host.hpp"
#include "health/engine.hpp"
#include "lb/log.hpp"
#include "lb/names.hpp"
#include "lb/traffic_model.hpp"
#include "lb/xdp_flow_cache.hpp"

namespace lbd {
namespace {

// systemd's notification protocol (sd_notify(3)): one datagram of "KEY=VALUE" lines to the
// socket in $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Nothing without it.
void notify_systemd(const std::string& message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  const size_t n = std::strlen(path);
  if (n >= sizeof sa.sun_path) return;
  std::memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
             socklen_t(offsetof(sockaddr_un, sun_path) + n)) < 0)
    LBD_LOG(kWarn, "main", "sd_notify to {}: {}", path, std::strerror(errno));
  close(fd);
}

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

// WatchdogSec=: systemd's interval in ms (for this process), or 0 when not watched.
uint64_t watchdog_interval_ms() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (!usec) return 0;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && std::atol(pid) != long(getpid())) return 0;
  return std::strtoull(usec, nullptr, 10) / 1000;
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
  void configuration_changed();
  void configure_health();
  void on_health_events();
  std::string health_text();
  void resolve_next_hops(bool refresh);
  // The XDP flow cache on the capture interfaces, or a log line saying why not.
  void start_offload();
  // Native mode: an interface whose peer stops taking XDP frames (a veth peer's program
  // or GRO gone) is no longer transmitted on by the program; back when it takes them.
  void watch_offload_tx();
  void refresh_local_addresses();
  // The interface's index now, 0 if it is gone (-1: cannot tell, e.g. out of descriptors).
  int interface_index(const std::string& name) const;
  int on_frames(Capture& cap);  // frames handled, or -1 when the capture failed
  void send_frame(const uint8_t* frame, size_t len, const Verdict& v, Injector* in_place);
  Dump make_dump();  // services and reals (connections: dump_with_conns)
  std::string counters_text();
  // Sends what every injector has queued; frames the kernel refused are counted as drops.
  void flush_all() {
    for (auto& inj : injectors_) dp_->count_tx_failed(inj->flush());
  }
  Injector* injector_for(int ifindex) {
    for (auto& i : injectors_)
      if (i->ifindex() == ifindex) return i.get();
    return nullptr;
  }

  const DaemonConfig& cfg_;
  ServiceTable services_;
  Timeouts timeouts_;
  std::unique_ptr<ConnTable> conns_;
  std::unique_ptr<DataPath> dp_;
  std::vector<std::unique_ptr<Capture>> captures_;
  std::vector<std::unique_ptr<Injector>> injectors_;
  std::unique_ptr<NetlinkNeighbours> nl_;
  std::unique_ptr<BoxGuard> guard_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<health::Engine> health_;
  std::unique_ptr<XdpFlowCache> xdp_;
  XdpMode xdp_mode_ = XdpMode::kGeneric;
  std::vector<std::pair<int, bool>> xdp_tx_;  // attached interfaces, and whether the program sends on them
  uint64_t xdp_tx_lost_ = 0;                  // times an interface stopped taking XDP frames
  uint64_t applied_generation_ = 0;
  int reload_fd_ = -1;  // eventfd: the reload thread has parsed the file
  int namespace_lock_ = -1;
  int ifreq_fd_ = -1;  // kept open: an ioctl needs no new descriptor when lbd is at its limit
  uint32_t dr_not_on_link_ = 0;  // DR reals whose next hop is a gateway (warned)
  std::thread reload_thread_;
  Status reload_status_ = Status::ok();
  std::vector<CliCommand> reload_rules_;
  bool reload_again_ = false;
  uint64_t now_ms_ = 0;
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(65536 + 64);  // super-frames
};

struct DispatchCtx {
  Daemon* self;
  Capture* cap;
  Injector* in;  // the capture interface's own injector
};

}  // namespace

Dump Daemon::make_dump() {
  Dump d;
  d.table_size = conns_->capacity();
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
  const auto& c = dp_->counters();
  std::string s = fmt::format(
      "rx_frames {}\ntx_frames {}\narp_replies {}\nchecksums_completed {}\n"
      "superframes_segmented {}\nconns_created {}\nconns_expired {}\nconns_rescheduled {}\nconns_current {}\n"
      "icmp_unreachable_sent {}\nicmp_rate_limited {}\nframes_held {}\nnat_replies {}\n"
      "tunnelled {}\ntunnel_fragmented {}\nicmp_frag_needed_sent {}\n"
      "icmp_errors_forwarded {}\ntunnel_pmtu_updates {}\necho_forwarded {}\necho_replies {}\n",
      c.rx_frames, c.tx_frames, c.arp_replies, c.checksums_completed, c.superframes_segmented,
      c.conns_created, c.conns_expired, c.conns_rescheduled, conns_->size(), c.icmp_unreachable_sent,
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
  uint64_t kdrops = 0;
  for (auto& cap : captures_) kdrops += cap->kernel_drops();
  s += fmt::format("capture_kernel_drops {}\n", kdrops);
  size_t broad = 0;
  for (auto& cap : captures_) broad += cap->broad_filter;
  s += fmt::format("capture_broad_filters {}\n", broad);
  s += fmt::format("dr_reals_not_on_link {}\n", dr_not_on_link_);
  s += fmt::format("control_clients_dropped {}\n", control_->dropped_clients());
  for (size_t i = 0; i < c.drops.size(); ++i)
    s += fmt::format("drop_{} {}\n", to_string(DropReason(i)), c.drops[i]);
  return s;
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
  configuration_changed();
  return "OK\n";
}

// SIGHUP, first half: the file is read, parsed and its names resolved on a thread of its
// own (a dead name server can take seconds), while the loop forwards. A SIGHUP during a
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

// Second half, on the loop: the parsed rules applied as a difference (linear in the rules).
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
    configuration_changed();
    notify_systemd("READY=1\nSTATUS=rules reloaded");
  }
  reload_rules_.clear();
  if (std::exchange(reload_again_, false)) start_reload();
}

// The services at once, then the connections a step at a time as lbadm reads them: a
// listing of a million connections never holds the data path for more than one step.
Reply Daemon::dump_with_conns() {
  std::string head = encode_dump(make_dump());
  head.resize(head.size() - 4);  // without its "END\n": the connections follow
  auto pos = std::make_shared<size_t>(0);
  return {std::move(head), [this, pos](std::string& out) {
            const uint32_t now_s = DataPath::seconds(monotonic_ms());
            Dump step;
            *pos = conns_->for_each_from(*pos, 16384, [&](const Conn& c) {
              // A persistence template: client port 0, state NONE (IPVS's template entries).
              const bool templ = c.flags & Conn::kTemplate;
              const uint32_t expires = dp_->expires_of(c);  // an offloaded one: from its last packet
              step.conns.push_back({uint8_t(c.key.protocol & ~kTemplateProtocolBit), c.key.caddr,
                                    c.key.vaddr, c.daddr, c.key.cport, c.key.vport, c.dport,
                                    templ ? "NONE" : state_name(c.state),
                                    expires > now_s ? expires - now_s : 0});
            });
            out += encode_conns(step);
            if (*pos < conns_->index_positions()) return false;
            out += "END\n";
            return true;
          }};
}

Reply Daemon::handle_request(const std::string& req) {
  // What the fast path forwarded is in every listing and counter, as if lbd had.
  if (req == "DUMP" || req == "DUMP CONNS" || req == "COUNTERS") dp_->fold_offloaded();  // O(reals)
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
  configuration_changed();
  return {"OK\n", {}};
}

void Daemon::configuration_changed() {
  if (services_.generation() == applied_generation_) return;
  applied_generation_ = services_.generation();
  const TrafficModel model = traffic_model(services_, local_ipv4_addresses());
  for (auto& cap : captures_) {
    std::string err;
    CaptureFilter filter = capture_filter(model, cap->mac());
    if (!cap->set_filter(filter.text, err)) {
      // Never keep the old filter: it would not see a new service's traffic, which the
      // guard then drops. The broad filter cannot miss one.
      LBD_LOG(kError, "capture", "{}: cannot set the capture filter ({}): capturing every IPv4 frame "
              "to {} instead", cap->name(), err, to_string(cap->mac()));
      filter = broad_capture_filter(cap->mac());
      if (!cap->set_filter(filter.text, err))
        throw std::runtime_error(fmt::format("{}: cannot set even the broad capture filter: {}", cap->name(), err));
    }
    const bool broad = filter.broad;
    if (broad != cap->broad_filter)
      LBD_LOG(kInfo, "capture", "{}: {}", cap->name(),
              broad ? fmt::format("{} services: capturing every IPv4 frame to {} and sorting in lbd "
                                  "(a precise filter this large compiles too slowly)",
                                  services_.service_count(), to_string(cap->mac()))
                    : std::string("precise capture filter again"));
    cap->broad_filter = broad;
  }
  std::string err;
  if (!guard_->apply(model, err)) LBD_LOG(kError, "guard", "nftables update failed: {}", err);
  resolve_next_hops(true);
  dp_->sync_real_hops(monotonic_ms());
  configure_health();
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
  for (auto& c : captures_) {
    const auto f = xdp_features(c->ifindex());
    features.push_back(f.value_or(0));
    if (!why_not_native.empty()) continue;
    if (!f)
      why_not_native = "the kernel does not report XDP features (Linux < 6.3)";
    else if (!(*f & kXdpActBasic))
      why_not_native = c->name() + "'s driver has no native XDP";
    else if (!(*f & kXdpActNdoXmit))
      why_not_native = c->name() + " cannot transmit XDP frames";
    else if (driver_name(c->name()) == "veth")
      // Its peer may take XDP frames by GRO alone, where they wait in its ring (measured):
      // native only when asked (--offload xdp-native, with an XDP program on the peer).
      why_not_native = c->name() + " is a veth (native needs an XDP program on its peer: --offload xdp-native)";
  }
  xdp_mode_ = cfg_.offload == "xdp-native"    ? XdpMode::kNative
              : cfg_.offload == "xdp-generic" ? XdpMode::kGeneric
              : why_not_native.empty()        ? XdpMode::kNative
                                              : XdpMode::kGeneric;
  const uint32_t flows = cfg_.offload_flows ? cfg_.offload_flows
                                            : uint32_t(std::min<uint64_t>(2ull * cfg_.max_connections, 1u << 20));
  try {
    xdp_ = std::make_unique<XdpFlowCache>(flows);
  } catch (const std::exception& e) {
    LBD_LOG(kWarn, "offload", "off: {}; lbd forwards every packet itself", e.what());
    return;
  }
  std::string names;
  for (size_t i = 0; i < captures_.size(); ++i) {
    Capture& c = *captures_[i];
    if (std::string err = xdp_->attach(c.ifindex(), c.name(), xdp_mode_); !err.empty()) {
      LBD_LOG(kWarn, "offload", "{}: no offload on this interface: {}", c.name(), err);
      continue;
    }
    const bool tx = xdp_mode_ == XdpMode::kGeneric || (features[i] & kXdpActNdoXmit);
    xdp_->allow_tx(c.ifindex(), tx);
    xdp_tx_.push_back({c.ifindex(), tx});
    names += (names.empty() ? "" : ", ") + c.name() + (tx ? "" : " (cannot transmit: its packets go to lbd)");
  }
  if (!xdp_->attached()) {
    xdp_.reset();
    LBD_LOG(kWarn, "offload", "off: attached to no interface; lbd forwards every packet itself");
    return;
  }
  dp_->set_flow_cache(xdp_.get());
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

// The address classifier learns the director's own addresses and its subnets' broadcast
// (and network) addresses: refused as reals.
void Daemon::refresh_local_addresses() {
  set_address_classifier([local = local_ipv4()](Ipv4 a) {
    for (const LocalAddress& l : local) {
      if (l.addr == a) return AddrType::kLocal;
      if (l.has_broadcast() && (l.broadcast() == a || l.network() == a)) return AddrType::kBroadcast;
    }
    return classify_address(a);
  });
}

int Daemon::interface_index(const std::string& name) const {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (ioctl(ifreq_fd_, SIOCGIFINDEX, &ifr) == 0) return ifr.ifr_ifindex;
  return errno == ENODEV ? 0 : -1;
}

void Daemon::resolve_next_hops(bool refresh) {
  if (refresh) {
    nl_->refresh();
    refresh_local_addresses();
  }
  uint32_t not_on_link = 0;
  services_.for_each_real([&](Real& r) {
    if (r.deleted) return;
    NextHop hop;
    const auto route = nl_->route(r.addr);
    const Capture* out = nullptr;
    if (route)
      for (auto& c : captures_)
        if (c->ifindex() == route->ifindex) out = c.get();
    if (!route || !out) {
      if (r.hop.resolved || r.hop.ifindex == 0) {
        LBD_LOG(kWarn, "neighbour", "real server {} is not reachable through an lbd interface{}",
                to_string(r.addr), route ? "" : " (no route)");
        r.hop.ifindex = -1;  // warned
      }
      r.hop.resolved = false;
      return;
    }
    // DR rewrites only the MAC: a real behind a router gets the router's MAC, and the router
    // routes the VIP wherever it routes it. IPVS does the same; say so, and count it.
    if (r.fwd == FwdMethod::kRoute && !(route->next_hop == r.addr)) {
      ++not_on_link;
      if (!r.dr_gateway_warned)
        LBD_LOG(kWarn, "neighbour", "DR real server {} is not on-link: frames go to gateway {} (DR needs "
                "the real on the director's segment)", to_string(r.addr), to_string(route->next_hop));
      r.dr_gateway_warned = true;
    } else {
      r.dr_gateway_warned = false;
    }
    hop.ifindex = out->ifindex();
    hop.src = out->mac();
    hop.mtu = out->mtu();
    hop.src_ip = nl_->source_address(route->ifindex, r.addr, route->next_hop);
    if (r.fwd == FwdMethod::kTunnel && hop.src_ip == Ipv4{}) {
      if (r.hop.resolved || r.hop.ifindex == 0)
        LBD_LOG(kWarn, "neighbour", "real server {}: {} has no IPv4 address to tunnel from",
                to_string(r.addr), out->name());
      r.hop.ifindex = -1;
      r.hop.resolved = false;
      return;
    }
    // NTF_USE on every refresh: the kernel never sees lbd's traffic use this neighbour, so
    // without it the entry would age to STALE (and be collected) with nobody confirming it.
    std::string e;
    if (!nl_->request_resolution(route->ifindex, route->next_hop, e))
      LBD_LOG(kWarn, "neighbour", "cannot resolve {}: {}", to_string(route->next_hop), e);
    if (auto mac = nl_->neighbour(route->ifindex, route->next_hop)) {
      hop.dst = *mac;
      hop.resolved = true;
      if (!r.hop.resolved || !(r.hop.dst == hop.dst))
        LBD_LOG(kInfo, "neighbour", "real server {} is at {} via {}", to_string(r.addr),
                to_string(hop.dst), out->name());
    } else if (r.hop.resolved && r.hop.ifindex == hop.ifindex) {
      hop.dst = r.hop.dst;  // entry gone or being re-probed: keep the MAC we know meanwhile
      hop.resolved = true;
    }
    r.hop = hop;
  });
  dr_not_on_link_ = not_on_link;
}

void Daemon::send_frame(const uint8_t* frame, size_t len, const Verdict& v, Injector* in_place) {
  Injector* out = injector_for(v.ifindex);
  if (!out) return;
  if ((v.segment_mtu || v.fragment_mtu) && in_place && frame != scratch_.data()) {
    // The pieces are written into the injector's buffers, where this frame may lie.
    std::memcpy(scratch_.data(), frame, len);
    frame = scratch_.data();
  }
  if (v.segment_mtu) {
    ParsedPacket p;
    DropReason why{};
    if (!parse_frame({frame, len}, p, why)) return;
    for (size_t i = 0;; ++i) {
      uint8_t* buf = out->next_buffer();
      size_t n = tcp_segment_one({frame, len}, p, v.segment_mtu, i, buf);
      if (!n) break;
      if (v.encapsulate) {  // TUN: each segment into the tunnel
        ParsedPacket sp;
        if (!parse_frame({buf, n}, sp, why)) break;
        n = ipip_encapsulate({buf, Injector::kFrameMax}, sp, v.tun_src, v.tun_dst, sp.ip_len);
        if (!n) break;
      }
      out->commit(n);
    }
    return;
  }
  if (v.fragment_mtu) {
    for (size_t i = 0;; ++i) {
      const size_t n = ipv4_fragment_one({frame, len}, v.fragment_mtu, i, out->next_buffer());
      if (!n) break;
      out->commit(n);
    }
    return;
  }
  if (out == in_place) {
    out->commit(len);  // processed where it will be sent from: no copy
  } else {
    std::memcpy(out->next_buffer(), frame, len);
    out->commit(len);
  }
}

int Daemon::on_frames(Capture& cap) {
  DispatchCtx ctx{this, &cap, injector_for(cap.ifindex())};
  auto handler = [](u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    auto* c = reinterpret_cast<DispatchCtx*>(user);
    Daemon* d = c->self;
    if (h->caplen != h->len || h->caplen > d->scratch_.size()) {
      d->dp_->count_drop(DropReason::kFrameTooBig);  // truncated by the capture
      return;
    }
    const int ifindex = c->cap->ifindex();
    Injector* in = c->in;
    // Frames that fit the interface are processed in the buffer they will most likely be
    // sent from (DR is usually one-armed); super-frames in a scratch buffer, since their
    // segments are written into the injector's buffers.
    const bool fits = h->caplen <= size_t(c->cap->mtu()) + sizeof(EthHdr) &&
                      h->caplen <= Injector::kFrameMax;
    uint8_t* buf = fits ? in->next_buffer() : d->scratch_.data();
    const size_t capacity = fits ? Injector::kFrameMax : d->scratch_.size();
    std::memcpy(buf, bytes, h->caplen);
    const Verdict v = d->dp_->process({buf, h->caplen}, ifindex, d->now_ms_, capacity);
    if (v.transmit) d->send_frame(buf, v.length ? v.length : h->caplen, v, fits ? in : nullptr);
  };
  int total = 0;
  for (int round = 0; round < 8; ++round) {  // bounded: let timers and commands run too
    now_ms_ = monotonic_ms();
    const int n = cap.dispatch(256, handler, reinterpret_cast<u_char*>(&ctx));
    if (n < 0) {
      LBD_LOG(kError, "capture", "{}: capture failed (interface gone or down?): {}", cap.name(),
              cap.error());
      total = -1;
      break;
    }
    if (n == 0) break;
    total += n;
    flush_all();
  }
  flush_all();
  return total;
}

int Daemon::run() {
  // Refuse a second lbd before touching anything on the box.
  control_ = std::make_unique<ControlServer>(
      cfg_.socket_path, [this](const std::string& r) { return handle_request(r); });
  // One lbd per network namespace: the capture, the nftables table and the interfaces'
  // offloads are the namespace's.
  namespace_lock_ = claim_in_namespace(
      "lbd-director", "another lbd is already running in this network namespace (with another control "
                      "socket): it owns the capture, the nftables guard and the offloads here; stop it first");
  refresh_local_addresses();
  ifreq_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = uint64_t(monotonic_ms()) * 0x9e3779b97f4a7c15ULL;
  conns_ = std::make_unique<ConnTable>(cfg_.max_connections, seed);
  dp_ = std::make_unique<DataPath>(services_, *conns_, timeouts_);

  // Rules first: a bad file stops lbd before it changes the box. Only the default path
  // may be absent; a given path that is missing, unreadable or not a file is an error.
  size_t restored = 0;
  if (Status st = load_rules(cfg_.rules_path, !cfg_.rules_path_given, services_, timeouts_, restored);
      !st.is_ok()) {
    LBD_LOG(kError, "rules", "{}; nothing applied, not starting", st.message());
    return 1;
  }
  LBD_LOG(kInfo, "rules", "restored {} rules from {}", restored, cfg_.rules_path);
  reload_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  nl_ = std::make_unique<NetlinkNeighbours>();
  std::vector<InterfaceInfo> ifs;
  for (const auto& name : cfg_.interfaces) {
    captures_.push_back(std::make_unique<Capture>(name, cfg_.capture_timeout_ms));
    injectors_.push_back(std::make_unique<Injector>(captures_.back()->ifindex(), name));
    ifs.push_back({captures_.back()->ifindex(), captures_.back()->mac(), captures_.back()->mtu()});
  }
  dp_->set_interfaces(ifs);
  guard_ = std::make_unique<BoxGuard>(cfg_.interfaces);
  start_offload();
  configuration_changed();

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  // The health engine's thread inherits the signal mask set above: signals stay ours.
  health_ = std::make_unique<health::Engine>();
  configure_health();
  itimerspec its{{0, 100 * 1000000}, {0, 100 * 1000000}};
  timerfd_settime(tfd, 0, &its, nullptr);

  LBD_LOG(kInfo, "main", "capturing on {} interface(s); control socket {}", captures_.size(),
          cfg_.socket_path);
  notify_systemd(fmt::format("READY=1\nSTATUS=capturing on {} interface(s)\nMAINPID={}",
                             captures_.size(), getpid()));
  const uint64_t watchdog_ms = watchdog_interval_ms();
  uint64_t last_watchdog = 0, last_estimate = monotonic_ms();
  uint64_t last_refresh = monotonic_ms();
  bool running = true;
  int exit_code = 0;
  std::vector<pollfd> pfds;
  uint64_t pfds_version = ~0ull;
  const size_t health_index = captures_.size() + 2;
  const size_t reload_index = captures_.size() + 3;
  const size_t control_base = captures_.size() + 4;
  while (running) {
    if (pfds_version != control_->version()) {  // rebuilt only when control clients change
      pfds.clear();
      for (auto& c : captures_) pfds.push_back({c->fd(), POLLIN, 0});
      pfds.push_back({sfd, POLLIN, 0});
      pfds.push_back({tfd, POLLIN, 0});
      pfds.push_back({health_->event_fd(), POLLIN, 0});
      pfds.push_back({reload_fd_, POLLIN, 0});
      for (const pollfd& p : control_->poll_fds()) pfds.push_back(p);
      pfds_version = control_->version();
    }
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "main", "poll: {}", std::strerror(errno));
      break;
    }
    for (size_t i = 0; i < captures_.size(); ++i) {
      if (pfds[i].revents && on_frames(*captures_[i]) < 0) {
        running = false;  // stop cleanly (box restored); systemd's Restart= takes it from here
        exit_code = 1;
      }
    }
    if (pfds[captures_.size()].revents) {
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
    if (pfds[captures_.size() + 1].revents) {
      uint64_t ticks;
      while (read(tfd, &ticks, sizeof ticks) == sizeof ticks) {}
      const uint64_t now = monotonic_ms();
      dp_->expire(now, 65536);
      control_->tick(now);
      // The loop is alive: tell systemd's watchdog, twice per interval.
      if (watchdog_ms && now - last_watchdog >= watchdog_ms / 2) {
        notify_systemd("WATCHDOG=1");
        last_watchdog = now;
      }
      dp_->sync_real_hops(now);
      if (now - last_estimate >= kEstimatorSeconds * 1000) {
        dp_->fold_offloaded();
        services_.estimate_rates();
        last_estimate += kEstimatorSeconds * 1000;
        if (now - last_estimate >= kEstimatorSeconds * 1000) last_estimate = now;  // after a stall
      }
      auto& unresolved = dp_->unresolved_reals();
      const bool refresh_due = now - last_refresh >= 1000;
      if (refresh_due) {
        // A deleted interface is not always reported on the capture socket (its DOWN event
        // comes first, which libpcap treats as survivable, and an unhooked socket gets no
        // UNREGISTER error), so look for it by name. Down and up again is fine: the kernel
        // re-hooks the socket.
        for (auto& c : captures_) {
          const int index = interface_index(c->name());
          if (index >= 0 && index != c->ifindex()) {  // -1: cannot tell now (EMFILE...), not gone
            LBD_LOG(kError, "capture", "{}: the interface disappeared", c->name());
            running = false;
            exit_code = 1;
          }
        }
        watch_offload_tx();
      }
      if (!unresolved.empty() || refresh_due || dp_->held_count() > 0) {
        resolve_next_hops(true);
        unresolved.clear();
        if (refresh_due) last_refresh = now;
      }
      dp_->release_held(now, [this](std::span<const uint8_t> f, const Verdict& v) {
        send_frame(f.data(), f.size(), v, nullptr);
      });
      flush_all();
    }
    if (pfds[health_index].revents) {
      on_health_events();
      dp_->sync_real_hops(monotonic_ms());  // a real down with on-down=expire: off the fast path now
    }
    if (pfds[reload_index].revents) finish_reload();
    for (size_t i = control_base; i < pfds.size(); ++i) {
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
  // Undo in reverse: stop checking and capturing, remove the guard (table, offloads), the socket.
  health_.reset();
  captures_.clear();
  injectors_.clear();
  dp_->set_flow_cache(nullptr);
  xdp_.reset();
  guard_.reset();
  control_.reset();
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

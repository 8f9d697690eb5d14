// lbd's control thread: the control socket, signals, reloads, health checks, next hops,
// the fast path's and the fanout's setup, and the listings. It owns a table of its own
// (commands are checked against it first) and publishes every change to the workers
// (worker.hpp), which apply it between two batches of frames. Its parts: control.cpp
// (commands, listings, publishing), control_health.cpp, control_offload.cpp (the XDP flow
// cache and the fanout groups), daemon.cpp (its loop).
#pragma once

#include <cstddef>
#include <array>
#include <deque>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "health/engine.hpp"
#include "lb/core/handover.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/io/box_guard.hpp"
#include "lb/io/fwmark_queue.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/control_server.hpp"
#include "lb/daemon/daemon.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/ctl/json_output.hpp"
#include "lb/io/http_server.hpp"
#include "lb/io/next_hops.hpp"
#include "lb/io/steering.hpp"
#include "lb/io/sync_socket.hpp"
#include "lb/io/vip_announcer.hpp"
#include "lb/io/worker.hpp"
#include "lb/io/xdp_flow_cache.hpp"

namespace lbd {

// `lbadm --start-daemon ROLE ...` for a daemon as it runs (its canonical arguments).
std::string start_daemon_line(const std::string& role, const sync::DaemonSpec& spec);

// One per lbd: run() is the control thread's loop until SIGTERM/SIGINT.
class Control {
 public:
  explicit Control(const DaemonConfig& cfg) : cfg_(cfg) {}
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
  std::string health_json_text();
  std::vector<RealHealthView> health_views();
  // --metrics: /metrics, /status.json and the status page, published to the HTTP server's
  // thread (after each gather, health event and change); nothing if --metrics is unset.
  void publish_status();
  void start_metrics();
  std::unique_ptr<HttpServer> http_;
  bool metrics_built_ = false;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  void watch_health();
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
  // An interface's MTU changed (ip link set mtu): its hops, the workers' data paths and
  // captures take it, so frames are cut to the new one (what was larger is no longer sent
  // whole, what fits is no longer cut).
  void refresh_mtus();
  // The interface's index now, 0 if it is gone (-1: cannot tell, e.g. out of descriptors).
  int interface_index(const std::string& name) const;
  bool interface_up(const std::string& name) const;  // IFF_UP
  // A capture interface deleted, down, or whose capture failed is let go: the others keep
  // serving; one back (up again, or re-created with another index and MAC) is taken
  // again: its sockets, fanout groups, filters, guard, fast path and next hops.
  void watch_interfaces();
  void interface_lost(size_t slot, const std::string& why);
  void interface_back(size_t slot);
  // The interfaces' indexes, MACs and MTUs to the next hops and every worker.
  void publish_interfaces();
  // Each worker's capture filters for the services in `model`.
  void set_capture_filters(const TrafficModel& model);
  // The fast path on one interface (start_offload's, and again when it is back); false
  // (logged) if it cannot be attached there.
  bool attach_offload(const HopInterface& itf);
  // The rules file's rules after lbd's --sysctl flags (as --lbd-sysctl rules before them).
  void with_flag_sysctls(std::vector<CliCommand>& rules) const;
  // The handover (control_handover.cpp, handover.hpp). What a previous lbd left: from
  // systemd's store, or asked of the running lbd (--takeover); nullopt (logged) if none or
  // unusable. Adopted into the workers' tables before they start.
  struct Previous {
    HandoverState dir;
    std::vector<ConnSlab> slabs;
    std::string source;
  };
  std::optional<Previous> previous_from_systemd();
  std::optional<Previous> previous_from_takeover();
  static std::optional<Previous> open_previous(UniqueFd dir_fd, std::vector<UniqueFd> slab_fds, std::string source);
  void adopt_previous(Previous& prev);
  // This lbd's directory and slabs: in systemd's store (the previous ones released).
  void start_handover();
  void write_directory(uint64_t stopped_ms = 0);
  Reply handle_takeover();
  // Workers stopped, counts gathered, the directory written a last time: the tables are
  // what the next lbd adopts.
  void stop_for_handover();
  // The connection sync daemons (control_sync.cpp): --start-daemon and --stop-daemon,
  // and a backup's datagrams, decoded whole and handed to the workers owning their clients.
  Status sync_daemon_command(const CliCommand& c);
  void on_sync_readable();
  void publish_sync_role();  // a backup without a master is passive (backup_only)
  bool backup_alone() const { return sync_backup_ && !sync_master_; }
  // --announce-table: the serving VIPs as routes (none while passive); logs what changed.
  void announce_vips();
  std::optional<VipAnnouncer> announcer_;
  struct SyncDaemon {
    sync::DaemonSpec spec;
    SyncSocket sock;
  };
  std::optional<SyncDaemon> sync_master_, sync_backup_;
  uint64_t sync_received_ = 0;
  std::array<uint64_t, size_t(sync::Refusal::kCount)> sync_refused_{};
  std::array<uint64_t, size_t(sync::Skip::kCount)> sync_skipped_{};
  std::vector<uint8_t> sync_buf_;
  int sync_fd() const { return sync_backup_ ? sync_backup_->sock.fd.get() : -1; }
  // The running daemons survive a restart: their --start-daemon lines are kept in a memfd
  // in systemd's store (rewritten at each change) and read from the running lbd's dump by
  // --takeover; the next lbd starts them again once its workers run.
  std::vector<std::string> sync_daemon_lines() const;
  void store_sync_daemons();
  void restore_sync_daemons();
  UniqueFd sync_store_;
  std::vector<std::string> previous_sync_;  // the previous lbd's --start-daemon lines

  Dump make_dump();  // services and reals (connections: dump_with_conns)
  std::vector<Counter> counters();  // every count lbd keeps, by name
  std::string counters_text();
  std::string offload_name() const;  // "xdp-native", "xdp-generic" or "off"

  const DaemonConfig& cfg_;
  ServiceTable services_;  // the control thread's: commands, listings, health, next hops
  Timeouts timeouts_;
  // Declared before the workers: destroyed after their threads stop.
  std::unique_ptr<FwmarkQueue> fwmark_;  // nullptr: the queue could not be bound (warned)
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<HopInterface> interfaces_;
  std::unique_ptr<NextHops> hops_;
  std::vector<NextHop> hops_published_;  // by real id: what the workers have
  std::unique_ptr<BoxGuard> guard_;
  bool fwmark_warned_ = false;
  void start_fwmark_queue();
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<health::Engine> health_;
  std::unique_ptr<XdpFlowCache> xdp_;
  std::unique_ptr<Steering> steering_;
  Ipv4 steer_mask_{{255, 255, 255, 255}};
  uint8_t steer_prefix6_ = 128;  // ... and IPv6 clients' prefix (steering_prefix6)
  // The worker that sees a connection's packets (where a synced or handed-over one goes): a
  // firewall-mark service's come from the queue, which worker 0 reads; the others' where the
  // fanout program sends their client's frames.
  uint32_t worker_of(const IpAddr& client, uint32_t fwmark) const {
    const auto n = uint32_t(workers_.size());
    return n == 1 || fwmark ? 0 : steer_worker(client, steer_mask_, steer_prefix6_, n);
  }
  XdpMode xdp_mode_ = XdpMode::kGeneric;
  std::vector<std::pair<int, bool>> xdp_tx_;  // attached interfaces, and whether the program sends on them
  uint64_t xdp_tx_lost_ = 0;                  // times an interface stopped taking XDP frames
  uint64_t guard_restored_ = 0;               // times someone else's change removed the guard
  uint64_t interfaces_lost_ = 0, interfaces_back_ = 0;  // capture interfaces let go, taken again
  uint64_t health_stalls_ = 0;                // times the checks' thread was found stuck
  bool health_stalled_ = false;
  std::vector<ShardCounts> last_counts_;      // from the last gather()
  std::deque<sched::SharedDest> shared_counts_;  // by real id (a deque: never moved)
  std::vector<bool> broad_filter_;            // per interface: capturing every IPv4 frame
  uint64_t applied_generation_ = 0;
  UniqueFd reload_fd_;  // eventfd: the reload thread has parsed the file
  UniqueFd events_fd_;  // eventfd: a worker has events
  UniqueFd namespace_lock_;
  std::unique_ptr<HandoverDirectory> directory_;
  std::optional<Previous> previous_;
  bool running_ = true;
  bool handed_over_ = false;  // the workers stopped for the next lbd: no change is taken
  uint64_t handover_adopted_ = 0, handover_not_adopted_ = 0, handover_dark_ms_ = 0;
  UniqueFd ifreq_fd_;  // kept open: an ioctl needs no new descriptor when lbd is at its limit
  std::thread reload_thread_;
  Status reload_status_ = Status::ok();
  std::vector<CliCommand> reload_rules_;
  bool reload_again_ = false;
};

template <class F>
void Control::on_each_worker(F&& f) {
  std::latch done(std::ptrdiff_t(workers_.size()));
  for (auto& w : workers_)
    w->post([&](Worker& x) {
      f(x);
      done.count_down();
    });
  done.wait();
}

}  // namespace lbd

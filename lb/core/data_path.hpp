// The packet path on byte buffers: classify a captured frame, find or create its
// connection, account it, and rewrite it for its real server. No syscall, no allocation in
// steady state, no exception, no log: every frame not forwarded has a DropReason counted.
// The caller does the I/O (capture before, injection after), so this runs unchanged on
// crafted frames in unit tests and on live traffic in lbd.
//
// DataPath dispatches (data_path.cpp: process, dispatch, a client's and a NAT reply's
// packet, new connections, expiry) over named parts, each in a file of its own:
//   forward.cpp      how a packet leaves for its real, one function per method
//   icmp_path.cpp    ICMP errors sent, relayed and learnt from; pings to a VIP
//   persistence.cpp  persistence templates (-p, -M)
//   offload.cpp      the fast path's entries, folds and next hops
//   sync.cpp         connection sync: what a master sends, what a backup applies
// and three classes testable alone: FragmentTable (fragments.hpp), HeldFrames
// (held_frames.hpp) and IcmpLimiter (icmp_limiter.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "forwarding/icmp.hpp"
#include "forwarding/packet.hpp"
#include "lb/core/conn_table.hpp"
#include "lb/core/flow_cache.hpp"
#include "lb/core/fragments.hpp"
#include "lb/core/held_frames.hpp"
#include "lb/core/icmp_limiter.hpp"
#include "lb/core/service_table.hpp"
#include "lb/core/sync_message.hpp"
#include "lb/core/tcp_state.hpp"

namespace lbd {

// When lbd answers ARP for a VIP not configured on the box (lbd --vip-arp): always;
// never (keepalived or the operator puts the VIP on an interface and the kernel answers);
// or while active, i.e. not a passive sync backup (the default).
enum class VipArp : uint8_t { kAlways, kNever, kActive };

struct InterfaceInfo {
  int ifindex = 0;
  MacAddr mac;
  uint16_t mtu = 1500;
};

struct DataPathCounters {
  uint64_t rx_frames = 0;
  uint64_t tx_frames = 0;
  uint64_t arp_replies = 0;
  uint64_t neighbour_adverts = 0;      // IPv6: Neighbour Advertisements for a VIP (ARP's twin)
  uint64_t checksums_completed = 0;  // partial (offloaded) checksums finished before sending
  uint64_t superframes_segmented = 0;  // TCP GSO frames cut to the MTU in software
  uint64_t icmp_unreachable_sent = 0;  // port unreachable to clients: no real available
  uint64_t icmp_rate_limited = 0;      // ... not sent, over the rate limit
  uint64_t frames_held = 0;            // waited for a next hop (then sent or dropped)
  uint64_t nat_replies = 0;            // NAT replies rewritten back to the VIP
  uint64_t tunnelled = 0;              // packets sent in an IPIP tunnel
  uint64_t tunnel_fragmented = 0;      // ... of which too big without DF: outer fragmented
  uint64_t icmp_frag_needed_sent = 0;  // DF packets too big for a tunnel: told the client
  uint64_t icmp_errors_forwarded = 0;  // ICMP errors about a connection, passed on
  uint64_t tunnel_pmtu_updates = 0;    // frag-needed about our tunnel packets, applied
  uint64_t echo_forwarded = 0;         // pings to a VIP sent to a DR/TUN real server
  uint64_t echo_replies = 0;           // pings to a VIP answered by lbd (NAT-only VIPs)
  uint64_t conns_created = 0;
  uint64_t conns_expired = 0;
  uint64_t conns_rescheduled = 0;  // a new SYN on a finished connection, or one to a down real
  uint64_t embryonic_evicted = 0;  // a full table: an entry with only a SYN made room for a new one
  uint64_t embryonic_short_timeouts = 0;  // SYNs given kEmbryonicPressureSeconds (table 3/4 full)
  uint64_t offload_entered = 0;    // connections given to the fast path (established, UDP)
  uint64_t offload_withdrawn = 0;  // ... taken back (state change, end, real gone)
  uint64_t offload_full = 0;       // not given: the fast path's table was full
  uint64_t offload_packets = 0;    // packets the fast path forwarded, folded into the stats
  uint64_t offload_bytes = 0;
  uint64_t sync_queued = 0;        // master: connection records queued for the sync daemon
  uint64_t sync_queue_full = 0;    // ... not queued: the worker's queue was full
  uint64_t sync_mixed_family = 0;  // ... not queued: a tunnel across families (IPVS's records have one)
  uint64_t sync_messages_sent = 0; // ... sent in this many messages
  uint64_t sync_send_failed = 0;   // ... messages the kernel refused
  uint64_t sync_created = 0;       // backup: connections created from records
  uint64_t sync_updated = 0;       // ... updated (state, timeout, real)
  uint64_t sync_no_real = 0;       // ... skipped: no such service or real here
  uint64_t sync_not_applied = 0;   // ... skipped: table full, or a NAT tuple taken
  std::array<uint64_t, size_t(DropReason::kCount)> drops{};
  uint64_t total_drops() const {
    uint64_t t = 0;
    for (auto d : drops) t += d;
    return t;
  }
};

// Several workers' counters, summed (every field is a uint64_t count).
inline DataPathCounters& operator+=(DataPathCounters& a, const DataPathCounters& b) {
  static_assert(sizeof(DataPathCounters) % sizeof(uint64_t) == 0);
  constexpr size_t n = sizeof(DataPathCounters) / sizeof(uint64_t);
  std::array<uint64_t, n> x, y;
  std::memcpy(x.data(), &a, sizeof a);
  std::memcpy(y.data(), &b, sizeof b);
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
  std::memcpy(static_cast<void*>(&a), x.data(), sizeof a);  // every field a uint64_t
  return a;
}

// A count and its name: --lbd-counters lists them in this order (and what reads counters,
// metrics or JSON, reads the same list).
struct Counter {
  std::string name;
  uint64_t value = 0;
  bool gauge = false;  // a level (a table's size, a state), not a count that only grows
};

// Every DataPathCounters field by name, in --lbd-counters' order (drops follow, by reason).
struct DataPathCounterField {
  const char* name;
  uint64_t DataPathCounters::*member;
};
inline constexpr DataPathCounterField kDataPathCounterFields[] = {
    {"rx_frames", &DataPathCounters::rx_frames},
    {"tx_frames", &DataPathCounters::tx_frames},
    {"arp_replies", &DataPathCounters::arp_replies},
    {"neighbour_adverts", &DataPathCounters::neighbour_adverts},
    {"checksums_completed", &DataPathCounters::checksums_completed},
    {"superframes_segmented", &DataPathCounters::superframes_segmented},
    {"conns_created", &DataPathCounters::conns_created},
    {"conns_expired", &DataPathCounters::conns_expired},
    {"conns_rescheduled", &DataPathCounters::conns_rescheduled},
    {"embryonic_evicted", &DataPathCounters::embryonic_evicted},
    {"embryonic_short_timeouts", &DataPathCounters::embryonic_short_timeouts},
    {"icmp_unreachable_sent", &DataPathCounters::icmp_unreachable_sent},
    {"icmp_rate_limited", &DataPathCounters::icmp_rate_limited},
    {"frames_held", &DataPathCounters::frames_held},
    {"nat_replies", &DataPathCounters::nat_replies},
    {"tunnelled", &DataPathCounters::tunnelled},
    {"tunnel_fragmented", &DataPathCounters::tunnel_fragmented},
    {"icmp_frag_needed_sent", &DataPathCounters::icmp_frag_needed_sent},
    {"icmp_errors_forwarded", &DataPathCounters::icmp_errors_forwarded},
    {"tunnel_pmtu_updates", &DataPathCounters::tunnel_pmtu_updates},
    {"echo_forwarded", &DataPathCounters::echo_forwarded},
    {"echo_replies", &DataPathCounters::echo_replies},
    {"offload_entered", &DataPathCounters::offload_entered},
    {"offload_withdrawn", &DataPathCounters::offload_withdrawn},
    {"offload_full", &DataPathCounters::offload_full},
    {"offload_packets", &DataPathCounters::offload_packets},
    {"offload_bytes", &DataPathCounters::offload_bytes},
    {"sync_queued", &DataPathCounters::sync_queued},
    {"sync_queue_full", &DataPathCounters::sync_queue_full},
    {"sync_mixed_family", &DataPathCounters::sync_mixed_family},
    {"sync_messages_sent", &DataPathCounters::sync_messages_sent},
    {"sync_send_failed", &DataPathCounters::sync_send_failed},
    {"sync_created", &DataPathCounters::sync_created},
    {"sync_updated", &DataPathCounters::sync_updated},
    {"sync_no_real", &DataPathCounters::sync_no_real},
    {"sync_not_applied", &DataPathCounters::sync_not_applied},
};
// Every field is listed (drops aside): a new counter without a name does not compile.
static_assert(std::size(kDataPathCounterFields) * sizeof(uint64_t) + sizeof(DataPathCounters::drops) ==
              sizeof(DataPathCounters));

// The data path's counters as named counts: the fields, then drop_<reason> for each reason.
std::vector<Counter> named_counters(const DataPathCounters& c);

// What to do with a processed frame. Before sending, the I/O layer may have to cut it:
// segment_mtu: a TCP super-frame, segmented to this IP MTU (then, with `encapsulate`, each
// segment wrapped in the real's tunnel from tun_src to tun_dst); fragment_mtu: an IPv4 packet without
// DF, fragmented to this MTU, or a tunnel's outer IPv6 packet, in fragments with the
// identification fragment_id. Both are pure functions of forwarding/.
struct Verdict {
  bool transmit = false;
  int ifindex = 0;            // where to send the (rewritten) frame when transmit
  uint16_t segment_mtu = 0;
  uint16_t fragment_mtu = 0;
  uint32_t fragment_id = 0;
  size_t length = 0;          // non-zero: the frame was replaced by one of this length
  bool encapsulate = false;
  IpAddr tun_src, tun_dst;  // the outer header's addresses (the real server's family)
  TunnelSpec tun;

  static Verdict send(int ifindex, size_t length = 0) {
    Verdict v;
    v.transmit = true;
    v.ifindex = ifindex;
    v.length = length;
    return v;
  }
};

class DataPath {
 public:
  DataPath(ServiceTable& services, ConnTable& conns, const Timeouts& timeouts)
      : services_(services), conns_(conns), timeouts_(timeouts) {
    unresolved_.reserve(64);
    pmtu_learnt_.reserve(64);
  }

  void set_interfaces(std::vector<InterfaceInfo> ifs) { interfaces_ = std::move(ifs); }

  // The fast path (nullptr: off). Connections enter it once established (UDP: at once) and
  // leave it the moment their state does; what it forwarded is folded into the same
  // counters, rates and timeouts the slow path keeps, so listings stay what they would be.
  void set_flow_cache(FlowCache* cache);
  FlowCache* flow_cache() const { return flow_cache_; }
  // Folds what the fast path forwarded for each real into the real and service counters
  // (before listings and rate estimates): only reals that had connections in the fast path
  // since the last fold, whatever their number of connections.
  void fold_offloaded();
  // When `c` expires, counting the fast path's last packet of it (listings).
  uint32_t expires_of(const Conn& c);
  // Writes each real's next hop where it changed (after next hops, configuration or health
  // changed; cheap when nothing did).
  void sync_real_hops(uint64_t now_ms);

  // Processes one frame in place. `now_ms` is a monotonic clock in milliseconds. The buffer
  // holds `capacity` bytes (at least frame.size()): an ICMP reply may be longer than the
  // frame it answers. `mark`: the packet's firewall mark (the fwmark queue's; 0 from a
  // capture), which picks a fwmark service for a new connection.
  Verdict process(std::span<uint8_t> frame, int in_ifindex, uint64_t now_ms,
                  size_t capacity = 0, uint32_t mark = 0);

  // ICMP errors lbd sends, at most this many per second (the kernel's icmp_msgs_per_sec).
  static constexpr uint32_t kIcmpPerSecond = IcmpLimiter::kPerSecond;

  // A previous lbd's connection (handover.hpp) on `real`, under `templ` (its persistence
  // template here, adopted before it, or nullptr): entered as it was — state, timeout,
  // client side, NAT reply index, its real's counts. nullptr (nothing changed) when the
  // table is full or already has its key or reply tuple. A connection the fast path
  // carried gets a whole timeout of its state: its last packet is in the previous map.
  Conn* adopt(const Conn& old, Real& real, Conn* templ, uint32_t now_s);

  // Connection sync (sync.cpp), IPVS's ip_vs_sync_conn and ip_vs_proc_conn.
  // Master: the records IPVS would send now are queued in sync_out() (reserved: a full
  // queue counts and drops, never allocates) for the worker to send. The fast path hides
  // a connection's later packets, so one is also sent as it enters the fast path, and when
  // its timer finds it still in use there.
  void set_sync_master(bool on);
  bool sync_master() const { return !sync_marks_.empty(); }
  std::vector<sync::Record>& sync_out() { return sync_out_; }
  static constexpr size_t kSyncQueue = 4096;
  // Backup: a received record (a connection or template) created or refreshed here, on the
  // real of this director with the same service, address and port.
  void apply_sync(const sync::Record& r, uint64_t now_ms);
  // A passive backup forwards nothing (drop_backup_only); ARP for VIPs as `arp` says.
  // `backup_alone`: lbd runs a backup sync daemon and no master; with the backup_only
  // sysctl (lbd's default) it is then passive.
  void set_backup_alone(bool b) { backup_alone_ = b; }
  bool passive() const { return backup_alone_ && timeouts_.sysctl.backup_only; }
  void set_vip_arp(VipArp arp) { vip_arp_ = arp; }
  void count_sync_sent(bool ok) { ++(ok ? counters_.sync_messages_sent : counters_.sync_send_failed); }
  // A connection as a sync record (the IPVS flags, state numbers and timeout).
  sync::Record sync_record(const Conn& c) const;

  // Expires due connections, at most `budget` per call. Returns how many expired.
  size_t expire(uint64_t now_ms, size_t budget);

  // Real ids whose next hop a frame found unresolved since the last call (then cleared).
  std::vector<uint32_t>& unresolved_reals() { return unresolved_; }
  // Real ids whose tunnel path MTU an ICMP report changed since the last call (then
  // cleared by the caller): other workers learn it too.
  std::vector<uint32_t>& pmtu_learnt() { return pmtu_learnt_; }

  // Frames for a real whose next hop is not resolved yet are held (held_frames.hpp)
  // instead of dropped. After next hops were refreshed, release_held() sends those whose
  // real is now resolved, through send(frame, verdict), and drops (counted) those held
  // longer than kHoldMs.
  static constexpr size_t kHeldFrames = HeldFrames::kFrames;
  static constexpr uint64_t kHoldMs = HeldFrames::kHoldMs;
  template <class Send>
  void release_held(uint64_t now_ms, Send&& send);
  size_t held_count() const { return held_.count(); }

  const DataPathCounters& counters() const { return counters_; }
  // A received frame the I/O layer dropped before process() (too big to copy).
  void count_drop(DropReason r) {
    ++counters_.rx_frames;
    ++counters_.drops[size_t(r)];
  }
  // Frames process() decided to send (counted in tx_frames) that the kernel refused.
  void count_tx_failed(size_t n) { counters_.drops[size_t(DropReason::kInjectFailed)] += n; }
  static uint32_t seconds(uint64_t now_ms) { return uint32_t(now_ms / 1000); }

  // How long a tunnel path MTU learnt from ICMP stays (the kernel's ip_rt_mtu_expires).
  static constexpr uint32_t kPmtuSeconds = 600;
  // The lowest path MTU a report can set (the kernel's net.ipv4.route.min_pmtu).
  static constexpr uint16_t kMinPmtu = 552;
  // How long a TCP entry that has seen only its SYN lives while the table is three quarters
  // full (else SYN_RECV's 60 s).
  static constexpr uint32_t kEmbryonicPressureSeconds = 5;
  // How long after its first fragment a later one is still forwarded.
  static constexpr uint64_t kFragmentMs = FragmentTable::kFragmentMs;

 private:
  Verdict drop(DropReason r) {
    ++counters_.drops[size_t(r)];
    return {};
  }
  // One frame's context through the helpers below.
  struct Frame {
    std::span<uint8_t> bytes;
    size_t capacity;
    const ParsedPacket& p;
    int in_ifindex;
    uint64_t now_ms;
  };
  Verdict handle_arp(std::span<uint8_t> frame, const ParsedPacket& p, int in_ifindex);
  Verdict handle_icmp(const Frame& f);
  Verdict handle_echo(const Frame& f);
  Verdict handle_solicitation(const Frame& f);
  Verdict icmp_about_tunnel(const Frame& f, const IcmpQuote& outer);
  Verdict dispatch(const Frame& f);
  Verdict handle_fragment(const Frame& f);
  Verdict client_packet(const Frame& f, Conn& c);
  Verdict reply_packet(const Frame& f, Conn& c);
  Verdict icmp_error(const Frame& f, const IcmpError& e, size_t quote_off, size_t quote_len,
                     int out_ifindex);
  // Where a connection's replies and errors go back to: the client's L2 neighbour.
  std::optional<NextHop> back_to_client(uint8_t if_slot, const MacAddr& client_mac) const;
  // A tunnel real's path MTU: its interface's, or less while an ICMP report holds.
  static uint16_t tunnel_mtu(const Real& real, uint64_t now_ms);
  Verdict port_unreachable(const Frame& f);
  // ICMP port unreachable to the frame's sender (rate-limited), the frame counted as `why`.
  Verdict unreachable_to_sender(const Frame& f, DropReason why);
  const InterfaceInfo* interface(int ifindex) const {
    for (const auto& i : interfaces_)
      if (i.ifindex == ifindex) return &i;
    return nullptr;
  }
  Conn* new_connection(const Frame& f, DropReason& why);
  // What an entry just filled in holds beyond its fields (new_connection's and adopt's):
  // its NAT reply index, its note as an embryo, its template's control count, its real's
  // counts. False, the entry erased, when its NAT reply tuple is another connection's.
  bool attach(Conn& c, Real& real, Conn* templ);
  bool make_room();  // a full table: the oldest embryonic entry evicted; false if none
  // Its state's timeout, shorter for an embryo under pressure (then *shortened is set).
  uint32_t conn_timeout(const Conn& c, bool* shortened = nullptr) const;
  Real* schedule(Service& svc, const ParsedPacket& p, uint32_t now_s);
  Conn* persistence_template(Service& svc, const ParsedPacket& p, uint32_t now_s, DropReason& why);
  void unbind(const Conn& c);  // its real's counts and its template's control count
  void release(Conn& c);       // unbind, then free it (counted as expired)
  // Per-real and per-service packets and bytes, in (client → real) or out (NAT replies).
  void count(Real& real, uint64_t bytes, bool reply, uint64_t packets = 1);
  bool reusable_for_new_syn(const Conn& c, const ParsedPacket& p);
  void update_tcp_state(Conn& c, Real& real, TcpTable table, uint8_t flags);
  // The fast path: enter `c` if it qualifies; take it back (its use folded in first).
  void maybe_offload(Conn& c, uint64_t now_ms);
  void withdraw(Conn& c);
  // The last packet the fast path forwarded for `c` (ms on the monotonic clock; 0: none).
  uint64_t last_use_ms(const Conn& c);
  // When `c` expires if its last packet was at `last_ms` (0: none), never before c.expires.
  uint32_t idle_until(const Conn& c, uint64_t last_ms) const;
  lbd_real_hop real_hop(const Real& r, uint64_t now_ms) const;
  void refresh_config();
  // Master: a client's packet of `c` (its in_pkts), and what IPVS then sends: `c` if
  // ip_vs_sync_conn_needed says so, then its template.
  void sync_after_packet(Conn& c, uint64_t now_ms);
  void sync_now(Conn& c, uint64_t now_ms);  // `c` and its template, whatever the counts (the fast path's)
  bool sync_needed(const Conn& c, uint32_t pkts, uint64_t now_ms);
  uint32_t sync_timeout(const Conn& c) const;  // seconds: its state's, a template's persistence
  // sync_persist_mode: a connection under a template is not sent, only its template.
  bool only_template_sent(const Conn& c) const {
    return !(c.flags & Conn::kTemplate) && c.control && timeouts_.sysctl.sync_persist_mode;
  }
  void queue_sync(const Conn& c);
  // Per slot: the client packets seen (IPVS in_pkts, wrapping at 2^16), the state last
  // sent (old_state) and when the backup's copy expires (sync_endtime: ms on the data
  // path's clock, its 2 low bits the retries sent). Allocated while a master daemon runs;
  // not in the handed-over slab.
  struct SyncMark {
    uint16_t in_pkts = 0;
    ConnState old_state = ConnState::kNone;
    uint32_t endtime = 0;
  };
  std::vector<SyncMark> sync_marks_;
  SyncMark& mark(const Conn& c) { return sync_marks_[conns_.slot_of(&c)]; }
  std::vector<sync::Record> sync_out_;
  bool backup_alone_ = false;
  VipArp vip_arp_ = VipArp::kActive;

  ServiceTable& services_;
  ConnTable& conns_;
  const Timeouts& timeouts_;
  std::vector<InterfaceInfo> interfaces_;
  std::vector<IpAddr> vips_;
  std::vector<ServiceTable::Endpoint> nat_endpoints_;
  // The GUE reals' (address, --tun-port), sorted: an ICMP error quoting UDP to one is about
  // lbd's own tunnel packet (a lookup, not a walk over the reals, per such error).
  std::vector<ServiceTable::Endpoint> gue_endpoints_;
  uint64_t config_generation_ = 0;
  std::vector<uint32_t> unresolved_;
  std::vector<uint32_t> pmtu_learnt_;
  bool hold(const Frame& f, uint32_t real_id, FwdMethod method);
  // The method's rewrite towards `real`, the one place a client's packet leaves for a real.
  // `port`: NAT's destination port, the connection's (a real of port 0 keeps the packet's).
  Verdict forward(const Frame& f, FwdMethod method, Real& real, uint16_t port);
  Verdict tunnel(const Frame& f, Real& real);
  Verdict too_big_to_sender(const Frame& f, uint16_t mtu);
  Verdict finish_l2(const Frame& f, const NextHop& hop, uint16_t mtu);
  HeldFrames held_;
  // Where recent pings forwarded to a real came from (a ping is no connection): an ICMP
  // error about one in a tunnel goes back there. Direct-mapped by client address.
  struct EchoPeer {
    IpAddr client;
    MacAddr mac;
    uint8_t if_slot = 0;
  };
  std::array<EchoPeer, 256> echo_peers_{};
  static size_t echo_slot(const IpAddr& a) { return (a.fold() * 0x9e3779b1u) >> 24; }
  Real* tunnel_real(const IpAddr& addr);

  FragmentTable fragments_;
  void remember_fragments(const ParsedPacket& p, const Conn& c, bool reply, uint64_t now_ms);
  uint32_t tunnel_ip_id_ = 0;  // the outer IPv4 id (its low 16 bits) and IPv6 fragment id
  uint32_t mark_ = 0;  // the frame in process()'s firewall mark
  FlowCache* flow_cache_ = nullptr;
  std::vector<lbd_real_use> real_folded_;  // per real id, 2 each (client side, replies): folded so far
  std::vector<uint32_t> offloaded_of_;     // per real id: its connections in the fast path
  std::vector<uint32_t> fold_due_;         // real ids with fast-path use not folded yet (no repeats)
  std::vector<uint8_t> fold_listed_;       // per real id: in fold_due_
  bool offloaded(const Conn& c) const { return flow_cache_ && (c.flags & Conn::kOffloaded); }
  std::vector<lbd_real_hop> hops_written_;  // per real id: what the fast path has
  IcmpLimiter icmp_limit_;
  DataPathCounters counters_;
};

template <class Send>
void DataPath::release_held(uint64_t now_ms, Send&& send) {
  auto resolved = [this](uint32_t id) {
    const Real& r = services_.real(id);
    return r.hop.resolved && !r.deleted;
  };
  held_.release(now_ms, resolved, [&](HeldFrames::Held& h, bool ready) {
    ParsedPacket p;
    DropReason why{};
    std::span<uint8_t> bytes(h.frame.data(), h.len);
    if (!ready || !parse_frame(bytes, p, why)) {
      drop(DropReason::kNextHopUnresolved);
      return;
    }
    const Frame f{bytes, h.frame.size(), p, h.in_ifindex, now_ms};
    Real& real = services_.real(h.real_id);
    const Verdict v = forward(f, h.method, real, real.port ? real.port : p.dport);  // as its connection's
    if (v.transmit) send(std::span<const uint8_t>(h.frame.data(), v.length ? v.length : h.len), v);
  });
}

}  // namespace lbd

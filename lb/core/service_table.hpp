// Virtual services and their real servers: the one API that lbadm, the rules file and
// health transitions all change the configuration through, and what the data path reads.
// Every operation validates first and changes nothing when it fails.
//
// Reals are identified by a stable id (connections hold it). A deleted real leaves its
// service's list at once but stays allocated, marked deleted, until its last connection
// is gone, so those connections' packets are dropped (IPVS expire_nodest_conn=0). Like
// IPVS's dest trash, adding the same real to a service with the same key again revives
// it, connections included: `lbadm -C` followed by `lbadm -R` breaks no connection.
//
// Thread safety: none; owned by the thread that runs the data path and the control socket.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "forwarding/next_hop.hpp"
#include "forwarding/packet.hpp"
#include "forwarding/protocol.hpp"
#include "forwarding/tunnel.hpp"
#include "health/spec.hpp"
#include "lb/base/status.hpp"
#include "scheduler/scheduler.hpp"

namespace lbd {

const char* protocol_token(uint8_t protocol);  // "tcp", "udp", "sctp" (nft, pcap, services)

struct ServiceKey {
  uint8_t protocol = 0;  // kProtoTcp or kProtoUdp (a fwmark service: kProtoTcp, as ipvsadm sets it)
  IpAddr vip;            // a fwmark service: 0.0.0.0, or :: with -6
  uint16_t port = 0;
  // -f: a firewall-mark service (no address, no port): it takes the packets the operator's
  // firewall marks with this value, of any protocol and any address. 0: not one.
  uint32_t fwmark = 0;
  friend bool operator==(const ServiceKey&, const ServiceKey&) = default;
};
std::string to_string(const ServiceKey& k);  // "TCP 198.18.0.100:80", "FWM 1"
inline ServiceKey fwmark_key(uint32_t mark) { return ServiceKey{kProtoTcp, Ipv4{}, 0, mark}; }
// An IPv6 firewall-mark service's (-f N -6): the address `::`.
inline ServiceKey fwmark_key6(uint32_t mark) { return ServiceKey{kProtoTcp, IpAddr(Ipv6{}), 0, mark}; }

// A real's address and port, as a service's reals are keyed.
struct RealEndpoint {
  IpAddr addr;
  uint16_t port = 0;
  bool operator==(const RealEndpoint&) const = default;
  struct Hash {
    size_t operator()(const RealEndpoint& e) const {
      uint64_t x = uint64_t(e.addr.fold()) << 16 ^ e.port ^ uint64_t(e.addr.v6()) << 48;
      return size_t(x * 0x9e3779b97f4a7c15ULL >> 16);
    }
  };
};

inline constexpr Ipv4 kHostNetmask{{255, 255, 255, 255}};  // -M's default: one client each

struct ServiceOptions {
  ServiceOptions() = default;
  ServiceOptions(std::string sched) : scheduler(std::move(sched)) {}  // NOLINT: {"rr"} reads well
  std::string scheduler = "wlc";
  uint32_t persistent = 0;  // -p seconds; 0 = not persistent
  Ipv4 netmask = kHostNetmask;  // -M: clients sharing (address & netmask) stick together
  uint8_t netmask6 = 128;       // -M of an IPv6 service: a prefix length (1..128), as ipvsadm takes it
  bool ops = false;          // -o: one-packet scheduling (UDP)
  uint8_t sched_flags = 0;   // -b: kSchedFlag1..3 (IPVS IP_VS_SVC_F_SCHED1..3)
  health::ServiceHealth health;  // lbd's extension: checks, on-down, sorry server, notify
};

using sched::kSchedFlag1, sched::kSchedFlag2, sched::kSchedFlag3;
// "flag-1,flag-3" (ipvsadm print_sched_flags; sh/mh name bits 1 and 2 their own way).
std::string sched_flags_text(const std::string& scheduler, uint8_t flags);

// IPVS's rate estimator (ip_vs_est.c): every 2 s, an exponentially weighted moving
// average of each counter's rate, kept scaled (<<10 for conns and packets, <<5 for bytes).
struct RateEstimator {
  uint64_t last_conns = 0, last_inpkts = 0, last_outpkts = 0, last_inbytes = 0, last_outbytes = 0;
  int64_t cps = 0, inpps = 0, outpps = 0, inbps = 0, outbps = 0;
};
struct Rates {
  uint64_t cps = 0, inpps = 0, outpps = 0, inbps = 0, outbps = 0;
};

struct RealSpec {
  RealSpec() = default;
  RealSpec(IpAddr a, uint16_t p, FwdMethod f, int32_t w, std::optional<std::string> h = std::nullopt)
      : addr(a), port(p), fwd(f), weight(w), health(std::move(h)) {}
  IpAddr addr;
  uint16_t port = 0;
  FwdMethod fwd = FwdMethod::kRoute;
  int32_t weight = 1;
  TunnelSpec tun;  // TUN: --tun-type, --tun-port, --tun-*csum (ipip when not a tunnel)
  std::optional<std::string> health;  // canonical check overrides; nullopt: keep (edit)
  uint32_t u_threshold = 0, l_threshold = 0;  // -x / -y; 0 = none
};

struct Counters {
  uint64_t conns = 0, inpkts = 0, outpkts = 0, inbytes = 0, outbytes = 0;
  Counters& operator+=(const Counters& o) {  // several workers' shares, summed
    conns += o.conns;
    inpkts += o.inpkts;
    outpkts += o.outpkts;
    inbytes += o.inbytes;
    outbytes += o.outbytes;
    return *this;
  }
};

// One estimator step (every kEstimatorSeconds), and the rates it reads as (per second).
inline constexpr uint32_t kEstimatorSeconds = 2;
void estimate(RateEstimator& e, const Counters& c);
Rates read_rates(const RateEstimator& e);

struct Real {
  uint32_t id = 0;
  uint32_t service_id = 0;
  ServiceKey service_key;  // kept after deletion: re-adding the same real revives it
  IpAddr addr;
  uint16_t port = 0;
  FwdMethod fwd = FwdMethod::kRoute;
  TunnelSpec tun;        // TUN: how it is encapsulated
  sched::DestView dest;  // weight, ActiveConn, InActConn, availability, overload
  uint32_t u_threshold = 0, l_threshold = 0;  // IPVS's connection thresholds (-x / -y)
  uint32_t persist_conns = 0;  // persistence templates pointing here (PersistConn)
  Counters stats;
  RateEstimator rate;
  NextHop hop;           // filled by the neighbour resolver
  // TUN: a smaller path MTU an ICMP frag-needed reported for this real's tunnel, valid
  // until the given second (the kernel's PMTU cache keeps it 10 minutes too).
  uint16_t tun_pmtu = 0;
  uint32_t tun_pmtu_until = 0;
  uint32_t conn_refs = 0;
  bool deleted = false;
  bool in_use = false;
  std::string health_override;  // canonical check keys overriding the service's
  bool health_down = false;     // failed its checks: no new connections (dest.available)
  bool sorry = false;           // a service's sorry server, not one of its reals
  bool dr_gateway_warned = false;  // DR real reached through a gateway: logged once
};

struct Service {
  uint32_t id = 0;
  ServiceKey key;
  ServiceOptions options;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::deque<uint32_t> reals;                  // real ids in IPVS list order: newest first
  std::vector<const sched::DestView*> views;   // parallel to `reals`, what pick() reads
  std::unordered_map<RealEndpoint, uint32_t, RealEndpoint::Hash> real_ids;  // → id, of `reals`
  bool unsettled = false;  // reals added in a batch: views, scheduler, sorry not updated yet
  Counters stats;
  RateEstimator rate;
  bool in_use = false;
  static constexpr uint32_t kNoSorry = UINT32_MAX;
  uint32_t sorry_id = kNoSorry;  // the sorry server's Real, when configured
  bool sorry_active = false;     // no quorum (every real down): new connections go to the sorry server
  bool quorum = true;            // keepalived's quorum state (options.health.quorum; else: a real up)
  uint64_t live_weight = 0;      // the weights of the reals up, as it was last judged
};

// What an address is to the director (the kernel's inet_addr_type()): IPVS refuses a real
// that is not unicast (EINVAL). kLocal is an address of the director itself, which IPVS
// serves as a local node and lbd cannot (it only forwards): refused as unsupported.
enum class AddrType : uint8_t { kUnicast, kLocal, kBroadcast, kMulticast };
// By the address alone: 0.0.0.0/8 and 255.255.255.255 broadcast, 224/4 multicast, 240/4
// (reserved) broadcast, 127/8 local.
AddrType classify_address(const IpAddr& a);
// The process's classifier, shared by every table (a dry run must refuse what the real
// apply would): lbd installs one that also knows its own addresses and subnet broadcasts.
void set_address_classifier(std::function<AddrType(const IpAddr&)> f);
// A real's (or sorry server's) address as IPVS checks it: EINVAL unless unicast, ENOSYS
// for the director's own.
Status check_real_address(const IpAddr& a);

class ServiceTable {
 public:
  // Many changes at once (a rules file, a restore, a reload): while a Batch lives, adding
  // or deleting a real defers the O(reals) work — its service's list, views, scheduler
  // state and sorry state — to one pass per service when the batch ends, so N changes
  // cost O(N) (a delete still finds its real's place by a scan of ids), not
  // O(N^2). Editing a service settles it first; nothing may be scheduled meanwhile.
  class Batch {
   public:
    explicit Batch(ServiceTable& t) : t_(t) { ++t_.batch_depth_; }
    ~Batch() {
      if (--t_.batch_depth_ == 0) t_.settle_all();
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    ServiceTable& t_;
  };

  Status add_service(const ServiceKey& key, const ServiceOptions& opt);
  Status edit_service(const ServiceKey& key, const ServiceOptions& opt);
  Status delete_service(const ServiceKey& key);
  void flush();
  Status add_real(const ServiceKey& key, const RealSpec& spec);
  Status edit_real(const ServiceKey& key, const RealSpec& spec);
  Status delete_real(const ServiceKey& key, const IpAddr& addr, uint16_t port);
  Status zero(const std::optional<ServiceKey>& key);

  // Data path: O(1) lookup of a service by its key; nullptr if none.
  Service* find(const ServiceKey& key) {
    if (lookup_.empty()) return nullptr;
    for (uint32_t i = key_hash(key) & lookup_mask_;; i = (i + 1) & lookup_mask_) {
      const uint32_t id1 = lookup_[i];
      if (!id1) return nullptr;
      if (services_[id1 - 1].key == key) return &services_[id1 - 1];
    }
  }
  const Service* find(const ServiceKey& key) const { return const_cast<ServiceTable*>(this)->find(key); }
  Real* find_real(const ServiceKey& key, const IpAddr& addr, uint16_t port);
  Real& real(uint32_t id) { return reals_[id]; }
  const Real& real(uint32_t id) const { return reals_[id]; }
  Service& service(uint32_t id) { return services_[id]; }

  // Data path: the service a packet to (protocol, vip, port) with firewall mark `mark`
  // belongs to: the mark's service, the exact key, else a persistent port-zero service of
  // that address (IPVS ip_vs_service_find() order).
  Service* find_for_packet(uint8_t protocol, const IpAddr& vip, uint16_t port, uint32_t mark = 0) {
    if (mark)  // the mark's service of the packet's family (IPVS keys fwmark services by af too)
      if (Service* s = find(vip.v6() ? fwmark_key6(mark) : fwmark_key(mark))) return s;
    if (Service* s = find(ServiceKey{protocol, vip, port})) return s;
    if (!port_zero_services_) return nullptr;
    Service* s = find(ServiceKey{protocol, vip, 0});
    return s && s->options.persistent ? s : nullptr;
  }

  // A connection (or, with `templ`, a persistence template) starts or stops referring to a
  // real: ActiveConn/InActConn/PersistConn bookkeeping, and IPVS's overload flag from the
  // real's thresholds (ip_vs_bind_dest / ip_vs_unbind_dest).
  void bind_conn(Real& r, bool inactive, bool templ = false);
  void unbind_conn(Real& r, bool inactive, bool templ = false);
  void set_inactive(Real& r, bool inactive);  // a connection moved between the two counts
  // Several workers: `r`'s connections are also counted in `shared`, which every copy of
  // the real shares (this copy's added to it now): its thresholds hold for all of them.
  void share_counts(Real& r, sched::SharedDest* shared);

  // Health: a real goes down (no new connections; weight kept) or comes back. Returns
  // true if that switched its service's sorry server on or off.
  bool set_health(Real& r, bool up);

  size_t service_count() const { return services_.size() - free_services_.size(); }
  size_t service_slots() const { return services_.size(); }  // ids are below this
  size_t real_slots() const { return reals_.size(); }

  // Several tables that must keep the same real ids (the control thread's and each
  // worker's, given the same changes in the same order): a deleted real is not freed when
  // its last connection in this table goes, only by release_deleted(), once no table has
  // a connection to it.
  void defer_release() { deferred_release_ = true; }
  // Deleted reals no connection of this table refers to.
  std::vector<uint32_t> unreferenced_deleted() const;
  void release_deleted(uint32_t id);
  size_t trash() const { return trash_; }

  // Services in id order, and every real (including deleted ones still referenced).
  template <class F> void for_each_service(F&& f) const {
    for (const auto& s : services_)
      if (s.in_use) f(s);
  }
  template <class F> void for_each_real(F&& f) {
    for (auto& r : reals_)
      if (r.in_use) f(r);
  }

  // Every 2 s: one step of each service's and real's rate estimator.
  void estimate_rates();

  // Each distinct VIP of the configured services, once.
  std::vector<IpAddr> vips() const;
  // The VIPs that can take a new connection now: a service of theirs has a real of weight
  // above 0 that its checks have not taken down, or its sorry server is in use. What lbd
  // announces to routers (--announce-table). Sorted.
  std::vector<IpAddr> serving_vips() const;

  // Each distinct (protocol, address, port) replies of a NAT real server come from, sorted.
  struct Endpoint {
    uint8_t protocol;
    IpAddr addr;
    uint16_t port;
    auto operator<=>(const Endpoint& o) const {
      return std::tuple(protocol, addr, port) <=> std::tuple(o.protocol, o.addr, o.port);
    }
    bool operator==(const Endpoint&) const = default;
  };
  std::vector<Endpoint> nat_endpoints() const;

  // Bumped by every change; consumers (capture filter, firewall guard) rebuild on change.
  uint64_t generation() const { return generation_; }

 private:
  static uint32_t key_hash(const ServiceKey& k) {
    uint64_t x = (uint64_t(k.vip.fold()) << 24 ^ uint64_t(k.port) << 8 ^ k.protocol) + (uint64_t(k.fwmark) << 32) +
                 k.vip.v6();
    x *= 0x9e3779b97f4a7c15ULL;
    return uint32_t(x >> 32);
  }
  static constexpr uint32_t kRemovedSlot = UINT32_MAX;  // a real deleted in a batch, until it settles
  std::optional<uint32_t> real_id(const Service& s, const IpAddr& addr, uint16_t port) const;
  void unsettle(Service& s);  // in a batch: its deferred work is due when the batch ends
  void settle(Service& s);    // a batch's deferred work for one service
  void settle_all();
  void rebuild_views(Service& s);
  void rebuild_lookup();
  void release_real(Real& r);
  void retire(Real& r);
  void sync_sorry(Service& s);     // the sorry Real follows the service's health options
  bool refresh_sorry(Service& s);  // sorry_active from the reals' health; true if it changed
  Real* from_trash(const ServiceKey& key, const IpAddr& addr, uint16_t port);
  Real& allocate_real();
  void remove_real_from_service(Service& s, size_t index);

  std::deque<Service> services_;
  std::deque<Real> reals_;
  std::vector<uint32_t> free_services_, free_reals_;
  std::vector<uint32_t> lookup_;  // open addressing: service id + 1; 0 = empty
  uint32_t lookup_mask_ = 0;
  uint64_t generation_ = 1;
  uint32_t port_zero_services_ = 0;  // how many services have port 0 (persistent, any port)
  uint32_t trash_ = 0;  // deleted reals that connections still use (from_trash scans only then)
  int batch_depth_ = 0;
  bool deferred_release_ = false;
  std::vector<uint32_t> unsettled_;  // services with Service::unsettled
};

}  // namespace lbd

// fmt: "{}" of a service key is to_string's "TCP 198.18.0.100:80".
template <>
struct fmt::formatter<lbd::ServiceKey> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const lbd::ServiceKey& k, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(lbd::to_string(k), ctx);
  }
};

// Firewall-mark services' packets (ipvsadm -f, -f -6): the operator's own nftables or
// iptables rules mark them (in prerouting, as for IPVS); lbd's iptables chain LBD_FWMARK
// (ip6tables' for IPv6 services, the same chains), jumped to
// first from mangle INPUT (IPVS's LOCAL_IN: after every prerouting rule; the VIP is the
// director's own, as IPVS needs), queues them to an NFQUEUE lbd reads through
// libnetfilter_queue, and LBD_FWMARK_NAT (first in mangle PREROUTING) the replies of those
// services' NAT reals (to anyone but the director). Each packet is processed by the data path with its mark and
// sent by lbd's own socket, and its verdict is DROP (the kernel's copy goes no further),
// or ACCEPT when no service of lbd's claims it. Verdicts are given in batches: one per
// read of the queue, after the few ACCEPTs.
//
// When lbd is not reading (stopped, or its queue full): `fail_open` lets the packets go on
// into the director's own stack (nft's `bypass`, the queue's NFQA_CFG_F_FAIL_OPEN); by
// default they are dropped (fail closed): a VIP the director also holds would otherwise be
// answered (RST) by its kernel, and clients retry into a restarted lbd instead.
//
// What it changes, only while a firewall-mark service of that family exists, undone when the
// last one goes and at exit: the two chains and their jumps, and iptables' (ip6tables')
// mangle table if it was not there before and nothing else uses it. A killed lbd's (or one
// that handed over to a --takeover) are taken by the next lbd as they are, and replaced by its
// rules, or removed if it has no firewall-mark service.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/base/status.hpp"

struct nfq_handle;
struct nfq_q_handle;
struct nfgenmsg;
struct nfq_data;

namespace lbd {

class FwmarkQueue {
 public:
  struct Options {
    uint16_t queue = 4321;   // --fwmark-queue
    bool fail_open = false;  // --fwmark-fail open|closed
  };
  // Binds the queue (iptables is changed only once a firewall-mark service exists: apply());
  // throws std::runtime_error naming the cause.
  explicit FwmarkQueue(const Options& o);
  ~FwmarkQueue();
  FwmarkQueue(const FwmarkQueue&) = delete;
  FwmarkQueue& operator=(const FwmarkQueue&) = delete;

  int fd() const { return fd_; }
  const Options& options() const { return opt_; }

  // The marks of the IPv4 and IPv6 fwmark services, the addresses of their NAT reals and the
  // director's own addresses (both families): each family's chains replaced in one
  // transaction. On failure that family's rules are unchanged.
  Status apply(const std::vector<uint32_t>& marks, const std::vector<uint32_t>& marks6,
               const std::vector<IpAddr>& nat_addrs, const std::vector<IpAddr>& local);

  // One queued packet: its IPv4 or IPv6 bytes (whole), mark, input interface and
  // link-layer source.
  struct Packet {
    std::span<const uint8_t> ip;
    uint32_t mark;
    int ifindex;
    MacAddr hw_src;
  };
  // Returns true if lbd took the packet (verdict DROP), false to let the kernel have it.
  using Handler = std::function<bool(const Packet&)>;
  // Reads up to `budget` packets, calls `handler` for each, gives the verdicts. The count
  // read, or -1 on a socket error other than "nothing more" (then why in error()).
  int receive(int budget, const Handler& handler);
  const std::string& error() const { return error_; }
  // Any thread: packets read, those handed back (ACCEPT), and the times the socket lost
  // some because lbd read too slowly (ENOBUFS: the kernel's queue went on; with fail closed
  // what did not fit the queue was dropped).
  uint64_t queued() const { return queued_.load(std::memory_order_relaxed); }
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t overflows() const { return enobufs_.load(std::memory_order_relaxed); }

  // At exit the chains stay (a --takeover: the next lbd takes them as they are, so the
  // marked packets are dropped while neither reads, never answered by the director's stack).
  void keep_chains_at_exit() { keep_chains_ = true; }

 private:
  bool keep_chains_ = false;
  void unhook();  // lbd's chains and jumps gone (and the mangle tables, if lbd's making)
  void unhook(bool v6);
  bool hooked_[2] = {false, false};      // lbd's chains are in iptables / ip6tables (a fwmark service exists)
  bool made_table_[2] = {false, false};  // that mangle table did not exist before them
  std::string rules(bool v6, const std::vector<uint32_t>& marks, const std::vector<IpAddr>& nat_addrs,
                    const std::vector<IpAddr>& local) const;
  Options opt_;
  nfq_handle* h_ = nullptr;
  nfq_q_handle* qh_ = nullptr;
  int fd_ = -1;
  std::vector<uint8_t> buf_;
  const Handler* handler_ = nullptr;  // during receive()
  uint32_t last_id_ = 0;
  bool any_taken_ = false;
  std::atomic<uint64_t> queued_{0}, accepted_{0}, enobufs_{0};
  std::string error_;
  static int on_packet(nfq_q_handle* qh, nfgenmsg* msg, nfq_data* nfa, void* self);
};

}  // namespace lbd

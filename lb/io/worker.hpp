// One worker of lbd's slow path: a shard of the connection table, its own copy of the
// services (the control thread applies every change to each copy, in the same order, so
// every copy has the same services and real ids), its own capture socket on each interface
// (a member of the interface's fanout group when there are several workers: see
// steering.hpp), its own injectors and its own thread. Nothing on the packet path is
// shared with another thread: the control thread reaches a worker only through its
// mailbox, which the worker empties between two batches of frames.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lb/base/unique_fd.hpp"
#include "lb/io/capture.hpp"
#include "lb/core/conn_table.hpp"
#include "lb/core/data_path.hpp"
#include "lb/core/service_table.hpp"
#include "lb/core/sync_message.hpp"
#include "lb/core/traffic_model.hpp"
#include "lb/io/sync_socket.hpp"

namespace lbd {

class XdpFlowCache;
class FwmarkQueue;

// What a worker's shard adds to the listings and counters.
struct ShardCounts {
  struct RealCounts {
    Counters stats;
    uint32_t active = 0, inactive = 0, persist = 0;
  };
  std::vector<RealCounts> reals;  // by real id
  std::vector<Counters> services;  // by service id
  DataPathCounters dp;
  uint32_t conns = 0;
  uint64_t kernel_drops = 0;
  std::vector<uint32_t> unreferenced;  // deleted reals none of its connections use
};

class Worker {
 public:
  struct Config {
    uint32_t index = 0;
    std::vector<std::string> interfaces;
    int capture_timeout_ms = 0;
  };
  // Opens its captures and injectors; throws std::runtime_error naming the cause. `table`
  // is its shard of the connections (made before: in memory the next lbd can adopt).
  Worker(const Config& cfg, std::unique_ptr<ConnTable> table);
  ~Worker();  // stops its thread
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  uint32_t index() const { return cfg_.index; }
  // On the worker's thread (or, before start(), the control thread's).
  ServiceTable& services() { return services_; }
  Timeouts& timeouts() { return timeouts_; }
  DataPath& data_path() { return *dp_; }
  const ConnTable& conns() const { return *conns_; }
  int table_fd() const { return conns_->slab().fd(); }  // the slab's memfd
  // Per interface, in the order given: the socket of each capture class (traffic_model.hpp).
  std::vector<std::unique_ptr<Capture>>& captures(CaptureClass c = CaptureClass::kConnections) {
    return c == CaptureClass::kSyns ? syn_captures_ : captures_;
  }
  // The fast path (nullptr: none), seen through this worker's use counters; only worker
  // 0 writes the reals' next hops (every copy has the same).
  void set_flow_cache(XdpFlowCache* cache);
  // Before start(): this worker also reads the firewall-mark services' queue (one worker
  // does: every packet of those services, both ways, comes through it).
  void set_fwmark_queue(FwmarkQueue* q) { fwmark_queue_ = q; }
  ShardCounts counts();

  // On its thread: the interface at `slot` is gone (its sockets closed, their drops kept),
  // or back (its sockets opened again, taking nothing until their filter is set, and its
  // injector bound to the new index; throws std::runtime_error naming the cause).
  void detach(size_t slot);
  void attach(size_t slot);

  // Starts the thread. Before it (and after stop()), post() runs at once on the caller's
  // thread.
  void start();
  // Stops the thread after its current batch: the table stays as it is (what the next
  // lbd adopts), and the worker is the caller's again.
  void stop();
  void post(std::function<void(Worker&)> f);

  // What the worker tells the control thread; `event_fd` (an eventfd) is written when
  // some is pending.
  struct Events {
    std::vector<uint32_t> unresolved;  // reals whose next hop a frame found unresolved
    struct Pmtu {
      uint32_t real_id;
      uint16_t pmtu;
      uint32_t until;
    };
    std::vector<Pmtu> pmtu;     // tunnel path MTUs an ICMP report taught it
    std::string capture_failed;  // why a capture stopped (libpcap's words)
    std::vector<size_t> failed_slots;  // the interfaces whose capture stopped
  };
  void set_event_fd(int fd) { event_fd_ = fd; }
  Events take_events();

  // Frames this worker's injectors sent after the data path decided (counted as drops
  // when the kernel refused them).
  void flush_all() {
    for (auto& inj : injectors_) dp_->count_tx_failed(inj->flush());
  }
  // On its thread: the sync master's socket (the control thread's; -1: no master). The data
  // path's records are sent in messages of at most `maxlen` bytes: a message as soon as it
  // is full, and what is left at every tick (IPVS: within 2 s).
  void set_sync_master(int fd, const sockaddr_in& group, uint8_t syncid, uint32_t maxlen);

  // Queues a frame the data path decided to send (see transmit.hpp).
  void send(const uint8_t* frame, size_t len, const Verdict& v, Injector* in_place);

 private:
  void loop();
  // Frames handled (at most `rounds` batches), or -1 when the capture failed.
  int on_frames(Capture& cap, int rounds);
  void on_queue();  // the fwmark queue's packets, as frames of their input interface
  void tick(uint64_t now_ms);
  void run_mailbox();
  void report();  // pending data path events to the control thread
  void send_sync(bool flush);  // the data path's sync records into messages
  Injector* injector_for(int ifindex) {
    for (auto& i : injectors_)
      if (i->ifindex() == ifindex) return i.get();
    return nullptr;
  }

  Config cfg_;
  ServiceTable services_;
  Timeouts timeouts_;
  std::unique_ptr<ConnTable> conns_;
  std::unique_ptr<DataPath> dp_;
  std::unique_ptr<FlowCache> flow_view_;
  std::vector<std::unique_ptr<Capture>> captures_;      // connections' packets: served first
  std::vector<std::unique_ptr<Capture>> syn_captures_;  // SYNs: what a flood overflows
  std::vector<std::unique_ptr<Injector>> injectors_;
  std::vector<bool> failed_;  // per capture (connections', then SYNs'): stopped
  bool sockets_changed_ = false;  // detach()/attach(): the loop polls other descriptors
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(65536 + 64);  // super-frames
  uint64_t now_ms_ = 0;
  int sync_fd_ = -1;
  sockaddr_in sync_group_{};
  std::unique_ptr<sync::MessageBuilder> sync_msg_;
  UniqueFd mailbox_fd_, timer_fd_;
  int event_fd_ = -1;  // the control thread's
  FwmarkQueue* fwmark_queue_ = nullptr;
  bool fwmark_failed_ = false;
  std::atomic<bool> stop_{false};
  bool started_ = false;
  std::thread thread_;
  std::mutex mutex_;  // guards mailbox_ and events_: never taken on the packet path
  std::vector<std::function<void(Worker&)>> mailbox_;
  Events events_;
};

// The number of workers --workers 0 means: one per receive queue of the capture
// interfaces (the most any has), at most the CPUs lbd may run on.
uint32_t default_workers(const std::vector<std::string>& interfaces);

}  // namespace lbd

// Capture and injection on one interface. Capture is libpcap (memory-mapped TPACKET ring,
// immediate mode, non-blocking, pcap_dispatch in batches) with a BPF filter we set; the
// capture socket ignores outgoing frames (PACKET_IGNORE_OUTGOING) so lbd never re-captures
// what it sent. Injection is a raw AF_PACKET socket of our own, bound to the interface,
// flushed with one sendmmsg() per batch.
#pragma once

#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"

namespace lbd {

class Capture {
 public:
  // Throws std::runtime_error with one line naming the interface and the cause.
  // timeout_ms 0: immediate mode (a frame is handed over at once: lowest latency, one
  // wake-up per frame when traffic is light). N > 0: buffered TPACKET_V3 blocks handed over
  // when full or after N ms (fewer wake-ups under load, up to N ms added when light).
  // `buffer_bytes`: the kernel ring's size (frames wait there while lbd is busy).
  Capture(const std::string& ifname, int timeout_ms, int buffer_bytes = 32 << 20);
  ~Capture();
  // The interface is gone (deleted, or its capture failed): the socket is closed, its
  // drops kept; dispatch() reads nothing and set_filter() does nothing until open().
  void close();
  // It is back, perhaps under another index and MAC: the socket opened again, taking no
  // frame until set_filter(). Throws std::runtime_error as the constructor does.
  void open();
  bool is_open() const { return bool(pcap_); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }
  const MacAddr& mac() const { return mac_; }
  uint16_t mtu() const { return mtu_; }
  void set_mtu(uint16_t mtu) { mtu_ = mtu; }  // the interface's changed (ip link set mtu)

  // Replaces the kernel filter, or why not (an expression that does not compile).
  Status set_filter(const std::string& expr);
  bool broad_filter = false;  // capturing every IPv4 frame to this MAC (too many services)

  // Calls handler(u_char* user, const pcap_pkthdr*, const u_char*) for up to `budget` frames.
  int dispatch(int budget, pcap_handler handler, u_char* user);

  uint64_t kernel_drops();

  // Joins this interface's packet fanout group: `group` -1 creates one (its id, which may
  // be 0, is written back), else joins that one. With `program_fd` >= 0 the group's program is set: it picks
  // the member socket of each frame. Throws std::runtime_error naming the cause.
  void join_fanout(int& group, int program_fd);
  std::string error() const { return pcap_ ? pcap_geterr(pcap_.get()) : "closed"; }

 private:
  std::string name_;
  int timeout_ms_, buffer_bytes_;
  int ifindex_ = 0;
  MacAddr mac_;
  uint16_t mtu_ = 1500;
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> pcap_{nullptr, pcap_close};
  int fd_ = -1;  // pcap_'s own
  uint64_t closed_drops_ = 0;  // the kernel's drops on sockets closed before this one
};

// Frames queued for one interface and sent with one sendmmsg() per flush.
class Injector {
 public:
  static constexpr size_t kBatch = 256;
  static constexpr size_t kFrameMax = 9216 + 64;

  Injector(int ifindex, const std::string& ifname);
  ~Injector();
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  int ifindex() const { return ifindex_; }
  // The interface came back under `ifindex`: the socket bound to it instead. Throws
  // std::runtime_error naming the cause.
  void rebind(int ifindex, const std::string& ifname);
  // A buffer for the next frame; commit(len) queues it. Flushes first when full.
  uint8_t* next_buffer();
  void commit(size_t len);
  // Sends what is queued; returns frames that could not be sent.
  size_t flush();

 private:
  int ifindex_;
  UniqueFd fd_;
  size_t queued_ = 0;
  std::vector<uint8_t> buffers_;
  // Prepared once: per flush only the lengths change (no per-batch zeroing of 20 KB).
  std::array<mmsghdr, kBatch> msgs_{};
  std::array<iovec, kBatch> iov_{};
  sockaddr_ll dst_{};
};

}  // namespace lbd

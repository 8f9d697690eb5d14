// Capture and injection; see capture.hpp.
#include "lb/io/capture.hpp"

#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

namespace lbd {

static std::runtime_error io_error(const std::string& what, int err) {
  return std::runtime_error(fmt::format("{}: {}", what, std::strerror(err)));
}

Capture::Capture(const std::string& ifname, int timeout_ms, int buffer_bytes)
    : name_(ifname), timeout_ms_(timeout_ms), buffer_bytes_(buffer_bytes) {
  open();
}

void Capture::open() {
  close();
  const std::string& ifname = name_;
  ifindex_ = int(if_nametoindex(ifname.c_str()));
  if (!ifindex_) throw io_error(fmt::format("interface {}", ifname), errno);
  {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
    if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0) std::memcpy(mac_.b.data(), ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(s, SIOCGIFMTU, &ifr) == 0) mtu_ = uint16_t(ifr.ifr_mtu);
    ::close(s);
  }
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_.reset(pcap_create(ifname.c_str(), errbuf));
  if (!pcap_) throw std::runtime_error(fmt::format("capture on {}: {}", ifname, errbuf));
  pcap_set_snaplen(pcap_.get(), 65535);
  pcap_set_promisc(pcap_.get(), 0);
  if (timeout_ms_ <= 0) {
    pcap_set_immediate_mode(pcap_.get(), 1);  // no buffer timeout: no latency when traffic is light
  } else {
    pcap_set_timeout(pcap_.get(), timeout_ms_);
  }
  pcap_set_buffer_size(pcap_.get(), buffer_bytes_);
  if (int rc = pcap_activate(pcap_.get()); rc < 0) {
    std::string msg = pcap_geterr(pcap_.get());
    pcap_.reset();
    throw std::runtime_error(fmt::format("capture on {}: {} ({})", ifname, msg, pcap_statustostr(rc)));
  }
  fd_ = pcap_get_selectable_fd(pcap_.get());
  // libpcap opens its socket without SOCK_CLOEXEC: a command lbd runs (nft, a check)
  // must not inherit a capture socket on the director's interface.
  if (fd_ >= 0) fcntl(fd_, F_SETFD, fcntl(fd_, F_GETFD) | FD_CLOEXEC);
  pcap_setdirection(pcap_.get(), PCAP_D_IN);
  // Nothing until the caller's filter: a socket opened again must not take frames before
  // it has joined its fanout group (another worker's clients).
  if (const Status st = set_filter("less 1"); !st.is_ok()) {
    close();
    throw std::runtime_error(fmt::format("capture on {}: {}", ifname, st.message()));
  }
  if (pcap_setnonblock(pcap_.get(), 1, errbuf) < 0) {
    close();
    throw std::runtime_error(fmt::format("capture on {}: {}", ifname, errbuf));
  }
  // libpcap filters direction in userspace, after the copy; this stops outgoing frames
  // (ours included) from reaching the socket at all.
  const int one = 1;
  if (setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) {
    const int err = errno;
    close();
    throw io_error(fmt::format("PACKET_IGNORE_OUTGOING on {}", ifname), err);
  }
}

void Capture::close() {
  if (!pcap_) return;
  closed_drops_ = kernel_drops();
  pcap_.reset();
  fd_ = -1;
}

void Capture::join_fanout(int& group, int program_fd) {
  const bool create = group < 0;
  // The group's own hook must ignore outgoing frames too (the member's
  // PACKET_IGNORE_OUTGOING is its own hook's, which a member no longer has).
  const int type = PACKET_FANOUT_EBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING | (create ? PACKET_FANOUT_FLAG_UNIQUEID : 0);
  int arg = (create ? 0 : group) | type << 16;
  if (setsockopt(fd_, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0)
    throw io_error(fmt::format("packet fanout on {}", name_), errno);
  if (create) {
    socklen_t len = sizeof arg;
    if (getsockopt(fd_, SOL_PACKET, PACKET_FANOUT, &arg, &len) < 0)
      throw io_error(fmt::format("packet fanout id on {}", name_), errno);
    group = arg & 0xffff;
  }
  if (program_fd >= 0 && setsockopt(fd_, SOL_PACKET, PACKET_FANOUT_DATA, &program_fd, sizeof program_fd) < 0)
    throw io_error(fmt::format("fanout program on {}", name_), errno);
}

Capture::~Capture() = default;

Status Capture::set_filter(const std::string& expr) {
  if (!pcap_) return Status::ok();  // closed: open() starts with its own
  bpf_program prog{};
  if (pcap_compile(pcap_.get(), &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0)
    return Status::invalid(pcap_geterr(pcap_.get()));
  const int rc = pcap_setfilter(pcap_.get(), &prog);
  pcap_freecode(&prog);
  if (rc < 0) return Status::error(EIO, pcap_geterr(pcap_.get()));
  return Status::ok();
}

int Capture::dispatch(int budget, pcap_handler handler, u_char* user) {
  return pcap_ ? pcap_dispatch(pcap_.get(), budget, handler, user) : 0;
}

uint64_t Capture::kernel_drops() {
  pcap_stat st{};
  if (!pcap_ || pcap_stats(pcap_.get(), &st) < 0) return closed_drops_;
  return closed_drops_ + st.ps_drop;
}

Injector::Injector(int ifindex, const std::string& ifname) : buffers_(kBatch * kFrameMax) {
  rebind(ifindex, ifname);
  for (size_t i = 0; i < kBatch; ++i) {
    iov_[i].iov_base = buffers_.data() + i * kFrameMax;
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
    msgs_[i].msg_hdr.msg_name = &dst_;
    msgs_[i].msg_hdr.msg_namelen = sizeof dst_;
  }
}

void Injector::rebind(int ifindex, const std::string& ifname) {
  fd_.reset();
  queued_ = 0;  // what was queued for the old interface is not sent to the new one
  ifindex_ = ifindex;
  // Protocol 0: this socket receives nothing, it only sends.
  fd_.reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!fd_) throw io_error(fmt::format("packet socket for {}", ifname), errno);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = ifindex;
  sll.sll_protocol = 0;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    const int err = errno;
    fd_.reset();
    throw io_error(fmt::format("bind packet socket to {}", ifname), err);
  }
  const int sndbuf = 8 << 20;
  setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  dst_.sll_family = AF_PACKET;
  dst_.sll_ifindex = ifindex;
  dst_.sll_halen = 6;
}

Injector::~Injector() = default;

uint8_t* Injector::next_buffer() {
  if (queued_ == kBatch) flush();
  return buffers_.data() + queued_ * kFrameMax;
}

void Injector::commit(size_t len) { iov_[queued_++].iov_len = len; }

size_t Injector::flush() {
  if (!queued_) return 0;
  auto& msgs = msgs_;
  size_t sent = 0, failed = 0;
  while (sent < queued_) {
    const int n = sendmmsg(fd_.get(), msgs.data() + sent, unsigned(queued_ - sent), 0);
    if (n > 0) {
      sent += size_t(n);
    } else {
      if (errno == EINTR) continue;
      ++failed;  // this frame is refused (e.g. EMSGSIZE); skip it and send the rest
      ++sent;
    }
  }
  queued_ = 0;
  return failed;
}

}  // namespace lbd

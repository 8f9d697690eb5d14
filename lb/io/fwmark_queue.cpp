// The firewall-mark queue and its nftables table; see fwmark_queue.hpp.
#include "lb/io/fwmark_queue.hpp"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lb/base/log.hpp"
#include "lb/io/box_guard.hpp"

namespace lbd {

// After the operator's marking (mangle, -150), before DNAT (-100). The NAT replies: every
// TCP, UDP and ICMP packet from a fwmark service's NAT real to anyone but the director.
std::string FwmarkQueue::table_script() const {
  const std::string queue = fmt::format("queue flags {}num {}", opt_.fail_open ? "bypass " : "", opt_.queue);
  return fmt::format(
      "table ip {0} {{\n"
      "  set marks {{ type mark; }}\n"
      "  set nat_addrs {{ type ipv4_addr; }}\n"
      "  set local {{ type ipv4_addr; }}\n"
      "  chain prerouting {{\n"
      "    type filter hook prerouting priority -140; policy accept;\n"
      "    meta mark @marks {1}\n"
      "    ip saddr @nat_addrs ip daddr != @local meta l4proto {{ tcp, udp, icmp }} {1}\n"
      "  }}\n"
      "}}\n",
      kTable, queue);
}

FwmarkQueue::FwmarkQueue(const Options& o) : opt_(o), buf_(65536 + 4096) {
  // A killed lbd's table is replaced, not stacked.
  if (const auto made = run_nft(fmt::format("table ip {0}\ndelete table ip {0}\n{1}", kTable, table_script())); !made)
    throw std::runtime_error("fwmark queue: " + made.message());
  h_ = nfq_open();
  if (!h_) throw std::runtime_error(fmt::format("fwmark queue: nfq_open: {}", std::strerror(errno)));
  qh_ = nfq_create_queue(h_, opt_.queue, &FwmarkQueue::on_packet, this);
  if (!qh_) {
    const int e = errno;
    nfq_close(h_);
    (void)run_nft(fmt::format("delete table ip {}\n", kTable));
    throw std::runtime_error(fmt::format("fwmark queue: cannot bind NFQUEUE {} (another program's, or no "
                                         "nfnetlink_queue in this kernel): {}", opt_.queue, std::strerror(e)));
  }
  nfq_set_mode(qh_, NFQNL_COPY_PACKET, 0xffff);
  nfq_set_queue_maxlen(qh_, 4096);
  if (opt_.fail_open) nfq_set_queue_flags(qh_, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
  fd_ = nfq_fd(h_);
  const int size = 4 << 20;  // room for bursts between two reads
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
}

FwmarkQueue::~FwmarkQueue() {
  if (qh_) nfq_destroy_queue(qh_);
  if (h_) nfq_close(h_);
  if (const auto gone = run_nft(fmt::format("delete table ip {}\n", kTable)); !gone)
    LBD_LOG(kError, "fwmark", "cannot remove nftables table ip {}: {}", kTable, gone.message());
}

Status FwmarkQueue::apply(const std::vector<uint32_t>& marks, const std::vector<Ipv4>& nat_addrs,
                          const std::vector<Ipv4>& local) {
  std::string script = fmt::format("flush set ip {0} marks\nflush set ip {0} nat_addrs\nflush set ip {0} local\n", kTable);
  auto add = [&](const char* set, const std::vector<std::string>& elems) {
    if (!elems.empty()) script += fmt::format("add element ip {} {} {{ {} }}\n", kTable, set, fmt::join(elems, ", "));
  };
  std::vector<std::string> m, n, l;
  for (uint32_t v : marks) m.push_back(std::to_string(v));
  for (Ipv4 a : nat_addrs) n.push_back(to_string(a));
  for (Ipv4 a : local) l.push_back(to_string(a));
  add("marks", m);
  add("nat_addrs", n);
  add("local", l);
  const auto done = run_nft(script);
  if (!done) return Status::error(EIO, "fwmark queue: " + done.message());
  return Status::ok();
}

int FwmarkQueue::on_packet(nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void* self_ptr) {
  auto* self = static_cast<FwmarkQueue*>(self_ptr);
  const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  const uint32_t id = ntohl(ph->packet_id);
  unsigned char* data = nullptr;
  const int len = nfq_get_payload(nfa, &data);
  Packet p{{}, nfq_get_nfmark(nfa), int(nfq_get_indev(nfa)), MacAddr{}};
  if (const nfqnl_msg_packet_hw* hw = nfq_get_packet_hw(nfa); hw && ntohs(hw->hw_addrlen) == 6)
    std::memcpy(p.hw_src.b.data(), hw->hw_addr, 6);
  bool taken = false;
  if (len > 0) {
    p.ip = {data, size_t(len)};
    taken = (*self->handler_)(p);
  }
  // Not lbd's: to the kernel at once. lbd's: dropped with the rest of the batch.
  if (!taken) nfq_set_verdict(qh, id, NF_ACCEPT, 0, nullptr);
  else self->any_taken_ = true;
  self->last_id_ = id;
  return 0;
}

int FwmarkQueue::receive(int budget, const Handler& handler) {
  handler_ = &handler;
  any_taken_ = false;
  int n = 0;
  for (; n < budget; ++n) {
    const ssize_t got = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      if (errno == ENOBUFS) {  // the kernel dropped some: counted, the socket still works
        ++enobufs_;
        continue;
      }
      error_ = std::strerror(errno);
      n = -1;
      break;
    }
    nfq_handle_packet(h_, reinterpret_cast<char*>(buf_.data()), int(got));
  }
  // One verdict for every packet lbd took: each id up to the last not yet given one.
  if (any_taken_) nfq_set_verdict_batch(qh_, last_id_, NF_DROP);
  handler_ = nullptr;
  return n;
}

}  // namespace lbd

// A worker's loop; see worker.hpp.
#include "lb/io/worker.hpp"

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "lb/base/log.hpp"
#include "lb/base/host.hpp"
#include "lb/io/fwmark_queue.hpp"
#include "lb/io/transmit.hpp"
#include "lb/io/xdp_flow_cache.hpp"

namespace lbd {
namespace {

// The fast path as one worker sees it: its entries carry its index, so the program counts
// their use in the worker's own slots, and only worker 0 writes the reals' next hops.
class WorkerFlowCache final : public FlowCache {
 public:
  WorkerFlowCache(XdpFlowCache& x, uint32_t worker) : x_(x), worker_(worker) {}
  bool put(const lbd_flow_key& key, const lbd_flow& flow) override {
    lbd_flow f = flow;
    f.worker = uint8_t(worker_);
    return x_.put(key, f);
  }
  void erase(const lbd_flow_key& key) override { x_.erase(key); }
  bool get(const lbd_flow_key& key, lbd_flow& flow) override { return x_.get(key, flow); }
  bool take(const lbd_flow_key& key, lbd_flow& flow) override { return x_.take(key, flow); }
  void for_each(const std::function<void(const lbd_flow_key&, const lbd_flow&)>& f) override {
    x_.for_each([&](const lbd_flow_key& k, const lbd_flow& v) {
      if (v.worker == worker_) f(k, v);
    });
  }
  void set_real(uint32_t real_id, const lbd_real_hop& hop) override {
    if (worker_ == 0) x_.set_real(real_id, hop);
  }
  lbd_real_use real_use(uint32_t real_id, bool reply) override { return x_.real_use_of(worker_, real_id, reply); }

 private:
  XdpFlowCache& x_;
  uint32_t worker_;
};

struct DispatchCtx {
  Worker* self;
  DataPath* dp;
  Capture* cap;
  Injector* in;  // the capture interface's own injector
  std::vector<uint8_t>* scratch;
  uint64_t now_ms;
};

}  // namespace

Worker::Worker(const Config& cfg, std::unique_ptr<ConnTable> table) : cfg_(cfg), conns_(std::move(table)) {
  services_.defer_release();
  dp_ = std::make_unique<DataPath>(services_, *conns_, timeouts_);
  std::vector<InterfaceInfo> ifs;
  for (const auto& name : cfg.interfaces) {
    captures_.push_back(std::make_unique<Capture>(name, cfg.capture_timeout_ms));
    // A SYN ring need not hold long: what waits there at saturation only waits longer.
    syn_captures_.push_back(std::make_unique<Capture>(name, cfg.capture_timeout_ms, 4 << 20));
    injectors_.push_back(std::make_unique<Injector>(captures_.back()->ifindex(), name));
    ifs.push_back({captures_.back()->ifindex(), captures_.back()->mac(), captures_.back()->mtu()});
  }
  failed_.assign(2 * captures_.size(), false);
  dp_->set_interfaces(ifs);
  mailbox_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  timer_fd_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!mailbox_fd_ || !timer_fd_) {
    const int err = errno;
    throw std::runtime_error(fmt::format("worker {}: {}", cfg.index, std::strerror(err)));
  }
}

Worker::~Worker() {
  stop();
  dp_->set_flow_cache(nullptr);
}

void Worker::stop() {
  if (thread_.joinable()) {
    stop_ = true;
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(mailbox_fd_.get(), &one, sizeof one);
    thread_.join();
  }
  started_ = false;
  run_mailbox();  // what was posted meanwhile runs here
}

void Worker::set_flow_cache(XdpFlowCache* cache) {
  flow_view_ = cache ? std::make_unique<WorkerFlowCache>(*cache, cfg_.index) : nullptr;
  dp_->set_flow_cache(flow_view_.get());
}

ShardCounts Worker::counts() {
  dp_->fold_offloaded();  // what the fast path forwarded for this shard, as if lbd had
  ShardCounts s;
  s.reals.resize(services_.real_slots());
  services_.for_each_real([&](Real& r) {
    s.reals[r.id] = {r.stats, r.dest.active_conns, r.dest.inactive_conns, r.persist_conns};
  });
  s.services.resize(services_.service_slots());
  services_.for_each_service([&](const Service& sv) { s.services[sv.id] = sv.stats; });
  s.dp = dp_->counters();
  s.conns = conns_->size();
  for (auto& c : captures_) s.kernel_drops += c->kernel_drops();
  for (auto& c : syn_captures_) s.kernel_drops += c->kernel_drops();
  s.unreferenced = services_.unreferenced_deleted();
  return s;
}

void Worker::start() {
  const itimerspec its{{0, 100 * 1000000}, {0, 100 * 1000000}};
  timerfd_settime(timer_fd_.get(), 0, &its, nullptr);
  started_ = true;
  thread_ = std::thread([this] { loop(); });
}

void Worker::post(std::function<void(Worker&)> f) {
  if (!started_) {
    f(*this);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    mailbox_.push_back(std::move(f));
  }
  const uint64_t one = 1;
  [[maybe_unused]] auto n = write(mailbox_fd_.get(), &one, sizeof one);
}

Worker::Events Worker::take_events() {
  std::lock_guard lock(mutex_);
  return std::exchange(events_, {});
}

void Worker::report() {
  auto& unresolved = dp_->unresolved_reals();
  auto& pmtu = dp_->pmtu_learnt();
  if (unresolved.empty() && pmtu.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (uint32_t id : unresolved)
      if (std::find(events_.unresolved.begin(), events_.unresolved.end(), id) == events_.unresolved.end())
        events_.unresolved.push_back(id);
    for (uint32_t id : pmtu) {
      const Real& r = services_.real(id);
      events_.pmtu.push_back({id, r.tun_pmtu, r.tun_pmtu_until});
    }
  }
  unresolved.clear();
  pmtu.clear();
  const uint64_t one = 1;
  if (event_fd_ >= 0) [[maybe_unused]] auto n = write(event_fd_, &one, sizeof one);
}

void Worker::run_mailbox() {
  uint64_t n;
  [[maybe_unused]] auto r = read(mailbox_fd_.get(), &n, sizeof n);
  std::vector<std::function<void(Worker&)>> todo;
  {
    std::lock_guard lock(mutex_);
    todo.swap(mailbox_);
  }
  for (auto& f : todo) f(*this);
}

void Worker::detach(size_t slot) {
  captures_[slot]->close();
  syn_captures_[slot]->close();
  sockets_changed_ = true;
}

void Worker::attach(size_t slot) {
  captures_[slot]->open();
  syn_captures_[slot]->open();
  injectors_[slot]->rebind(captures_[slot]->ifindex(), captures_[slot]->name());
  failed_[slot] = failed_[captures_.size() + slot] = false;
  sockets_changed_ = true;
}

void Worker::send(const uint8_t* frame, size_t len, const Verdict& v, Injector* in_place) {
  Injector* out = injector_for(v.ifindex);
  if (!out) {  // its interface is gone
    dp_->count_tx_failed(1);
    return;
  }
  transmit(*out, frame, len, v, out == in_place, scratch_);
}

int Worker::on_frames(Capture& cap, int rounds) {
  DispatchCtx ctx{this, dp_.get(), &cap, injector_for(cap.ifindex()), &scratch_, 0};
  auto handler = [](u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    auto* c = reinterpret_cast<DispatchCtx*>(user);
    auto& scratch = *c->scratch;
    if (h->caplen != h->len || h->caplen > scratch.size()) {
      c->dp->count_drop(DropReason::kFrameTooBig);  // truncated by the capture
      return;
    }
    // Frames that fit the interface are processed in the buffer they will most likely be
    // sent from (DR is usually one-armed); super-frames in a scratch buffer, since their
    // segments are written into the injector's buffers.
    const bool fits = h->caplen <= size_t(c->cap->mtu()) + sizeof(EthHdr) && h->caplen <= Injector::kFrameMax;
    uint8_t* buf = fits ? c->in->next_buffer() : scratch.data();
    const size_t capacity = fits ? Injector::kFrameMax : scratch.size();
    std::memcpy(buf, bytes, h->caplen);
    const Verdict v = c->dp->process({buf, h->caplen}, c->cap->ifindex(), c->now_ms, capacity);
    if (v.transmit) c->self->send(buf, v.length ? v.length : h->caplen, v, fits ? c->in : nullptr);
  };
  int total = 0;
  for (int round = 0; round < rounds; ++round) {  // bounded: let the others run too
    ctx.now_ms = now_ms_ = monotonic_ms();
    const int n = cap.dispatch(256, handler, reinterpret_cast<u_char*>(&ctx));
    if (n < 0) {
      total = -1;
      break;
    }
    if (n == 0) break;
    total += n;
    flush_all();
  }
  flush_all();
  send_sync(false);  // full messages now; the rest at the tick
  return total;
}

void Worker::on_queue() {
  now_ms_ = monotonic_ms();
  const int n = fwmark_queue_->receive(64, [this](const FwmarkQueue::Packet& q) {
    // A frame as a capture would have seen it: to the input interface's MAC, from the
    // previous hop's, carrying the packet. From an interface lbd does not capture on, it
    // cannot be answered or sent on: the kernel's.
    Injector* in = injector_for(q.ifindex);
    const Capture* cap = nullptr;
    for (const auto& c : captures_)
      if (c->ifindex() == q.ifindex) cap = c.get();
    if (!in || !cap) return false;
    // A datagram the director's stack reassembled may be larger than a frame: processed in
    // the scratch buffer, as a capture's super-frame is, and sent in fragments.
    const size_t len = sizeof(EthHdr) + q.ip.size();
    const bool fits = len <= Injector::kFrameMax;
    if (len > scratch_.size()) {
      dp_->count_drop(DropReason::kFrameTooBig);
      return true;
    }
    uint8_t* buf = fits ? in->next_buffer() : scratch_.data();
    const bool v6 = !q.ip.empty() && (q.ip[0] >> 4) == 6;
    EthHdr eth{cap->mac(), q.hw_src, Be16::from_host(v6 ? kEtherTypeIpv6 : kEtherTypeIpv4)};
    std::memcpy(buf, &eth, sizeof eth);
    std::memcpy(buf + sizeof eth, q.ip.data(), q.ip.size());
    const uint64_t unclaimed = dp_->counters().drops[size_t(DropReason::kNoService)];
    const bool icmp = v6 ? q.ip.size() > 6 && q.ip[6] == kProtoIcmpv6 : q.ip.size() > 9 && q.ip[9] == kProtoIcmp;
    const Verdict v = dp_->process({buf, len}, q.ifindex, now_ms_, fits ? Injector::kFrameMax : scratch_.size(), q.mark);
    if (v.transmit) send(buf, v.length ? v.length : len, v, fits ? in : nullptr);
    // An ICMP error lbd did not pass on is the director's own; a packet no service takes
    // (its mark's service just deleted, say) passes on, as in IPVS.
    if (icmp) return v.transmit;
    return dp_->counters().drops[size_t(DropReason::kNoService)] == unclaimed;
  });
  flush_all();
  send_sync(false);
  if (n < 0) {  // not read again: the packets queued meanwhile are the kernel's (--fwmark-fail)
    LBD_LOG(kError, "fwmark", "worker {}: reading the fwmark queue failed, no longer read: {}", cfg_.index,
            fwmark_queue_->error());
    fwmark_failed_ = true;
    sockets_changed_ = true;
  }
}

void Worker::set_sync_master(int fd, const sockaddr_in& group, uint8_t syncid, uint32_t maxlen) {
  if (sync_fd_ >= 0) send_sync(true);  // what the previous master had queued
  sync_fd_ = fd;
  sync_group_ = group;
  dp_->set_sync_master(fd >= 0);
  sync_msg_ = fd >= 0 ? std::make_unique<sync::MessageBuilder>(syncid, maxlen) : nullptr;
}

void Worker::send_sync(bool flush) {
  if (!sync_msg_) return;
  auto send = [this] {
    dp_->count_sync_sent(send_sync_message(sync_fd_, sync_group_, sync_msg_->bytes()));
    sync_msg_->clear();
  };
  for (const sync::Record& r : dp_->sync_out()) {
    if (sync_msg_->add(r)) continue;
    send();
    sync_msg_->add(r);
  }
  dp_->sync_out().clear();
  if (flush && !sync_msg_->empty()) send();
}

void Worker::tick(uint64_t now_ms) {
  dp_->expire(now_ms, 65536);
  send_sync(true);
  dp_->sync_real_hops(now_ms);
  dp_->release_held(now_ms, [this](std::span<const uint8_t> f, const Verdict& v) {
    send(f.data(), f.size(), v, nullptr);
  });
  flush_all();
  report();
}

void Worker::loop() {
  // Connections' sockets first, then the SYNs': a worker at saturation reads at most two
  // batches of SYNs between two looks at the packets of connections already made.
  std::vector<Capture*> caps;
  for (auto& c : captures_) caps.push_back(c.get());
  for (auto& c : syn_captures_) caps.push_back(c.get());
  const size_t mailbox = caps.size();
  std::vector<pollfd> pfds(caps.size() + 3);
  auto sockets = [&] {  // a closed or failed capture's -1: poll ignores it
    for (size_t i = 0; i < caps.size(); ++i) pfds[i] = {failed_[i] ? -1 : caps[i]->fd(), POLLIN, 0};
    pfds[mailbox] = {mailbox_fd_.get(), POLLIN, 0};
    pfds[mailbox + 1] = {timer_fd_.get(), POLLIN, 0};
    pfds[mailbox + 2] = {fwmark_queue_ && !fwmark_failed_ ? fwmark_queue_->fd() : -1, POLLIN, 0};
  };
  sockets();
  while (!stop_) {
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "worker", "worker {}: poll: {}", cfg_.index, std::strerror(errno));
      break;
    }
    for (size_t i = 0; i < caps.size(); ++i) {
      if (!pfds[i].revents || failed_[i]) continue;
      if (on_frames(*caps[i], i < captures_.size() ? 8 : 2) < 0) {
        failed_[i] = true;
        pfds[i].fd = -1;  // poll ignores it until the control thread opens it again
        {
          std::lock_guard lock(mutex_);
          events_.capture_failed = fmt::format("capture failed: {}", caps[i]->error());
          events_.failed_slots.push_back(i % captures_.size());
        }
        const uint64_t one = 1;
        if (event_fd_ >= 0) [[maybe_unused]] auto n = write(event_fd_, &one, sizeof one);
      }
    }
    if (pfds[mailbox + 2].revents) on_queue();
    if (pfds[mailbox].revents) run_mailbox();
    if (pfds[mailbox + 1].revents) {
      uint64_t ticks;
      while (read(timer_fd_.get(), &ticks, sizeof ticks) == sizeof ticks) {}
      tick(monotonic_ms());
    }
    if (std::exchange(sockets_changed_, false)) sockets();
  }
}

uint32_t default_workers(const std::vector<std::string>& interfaces) {
  uint32_t queues = 1;
  for (const auto& name : interfaces) {
    uint32_t n = 0;
    if (DIR* d = opendir(fmt::format("/sys/class/net/{}/queues", name).c_str())) {
      while (const dirent* e = readdir(d)) n += std::strncmp(e->d_name, "rx-", 3) == 0;
      closedir(d);
    }
    queues = std::max(queues, n);
  }
  cpu_set_t set;
  uint32_t cpus = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = uint32_t(std::max(CPU_COUNT(&set), 1));
  return std::min(queues, cpus);
}

}  // namespace lbd

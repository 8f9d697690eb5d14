// The handover to the next lbd and from the previous one; see handover.hpp and control.hpp.
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "lb/base/host.hpp"
#include "lb/base/log.hpp"
#include "lb/daemon/control.hpp"
#include "lb/io/systemd.hpp"

namespace lbd {
namespace {

// Names in systemd's store: the directory, and every worker's slab.
constexpr const char* kTableName = "lbd-table";
constexpr const char* kConnsName = "lbd-conns";
constexpr const char* kSyncName = "lbd-sync";  // the running sync daemons (control_sync.cpp)
// How long --takeover waits for the running lbd to stop once it has handed over.
constexpr int kTakeoverStopMs = 30000;

// A small memfd's text (the sync daemons' lines: a few hundred bytes).
std::string read_fd_text(int fd) {
  std::string s;
  char buf[4096];
  for (off_t off = 0;;) {
    const ssize_t n = pread(fd, buf, sizeof buf, off);
    if (n <= 0 || s.size() > (1u << 16)) break;
    s.append(buf, size_t(n));
    off += n;
  }
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> v;
  for (size_t i = 0; i < s.size();) {
    const size_t e = std::min(s.find('\n', i), s.size());
    if (e > i) v.push_back(s.substr(i, e - i));
    i = e + 1;
  }
  return v;
}

}  // namespace

std::optional<Control::Previous> Control::open_previous(UniqueFd dir_fd, std::vector<UniqueFd> slab_fds,
                                                        std::string source) {
  auto refuse = [&](const std::string& why) {
    LBD_LOG(kWarn, "handover", "the connection table from {} is refused: {}; starting with an empty table", source,
            why);
    return std::nullopt;
  };
  Result<HandoverState> dir = HandoverDirectory::read(dir_fd.get());
  if (!dir) return refuse(dir.message());
  Previous prev{std::move(dir).value(), {}, std::move(source)};
  for (auto& fd : slab_fds) {
    Result<ConnSlab> slab = ConnSlab::open(std::move(fd));
    if (!slab) return refuse(slab.message());
    prev.slabs.push_back(std::move(slab).value());
  }
  return prev;
}

std::optional<Control::Previous> Control::previous_from_systemd() {
  UniqueFd dir;
  std::vector<UniqueFd> slabs;
  for (NamedFd& p : passed_fds()) {
    if (p.name == kTableName)
      dir = std::move(p.fd);
    else if (p.name == kConnsName)
      slabs.push_back(std::move(p.fd));
    else if (p.name == kSyncName)
      previous_sync_ = split_lines(read_fd_text(p.fd.get()));
    else
      LBD_LOG(kWarn, "handover", "systemd passed a descriptor named {}: not lbd's, closed", p.name);
  }
  if (!dir) return std::nullopt;  // a first start
  return open_previous(std::move(dir), std::move(slabs), "systemd's file descriptor store");
}

std::optional<Control::Previous> Control::previous_from_takeover() {
  std::vector<UniqueFd> fds;
  std::string reply;
  try {
    reply = control_request(cfg_.socket_path, "TAKEOVER\n", 30000, &fds);
  } catch (const std::exception& e) {
    LBD_LOG(kWarn, "handover", "--takeover: {}: starting with an empty table", e.what());
    return std::nullopt;
  }
  if (const auto st = reply_status(reply); st && !st->is_ok())
    throw std::runtime_error(fmt::format("--takeover: the running lbd refused: {}", st->message()));
  // "OK <pid>", then (lbd since its sync daemons) a blank and its --start-daemon lines,
  // escaped as a request's arguments: they run here next.
  int pid = 0;
  const char* const end = reply.data() + reply.size();
  const auto [after_pid, ec] = std::from_chars(reply.data() + std::min<size_t>(3, reply.size()), end, pid);
  if (reply.rfind("OK ", 0) != 0 || ec != std::errc{} || pid <= 0 || fds.empty())
    throw std::runtime_error(fmt::format("--takeover: the running lbd's reply is not a handover: {:?}", reply));
  if (std::string_view rest(after_pid, size_t(end - after_pid)); !rest.empty() && rest.front() == ' ') {
    rest = rest.substr(1, rest.find('\n') - 1);
    if (!decode_args(rest, previous_sync_)) {
      previous_sync_.clear();
      LBD_LOG(kWarn, "handover", "--takeover: the running lbd's sync daemons are unreadable: not started here");
    }
  }
  // It stops as lbd stops (its changes to the box undone); this one starts after it.
  LBD_LOG(kInfo, "handover", "--takeover: lbd {} handed over {} table(s); waiting for it to stop", pid, fds.size() - 1);
  if (const UniqueFd pfd(int(syscall(SYS_pidfd_open, pid_t(pid), 0))); pfd) {
    pollfd p{pfd.get(), POLLIN, 0};
    if (poll(&p, 1, kTakeoverStopMs) == 0)
      throw std::runtime_error(fmt::format("--takeover: lbd {} has not stopped within {} s", pid, kTakeoverStopMs / 1000));
  }
  UniqueFd dir = std::move(fds.front());
  fds.erase(fds.begin());
  return open_previous(std::move(dir), std::move(fds), "the running lbd (--takeover)");
}

void Control::adopt_previous(Previous& prev) {
  const uint64_t start = monotonic_ms();
  const uint32_t now_s = DataPath::seconds(start);
  AdoptCounts total;
  on_each_worker([&](Worker& w) {  // before the workers start: one after the other, here
    const auto mine = [&](const IpAddr& client, uint32_t fwmark) { return worker_of(client, fwmark) == w.index(); };
    total += adopt_connections(w.data_path(), w.services(), prev.slabs, prev.dir, mine, now_s);
    if (w.index() == 0) adopt_counters(w.services(), prev.dir);
    adopt_health(w.services(), prev.dir);
  });
  if (const size_t down = adopt_health(services_, prev.dir))
    LBD_LOG(kInfo, "handover", "{} real(s) stay down as the previous lbd had them, until their checks pass", down);
  handover_adopted_ = total.adopted;
  handover_not_adopted_ = total.no_real + total.refused;
  LBD_LOG(kInfo, "handover", "took over {} connections from {} (lbd {}) in {} ms; left: {} due, {} whose real is "
          "not configured now, {} refused (table full or duplicate)", total.adopted, prev.source, prev.dir.pid,
          monotonic_ms() - start, total.expired, total.no_real, total.refused);
}

void Control::start_handover() {
  directory_ = std::make_unique<HandoverDirectory>();
  write_directory();
  if (!under_systemd()) return;
  // The previous lbd's descriptors go (adopted, or refused); this one's are kept instead.
  release_stored_fds(kTableName);
  release_stored_fds(kConnsName);
  release_stored_fds(kSyncName);
  std::vector<int> slabs;
  for (auto& w : workers_) slabs.push_back(w->table_fd());
  sync_store_.reset(memfd_create(kSyncName, MFD_CLOEXEC));
  store_sync_daemons();
  if (!store_fds(kTableName, {directory_->fd()}) || !store_fds(kConnsName, slabs) ||
      (sync_store_ && !store_fds(kSyncName, {sync_store_.get()})))
    LBD_LOG(kWarn, "handover", "systemd did not keep the connection table: a restart loses the connections "
            "(the unit needs FileDescriptorStoreMax={} or more)", 1 + workers_.size());
}

void Control::write_directory(uint64_t stopped_ms) {
  if (!directory_) return;
  HandoverState s = handover_state(services_);
  s.written_ms = monotonic_ms();
  s.stopped_ms = stopped_ms;
  s.pid = uint32_t(getpid());
  if (!directory_->write(s))
    LBD_LOG(kError, "handover", "the connection table's directory: {}: a restart now loses the connections",
            std::strerror(errno));
}

void Control::stop_for_handover() {
  if (handed_over_) return;
  handed_over_ = true;
  const uint64_t stopped = monotonic_ms();
  for (auto& w : workers_) w->stop();
  gather();
  write_directory(stopped);
}

Reply Control::handle_takeover() {
  if (!directory_) return {status_reply(Status::error(EAGAIN, "lbd is starting: try again")), {}, {}, {}};
  stop_for_handover();
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->conns().size();  // stopped: the control thread's now
  LBD_LOG(kInfo, "handover", "a new lbd takes over: the workers stopped, {} connections handed over; this lbd "
          "stops", n);
  // The fwmark queue's chains stay for the new lbd: while neither reads the queue the marked
  // packets are dropped (--fwmark-fail open: they go on), never answered by the director.
  if (fwmark_) fwmark_->keep_chains_at_exit();
  const std::vector<std::string> daemons = sync_daemon_lines();
  Reply r{fmt::format("OK {}{}{}\n", getpid(), daemons.empty() ? "" : " ", encode_args(daemons)), {},
          {directory_->fd()}, [this] { running_ = false; }};
  for (auto& w : workers_) r.fds.push_back(w->table_fd());
  return r;
}

}  // namespace lbd

// The connection sync daemons (ipvsadm --start-daemon master|backup); see control.hpp.
// The master's records are made and sent by the workers (DataPath::sync_out, Worker's
// sender) on the socket opened here; a backup's datagrams are read here, checked whole
// (sync_message.hpp) and applied by the workers that own their clients.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "lb/base/host.hpp"
#include "lb/base/log.hpp"
#include "lb/daemon/control.hpp"

namespace lbd {

Status Control::sync_daemon_command(const CliCommand& c) {
  const bool master = c.daemon_state == "master";
  std::optional<SyncDaemon>& slot = master ? sync_master_ : sync_backup_;
  if (c.cmd == Command::kStopDaemon) {
    if (!slot) return Status::error(ESRCH, fmt::format("no {} sync daemon is running", c.daemon_state));
    if (master) on_each_worker([](Worker& w) { w.set_sync_master(-1, {}, 0, 0); });  // what was queued is sent
    LBD_LOG(kWarn, "sync", "{} sync daemon on {} stopped", c.daemon_state, slot->spec.mcast_ifn);
    slot.reset();
    publish_sync_role();
    return Status::ok();
  }
  if (slot) return Status::error(EEXIST, fmt::format("a {} sync daemon is running already", c.daemon_state));
  auto sock = open_sync_socket(c.daemon, master);
  if (!sock) return sock.status();
  slot = SyncDaemon{c.daemon, std::move(sock).value()};
  if (master) {
    const SyncSocket& s = slot->sock;
    on_each_worker([&](Worker& w) { w.set_sync_master(s.fd.get(), s.group, c.daemon.syncid, s.maxlen); });
  } else {
    sync_buf_.resize(sync::kMaxMessage + 1);
  }
  publish_sync_role();
  LBD_LOG(kWarn, "sync", "{} sync daemon on {} (syncid {}, group {}:{}, ttl {}, messages up to {} bytes)",
          c.daemon_state, c.daemon.mcast_ifn, c.daemon.syncid, c.daemon.group, c.daemon.port, c.daemon.ttl,
          slot->sock.maxlen);
  return Status::ok();
}

std::string start_daemon_line(const std::string& role, const sync::DaemonSpec& spec) {
  CliCommand c;
  c.cmd = Command::kStartDaemon;
  c.daemon_state = role;
  c.daemon = spec;
  return join_args(canonical_args(c));
}

std::vector<std::string> Control::sync_daemon_lines() const {
  std::vector<std::string> v;
  if (sync_master_) v.push_back(start_daemon_line("master", sync_master_->spec));
  if (sync_backup_) v.push_back(start_daemon_line("backup", sync_backup_->spec));
  return v;
}

void Control::store_sync_daemons() {
  if (!sync_store_) return;
  std::string text;
  for (const auto& l : sync_daemon_lines()) text += l + "\n";
  if (ftruncate(sync_store_.get(), 0) < 0 || pwrite(sync_store_.get(), text.data(), text.size(), 0) != ssize_t(text.size()))
    LBD_LOG(kError, "sync", "keeping the sync daemons for the next lbd: {}", std::strerror(errno));
}

void Control::restore_sync_daemons() {
  for (const std::string& line : std::exchange(previous_sync_, {})) {
    auto parsed = parse_command(split_line(line), "lbd");
    const auto* c = std::get_if<CliCommand>(&parsed);
    const Status st = c && c->cmd == Command::kStartDaemon ? sync_daemon_command(*c)
                                                           : Status::invalid("not a --start-daemon line");
    if (st.is_ok())
      LBD_LOG(kInfo, "sync", "the previous lbd's sync daemon runs again: {}", line);
    else
      LBD_LOG(kError, "sync", "the previous lbd's sync daemon ({}) does not run again: {}", line, st.message());
  }
}

void Control::publish_sync_role() {
  store_sync_daemons();
  const bool alone = backup_alone();
  on_each_worker([alone](Worker& w) { w.data_path().set_backup_alone(alone); });
  announce_vips();
}

void Control::announce_vips() {
  if (!announcer_) return;
  const bool passive = backup_alone() && timeouts_.sysctl.backup_only;  // as DataPath::passive()
  // (Both families: /32 and /128 routes.)
  const std::vector<IpAddr> want = passive ? std::vector<IpAddr>{} : services_.serving_vips();  // sorted
  const std::vector<IpAddr> before = announcer_->announced();
  if (want == before) return;
  const Status st = announcer_->announce(want);
  for (const IpAddr& v : before)
    if (std::find(announcer_->announced().begin(), announcer_->announced().end(), v) == announcer_->announced().end())
      LBD_LOG(kWarn, "announce", "{} withdrawn (table {}): {}", v, announcer_->table(),
              passive ? "lbd is a passive sync backup" : "no real of its services can take a connection");
  for (const IpAddr& v : announcer_->announced())
    if (std::find(before.begin(), before.end(), v) == before.end())
      LBD_LOG(kInfo, "announce", "{} announced (table {})", v, announcer_->table());
  if (!st.is_ok()) LBD_LOG(kError, "announce", "{}", st.message());
}

void Control::on_sync_readable() {
  if (!sync_backup_) return;
  const int fd = sync_fd();
  std::vector<std::vector<sync::Record>> per_worker(workers_.size());
  for (int n = 0; n < 256; ++n) {  // bounded: the control socket and the timer are served too
    const ssize_t len = recv(fd, sync_buf_.data(), sync_buf_.size(), MSG_DONTWAIT);
    if (len < 0) break;
    ++sync_received_;
    const sync::Decoded d = sync::decode({sync_buf_.data(), size_t(len)}, sync_backup_->spec.syncid);
    ++sync_refused_[size_t(d.refusal)];
    for (size_t i = 0; i < d.skipped.size(); ++i) sync_skipped_[i] += d.skipped[i];
    for (const sync::Record& r : d.records) per_worker[worker_of(r.caddr, r.fwmark)].push_back(r);
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (per_worker[i].empty()) continue;
    workers_[i]->post([recs = std::move(per_worker[i])](Worker& w) {
      const uint64_t now = monotonic_ms();
      for (const sync::Record& r : recs) w.data_path().apply_sync(r, now);
    });
  }
}

}  // namespace lbd

// The control thread's health checks: targets for the engine, its events, the workers'
// copies of each real's state, and lbadm --lbd-health; see control.hpp.
#include "lb/daemon/control.hpp"

#include <algorithm>
#include <chrono>
#include <map>

#include "health/spec.hpp"
#include "lb/base/host.hpp"
#include "lb/base/log.hpp"

namespace lbd {

// The engine gets one target per real whose effective check is not "none"; a real that no
// longer has a check is up again.
void Control::configure_health() {
  if (!health_) return;
  std::vector<health::Target> targets;
  services_.for_each_service([&](const Service& s) {
    for (uint32_t id : s.reals) {
      Real& r = services_.real(id);
      health::Target t;
      t.check = health::effective_check(s.options.health.check, r.health_override);
      if (!t.check.kind) {
        if (r.health_down) services_.set_health(r, true);
        continue;
      }
      t.real_id = r.id;
      t.service = to_string(s.key);
      t.addr = r.addr;
      t.port = r.port;
      t.vip = s.key.vip;
      t.vport = s.key.port;
      t.protocol = s.key.protocol;
      t.notify = s.options.health.notify;
      t.down_now = r.health_down;
      targets.push_back(std::move(t));
    }
  });
  health_->configure(std::move(targets));
  publish_health();
}

void Control::publish_health() {
  std::vector<std::pair<uint32_t, bool>> down;  // every real's, by id
  services_.for_each_real([&](const Real& r) { down.push_back({r.id, r.health_down}); });
  on_each_worker([&](Worker& w) {
    for (const auto& [id, is_down] : down) {
      Real& r = w.services().real(id);
      if (r.in_use && r.health_down != is_down) w.services().set_health(r, !is_down);
    }
    // A real down with on-down=expire: off the fast path now.
    w.data_path().sync_real_hops(monotonic_ms());
  });
}

void Control::on_health_events() {
  for (const auto& e : health_->take_events()) {
    const health::Target& t = e.target;
    Real& r = services_.real(t.real_id);
    if (!r.in_use || r.deleted || r.sorry || !(r.addr == t.addr) || r.port != t.port)
      continue;  // the real changed since the check ran
    Service& s = services_.service(r.service_id);
    if (!(s.key == ServiceKey{t.protocol, t.vip, t.vport})) continue;
    const std::string real = health::real_name(t);
    const bool had_quorum = s.quorum;
    const bool sorry_changed = services_.set_health(r, e.up);
    if (e.up)
      LBD_LOG(kWarn, "health", "{}: real {} is UP ({}): takes new connections again", t.service,
              real, e.reason);
    else
      LBD_LOG(kWarn, "health", "{}: real {} is DOWN ({}): no new connections{}", t.service, real,
              e.reason,
              s.options.health.on_down == health::OnDown::kExpire ? ", its connections expire"
                                                                   : ", its connections continue");
    const auto& h = s.options.health;
    if (h.quorum && had_quorum != s.quorum) {
      // keepalived's words (ipwrapper.c update_quorum_state), and its quorum_up/down commands.
      if (s.quorum)
        LBD_LOG(kWarn, "health", "Gained quorum {}+{}={} <= {} for VS {}", h.quorum, h.hysteresis,
                uint64_t(h.quorum) + h.hysteresis, s.live_weight, t.service);
      else
        LBD_LOG(kWarn, "health", "Lost quorum {}-{}={} > {} for VS {}", h.quorum, h.hysteresis,
                int64_t(h.quorum) - int64_t(h.hysteresis), s.live_weight, t.service);
      if (const std::string& cmd = s.quorum ? h.quorum_up : h.quorum_down; !cmd.empty())
        health_->run_command(t.service + (s.quorum ? " quorum-up" : " quorum-down"), cmd, h.check.exec_user,
                             {t.service, std::to_string(s.live_weight), std::to_string(h.quorum)});
    }
    if (!sorry_changed) continue;
    const Real& sorry = services_.real(s.sorry_id == Service::kNoSorry ? r.id : s.sorry_id);
    const std::string sorry_name = addr_port(sorry.addr, sorry.port);
    const std::string why = h.quorum ? fmt::format("no quorum (weight up {} of {} needed)", s.live_weight, h.quorum)
                                     : "every real is down";
    LBD_LOG(kWarn, "health", "{}: {}", t.service,
            s.sorry_active ? why + ": sorry server " + sorry_name + " takes new connections"
                           : (h.quorum ? "quorum back" : "a real is back") + std::string(": sorry server ") +
                                 sorry_name + " stands down");
    if (!s.options.health.notify.empty())
      health_->run_command(t.service + " sorry", s.options.health.notify, s.options.health.check.exec_user,
                           {s.sorry_active ? "sorry-on" : "sorry-off", t.service, sorry_name, e.reason});
  }
  publish_health();
  announce_vips();  // a VIP with no real left is withdrawn at once
  publish_status();  // the status page shows it at its next second
}

// The watchdog of the checks' thread (every second): a stall is logged once with the
// check that causes it, and counted; its end is logged too.
void Control::watch_health() {
  const auto stall = health_->stalled();
  if (stall && !health_stalled_) {
    ++health_stalls_;
    LBD_LOG(kError, "health", "the checks' thread has been stuck for {:.1f} s{}: no check runs and no real changes "
            "state until it is back; forwarding goes on", double(stall->ms) / 1000,
            stall->check.empty() ? std::string() : " in the " + stall->check);
  } else if (!stall && health_stalled_) {
    LBD_LOG(kWarn, "health", "the checks' thread runs again");
  }
  health_stalled_ = bool(stall);
}

std::vector<RealHealthView> Control::health_views() {
  std::map<uint32_t, health::RealStatus> st;
  if (health_)
    for (auto& x : health_->statuses()) st[x.real_id] = x;
  const int64_t now = health::health_now_ms();
  auto ago = [now](int64_t t) { return double(std::max<int64_t>(0, now - t)) / 1000; };
  std::vector<RealHealthView> out;
  services_.for_each_service([&](const Service& s) {
    for (uint32_t id : s.reals) {
      const Real& r = services_.real(id);
      RealHealthView v{.service = s.key, .addr = r.addr, .port = r.port, .up = !r.health_down};
      if (auto it = st.find(id); it != st.end()) {
        const auto& x = it->second;
        v.checked_by_engine = true;
        v.checked = x.checked;
        v.last = x.last;
        v.last_duration_s = x.last_duration_us / 1e6;
        v.since_s = ago(x.since_ms);
        v.checked_s = x.checked ? ago(x.last_check_ms) : 0;
        v.ok_run = x.state.ok_run;
        v.fail_run = x.state.fail_run;
      }
      out.push_back(std::move(v));
    }
  });
  return out;
}

// lbadm --lbd-health: per service its check, per real its state and last result.
std::string Control::health_text() {
  const std::vector<RealHealthView> views = health_views();
  auto ago = [](double s) { return s < 10 ? fmt::format("{:.1f}s", s) : fmt::format("{}s", int64_t(s)); };
  std::string out;
  if (const auto stall = health_ ? health_->stalled() : std::nullopt)
    out = fmt::format("Checks stalled for {:.1f}s{}\n", double(stall->ms) / 1000,
                      stall->check.empty() ? std::string() : " in the " + stall->check);
  out += fmt::format("{:<33} {}\n{:<33} {:<6} {:<8} {:<8} {}\n", "Prot LocalAddress:Port",
                                "Check", "  -> RemoteAddress:Port", "State", "Since", "Checked", "Result");
  size_t next = 0;  // views are in for_each_service's order, a service's reals in its order
  services_.for_each_service([&](const Service& s) {
    const auto& h = s.options.health;
    const std::string spec = health::redact_secrets(health::format_service_health(h));
    out += fmt::format("{:<33} {}{}\n", fmt::format("{}  {}", protocol_info(s.key.protocol).name,
                                                     addr_port(s.key.vip, s.key.port)),
                       spec.empty() ? "check=none" : spec,
                       s.sorry_active ? "  [sorry server active]" : "");
    for (size_t i = 0; i < s.reals.size(); ++i) {
      const RealHealthView& x = views[next++];
      const std::string name = "  -> " + addr_port(x.addr, x.port);
      if (!x.checked_by_engine) {
        out += fmt::format("{:<33} {:<6} {:<8} {:<8} {}\n", name, "-", "-", "-", "not checked");
        continue;
      }
      std::string result = x.checked ? fmt::format("{} ({:.1f} ms)", x.last, x.last_duration_s * 1000)
                                     : "no result yet";
      if (!x.up && x.ok_run) result += fmt::format(", {} ok in a row", x.ok_run);
      if (x.up && x.fail_run) result += fmt::format(", {} failed in a row", x.fail_run);
      out += fmt::format("{:<33} {:<6} {:<8} {:<8} {}\n", name, x.up ? "UP" : "DOWN",
                         ago(x.since_s), x.checked ? ago(x.checked_s) : "-", result);
    }
  });
  return out;
}

std::string Control::health_json_text() {
  const auto stall = health_ ? health_->stalled() : std::nullopt;
  return health_json(health_views(), stall ? stall->ms : 0, stall ? stall->check : "").dump(2) + "\n";
}

}  // namespace lbd

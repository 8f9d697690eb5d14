// What to check on a real server and what to do when it fails: lbd's extension to
// ipvsadm's command line, `--health KEY=VALUE,...` on -A/-E (the service's defaults and
// behaviour) and on -a/-e (a real's overrides of the check keys). Parsed, validated and
// printed back in one canonical form here, so `-S` output restores with `-R`. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forwarding/method.hpp"
#include "forwarding/packet.hpp"
#include "health/check.hpp"
#include "lb/base/status.hpp"

namespace lbd::health {

// "tcp", "none" for no check.
const char* check_name(const CheckKind* kind);

struct StatusRange {
  uint16_t lo = 200, hi = 299;
  friend bool operator==(const StatusRange&, const StatusRange&) = default;
};

inline std::vector<StatusRange> default_status() {
  std::vector<StatusRange> v(1);  // 200-299
  return v;
}

// One real's check. Defaults (HAProxy's, not keepalived's 60 s delay_loop): a check every
// 2 s, 1 s to answer, down after 3 consecutive failures, up again after 2 successes.
struct CheckSpec {
  const CheckKind* kind = nullptr;  // check=: what runs (health/checks/); nullptr: none
  uint16_t port = 0;                // 0: the real's port
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;
  uint32_t rise = 2, fall = 3;
  std::string path = "/";           // http
  std::string host;                 // http Host header; empty: the real's address
  std::vector<StatusRange> status = default_status();
  std::string body;                 // http: the body must contain this, if set
  std::string user, password;       // mysql: log in (else the greeting alone counts)
  std::string password_file;        // mysql: the password's file, read by lbd at each check
  int32_t max_lag = -1;             // mysql: >= 0 makes it a replica check (needs user)
  std::string cmd;                  // exec: run with LBD_* variables, exit 0 = up
  bool start_down = false;          // start=down: a new real is down until `rise` checks pass (keepalived's alpha)
  std::string sni;                  // https: the TLS server name (default host=, else none)
  std::string ca;                   // https: verify the real's certificate with this CA file
  std::string query;                // dns: the name asked
  uint16_t qtype = 1;               // dns: the record type asked (A)
  uint8_t rcode = 0;                // dns: the answer's expected RCODE (NOERROR)
  std::string answer;               // dns: an A record the answer must hold, if set
  std::string send;                 // udp: the datagram's payload
  std::string expect;               // udp: a reply must come and hold this (else: no ICMP error is enough)
  std::string exec_user = "nobody"; // exec checks and notify commands run as this user
  friend bool operator==(const CheckSpec&, const CheckSpec&) = default;
};

enum class OnDown : uint8_t { kKeep, kExpire };

// A service's health configuration: its checks' defaults and what failure does.
struct ServiceHealth {
  CheckSpec check;
  OnDown on_down = OnDown::kKeep;   // existing connections of a down real: kept or expired
  std::optional<IpAddr> sorry_addr;   // takes new connections while every real is down
  uint16_t sorry_port = 0;          // 0: the service's port
  FwdMethod sorry_fwd = FwdMethod::kRoute;  // sorry-fwd=g (DR), m (NAT), i (IPIP)
  std::string notify;               // run on each transition: CMD up|down|sorry-on|sorry-off ...
  // keepalived's quorum: the weights of the reals up must reach `quorum` (+ hysteresis)
  // for the service to have it, and it is lost below quorum - hysteresis (or at 0). While
  // it is lost the sorry server, if any, takes every new connection. 0: lbd's rule (the
  // sorry server stands in when every real is down).
  uint32_t quorum = 0, hysteresis = 0;
  std::string quorum_up, quorum_down;  // run when it is gained / lost: CMD SERVICE WEIGHT QUORUM
  friend bool operator==(const ServiceHealth&, const ServiceHealth&) = default;
};

// A service's spec applied over `base` (its current value, for -E); or why not, in one
// line, for any bad key or value.
Result<ServiceHealth> parse_service_health(std::string_view text, const ServiceHealth& base = {});
// A real's overrides: check keys only, in canonical form.
Result<std::string> parse_real_health(std::string_view text);
// The effective check for a real: the service's with the real's canonical overrides.
CheckSpec effective_check(const CheckSpec& service, const std::string& real_overrides);

// A check that can run: timeout within the interval, max-lag has user=, and what its kind
// needs (exec: cmd=).
Status validate_check(const CheckSpec& c);

// What stands for a password lbd does not show (logs, --lbd-health, lbadm -S).
inline constexpr const char* kRedacted = "<redacted>";
// `text` (a health spec, or a command line holding one) with every password= value
// replaced by kRedacted. password-file= names a file, not a secret, and stays.
std::string redact_secrets(std::string_view text);

// "200-299/302": the status list as the spec writes it.
std::string format_status(const std::vector<StatusRange>& v);

// Canonical text: only what differs from the defaults, keys in a fixed order, values
// percent-encoded where they hold ',', '%', '=' or blanks; "" when all is default.
std::string format_service_health(const ServiceHealth& h);

}  // namespace lbd::health

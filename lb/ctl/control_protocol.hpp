// What lbd and lbadm say over the control socket, framed here and nowhere else. A request
// is one line: a command in its canonical ipvsadm form (tab-separated arguments, each
// percent-escaped by encode_args so that no byte of an argument can split it or end the
// line), or "DUMP" / "DUMP CONNS" / "COUNTERS" / "HEALTH"; or a block, "RESTORE", the
// rules, "END". A reply is "OK", "ERR <errno> <message>", or text (a dump, one record per
// line) closed by "END".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/base/status.hpp"
#include "lb/core/service_table.hpp"
#include "lb/core/sync_message.hpp"
#include "lb/core/tcp_state.hpp"

namespace lbd {

// A real as configured (its RealSpec, what -a/-e gave: a new real-server option is a
// RealSpec field and travels here with it) and as it runs.
struct DumpReal {
  RealSpec spec;  // health: the canonical check overrides (lbd's --health), maybe ""
  uint32_t active = 0, inactive = 0, persist_conns = 0;
  Counters stats;
  static constexpr uint8_t kDown = 1, kSorry = 2;
  uint8_t flags = 0;   // kDown: failed its checks; kSorry: the active sorry server
  Rates rates;
  const std::string& health() const { return spec.health ? *spec.health : kNoHealth; }
  static inline const std::string kNoHealth;
};

// A service as configured (its ServiceOptions, what -A/-E gave) and as it runs.
struct DumpService {
  ServiceKey key;
  ServiceOptions options;
  Counters stats;
  std::vector<DumpReal> reals;  // IPVS list order (newest first)
  Rates rates;
};

struct DumpConn {
  uint8_t protocol = 0;
  IpAddr caddr, vaddr, daddr;
  uint16_t cport = 0, vport = 0, dport = 0;
  std::string state;
  uint32_t expires = 0;  // seconds left
};

// A running sync daemon (-L --daemon).
struct DumpDaemon {
  std::string role;  // "master" or "backup"
  sync::DaemonSpec spec;  // maxlen as the master fills messages (0 for a backup)
};

struct Dump {
  uint32_t table_size = 0;
  std::vector<DumpDaemon> daemons;
  Timeouts timeouts;
  std::vector<DumpService> services;
  std::vector<DumpConn> conns;
};

// --- Framing ---------------------------------------------------------------------------
// The request a client's bytes hold: its first line, or a whole RESTORE block (up to and
// including its "\nEND\n"); nullopt while incomplete.
std::optional<std::string> framed_request(const std::string& in);
// "RESTORE\n<rules>END\n" (each rule a line), and the rules of such a block ("" if it is none).
std::string restore_request(const std::string& rules);
std::string restore_rules(const std::string& request);

inline constexpr std::string_view kEnd = "END\n";  // closes a text reply
// "OK\n" for an ok Status, else "ERR <code> <message>\n".
std::string status_reply(const Status& st);
// A reply's status: ok for "OK", the refusal for "ERR ..."; nullopt for any other reply
// (text, or a reply lbadm does not understand).
std::optional<Status> reply_status(const std::string& reply);
// A text reply without its closing "END\n".
std::string reply_text(std::string reply);

// One request line from arguments, and back: every argument arrives exactly as given
// (a tab, a newline or a '%' inside one is escaped). decode_args is false on a bad escape.
std::string encode_args(const std::vector<std::string>& args);
bool decode_args(std::string_view line, std::vector<std::string>& out);

// Largest request lbd reads (a RESTORE of about 200,000 rules); larger ones are refused.
constexpr size_t kMaxRequestBytes = 16u << 20;

std::string encode_dump(const Dump& d);
// Only the "C" records of d.conns (a dump sent in steps: the services, records, "END").
std::string encode_conns(const Dump& d);
// False on a malformed dump (lbadm then reports a protocol error).
bool decode_dump(const std::string& text, Dump& out);

}  // namespace lbd

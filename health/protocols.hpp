// The bytes of the HTTP and MySQL checks, built and judged without I/O, so each rule is
// unit-tested on captured or crafted exchanges. The engine (engine.cpp) only moves them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "health/result.hpp"
#include "health/spec.hpp"
#include "lb/base/status.hpp"

namespace lbd::health {

// Text a server sent (an error message, a plugin name, a status field) made safe to log,
// show on a terminal and pass to a command: each byte outside printable ASCII becomes
// \xNN, and the result is cut at `max` bytes ("..." appended). Idempotent.
std::string printable(std::string_view text, size_t max = 256);


// --- HTTP -------------------------------------------------------------------------------
// GET path HTTP/1.0 with Host (the spec's, else addr:port), Connection: close.
std::string http_request(const CheckSpec& c, const IpAddr& addr, uint16_t port);
// Judges a complete response (read to EOF, possibly cut at the read limit): passed, or
// why not ("status 503 not in 200-299", "body lacks \"ok\"", "no HTTP status line").
CheckResult judge_http(std::string_view response, const CheckSpec& c);

// --- MySQL / MariaDB (client/server protocol 10) ------------------------------------------
// Packets: 3-byte little-endian length, 1-byte sequence, payload.
std::vector<uint8_t> mysql_packet(uint8_t seq, const std::vector<uint8_t>& payload);

struct Greeting {
  uint8_t protocol = 0;
  std::string server_version;
  uint32_t capabilities = 0;
  std::string scramble;     // auth-plugin-data, 20 bytes for mysql_native_password
  std::string auth_plugin;  // "mysql_native_password" unless the server says otherwise
};
// The server's first packet; or, for an ERR packet ("Host ... is blocked", "Too many
// connections") or anything malformed, the reason.
Result<Greeting> parse_greeting(const std::vector<uint8_t>& payload);

// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for an empty password.
std::string native_password_scramble(const std::string& password, const std::string& scramble);
// HandshakeResponse41 for mysql_native_password (sequence 1).
std::vector<uint8_t> handshake_response(const std::string& user, const std::string& password,
                                        const Greeting& g);

// An OK, ERR or auth-switch reply to the login. Passed = logged in; `switch_scramble` set when
// the server asks to switch plugins (to mysql_native_password: answer with the new
// scramble; to anything else: the error says which plugin lbd cannot speak).
CheckResult judge_login_reply(const std::vector<uint8_t>& payload, std::optional<std::string>& switch_scramble);

// COM_QUERY.
std::vector<uint8_t> query_packet(const std::string& sql);

// A text-protocol result set from its packets (column count, definitions, EOF, rows,
// EOF). Rows map column name → value (nullopt = SQL NULL). Why not for an ERR
// packet or malformed input.
struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::optional<std::string> get(size_t row, const std::string& column) const;
};
Result<ResultSet> parse_result_set(const std::vector<std::vector<uint8_t>>& packets);
// True when `payload` ends a result set (EOF, or OK with 0xfe header), so a reader knows
// when to stop: the second such packet after the column definitions.
bool is_eof_packet(const std::vector<uint8_t>& payload);

// SHOW SLAVE STATUS judged as a replica check: passed if every replication channel has both
// threads running and a lag within `max_lag` seconds; else why not. No row: not a replica.
CheckResult judge_replica(const ResultSet& rs, int32_t max_lag);

}  // namespace lbd::health

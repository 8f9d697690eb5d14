// HTTP and MySQL check protocols; see protocols.hpp.
#include "health/protocols.hpp"

#include <openssl/evp.h>

#include <charconv>

#include <fmt/format.h>

namespace lbd::health {

std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (unsigned char ch : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (ch < 0x20 || ch >= 0x7f)
      out += fmt::format("\\x{:02x}", ch);
    else
      out += char(ch);
  }
  return out;
}

namespace {

std::string sha1(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

// MySQL's length-encoded integer at `pos`; false if cut short or NULL (0xfb).
bool lenenc_int(const std::vector<uint8_t>& p, size_t& pos, uint64_t& v) {
  if (pos >= p.size()) return false;
  const uint8_t first = p[pos++];
  size_t n = 0;
  if (first < 0xfb) {
    v = first;
    return true;
  }
  if (first == 0xfc) n = 2;
  else if (first == 0xfd) n = 3;
  else if (first == 0xfe) n = 8;
  else return false;
  if (pos + n > p.size()) return false;
  v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(p[pos + i]) << (8 * i);
  pos += n;
  return true;
}

bool lenenc_str(const std::vector<uint8_t>& p, size_t& pos, std::optional<std::string>& out) {
  if (pos < p.size() && p[pos] == 0xfb) {
    ++pos;
    out.reset();
    return true;
  }
  uint64_t n;
  if (!lenenc_int(p, pos, n) || n > p.size() - pos) return false;  // (pos + n could wrap)
  out = std::string(p.begin() + long(pos), p.begin() + long(pos + n));
  pos += n;
  return true;
}

std::string err_packet_text(const std::vector<uint8_t>& p) {
  // 0xff, code (2), then '#' + 5-byte SQL state, then the message.
  if (p.size() < 3) return "malformed error packet";
  const unsigned code = unsigned(p[1]) | unsigned(p[2]) << 8;
  size_t msg = 3;
  if (p.size() > 9 && p[3] == '#') msg = 9;
  return fmt::format("error {}: {}", code, std::string(p.begin() + long(msg), p.end()));
}

}  // namespace

std::string http_request(const CheckSpec& c, const IpAddr& addr, uint16_t port) {
  const std::string host = c.host.empty() ? addr_port(addr, port) : c.host;
  return fmt::format(
      "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lbd-health\r\nConnection: close\r\n\r\n", c.path,
      host);
}

CheckResult judge_http(std::string_view r, const CheckSpec& c) {
  // "HTTP/1.x NNN ..." on the first line.
  if (r.size() < 12 || r.substr(0, 5) != "HTTP/") return CheckResult::fail("no HTTP status line");
  const auto sp = r.find(' ');
  if (sp == std::string_view::npos || sp + 4 > r.size()) return CheckResult::fail("no HTTP status line");
  unsigned code = 0;
  auto [p, ec] = std::from_chars(r.data() + sp + 1, r.data() + sp + 4, code);
  if (ec != std::errc{} || p != r.data() + sp + 4) return CheckResult::fail("no HTTP status code");
  bool ok = false;
  for (const auto& range : c.status) ok |= code >= range.lo && code <= range.hi;
  if (!ok) return CheckResult::fail(fmt::format("status {} not in {}", code, format_status(c.status)));
  if (!c.body.empty()) {
    const auto hdr_end = r.find("\r\n\r\n");
    const std::string_view body = hdr_end == std::string_view::npos ? std::string_view{} : r.substr(hdr_end + 4);
    if (body.find(c.body) == std::string_view::npos)
      return CheckResult::fail(fmt::format("status {} but the body lacks \"{}\"", code, c.body));
  }
  return CheckResult::pass();
}

std::vector<uint8_t> mysql_packet(uint8_t seq, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> p(4 + payload.size());
  p[0] = uint8_t(payload.size());
  p[1] = uint8_t(payload.size() >> 8);
  p[2] = uint8_t(payload.size() >> 16);
  p[3] = seq;
  std::copy(payload.begin(), payload.end(), p.begin() + 4);
  return p;
}

Result<Greeting> parse_greeting(const std::vector<uint8_t>& p) {
  Greeting g;
  if (p.empty()) return Status::invalid("empty greeting");
  if (p[0] == 0xff) return Status::invalid(err_packet_text(p));
  if (p[0] != 10) return Status::invalid(fmt::format("unsupported protocol version {}", p[0]));
  g.protocol = p[0];
  size_t pos = 1;
  while (pos < p.size() && p[pos]) ++pos;
  if (pos >= p.size()) return Status::invalid("malformed greeting");
  g.server_version.assign(p.begin() + 1, p.begin() + long(pos));
  ++pos;
  // connection id (4), scramble part 1 (8), filler (1), capabilities low (2)
  if (pos + 4 + 8 + 1 + 2 > p.size()) return Status::invalid("malformed greeting");
  pos += 4;
  g.scramble.assign(p.begin() + long(pos), p.begin() + long(pos + 8));
  pos += 9;
  g.capabilities = uint32_t(p[pos]) | uint32_t(p[pos + 1]) << 8;
  pos += 2;
  g.auth_plugin = "mysql_native_password";
  // charset (1), status (2), capabilities high (2), auth data length (1), reserved (10)
  if (pos + 1 + 2 + 2 + 1 + 10 > p.size()) return g;  // pre-4.1 style: 8-byte scramble only
  g.capabilities |= (uint32_t(p[pos + 3]) | uint32_t(p[pos + 4]) << 8) << 16;
  const size_t auth_len = p[pos + 5];
  pos += 16;
  const size_t part2 = auth_len > 8 ? std::max<size_t>(13, auth_len - 8) : 13;
  if (pos + part2 > p.size()) return Status::invalid("malformed greeting");
  std::string rest(p.begin() + long(pos), p.begin() + long(pos + part2));
  while (!rest.empty() && rest.back() == '\0') rest.pop_back();  // NUL-terminated part 2
  g.scramble += rest;
  pos += part2;
  if (pos < p.size()) {
    size_t end = pos;
    while (end < p.size() && p[end]) ++end;
    g.auth_plugin.assign(p.begin() + long(pos), p.begin() + long(end));
  }
  return g;
}

std::string native_password_scramble(const std::string& password, const std::string& scramble) {
  if (password.empty()) return "";
  const std::string s1 = sha1(password);
  const std::string s2 = sha1(s1);
  const std::string s3 = sha1(scramble.substr(0, 20) + s2);
  std::string out(s1.size(), '\0');
  for (size_t i = 0; i < s1.size(); ++i) out[i] = char(s1[i] ^ s3[i]);
  return out;
}

std::vector<uint8_t> handshake_response(const std::string& user, const std::string& password,
                                        const Greeting& g) {
  constexpr uint32_t kLongPassword = 1, kProtocol41 = 0x200, kTransactions = 0x2000,
                     kSecureConnection = 0x8000, kPluginAuth = 0x80000;
  const uint32_t caps = kLongPassword | kProtocol41 | kTransactions | kSecureConnection | kPluginAuth;
  std::vector<uint8_t> p;
  for (int i = 0; i < 4; ++i) p.push_back(uint8_t(caps >> (8 * i)));
  for (uint32_t v = 1u << 24, i = 0; i < 4; ++i) p.push_back(uint8_t(v >> (8 * i)));  // max packet
  p.push_back(33);  // utf8_general_ci
  p.insert(p.end(), 23, 0);
  p.insert(p.end(), user.begin(), user.end());
  p.push_back(0);
  const std::string auth = native_password_scramble(password, g.scramble);
  p.push_back(uint8_t(auth.size()));
  p.insert(p.end(), auth.begin(), auth.end());
  const std::string plugin = "mysql_native_password";
  p.insert(p.end(), plugin.begin(), plugin.end());
  p.push_back(0);
  return p;
}

CheckResult judge_login_reply(const std::vector<uint8_t>& p,
                              std::optional<std::string>& switch_scramble) {
  switch_scramble.reset();
  if (p.empty()) return CheckResult::fail("empty reply to login");
  if (p[0] == 0x00) return CheckResult::pass();
  if (p[0] == 0xff) return CheckResult::fail(err_packet_text(p));
  if (p[0] == 0xfe) {
    size_t end = 1;
    while (end < p.size() && p[end]) ++end;
    const std::string plugin(p.begin() + 1, p.begin() + long(end));
    if (plugin != "mysql_native_password")
      return CheckResult::fail(fmt::format("the server wants auth plugin {} (lbd speaks mysql_native_password)", plugin));
    std::string data(p.begin() + long(std::min(end + 1, p.size())), p.end());
    while (!data.empty() && data.back() == '\0') data.pop_back();
    switch_scramble = data;
    return CheckResult::pass();
  }
  return CheckResult::fail(fmt::format("unexpected reply 0x{:02x} to login", p[0]));
}

std::vector<uint8_t> query_packet(const std::string& sql) {
  std::vector<uint8_t> p(1 + sql.size());  // sized, then filled: GCC 12 at -O3 misreads an insert
  p[0] = 0x03;                             // into {0x03} as an overread
  std::copy(sql.begin(), sql.end(), p.begin() + 1);
  return p;
}

bool is_eof_packet(const std::vector<uint8_t>& p) { return !p.empty() && p[0] == 0xfe && p.size() < 9; }

std::optional<std::string> ResultSet::get(size_t row, const std::string& column) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == column && row < rows.size() && i < rows[row].size()) return rows[row][i];
  return std::nullopt;
}

Result<ResultSet> parse_result_set(const std::vector<std::vector<uint8_t>>& packets) {
  ResultSet rs;
  if (packets.empty()) return Status::invalid("no result");
  if (packets[0].size() && packets[0][0] == 0xff) return Status::invalid(err_packet_text(packets[0]));
  size_t pos = 0;
  uint64_t ncol = 0;
  if (!lenenc_int(packets[0], pos, ncol) || ncol == 0 || ncol > 4096 || packets.size() < ncol + 2)
    return Status::invalid("malformed result set");
  for (size_t i = 1; i <= ncol; ++i) {
    // catalog, schema, table, org_table, name, ...
    size_t at = 0;
    std::optional<std::string> field;
    for (int k = 0; k < 5; ++k)
      if (!lenenc_str(packets[i], at, field) || !field)
        return Status::invalid("malformed column definition");
    rs.columns.push_back(*field);
  }
  if (!is_eof_packet(packets[ncol + 1]))
    return Status::invalid("malformed result set (no EOF after the columns)");
  for (size_t i = ncol + 2; i < packets.size(); ++i) {
    const auto& p = packets[i];
    if (is_eof_packet(p)) return rs;
    if (!p.empty() && p[0] == 0xff) return Status::invalid(err_packet_text(p));
    std::vector<std::optional<std::string>> row;
    size_t at = 0;
    for (size_t c = 0; c < ncol; ++c) {
      std::optional<std::string> v;
      if (!lenenc_str(p, at, v)) return Status::invalid("malformed row");
      row.push_back(std::move(v));
    }
    rs.rows.push_back(std::move(row));
  }
  return Status::invalid("result set without its final EOF");
}

CheckResult judge_replica(const ResultSet& rs, int32_t max_lag) {
  if (rs.rows.empty()) return CheckResult::fail("not a replica (SHOW SLAVE STATUS is empty)");
  for (size_t r = 0; r < rs.rows.size(); ++r) {
    const auto io = rs.get(r, "Slave_IO_Running");
    const auto sql = rs.get(r, "Slave_SQL_Running");
    const auto lag = rs.get(r, "Seconds_Behind_Master");
    if (!io || *io != "Yes") return CheckResult::fail(fmt::format("Slave_IO_Running={}", io.value_or("NULL")));
    if (!sql || *sql != "Yes") return CheckResult::fail(fmt::format("Slave_SQL_Running={}", sql.value_or("NULL")));
    if (!lag) return CheckResult::fail("Seconds_Behind_Master=NULL");
    long long seconds = 0;
    std::from_chars(lag->data(), lag->data() + lag->size(), seconds);
    if (max_lag >= 0 && seconds > max_lag)
      return CheckResult::fail(fmt::format("replication lag {} s > max-lag {} s", seconds, max_lag));
  }
  return CheckResult::pass();
}

}  // namespace lbd::health

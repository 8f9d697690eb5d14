// See dns.hpp.
#include "health/dns.hpp"

#include <fmt/format.h>

#include "health/spec.hpp"

namespace lbd::health {
namespace {

struct Type {
  const char* name;
  uint16_t value;
};
constexpr Type kTypes[] = {{"A", 1},   {"NS", 2},   {"CNAME", 5},  {"SOA", 6}, {"PTR", 12},
                           {"MX", 15}, {"TXT", 16}, {"AAAA", 28}, {"SRV", 33}, {"ANY", 255}};
constexpr const char* kRcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};

uint16_t be16(std::string_view b, size_t at) { return uint16_t(uint8_t(b[at]) << 8 | uint8_t(b[at + 1])); }

// The offset after the name at `at` (labels or a compression pointer), or 0 if malformed.
size_t skip_name(std::string_view b, size_t at) {
  for (int labels = 0; at < b.size() && labels < 128; ++labels) {
    const uint8_t len = uint8_t(b[at]);
    if (len == 0) return at + 1;
    if ((len & 0xc0) == 0xc0) return at + 2 <= b.size() ? at + 2 : 0;
    if (len & 0xc0) return 0;
    at += 1 + len;
  }
  return 0;
}

}  // namespace

std::string dns_name_wire(std::string_view name) {
  if (name.empty()) return "";
  if (name == ".") return std::string(1, '\0');
  if (name.back() == '.') name.remove_suffix(1);
  std::string out;
  while (true) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63) return "";
    out += char(label.size());
    out += label;
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  out += '\0';
  return out.size() <= 255 ? out : "";
}

std::optional<uint16_t> dns_type_from_name(std::string_view name) {
  for (const Type& t : kTypes)
    if (name == t.name) return t.value;
  return std::nullopt;
}

const char* dns_type_name(uint16_t type) {
  for (const Type& t : kTypes)
    if (type == t.value) return t.name;
  return "?";
}

std::optional<uint8_t> dns_rcode_from_name(std::string_view name) {
  for (uint8_t i = 0; i < std::size(kRcodes); ++i)
    if (name == kRcodes[i]) return i;
  return std::nullopt;
}

const char* dns_rcode_name(uint8_t rcode) { return rcode < std::size(kRcodes) ? kRcodes[rcode] : "?"; }

std::string dns_query(uint16_t id, const CheckSpec& c) {
  std::string q;
  q += char(id >> 8);
  q += char(id & 0xff);
  q += char(0x01);  // RD
  q += char(0x00);
  q += std::string("\x00\x01\x00\x00\x00\x00\x00\x00", 8);  // QDCOUNT 1
  q += dns_name_wire(c.query);
  q += char(c.qtype >> 8);
  q += char(c.qtype & 0xff);
  q += std::string("\x00\x01", 2);  // IN
  return q;
}

CheckResult judge_dns(std::string_view b, uint16_t id, const CheckSpec& c) {
  if (b.size() < 12) return CheckResult::fail(fmt::format("truncated reply ({} bytes)", b.size()));
  if (be16(b, 0) != id || !(uint8_t(b[2]) & 0x80)) return CheckResult::fail("reply for another query");
  const uint8_t rcode = uint8_t(b[3]) & 0x0f;
  if (rcode != c.rcode)
    return CheckResult::fail(fmt::format("rcode {}, expected {}", rcode < 6 ? dns_rcode_name(rcode) : std::to_string(rcode).c_str(),
                                         dns_rcode_name(c.rcode)));
  if (c.answer.empty()) return CheckResult::pass();
  const uint16_t qd = be16(b, 4), an = be16(b, 6);
  size_t at = 12;
  for (uint16_t i = 0; i < qd; ++i) {
    at = skip_name(b, at);
    if (!at || at + 4 > b.size()) return CheckResult::fail("malformed question section");
    at += 4;
  }
  for (uint16_t i = 0; i < an; ++i) {
    at = skip_name(b, at);
    if (!at || at + 10 > b.size()) return CheckResult::fail("malformed answer section");
    const uint16_t type = be16(b, at), cls = be16(b, at + 2), len = be16(b, at + 8);
    at += 10;
    if (at + len > b.size()) return CheckResult::fail("malformed answer section");
    if (type == 1 && cls == 1 && len == 4) {
      const std::string a = fmt::format("{}.{}.{}.{}", uint8_t(b[at]), uint8_t(b[at + 1]), uint8_t(b[at + 2]), uint8_t(b[at + 3]));
      if (a == c.answer) return CheckResult::pass();
    }
    at += len;
  }
  return CheckResult::fail(fmt::format("no A record {} in {} answer{}", c.answer, an, an == 1 ? "" : "s"));
}

}  // namespace lbd::health

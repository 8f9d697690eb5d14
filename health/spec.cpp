// Health specification parsing and canonical printing; see spec.hpp.
#include "health/spec.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "health/dns.hpp"

namespace lbd::health {
namespace {

constexpr const char* kServiceKeys[] = {"on-down", "sorry", "sorry-fwd", "notify", "quorum", "hysteresis",
                                        "quorum-up", "quorum-down"};

bool is_service_key(std::string_view k) {
  for (const char* c : kServiceKeys)
    if (k == c) return true;
  return false;
}

bool decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= in.size()) return false;
    auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
    if (ec != std::errc{} || p != in.data() + i + 3) return false;
    out += char(v);
    i += 2;
  }
  return true;
}

std::string encode(std::string_view in) {
  std::string out;
  for (unsigned char ch : in) {
    if (ch == ',' || ch == '%' || ch == '=' || ch <= ' ' || ch >= 0x7f)
      out += fmt::format("%{:02X}", ch);
    else
      out += char(ch);
  }
  return out;
}

bool parse_u32(std::string_view s, uint32_t lo, uint32_t hi, uint32_t& out) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

// Seconds with up to three decimals ("2", "0.5", "1.25") to milliseconds.
bool parse_seconds(std::string_view s, uint32_t lo_ms, uint32_t hi_ms, uint32_t& out) {
  const auto dot = s.find('.');
  uint32_t whole = 0, frac = 0;
  if (!parse_u32(s.substr(0, dot), 0, hi_ms / 1000, whole)) return false;
  if (dot != std::string_view::npos) {
    std::string f(s.substr(dot + 1));
    if (f.empty() || f.size() > 3) return false;
    while (f.size() < 3) f += '0';
    if (!parse_u32(f, 0, 999, frac)) return false;
  }
  const uint32_t ms = whole * 1000 + frac;
  if (ms < lo_ms || ms > hi_ms) return false;
  out = ms;
  return true;
}

std::string format_seconds(uint32_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000);
  std::string s = fmt::format("{}.{:03}", ms / 1000, ms % 1000);
  while (s.back() == '0') s.pop_back();
  return s;
}

bool parse_status(std::string_view s, std::vector<StatusRange>& out) {
  std::vector<StatusRange> v;
  while (!s.empty()) {
    const auto slash = s.find('/');
    const std::string_view item = s.substr(0, slash);
    s = slash == std::string_view::npos ? std::string_view{} : s.substr(slash + 1);
    const auto dash = item.find('-');
    uint32_t lo, hi;
    if (!parse_u32(item.substr(0, dash), 100, 599, lo)) return false;
    hi = lo;
    if (dash != std::string_view::npos && !parse_u32(item.substr(dash + 1), lo, 599, hi)) return false;
    v.push_back({uint16_t(lo), uint16_t(hi)});
    if (slash != std::string_view::npos && s.empty()) return false;
  }
  if (v.empty()) return false;
  out = std::move(v);
  return true;
}

// Every check key, once: its name (the canonical order is this table's), how a value sets
// it (false with the reason), and its value as text. A key equal to the default's text is
// left out of the canonical form. A new key is a CheckSpec field and a row here.
struct CheckKey {
  const char* name;
  bool (*apply)(CheckSpec& c, const std::string& v, const char*& why);
  std::string (*text)(const CheckSpec& c);
};

// The kinds of key, for the table: a field of milliseconds given in seconds, a count, a
// string (as it is, an absolute path, or a user name).
template <uint32_t CheckSpec::*F, uint32_t Lo, uint32_t Hi>
bool set_seconds(CheckSpec& c, const std::string& v, const char*& why) {
  static const std::string expected = fmt::format("expected {} to {} seconds", format_seconds(Lo), format_seconds(Hi));
  why = expected.c_str();
  return parse_seconds(v, Lo, Hi, c.*F);
}
template <uint32_t CheckSpec::*F>
std::string seconds_text(const CheckSpec& c) { return format_seconds(c.*F); }
template <uint32_t CheckSpec::*F, uint32_t Lo, uint32_t Hi>
bool set_count(CheckSpec& c, const std::string& v, const char*& why) {
  static const std::string expected = fmt::format("expected {} to {}", Lo, Hi);
  why = expected.c_str();
  return parse_u32(v, Lo, Hi, c.*F);
}
template <uint32_t CheckSpec::*F>
std::string count_text(const CheckSpec& c) { return std::to_string(c.*F); }
template <std::string CheckSpec::*F>
bool set_string(CheckSpec& c, const std::string& v, const char*&) {
  c.*F = v;
  return true;
}
template <std::string CheckSpec::*F>
bool set_absolute(CheckSpec& c, const std::string& v, const char*& why) {
  why = "expected an absolute path";
  if (v.empty() || v[0] != '/') return false;
  c.*F = v;
  return true;
}
template <std::string CheckSpec::*F>
std::string string_text(const CheckSpec& c) { return c.*F; }
// Words of an HTTP request line (its host, its path): no blank in them.
bool set_without_blanks(std::string& field, const std::string& v, const char* blank, const char*& why) {
  if (v.find(' ') != std::string::npos) return (why = blank, false);
  field = v;
  return true;
}

constexpr CheckKey kCheckKeys[] = {
    {"check",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       static const std::string expected = [] {
         std::string s = "expected";
         for (const CheckKind* k : check_kinds()) s += fmt::format(" {},", k->name);
         s.back() = ' ';
         return s + "or none";
       }();
       why = expected.c_str();
       if (v == "none") return (c.kind = nullptr, true);
       const CheckKind* k = find_check(v);
       return k && (c.kind = k);
     },
     [](const CheckSpec& c) { return std::string(check_name(c.kind)); }},
    {"port",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       uint32_t n = 0;
       why = "expected a port number (0: the real's)";
       if (!parse_u32(v, 0, 65535, n)) return false;
       c.port = uint16_t(n);
       return true;
     },
     [](const CheckSpec& c) { return std::to_string(c.port); }},
    {"interval", set_seconds<&CheckSpec::interval_ms, 100, 3600000>, seconds_text<&CheckSpec::interval_ms>},
    {"timeout", set_seconds<&CheckSpec::timeout_ms, 10, 3600000>, seconds_text<&CheckSpec::timeout_ms>},
    {"rise", set_count<&CheckSpec::rise, 1, 1000>, count_text<&CheckSpec::rise>},
    {"fall", set_count<&CheckSpec::fall, 1, 1000>, count_text<&CheckSpec::fall>},
    {"path",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       if (v.empty() || v[0] != '/') return (why = "expected a path starting with /", false);
       return set_without_blanks(c.path, v, "a path has no blanks (write %20 as %2520)", why);
     },
     string_text<&CheckSpec::path>},
    {"host",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       return set_without_blanks(c.host, v, "a host name has no blanks", why);
     },
     string_text<&CheckSpec::host>},
    {"status",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected codes or ranges such as 200-299/302";
       return parse_status(v, c.status);
     },
     [](const CheckSpec& c) { return format_status(c.status); }},
    {"body", set_string<&CheckSpec::body>, string_text<&CheckSpec::body>},
    {"user", set_string<&CheckSpec::user>, string_text<&CheckSpec::user>},
    {"password",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "this password was redacted by lbadm -S: give it again, or use password-file=";
       if (v == kRedacted) return false;
       c.password = v;
       return true;
     },
     string_text<&CheckSpec::password>},
    {"password-file", set_absolute<&CheckSpec::password_file>, string_text<&CheckSpec::password_file>},
    {"max-lag",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       uint32_t n = 0;
       why = "expected seconds, or none";
       if (v == "none") n = uint32_t(-1);
       else if (!parse_u32(v, 0, 1u << 30, n)) return false;
       c.max_lag = int32_t(n);
       return true;
     },
     [](const CheckSpec& c) { return std::to_string(c.max_lag); }},
    {"cmd", set_absolute<&CheckSpec::cmd>, string_text<&CheckSpec::cmd>},
    {"start",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected up or down";
       if (v != "up" && v != "down") return false;
       c.start_down = v == "down";
       return true;
     },
     [](const CheckSpec& c) { return std::string(c.start_down ? "down" : "up"); }},
    {"sni",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       return set_without_blanks(c.sni, v, "a server name has no blanks", why);
     },
     string_text<&CheckSpec::sni>},
    {"ca",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       if (v == "none") return c.ca.clear(), true;  // verification off again (-E)
       return set_absolute<&CheckSpec::ca>(c, v, why);
     },
     string_text<&CheckSpec::ca>},
    {"query",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected a DNS name (labels of 1 to 63 bytes, 253 at most)";
       if (dns_name_wire(v).empty()) return false;
       c.query = v;
       return true;
     },
     string_text<&CheckSpec::query>},
    {"qtype",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV or ANY";
       const auto t = dns_type_from_name(v);
       if (!t) return false;
       c.qtype = *t;
       return true;
     },
     [](const CheckSpec& c) { return std::string(dns_type_name(c.qtype)); }},
    {"rcode",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP or REFUSED";
       const auto r = dns_rcode_from_name(v);
       if (!r) return false;
       c.rcode = *r;
       return true;
     },
     [](const CheckSpec& c) { return std::string(dns_rcode_name(c.rcode)); }},
    {"answer",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected an IPv4 address (an A record of the answer), or none";
       if (v == "none") return c.answer.clear(), true;
       Ipv4 a;
       if (!parse_ipv4(v, a)) return false;
       c.answer = v;
       return true;
     },
     string_text<&CheckSpec::answer>},
    {"send", set_string<&CheckSpec::send>, string_text<&CheckSpec::send>},
    {"expect",
     [](CheckSpec& c, const std::string& v, const char*&) {
       c.expect = v == "none" ? "" : v;  // none: no reply needed again (-E)
       return true;
     },
     string_text<&CheckSpec::expect>},
    {"exec-user",
     [](CheckSpec& c, const std::string& v, const char*& why) {
       why = "expected a user name";
       if (v.empty() || v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                            std::string::npos)
         return false;
       c.exec_user = v;
       return true;
     },
     string_text<&CheckSpec::exec_user>},
};

const CheckKey* check_key(std::string_view k) {
  for (const CheckKey& c : kCheckKeys)
    if (k == c.name) return &c;
  return nullptr;
}
bool is_check_key(std::string_view k) { return check_key(k) != nullptr; }

// Applies one key to a check; why not on a bad value.
Status apply_check_key(CheckSpec& c, std::string_view key, const std::string& v) {
  const CheckKey* k = check_key(key);
  const char* why = "";
  if (!k || k->apply(c, v, why)) return Status::ok();
  return Status::invalid(fmt::format("{}={}: {}", key, v, why));
}

// Splits "k=v,k=v" and calls f(key, decoded value) for each: why not, if the syntax is
// wrong or f refuses.
template <class F>
Status for_each_pair(std::string_view text, F&& f) {
  if (text.empty()) return Status::invalid("empty health specification");
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) return Status::invalid(fmt::format("'{}': expected KEY=VALUE", item));
    std::string value;
    if (!decode(item.substr(eq + 1), value)) return Status::invalid(fmt::format("'{}': bad %-escape", item));
    // Values reach request lines, headers, logs and commands: no control characters (a
    // CR/LF in a path or host would inject headers into the HTTP check).
    if (std::any_of(value.begin(), value.end(), [](char ch) { return uint8_t(ch) < 0x20 || ch == 0x7f; }))
      return Status::invalid(fmt::format("{}=: control characters are not allowed", item.substr(0, eq)));
    if (Status st = f(item.substr(0, eq), value); !st.is_ok()) return st;
    if (comma != std::string_view::npos && text.empty()) return Status::invalid("trailing ','");
  }
  return Status::ok();
}

}  // namespace

std::string format_status(const std::vector<StatusRange>& v) {
  std::string s;
  for (const auto& r : v) {
    if (!s.empty()) s += '/';
    s += r.lo == r.hi ? std::to_string(r.lo) : fmt::format("{}-{}", r.lo, r.hi);
  }
  return s;
}

Status validate_check(const CheckSpec& c) {
  if (c.timeout_ms > c.interval_ms)
    return Status::invalid(fmt::format("timeout={} is longer than interval={}", format_seconds(c.timeout_ms),
                                       format_seconds(c.interval_ms)));
  if (!c.password.empty() && !c.password_file.empty())
    return Status::invalid("give password= or password-file=, not both");
  if (c.max_lag >= 0 && c.user.empty()) return Status::invalid("max-lag needs user= (the replica check logs in)");
  if (const char* why = c.kind && c.kind->invalid ? c.kind->invalid(c) : nullptr) return Status::invalid(why);
  return Status::ok();
}

const char* check_name(const CheckKind* kind) { return kind ? kind->name : "none"; }

Result<ServiceHealth> parse_service_health(std::string_view text, const ServiceHealth& base) {
  ServiceHealth h = base;
  const Status parsed = for_each_pair(text, [&](std::string_view key, const std::string& v) -> Status {
    if (is_check_key(key)) return apply_check_key(h.check, key, v);
    if (key == "on-down") {
      if (v == "keep") h.on_down = OnDown::kKeep;
      else if (v == "expire") h.on_down = OnDown::kExpire;
      else return Status::invalid(fmt::format("on-down={}: expected keep or expire", v));
      return Status::ok();
    }
    if (key == "sorry") {
      if (v == "none") {
        h.sorry_addr.reset();
        h.sorry_port = 0;
        return Status::ok();
      }
      // 198.18.0.5, 198.18.0.5:80, 2001:db8::5 or [2001:db8::5]:80 (ipvsadm's forms).
      std::string_view addr = v, port_text;
      bool has_port = false;
      if (!v.empty() && v[0] == '[') {
        const auto close = v.find(']');
        if (close == std::string::npos || (close + 1 < v.size() && v[close + 1] != ':'))
          return Status::invalid(fmt::format("sorry={}: expected ADDRESS[:PORT] or none", v));
        addr = std::string_view(v).substr(1, close - 1);
        has_port = close + 1 < v.size();
        if (has_port) port_text = std::string_view(v).substr(close + 2);
      } else if (std::count(v.begin(), v.end(), ':') == 1) {
        const auto colon = v.find(':');
        addr = std::string_view(v).substr(0, colon);
        port_text = std::string_view(v).substr(colon + 1);
        has_port = true;
      }
      IpAddr a;
      uint32_t port = 0;
      if (!parse_ip(addr, a) || (has_port && !parse_u32(std::string(port_text), 1, 65535, port)))
        return Status::invalid(fmt::format("sorry={}: expected ADDRESS[:PORT] or none", v));
      h.sorry_addr = a;
      h.sorry_port = uint16_t(port);
      return Status::ok();
    }
    if (key == "sorry-fwd") {
      const auto m = v.size() == 1 ? fwd_from_name(v) : std::nullopt;  // the flag only
      if (!m) return Status::invalid(fmt::format("sorry-fwd={}: expected g (DR), m (NAT) or i (IPIP)", v));
      h.sorry_fwd = *m;
      return Status::ok();
    }
    if (key == "notify" || key == "quorum-up" || key == "quorum-down") {
      if (!v.empty() && v != "none" && v[0] != '/')
        return Status::invalid(fmt::format("{}={}: expected an absolute path or none", key, v));
      (key == "notify" ? h.notify : key == "quorum-up" ? h.quorum_up : h.quorum_down) = v == "none" ? "" : v;
      return Status::ok();
    }
    if (key == "quorum" || key == "hysteresis") {
      uint32_t n = 0;
      if (!parse_u32(v, 0, 1u << 30, n))
        return Status::invalid(fmt::format("{}={}: expected a sum of weights (0 to {})", key, v, 1u << 30));
      (key == "quorum" ? h.quorum : h.hysteresis) = n;
      return Status::ok();
    }
    return Status::invalid(fmt::format("unknown key '{}'", key));
  });
  if (!parsed.is_ok()) return parsed;
  if (h.hysteresis && h.hysteresis >= h.quorum)
    return Status::invalid(fmt::format("hysteresis={} must be below quorum={} (keepalived's rule)", h.hysteresis, h.quorum));
  CheckSpec common = h.check;
  common.kind = nullptr;  // what the kind needs (exec's cmd=) each real may give: checked per real
  if (Status st = validate_check(common); !st.is_ok()) return st;
  return h;
}

Result<std::string> parse_real_health(std::string_view text) {
  // Later keys win, like the service's; kept in the canonical key order.
  std::vector<std::pair<std::string, std::string>> kv;
  CheckSpec probe;
  const Status parsed = for_each_pair(text, [&](std::string_view key, const std::string& v) -> Status {
    if (is_service_key(key)) return Status::invalid(fmt::format("'{}' is a service setting (give it with -A/-E)", key));
    if (!is_check_key(key)) return Status::invalid(fmt::format("unknown key '{}'", key));
    if (Status st = apply_check_key(probe, key, v); !st.is_ok()) return st;
    for (auto& p : kv)
      if (p.first == key) {
        p.second = v;
        return Status::ok();
      }
    kv.emplace_back(std::string(key), v);
    return Status::ok();
  });
  if (!parsed.is_ok()) return parsed;
  std::string canonical;
  for (const CheckKey& k : kCheckKeys)
    for (const auto& p : kv)
      if (p.first == k.name)
        canonical += fmt::format("{}{}={}", canonical.empty() ? "" : ",", k.name, encode(p.second));
  return canonical;
}

CheckSpec effective_check(const CheckSpec& service, const std::string& real_overrides) {
  CheckSpec c = service;
  if (real_overrides.empty()) return c;
  // Canonical overrides (parse_real_health's) apply without fault.
  (void)for_each_pair(real_overrides, [&](std::string_view key, const std::string& v) {
    return apply_check_key(c, key, v);
  });
  return c;
}

std::string format_service_health(const ServiceHealth& h) {
  const CheckSpec d;
  const CheckSpec& c = h.check;
  std::string s;
  auto add = [&s](const char* k, const std::string& v) {
    s += fmt::format("{}{}={}", s.empty() ? "" : ",", k, encode(v));
  };
  for (const CheckKey& k : kCheckKeys)
    if (std::string v = k.text(c); v != k.text(d)) add(k.name, v);
  if (h.on_down != OnDown::kKeep) add("on-down", "expire");
  if (h.sorry_addr)
    add("sorry", h.sorry_port ? addr_port(*h.sorry_addr, h.sorry_port) : to_string(*h.sorry_addr));
  if (h.sorry_fwd != FwdMethod::kRoute) add("sorry-fwd", std::string(1, fwd_info(h.sorry_fwd).flag));
  if (!h.notify.empty()) add("notify", h.notify);
  if (h.quorum) add("quorum", std::to_string(h.quorum));
  if (h.hysteresis) add("hysteresis", std::to_string(h.hysteresis));
  if (!h.quorum_up.empty()) add("quorum-up", h.quorum_up);
  if (!h.quorum_down.empty()) add("quorum-down", h.quorum_down);
  return s;
}

std::string redact_secrets(std::string_view text) {
  std::string out(text);
  for (size_t at = 0; (at = out.find("password=", at)) != std::string::npos;) {
    const bool key_start = at == 0 || out[at - 1] == ',' || out[at - 1] == ' ' || out[at - 1] == '\t';
    at += 9;
    if (!key_start) continue;
    const size_t end = out.find_first_of(", \t\n", at);
    out.replace(at, (end == std::string::npos ? out.size() : end) - at, kRedacted);
    at += std::string_view(kRedacted).size();
  }
  return out;
}

}  // namespace lbd::health

// See keepalived_import.hpp. The grammar (keepalived's lib/parser.c, check_parser.c) and
// its defaults (check_data.c alloc_vs, validate_check_config; check_api.c) as
// ../shared/notes/keepalived-import.md sums them up; README "From keepalived" lists the
// mapping.
#include "lb/ctl/keepalived_import.hpp"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "forwarding/packet.hpp"
#include "lb/ctl/commands.hpp"

namespace lbd {
namespace {

struct Token {
  std::string text;
  std::string file;
  int line = 0;
  bool quoted = false;
};

struct Refusal {
  std::string message;
};

[[noreturn]] void refuse(const Token& t, const std::string& why) {
  throw Refusal{fmt::format("{}:{}: {}: {}", t.file, t.line, t.text, why)};
}

// keepalived's reader: `{` and `}` are tokens wherever they stand, `#` and `!` start a
// comment outside quotes, "..." and '...' are one token. Each line ends with a "\n" token
// (keywords take the rest of their line).
void lex(const std::string& text, const std::string& file, std::vector<Token>& out, int depth, bool follow);

void lex_include(const Token& kw, const std::string& pattern, const std::string& file, std::vector<Token>& out,
                 int depth, bool follow) {
  if (depth > 8) refuse(kw, "includes nested more than 8 deep");
  if (!follow) refuse(kw, "include is not followed here");
  std::string p = pattern;
  if (!p.empty() && p[0] != '/') p = (std::filesystem::path(file).parent_path() / p).string();
  glob_t g{};
  const int rc = glob(p.c_str(), GLOB_BRACE, nullptr, &g);
  if (rc == GLOB_NOMATCH) {
    globfree(&g);
    return;  // keepalived: a pattern that matches nothing is no error
  }
  if (rc != 0) {
    globfree(&g);
    refuse(kw, fmt::format("cannot expand {}", p));
  }
  std::vector<std::string> files(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  globfree(&g);
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) refuse(kw, fmt::format("cannot read {}", f));
    std::stringstream ss;
    ss << in.rdbuf();
    lex(ss.str(), f, out, depth + 1, follow);
  }
}

void lex(const std::string& text, const std::string& file, std::vector<Token>& out, int depth, bool follow) {
  int line = 1;
  std::vector<Token> cur;  // this line's
  auto end_line = [&] {
    if (!cur.empty() && cur[0].text == "include" && !cur[0].quoted) {
      if (cur.size() != 2) refuse(cur[0], "expected one file or pattern");
      lex_include(cur[0], cur[1].text, file, out, depth, follow);
    } else if (!cur.empty() && (cur[0].text.starts_with("include") || cur[0].text.starts_with("$") ||
                                cur[0].text.starts_with("@") || cur[0].text.starts_with("~SEQ"))) {
      refuse(cur[0], "keepalived's parameters, conditional lines and sequences are not imported: expand them first");
    } else {
      for (auto& t : cur) out.push_back(std::move(t));
    }
    cur.clear();
    out.push_back({"\n", file, line});
  };
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '\n') {
      end_line();
      ++line;
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
    } else if (c == '#' || c == '!') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '{' || c == '}') {
      cur.push_back({std::string(1, c), file, line});
      ++i;
    } else if (c == '"' || c == '\'') {
      const size_t close = text.find(c, i + 1);
      if (close == std::string::npos || text.find('\n', i + 1) < close)
        refuse({std::string(1, c), file, line}, "unterminated quoted string");
      cur.push_back({text.substr(i + 1, close - i - 1), file, line, true});
      i = close + 1;
    } else {
      size_t j = i;
      while (j < text.size() && std::string_view(" \t\r\n{}#!\"'").find(text[j]) == std::string_view::npos) ++j;
      cur.push_back({text.substr(i, j - i), file, line});
      i = j;
    }
  }
  end_line();
}

// keepalived's <TIMER>: seconds with a fraction, kept as milliseconds.
uint32_t timer_ms(const Token& t) {
  double v = 0;
  auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
  if (ec != std::errc{} || p != t.text.data() + t.text.size() || v < 0 || v > 86400)
    refuse(t, "expected seconds (0 to 86400)");
  return uint32_t(v * 1000 + 0.5);
}

uint64_t number(const Token& t, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
  if (ec != std::errc{} || p != t.text.data() + t.text.size() || v < lo || v > hi)
    refuse(t, fmt::format("expected a number from {} to {}", lo, hi));
  return v;
}

std::string seconds_text(uint32_t ms) {
  return ms % 1000 ? fmt::format("{}", double(ms) / 1000) : fmt::format("{}", ms / 1000);
}

struct Checker {
  Token at;
  std::string kind;  // tcp, http, exec
  std::optional<uint32_t> interval_ms, timeout_ms;
  std::optional<uint32_t> retry;
  bool alpha = false;
  uint16_t port = 0;
  std::string path, status, host, cmd, sni;
  bool enable_sni = false;  // SSL_GET: SNI with the virtualhost (sni_name overrides)
};

// The cascade virtual_server -> real_server -> checker (keepalived's check_api.c).
struct CheckDefaults {
  std::optional<uint32_t> interval_ms, timeout_ms, retry;
  bool alpha = false;
  std::optional<std::string> host;
};

struct Real {
  Token at;
  IpAddr addr;
  std::optional<uint16_t> port;
  std::optional<uint32_t> weight;
  std::optional<char> method;
  std::string tun;  // with method 'i': ipvsadm's --tun-* options, from lvs_method TUN type ...
  uint32_t uthreshold = 0, lthreshold = 0;
  CheckDefaults defaults;
  std::vector<Checker> checkers;
};

struct VirtualServer {
  Token at;
  std::vector<std::pair<IpAddr, uint16_t>> addrs;  // one, or a group's
  std::string group;
  uint32_t fwmark = 0;  // virtual_server fwmark N (then addrs holds one empty entry)
  std::optional<uint8_t> protocol;
  std::string sched;
  char method = 0;
  std::string tun;
  std::optional<uint32_t> persistence;
  std::optional<Token> granularity;  // a netmask or a prefix length (IPv6: a prefix length), read at the end
  bool inet6 = false;                 // ip_family inet6 (a fwmark service's family)
  bool ops = false;
  std::optional<std::pair<IpAddr, std::optional<uint16_t>>> sorry;
  std::optional<char> sorry_method;
  std::optional<uint32_t> default_weight;
  uint32_t quorum = 1, hysteresis = 0;  // keepalived's defaults
  std::string quorum_up, quorum_down;
  CheckDefaults defaults;
  std::vector<Real> reals;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  KeepalivedImport run() {
    while (skip_newlines()) {
      const Token kw = next();
      if (kw.text == "virtual_server") virtual_server(kw);
      else if (kw.text == "virtual_server_group") group(kw);
      else if (kw.text == "global_defs") global_defs(kw);
      else if (kw.text == "}" || kw.text == "{") refuse(kw, "unbalanced brace");
      else if (is_other_section(kw.text)) {
        skip_rest_of_line_and_block(kw);
        notes_.push_back(fmt::format("{}:{}: {} skipped: not an LVS section (VRRP stays keepalived's, see README "
                                     "\"Several directors\")", kw.file, kw.line, kw.text));
      } else {
        refuse(kw, "not a keepalived section lbd imports");
      }
    }
    return finish();
  }

 private:
  static bool is_other_section(const std::string& k) {
    return k.starts_with("vrrp_") || k == "static_ipaddress" || k == "static_routes" || k == "static_rules" ||
           k == "linkbeat_interfaces" || k.starts_with("track_") || k == "bfd_instance" || k == "garp_group" ||
           k == "net_namespace" || k == "instance" || k == "use_pid_dir";
  }

  bool skip_newlines() {
    while (i_ < t_.size() && t_[i_].text == "\n" && !t_[i_].quoted) ++i_;
    return i_ < t_.size();
  }
  const Token& peek() const { return t_[i_]; }
  Token next() {
    if (i_ >= t_.size()) refuse(t_.back(), "unexpected end of file");
    return t_[i_++];
  }
  bool at_eol() const { return i_ >= t_.size() || (t_[i_].text == "\n" && !t_[i_].quoted) || (t_[i_].text == "}" && !t_[i_].quoted); }
  // The rest of the keyword's line (up to a newline, `{` or `}`).
  std::vector<Token> args() {
    std::vector<Token> a;
    while (!at_eol() && !(t_[i_].text == "{" && !t_[i_].quoted)) a.push_back(t_[i_++]);
    return a;
  }
  const Token& arg1(const Token& kw, const std::vector<Token>& a) {
    if (a.size() != 1) refuse(kw, "expected one value");
    return a[0];
  }
  void open_block(const Token& kw) {
    skip_newlines();
    if (i_ >= t_.size() || peek().text != "{" || peek().quoted) refuse(kw, "expected {");
    ++i_;
  }
  // Iterates a block's keywords until its `}`.
  template <class F>
  void block(const Token& kw, F&& on_keyword) {
    open_block(kw);
    for (;;) {
      if (!skip_newlines()) refuse(kw, "block not closed");
      if (peek().text == "}" && !peek().quoted) {
        ++i_;
        return;
      }
      const Token k = next();
      on_keyword(k);
    }
  }
  void skip_rest_of_line_and_block(const Token& kw) {
    (void)args();
    skip_newlines();
    if (i_ < t_.size() && peek().text == "{") skip_block(kw);
  }
  void skip_block(const Token& kw) {
    block(kw, [&](const Token& k) {
      (void)args();
      if (i_ < t_.size() && peek().text == "{") skip_block(k);
    });
  }

  IpAddr address(const Token& t, const char* what) {
    IpAddr a;
    if (!parse_ip(t.text, a)) refuse(t, fmt::format("expected an IPv4 or IPv6 address for the {}", what));
    return a;
  }

  void global_defs(const Token& kw) {
    block(kw, [&](const Token& k) {
      const auto a = args();
      if (k.text == "lvs_timeouts") {
        std::map<std::string, uint32_t> v;
        for (size_t j = 0; j + 1 < a.size(); j += 2) {
          if (a[j].text != "tcp" && a[j].text != "tcpfin" && a[j].text != "udp") refuse(a[j], "expected tcp, tcpfin or udp");
          v[a[j].text] = uint32_t(number(a[j + 1], 0, 2678400));
        }
        if (a.size() % 2) refuse(k, "expected tcp S tcpfin S udp S");
        timeouts_ = fmt::format("--set {} {} {}", v.count("tcp") ? v["tcp"] : 0, v.count("tcpfin") ? v["tcpfin"] : 0,
                                v.count("udp") ? v["udp"] : 0);
      } else if (k.text == "lvs_sync_daemon") {
        notes_.push_back(fmt::format("{}:{}: lvs_sync_daemon skipped: lbd's sync daemons are started by "
                                     "keepalived's notify script (README \"Several directors\")", k.file, k.line));
      }
      if (i_ < t_.size() && peek().text == "{") skip_block(k);
    });
  }

  void group(const Token& kw) {
    const auto a = args();
    const std::string name = arg1(kw, a).text;
    std::vector<std::pair<IpAddr, uint16_t>> addrs;
    block(kw, [&](const Token& k) {
      const auto rest = args();
      if (k.text == "fwmark") refuse(k, "fwmark entries of a group are not imported: use virtual_server fwmark N");
      if (k.text.find('-') != std::string::npos || k.text.find('/') != std::string::npos)
        refuse(k, "address ranges are not imported: list each address");
      const IpAddr addr = address(k, "group's address");
      if (rest.size() > 1) refuse(k, "expected ADDRESS [PORT]");
      addrs.push_back({addr, rest.empty() ? uint16_t(0) : uint16_t(number(rest[0], 0, 65535))});
    });
    groups_[name] = std::move(addrs);
  }

  // lvs_method NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]; the tunnel's
  // options, as ipvsadm's, in `tun` (nullptr: a sorry server's, which takes none).
  char method_of(const Token& kw, const std::vector<Token>& a, std::string* tun = nullptr) {
    const std::string m = arg1(kw, std::vector<Token>(a.begin(), a.begin() + std::min<size_t>(a.size(), 1))).text;
    if (a.size() > 1) {
      if (m != "TUN" || !tun) refuse(a[1], "tunnel options are taken only after TUN, and not for a sorry server");
      size_t i = 1;
      if (a[i].text != "type" || i + 1 >= a.size()) refuse(a[i], "expected type ipip|gue|gre");
      const std::string type = a[i + 1].text;
      i += 2;
      if (type != "ipip" && type != "gue" && type != "gre") refuse(a[i - 1], "expected ipip, gue or gre");
      *tun = " --tun-type " + type;
      if (type == "gue") {
        if (i + 1 >= a.size() || a[i].text != "port") refuse(a[i - 1], "gue needs port N");
        *tun += fmt::format(" --tun-port {}", number(a[i + 1], 1, 65535));
        i += 2;
      }
      if (i < a.size()) {
        const std::string c = a[i].text;
        if (type == "ipip" || (c != "nocsum" && c != "csum" && c != "remcsum") || (type == "gre" && c == "remcsum"))
          refuse(a[i], "not a checksum option of this tunnel type");
        *tun += " --tun-" + c;
        ++i;
      }
      if (i < a.size()) refuse(a[i], "unexpected after the tunnel's options");
    }
    if (m == "NAT") return 'm';
    if (m == "DR") return 'g';
    if (m == "TUN") return 'i';
    refuse(a[0], "expected NAT, DR or TUN");
  }

  // Keywords valid at every level of the cascade; false if `k` is none of them.
  bool check_default(const Token& k, const std::vector<Token>& a, CheckDefaults& d) {
    if (k.text == "delay_loop") d.interval_ms = timer_ms(arg1(k, a));
    else if (k.text == "connect_timeout") d.timeout_ms = timer_ms(arg1(k, a));
    else if (k.text == "alpha") d.alpha = true;  // a real starts down until its checks pass
    else if (k.text == "retry" || k.text == "nb_get_retry") d.retry = uint32_t(number(arg1(k, a), 0, 1000));
    else if (k.text == "delay_before_retry") {
      (void)timer_ms(arg1(k, a));
      notes_.push_back(fmt::format("{}:{}: delay_before_retry {}: lbd checks on its interval after a failure too",
                                   k.file, k.line, a[0].text));
    } else if (k.text == "virtualhost") d.host = arg1(k, a).text;
    else if (k.text == "inhibit_on_failure") {
      notes_.push_back(fmt::format("{}:{}: inhibit_on_failure: lbd always keeps a failed real at weight 0 "
                                   "(its connections go on)", k.file, k.line));
    } else return false;
    return true;
  }

  void virtual_server(const Token& kw) {
    VirtualServer vs;
    vs.at = kw;
    const auto a = args();
    if (a.empty()) refuse(kw, "expected an address, fwmark N or group NAME");
    if (a[0].text == "fwmark") {
      if (a.size() != 2) refuse(a[0], "expected fwmark N");
      vs.fwmark = uint32_t(number(a[1], 1, 0xffffffffULL));
      vs.addrs.push_back({IpAddr{}, 0});
    } else if (a[0].text == "group") {
      if (a.size() != 2) refuse(a[0], "expected group NAME");
      auto g = groups_.find(a[1].text);
      if (g == groups_.end()) refuse(a[1], "no virtual_server_group of that name before it");
      vs.addrs = g->second;
      vs.group = a[1].text;
    } else {
      if (a.size() > 2) refuse(a[2], "expected ADDRESS [PORT]");
      vs.addrs.push_back({address(a[0], "virtual server"), a.size() == 2 ? uint16_t(number(a[1], 0, 65535)) : uint16_t(0)});
    }
    block(kw, [&](const Token& k) {
      if (k.text == "real_server") {
        vs.reals.push_back(real_server(k));
        return;
      }
      const auto v = args();
      if (check_default(k, v, vs.defaults)) return;
      if (k.text == "lb_algo" || k.text == "lvs_sched") {
        vs.sched = arg1(k, v).text;
        static const char* kScheds[] = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"};
        if (std::find_if(std::begin(kScheds), std::end(kScheds), [&](const char* s) { return vs.sched == s; }) == std::end(kScheds))
          refuse(v[0], "not one of IPVS's schedulers");
      } else if (k.text == "lb_kind" || k.text == "lvs_method") {
        vs.method = method_of(k, v, &vs.tun);
      } else if (k.text == "protocol") {
        std::string p = arg1(k, v).text;
        for (auto& c : p) c = char(std::toupper(static_cast<unsigned char>(c)));
        if (p == "TCP") vs.protocol = kProtoTcp;
        else if (p == "UDP") vs.protocol = kProtoUdp;
        else if (p == "SCTP") refuse(v[0], "SCTP is refused: this kernel has no SCTP to test lbd against");
        else refuse(v[0], "expected TCP or UDP");
      } else if (k.text == "persistence_timeout") {
        vs.persistence = v.empty() ? 360u : uint32_t(number(v[0], 1, 2678400));
      } else if (k.text == "persistence_granularity") {
        vs.granularity = arg1(k, v);
      } else if (k.text == "ip_family") {
        const Token& f = arg1(k, v);
        if (f.text != "inet" && f.text != "inet6") refuse(f, "expected inet or inet6");
        vs.inet6 = f.text == "inet6";
      } else if (k.text == "ops") {
        vs.ops = true;
      } else if (k.text == "sorry_server") {
        if (v.empty() || v.size() > 2) refuse(k, "expected ADDRESS [PORT]");
        vs.sorry = {address(v[0], "sorry server"),
                    v.size() == 2 ? std::optional<uint16_t>(uint16_t(number(v[1], 1, 65535))) : std::nullopt};
      } else if (k.text == "sorry_server_lvs_method") {
        vs.sorry_method = method_of(k, v);
      } else if (k.text == "weight") {
        vs.default_weight = uint32_t(number(arg1(k, v), 0, 65535));
      } else if (k.text == "quorum") {
        vs.quorum = uint32_t(number(arg1(k, v), 1, 1u << 30));
      } else if (k.text == "hysteresis") {
        vs.hysteresis = uint32_t(number(arg1(k, v), 0, 1u << 30));
      } else if (k.text == "quorum_up" || k.text == "quorum_down") {
        const std::string cmd = arg1(k, v).text;
        if (cmd.empty() || cmd[0] != '/' || cmd.find_first_of(" \t") != std::string::npos)
          refuse(k, "lbd runs one absolute path without arguments (with the service, the weight up and the "
                    "quorum as arguments): put the command line in a script");
        (k.text == "quorum_up" ? vs.quorum_up : vs.quorum_down) = cmd;
      } else {
        refuse(k, "not imported (lbd has no equivalent)");
      }
    });
    services_.push_back(std::move(vs));
  }

  Real real_server(const Token& kw) {
    Real r;
    r.at = kw;
    const auto a = args();
    if (a.empty() || a.size() > 2) refuse(kw, "expected ADDRESS [PORT]");
    r.addr = address(a[0], "real server");
    if (a.size() == 2) r.port = uint16_t(number(a[1], 0, 65535));
    block(kw, [&](const Token& k) {
      if (k.text == "TCP_CHECK" || k.text == "HTTP_GET" || k.text == "SSL_GET" || k.text == "MISC_CHECK") {
        r.checkers.push_back(checker(k));
        return;
      }
      if (k.text.ends_with("_CHECK"))
        refuse(k, "lbd has no such check (it has TCP_CHECK, HTTP_GET, SSL_GET and MISC_CHECK's equivalents)");
      const auto v = args();
      if (check_default(k, v, r.defaults)) return;
      if (k.text == "weight") r.weight = uint32_t(number(arg1(k, v), 0, 65535));
      else if (k.text == "lvs_method") r.method = method_of(k, v, &r.tun);
      else if (k.text == "uthreshold") r.uthreshold = uint32_t(number(arg1(k, v), 0, 65535));
      else if (k.text == "lthreshold") r.lthreshold = uint32_t(number(arg1(k, v), 0, 65535));
      else refuse(k, "not imported (lbd has no equivalent)");
    });
    if (r.checkers.size() > 1) refuse(r.checkers[1].at, "lbd runs one check per real");
    return r;
  }

  Checker checker(const Token& kw) {
    Checker c;
    c.at = kw;
    c.kind = kw.text == "TCP_CHECK" ? "tcp" : kw.text == "HTTP_GET" ? "http" : kw.text == "SSL_GET" ? "https" : "exec";
    if (!args().empty()) refuse(kw, "expected {");
    CheckDefaults d;
    block(kw, [&](const Token& k) {
      if (k.text == "url") {
        if (c.kind != "http" && c.kind != "https") refuse(k, "url belongs in HTTP_GET or SSL_GET");
        if (!c.path.empty()) refuse(k, "lbd checks one url per real");
        if (!args().empty()) refuse(k, "expected {");
        block(k, [&](const Token& u) {
          const auto v = args();
          if (u.text == "path") c.path = arg1(u, v).text;
          else if (u.text == "status_code") {
            std::string s;
            for (const auto& x : v) {
              if (x.text.find_first_not_of("0123456789-") != std::string::npos) refuse(x, "expected N or N-M");
              s += (s.empty() ? "" : "/") + x.text;
            }
            if (s.empty()) refuse(u, "expected a status");
            c.status = s;
          } else if (u.text == "virtualhost") c.host = arg1(u, v).text;
          else if (u.text == "digest" || u.text == "regex")
            refuse(u, "lbd matches statuses (status_code), not a body digest or regex");
          else refuse(u, "not imported (lbd has no equivalent)");
        });
        if (c.path.empty()) refuse(k, "a url without path (keepalived drops it)");
        return;
      }
      const auto v = args();
      if (check_default(k, v, d)) return;
      if (k.text == "connect_port") c.port = uint16_t(number(arg1(k, v), 1, 65535));
      else if (k.text == "sni_name" && c.kind == "https") c.sni = arg1(k, v).text;
      else if (k.text == "enable_sni" && c.kind == "https") c.enable_sni = true;
      else if (k.text == "misc_path" && c.kind == "exec") {
        c.cmd = arg1(k, v).text;
        if (c.cmd.empty() || c.cmd[0] != '/' || c.cmd.find_first_of(" \t") != std::string::npos)
          refuse(k, "lbd's exec check runs one absolute path without arguments (it passes the real in LBD_* "
                    "variables): put the command line in a script");
      } else if (k.text == "misc_timeout" && c.kind == "exec") d.timeout_ms = timer_ms(arg1(k, v));
      else if (k.text == "misc_dynamic") refuse(k, "lbd's exec check does not set weights");
      else refuse(k, "not imported (lbd has no equivalent)");
    });
    if (c.kind == "exec" && c.cmd.empty()) refuse(kw, "MISC_CHECK without misc_path");
    c.interval_ms = d.interval_ms;
    c.timeout_ms = d.timeout_ms;
    c.retry = d.retry;
    c.alpha = d.alpha;
    if (d.host) c.host = *d.host;
    return c;
  }

  // A checker's lbd keys, with the cascade's values and keepalived's defaults.
  std::vector<std::pair<std::string, std::string>> check_keys(const VirtualServer& vs, const Real& r, const Checker& c,
                                                              std::string& note) {
    auto pick = [](auto a, auto b, auto c2, auto dflt) { return a ? *a : b ? *b : c2 ? *c2 : dflt; };
    const uint32_t interval = pick(c.interval_ms, r.defaults.interval_ms, vs.defaults.interval_ms, 60000u);
    uint32_t timeout = pick(c.timeout_ms, r.defaults.timeout_ms, vs.defaults.timeout_ms, 5000u);
    const uint32_t retry = pick(c.retry, r.defaults.retry, vs.defaults.retry, c.kind == "exec" ? 0u : 1u);
    if (timeout > interval) {
      note = fmt::format("connect_timeout {} s is longer than delay_loop {} s: lbd waits at most the interval",
                         seconds_text(timeout), seconds_text(interval));
      timeout = interval;
    }
    std::vector<std::pair<std::string, std::string>> k = {{"check", c.kind}};
    if (c.port) k.push_back({"port", std::to_string(c.port)});
    k.push_back({"interval", seconds_text(interval)});
    k.push_back({"timeout", seconds_text(timeout)});
    k.push_back({"rise", "1"});  // keepalived: up at the first success
    k.push_back({"fall", std::to_string(retry + 1)});
    if (c.alpha || r.defaults.alpha || vs.defaults.alpha) k.push_back({"start", "down"});
    if (c.kind == "http" || c.kind == "https") {
      k.push_back({"path", c.path});
      const std::string host = !c.host.empty() ? c.host : r.defaults.host ? *r.defaults.host : vs.defaults.host.value_or("");
      if (!host.empty()) k.push_back({"host", host});
      k.push_back({"status", c.status.empty() ? "200-299" : c.status});
      // keepalived's SSL_GET sends SNI only when asked (sni_name, or enable_sni with the
      // virtualhost); lbd's https check sends host= as SNI unless sni= says otherwise.
      if (c.kind == "https") {
        if (!c.sni.empty()) k.push_back({"sni", c.sni});
        else if (!c.enable_sni && !host.empty())
          note = "SSL_GET without enable_sni: lbd sends the virtualhost as SNI";
      }
    }
    if (c.kind == "exec") k.push_back({"cmd", c.cmd});
    return k;
  }

  static std::string join(const std::vector<std::pair<std::string, std::string>>& kv) {
    std::string s;
    for (const auto& [k, v] : kv) {
      if (v.find_first_of(", \t%") != std::string::npos)
        throw Refusal{fmt::format("the value {} has a comma or a space, which a --health value cannot hold", v)};
      s += (s.empty() ? "" : ",") + k + "=" + v;
    }
    return s;
  }

  // persistence_granularity as ipvsadm's -M takes it: IPv4 a netmask (dotted, or a prefix
  // length written out dotted), IPv6 a prefix length (keepalived's own reading).
  std::string granularity(const Token& g, bool v6) {
    if (v6) {
      if (g.text.find('.') != std::string::npos) refuse(g, "expected a prefix length (1-128) for an IPv6 service");
      return std::to_string(number(g, 1, 128));
    }
    Ipv4 m;
    if (g.text.find('.') != std::string::npos) {
      if (!parse_ipv4(g.text, m)) refuse(g, "expected a netmask or a prefix length");
    } else {
      const uint32_t bits = uint32_t(number(g, 1, 32));
      const uint32_t host = bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
      m = Ipv4{{uint8_t(host >> 24), uint8_t(host >> 16), uint8_t(host >> 8), uint8_t(host)}};
    }
    return to_string(m);
  }

  KeepalivedImport finish() {
    KeepalivedImport out;
    std::string& o = out.rules;
    o = "# Imported from keepalived.conf by lbadm --from-keepalived: keepalived's defaults written out\n";
    if (!timeouts_.empty()) o += timeouts_ + "\n";
    for (const VirtualServer& vs : services_) {
      if (vs.reals.empty()) {
        notes_.push_back(fmt::format("{}:{}: virtual_server has no real_server: ignored, as keepalived does",
                                     vs.at.file, vs.at.line));
        continue;
      }
      const uint8_t proto = vs.protocol.value_or(kProtoUdp);
      const char method = vs.method ? vs.method : 'm';  // keepalived's default lb_kind: NAT
      std::vector<std::string> real_checks;
      std::vector<std::string> checker_notes;
      for (const Real& r : vs.reals) {
        std::string note;
        real_checks.push_back(r.checkers.empty() ? "check=none" : join(check_keys(vs, r, r.checkers[0], note)));
        if (!note.empty()) checker_notes.push_back(fmt::format("{}:{}: {}", r.checkers[0].at.file, r.checkers[0].at.line, note));
      }
      for (const auto& [vip, vport] : vs.addrs) {
        // The service's family: its address's, or a fwmark service's ip_family (keepalived's
        // default inet); an address of the other family beside ip_family is refused.
        const bool v6 = vs.fwmark ? vs.inet6 : vip.v6();
        if (!vs.fwmark && vs.inet6 && !vip.v6())
          throw Refusal{fmt::format("{}:{}: ip_family inet6 with the IPv4 address {}", vs.at.file, vs.at.line, vip)};
        std::string mask;  // -M: a dotted netmask (IPv4), a prefix length (IPv6), as ipvsadm reads them
        if (vs.granularity) mask = granularity(*vs.granularity, v6);
        uint32_t persistence = vs.persistence.value_or(0);
        if (vs.granularity && !persistence) persistence = 360;  // granularity implies persistence
        if (!vport && !persistence && !vs.fwmark) {
          persistence = 360;  // keepalived: port 0 only for persistent services
          notes_.push_back(fmt::format("{}:{}: port 0 without persistence_timeout: persistent 360, as keepalived "
                                       "sets", vs.at.file, vs.at.line));
        }
        const size_t block_start = o.size();
        const std::string svc = vs.fwmark ? fmt::format("-f {}{}", vs.fwmark, v6 ? " -6" : "")
                                          : fmt::format("{} {}", proto == kProtoTcp ? "-t" : "-u", addr_port(vip, vport));
        o += fmt::format("# {}:{}: virtual_server {}{}\n", vs.at.file, vs.at.line,
                         vs.fwmark ? fmt::format("fwmark {}", vs.fwmark)
                         : vs.group.empty() ? fmt::format("{} {}", vip, vport) : "group " + vs.group,
                         vs.protocol || vs.fwmark ? "" : " (no protocol: UDP, keepalived's default)");
        std::string line = fmt::format("-A {} -s {}", svc, vs.sched.empty() ? "wlc" : vs.sched);
        if (persistence) line += fmt::format(" -p {}", persistence);
        if (vs.granularity) line += fmt::format(" -M {}", mask);
        if (vs.ops && (proto == kProtoUdp || vs.fwmark)) line += " -o";
        std::string health = real_checks[0];
        if (vs.sorry) {
          health += fmt::format(",sorry={}", vs.sorry->second ? addr_port(vs.sorry->first, *vs.sorry->second)
                                                              : to_string(vs.sorry->first));
          const char sm = vs.sorry_method.value_or(method);
          if (sm != 'g') health += fmt::format(",sorry-fwd={}", sm);
        }
        // keepalived: hysteresis below quorum (it lowers it with a warning; said here too).
        uint32_t hysteresis = vs.hysteresis;
        if (hysteresis >= vs.quorum) {
          hysteresis = vs.quorum - 1;
          notes_.push_back(fmt::format("{}:{}: hysteresis {} >= quorum {}: {}, as keepalived sets", vs.at.file,
                                       vs.at.line, vs.hysteresis, vs.quorum, hysteresis));
        }
        // Quorum 1 without hysteresis is lbd's own rule (the sorry server when every real is
        // down) but for reals of weight 0: written out whenever the file sets either.
        if (vs.quorum != 1 || hysteresis) health += fmt::format(",quorum={}", vs.quorum);
        if (hysteresis) health += fmt::format(",hysteresis={}", hysteresis);
        if (!vs.quorum_up.empty()) health += ",quorum-up=" + vs.quorum_up;
        if (!vs.quorum_down.empty()) health += ",quorum-down=" + vs.quorum_down;
        line += " --health " + health;
        o += line + "\n";
        for (size_t j = 0; j < vs.reals.size(); ++j) {
          const Real& r = vs.reals[j];
          const char m = r.method.value_or(method);
          // validate_check_config: a real without port takes the service's; DR and TUN
          // reals take the service's port whatever they say.
          uint16_t port = r.port.value_or(vport);
          if (vs.fwmark && m != 'm') {
            port = 0;  // keepalived clears a fwmark service's DR/TUN real's port
          } else if (m != 'm' && r.port && *r.port != vport) {
            notes_.push_back(fmt::format("{}:{}: real_server {} port {}: DR and TUN reals use the service's port {}, "
                                         "as keepalived resets it", r.at.file, r.at.line, r.addr, *r.port, vport));
            port = vport;
          }
          const uint32_t weight = r.weight ? *r.weight : vs.default_weight.value_or(1);
          std::string rl = fmt::format("-a {} -r {} -{} -w {}{}", svc, addr_port(r.addr, port), m, weight,
                                       m != 'i' ? "" : r.method ? r.tun : vs.tun);
          if (r.uthreshold) rl += fmt::format(" -x {}", r.uthreshold);
          if (r.lthreshold) rl += fmt::format(" -y {}", r.lthreshold);
          if (real_checks[j] != real_checks[0]) rl += " --health " + real_checks[j];
          o += rl + "\n";
        }
        // What is printed loads: a value lbd's grammar refuses (a status of 99, a host with
        // a control character) refuses the import, naming the virtual server.
        std::vector<CliCommand> parsed;
        if (const Status st = parse_rules(o.substr(block_start), parsed); !st.is_ok())
          throw Refusal{fmt::format("{}:{}: virtual_server: {}", vs.at.file, vs.at.line, st.message())};
      }
      for (auto& n : checker_notes) notes_.push_back(std::move(n));
    }
    out.notes = std::move(notes_);
    return out;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  std::map<std::string, std::vector<std::pair<IpAddr, uint16_t>>> groups_;
  std::vector<VirtualServer> services_;
  std::vector<std::string> notes_;
  std::string timeouts_;
};

Result<KeepalivedImport> import_tokens(const std::string& text, const std::string& file, bool includes) {
  try {
    std::vector<Token> toks;
    lex(text, file, toks, 0, includes);
    return Parser(std::move(toks)).run();
  } catch (const Refusal& r) {
    return Status::invalid(r.message);
  }
}

}  // namespace

Result<KeepalivedImport> import_keepalived(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(ENOENT, fmt::format("{}: cannot read it", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return import_tokens(ss.str(), path, true);
}

Result<KeepalivedImport> import_keepalived_text(const std::string& text, const std::string& name) {
  return import_tokens(text, name, false);
}

}  // namespace lbd

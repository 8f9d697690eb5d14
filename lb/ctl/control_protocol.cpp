// Dump encoding; see control_protocol.hpp.
#include "lb/ctl/control_protocol.hpp"

#include <fmt/format.h>

#include <sstream>

namespace lbd {

std::optional<std::string> framed_request(const std::string& in) {
  if (in.rfind("RESTORE\n", 0) == 0) {
    if (in.find("\nEND\n") == std::string::npos) return std::nullopt;
    return in;
  }
  const size_t nl = in.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  return in.substr(0, nl);
}

std::string restore_request(const std::string& rules) { return fmt::format("RESTORE\n{}{}", rules, kEnd); }

std::string restore_rules(const std::string& req) {
  const size_t end = req.rfind("\nEND\n");
  if (req.rfind("RESTORE\n", 0) != 0 || end == std::string::npos || end < 7) return {};
  return req.substr(8, end + 1 - 8);
}

std::string status_reply(const Status& st) {
  return st.is_ok() ? "OK\n" : fmt::format("ERR {} {}\n", st.code(), st.message());
}

std::optional<Status> reply_status(const std::string& reply) {
  if (reply.rfind("OK", 0) == 0) return Status::ok();
  if (reply.rfind("ERR ", 0) != 0) return std::nullopt;
  std::istringstream in(reply.substr(4));
  int code = 0;
  std::string message;
  if (!(in >> code) || code == 0) return std::nullopt;
  std::getline(in, message);
  if (!message.empty() && message[0] == ' ') message.erase(0, 1);
  return Status::error(code, message);
}

std::string reply_text(std::string reply) {
  if (const size_t end = reply.rfind(kEnd); end != std::string::npos) reply.resize(end);
  return reply;
}

std::string encode_args(const std::vector<std::string>& args) {
  std::string s;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) s += '\t';
    for (unsigned char ch : args[i]) {
      if (ch < 0x20 || ch == 0x7f || ch == '%')
        s += fmt::format("%{:02X}", ch);
      else
        s += char(ch);
    }
  }
  return s;
}

bool decode_args(std::string_view line, std::vector<std::string>& out) {
  out.assign(1, "");
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (ch == '\t') {
      out.emplace_back();
    } else if (ch == '%') {
      auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
      if (i + 2 >= line.size()) return false;
      const int hi = hex(line[i + 1]), lo = hex(line[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.back() += char(hi << 4 | lo);
      i += 2;
    } else if (uint8_t(ch) < 0x20) {
      return false;  // never sent raw
    } else {
      out.back() += ch;
    }
  }
  if (out.size() == 1 && out[0].empty()) out.clear();
  return true;
}

// Health texts are percent-encoded (no blanks); "-" stands for none.
static std::string token(const std::string& t) { return t.empty() ? "-" : t; }
static std::string untoken(const std::string& t) { return t == "-" ? "" : t; }

static void put_counters(std::string& s, const Counters& c) {
  s += fmt::format(" {} {} {} {} {}", c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes);
}

static void put_rates(std::string& s, const Rates& r) {
  s += fmt::format(" {} {} {} {} {}", r.cps, r.inpps, r.outpps, r.inbps, r.outbps);
}

static bool get_rates(std::istringstream& in, Rates& r) {
  return bool(in >> r.cps >> r.inpps >> r.outpps >> r.inbps >> r.outbps);
}

std::string encode_dump(const Dump& d) {
  std::string s = fmt::format("V {} {} {} {}\n", d.table_size, d.timeouts.tcp, d.timeouts.tcpfin,
                              d.timeouts.udp);
  for (const SysctlDef& def : kSysctlDefs) s += fmt::format("Y {} {}\n", def.name, sysctl_value(d.timeouts.sysctl, def));
  for (const DumpDaemon& dd : d.daemons)
    s += fmt::format("D {} {} {} {} {} {} {}\n", dd.role, token(dd.spec.mcast_ifn), dd.spec.syncid, dd.spec.maxlen,
                     dd.spec.group, dd.spec.port, dd.spec.ttl);
  for (const auto& sv : d.services) {
    const ServiceOptions& o = sv.options;
    s += fmt::format("S {} {} {} {}", sv.key.protocol, sv.key.vip, sv.key.port, o.scheduler);
    put_counters(s, sv.stats);
    s += fmt::format(" {} {} {} {} {}", token(health::format_service_health(o.health)), o.persistent, o.netmask,
                     int(o.ops), int(o.sched_flags));
    put_rates(s, sv.rates);
    s += fmt::format(" {} {}\n", sv.key.fwmark, int(o.netmask6));
    for (const auto& r : sv.reals) {
      const RealSpec& rs = r.spec;
      s += fmt::format("R {} {} {} {} {} {}", rs.addr, rs.port, int(rs.fwd), rs.weight, r.active, r.inactive);
      put_counters(s, r.stats);
      s += fmt::format(" {} {} {} {} {}", r.flags, token(r.health()), rs.u_threshold, rs.l_threshold,
                       r.persist_conns);
      put_rates(s, r.rates);
      s += fmt::format(" {} {} {}\n", int(rs.tun.type), rs.tun.port, int(rs.tun.csum));
    }
  }
  s += encode_conns(d);
  s += kEnd;
  return s;
}

std::string encode_conns(const Dump& d) {
  std::string s;
  for (const auto& c : d.conns) {
    s += fmt::format("C {} {} {} {} {} {} {} {} {}\n", c.protocol, c.caddr, c.cport,
                     c.vaddr, c.vport, c.daddr, c.dport, c.state, c.expires);
  }
  return s;
}

static bool get_counters(std::istringstream& in, Counters& c) {
  return bool(in >> c.conns >> c.inpkts >> c.outpkts >> c.inbytes >> c.outbytes);
}

static bool get_ip(std::istringstream& in, Ipv4& a) {
  std::string t;
  return (in >> t) && parse_ipv4(t, a);
}

static bool get_ip(std::istringstream& in, IpAddr& a) {
  std::string t;
  return in >> t && parse_ip(t, a);
}

bool decode_dump(const std::string& text, Dump& out) {
  std::istringstream lines(text);
  std::string line;
  bool ended = false;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    if (tag == "V") {
      if (!(in >> out.table_size >> out.timeouts.tcp >> out.timeouts.tcpfin >> out.timeouts.udp))
        return false;
    } else if (tag == "Y") {
      std::string name, value;
      if (!(in >> name >> value) || !set_sysctl(out.timeouts.sysctl, name + "=" + value).is_ok()) return false;
    } else if (tag == "D") {
      DumpDaemon dd;
      std::string ifn;
      unsigned syncid, ttl;
      if (!(in >> dd.role >> ifn >> syncid >> dd.spec.maxlen) || !get_ip(in, dd.spec.group) ||
          !(in >> dd.spec.port >> ttl) || syncid > 255 || ttl > 255 || (dd.role != "master" && dd.role != "backup"))
        return false;
      dd.spec.mcast_ifn = untoken(ifn);
      dd.spec.syncid = uint8_t(syncid);
      dd.spec.ttl = uint8_t(ttl);
      out.daemons.push_back(std::move(dd));
    } else if (tag == "S") {
      DumpService s;
      ServiceOptions& o = s.options;
      unsigned proto, ops, flags;
      std::string health;
      if (!(in >> proto) || !get_ip(in, s.key.vip) || !(in >> s.key.port >> o.scheduler) ||
          !get_counters(in, s.stats) || !(in >> health >> o.persistent) ||
          !get_ip(in, o.netmask) || !(in >> ops >> flags) || !get_rates(in, s.rates) || ops > 1 ||
          flags > 7)
        return false;
      // "" (no --health) is the defaults; anything else the canonical text lbd wrote.
      if (const std::string h = untoken(health); !h.empty()) {
        auto parsed = health::parse_service_health(h);
        if (!parsed) return false;
        o.health = std::move(parsed).value();
      }
      // The fwmark ends the line; an older lbd wrote none (no fwmark services then).
      // Then an IPv6 service's -M prefix; an older lbd wrote neither.
      if (uint32_t mark = 0; in >> mark) {
        s.key.fwmark = mark;
        if (unsigned prefix = 0; in >> prefix) {
          if (prefix < 1 || prefix > 128) return false;
          o.netmask6 = uint8_t(prefix);
        }
      }
      o.ops = ops;
      o.sched_flags = uint8_t(flags);
      s.key.protocol = uint8_t(proto);
      out.services.push_back(std::move(s));
    } else if (tag == "R") {
      if (out.services.empty()) return false;
      DumpReal r;
      RealSpec& rs = r.spec;
      unsigned fwd;
      unsigned flags;
      std::string health;
      if (!get_ip(in, rs.addr) || !(in >> rs.port >> fwd >> rs.weight >> r.active >> r.inactive) ||
          !get_counters(in, r.stats) || !(in >> flags >> health) || flags > 3 ||
          !(in >> rs.u_threshold >> rs.l_threshold >> r.persist_conns) || !get_rates(in, r.rates) ||
          !fwd_from_number(fwd))
        return false;
      // The tunnel (type, port, checksum) ends the line; an older lbd wrote none: IPIP.
      unsigned tun_type = 0, tun_port = 0, tun_csum = 0;
      if (in >> tun_type) {
        if (!(in >> tun_port >> tun_csum) || tun_type >= kTunTypeNames.size() || tun_port > 65535 ||
            tun_csum >= kTunCsumOptions.size())
          return false;
        rs.tun = TunnelSpec{TunType(tun_type), uint16_t(tun_port), TunCsum(tun_csum)};
      }
      r.flags = uint8_t(flags);
      rs.health = untoken(health);
      rs.fwd = *fwd_from_number(fwd);
      out.services.back().reals.push_back(r);
    } else if (tag == "C") {
      DumpConn c;
      unsigned proto;
      if (!(in >> proto) || !get_ip(in, c.caddr) || !(in >> c.cport) || !get_ip(in, c.vaddr) ||
          !(in >> c.vport) || !get_ip(in, c.daddr) || !(in >> c.dport >> c.state >> c.expires))
        return false;
      c.protocol = uint8_t(proto);
      out.conns.push_back(std::move(c));
    } else if (tag == "END") {
      ended = true;
      break;
    } else {
      return false;
    }
  }
  return ended;
}

}  // namespace lbd

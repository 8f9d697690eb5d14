// ipvsadm output formats (ipvsadm.c 1.31 print_title, print_service_entry, list_conn,
// print_largenum, FMT_RULE); see listing.hpp.
#include "lb/ctl/listing.hpp"

#include <fmt/format.h>
#include <fmt/printf.h>

#include <algorithm>

namespace lbd {
namespace {

const char* proto_name(uint8_t p) { return protocol_info(p).name; }

// libipvs compares addresses as `int r = ntohl(a) - ntohl(b)`: the unsigned difference cast
// to int, so addresses more than 2^31 apart sort "backwards". Reproduced on purpose. IPv6
// (by the first one's family, as ipvs_cmp_dests does): the same over the four words of
// union nf_inet_addr, where an IPv4 address is the first word and zeros.
uint32_t union_word(const IpAddr& a, int i) {
  if (!a.v6()) return i == 0 ? a.v4().host() : 0;
  return uint32_t(a.b[4 * i]) << 24 | uint32_t(a.b[4 * i + 1]) << 16 | uint32_t(a.b[4 * i + 2]) << 8 | a.b[4 * i + 3];
}
int addr_cmp(const IpAddr& a, const IpAddr& b) {
  int r = 0;
  for (int i = 0; i < (a.v6() ? 4 : 1) && !r; ++i) r = int(union_word(a, i) - union_word(b, i));
  return r;
}

}  // namespace

bool service_order(const DumpService& a, const DumpService& b) {
  // ipvs_cmp_services(): the fwmark first, as an int difference (0: not a fwmark service).
  if (a.key.fwmark != b.key.fwmark) return int(a.key.fwmark - b.key.fwmark) < 0;
  if (a.key.vip.v6() != b.key.vip.v6()) return b.key.vip.v6();  // the family: AF_INET (2) before AF_INET6 (10)
  if (a.key.protocol != b.key.protocol) return a.key.protocol < b.key.protocol;
  if (int r = addr_cmp(a.key.vip, b.key.vip)) return r < 0;
  return a.key.port < b.key.port;
}

bool real_order(const DumpReal& a, const DumpReal& b) {
  if (int r = addr_cmp(a.spec.addr, b.spec.addr)) return r < 0;
  return a.spec.port < b.spec.port;
}

namespace {

// " a b c" for tokens {a, b, c}; "" for none (options after a fixed prefix).
std::string spaced(const std::vector<std::string>& tokens) {
  return tokens.empty() ? std::string() : " " + join_args(tokens);
}

// --tun-info's column (ipvsadm fwd_tun_info()): "ipip", "gue:PORT:-c|+c|r+c", "gre:-c|+c",
// "n/a" for a real that is not tunnelled.
std::string tunnel_info(const RealSpec& r) {
  if (r.fwd != FwdMethod::kTunnel) return "n/a";
  const char* csum = kTunCsumShort[uint8_t(r.tun.csum)];
  switch (r.tun.type) {
    case TunType::kIpip: return "ipip";
    case TunType::kGue: return fmt::format("gue:{}:{}", r.tun.port, csum);
    case TunType::kGre: return fmt::format("gre:{}", csum);
  }
  return "n/a";
}

struct Renderer {
  const CliCommand& cmd;
  const NameResolver& names;
  bool numeric;
  std::string out;

  // ipvsadm's addrport_to_anyname(): "host:port", "[2001:db8::1]:port" (IPv6 addresses are
  // not looked up: lbd's resolver knows IPv4 names only).
  std::string addrport(const IpAddr& a, uint16_t port, uint8_t proto) {
    std::string host, serv;
    if (!numeric && names.host && !a.v6()) host = names.host(a.v4());
    if (host.empty()) host = to_string(a);
    if (!numeric && names.service) serv = names.service(port, protocol_token(proto));
    if (serv.empty()) serv = std::to_string(port);
    return a.v6() ? "[" + host + "]:" + serv : host + ":" + serv;
  }

  void largenum(uint64_t i) {
    if (cmd.has(kOptExact)) {
      const size_t len = std::to_string(i).size();
      out += fmt::sprintf("%*llu", int(len <= 8 ? 9 : len + 1), (unsigned long long)i);
    } else if (i < 100000000ULL) {
      out += fmt::sprintf("%9llu", (unsigned long long)i);
    } else if (i < 1000000000ULL) {
      out += fmt::sprintf("%8lluK", (unsigned long long)(i / 1000));
    } else if (i < 100000000000ULL) {
      out += fmt::sprintf("%8lluM", (unsigned long long)(i / 1000000));
    } else if (i < 100000000000000ULL) {
      out += fmt::sprintf("%8lluG", (unsigned long long)(i / 1000000000ULL));
    } else {
      out += fmt::sprintf("%8lluT", (unsigned long long)(i / 1000000000000ULL));
    }
  }

  void counters(const Counters& c) {
    largenum(c.conns);
    largenum(c.inpkts);
    largenum(c.outpkts);
    largenum(c.inbytes);
    largenum(c.outbytes);
    out += '\n';
  }

  void rates(const Rates& r) {
    largenum(r.cps);
    largenum(r.inpps);
    largenum(r.outpps);
    largenum(r.inbps);
    largenum(r.outbps);
    out += '\n';
  }

  // print_title(): the first listing option wins, in this order.
  void title() {
    if (cmd.has(kOptStats)) {
      out += fmt::sprintf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
                          "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes",
                          "OutBytes");
    } else if (cmd.has(kOptRate)) {
      out += fmt::sprintf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
                          "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS");
    } else if (cmd.has(kOptThresholds)) {
      out += fmt::sprintf("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
                          "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn",
                          "InActConn");
    } else if (cmd.has(kOptPersistentConn)) {
      out += fmt::sprintf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
                          "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn",
                          "InActConn");
    } else if (cmd.has(kOptTunInfo)) {
      out += "Prot LocalAddress:Port Scheduler Flags\n"
             "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n";
    } else {
      out += "Prot LocalAddress:Port Scheduler Flags\n"
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    }
  }

  // The service line's flags: " (sched flags)", " persistent T", " mask M", " ops".
  static std::string service_flags(const DumpService& s) {
    std::string t;
    if (s.options.sched_flags) t += " (" + sched_flags_text(s.options.scheduler, s.options.sched_flags) + ")";
    if (s.options.persistent) {
      t += fmt::format(" persistent {}", s.options.persistent);
      if (s.key.vip.v6()) {
        if (s.options.netmask6 != 128) t += fmt::format(" mask {}", s.options.netmask6);
      } else if (s.options.netmask != kHostNetmask) {
        t += " mask " + to_string(s.options.netmask);
      }
    }
    if (s.options.ops) t += " ops";
    return t;
  }

  void service(DumpService s) {
    const bool v6 = s.key.vip.v6();
    std::string svc_name = s.key.fwmark ? fmt::format("FWM  {}{}", s.key.fwmark, v6 ? " IPv6" : "")
                                        : fmt::sprintf("%-4s %s", proto_name(s.key.protocol),
                                                       addrport(s.key.vip, s.key.port, s.key.protocol));
    if (svc_name.size() > 33 && !v6) svc_name.resize(33);  // ipvsadm cuts IPv4 names only
    if (cmd.has(kOptStats)) {
      out += fmt::sprintf("%-33s", svc_name);
      counters(s.stats);
    } else if (cmd.has(kOptRate)) {
      out += fmt::sprintf("%-33s", svc_name);
      rates(s.rates);
    } else {
      out += fmt::sprintf("%s %s%s\n", svc_name, s.options.scheduler, service_flags(s));
    }
    if (!cmd.has(kOptNoSort)) std::sort(s.reals.begin(), s.reals.end(), real_order);
    for (const auto& r : s.reals) {
      std::string dname = addrport(r.spec.addr, r.spec.port, s.key.protocol);
      if (dname.size() > 28 && !r.spec.addr.v6()) dname.resize(28);
      // A real down by its checks shows weight 0, as keepalived's inhibit_on_failure
      // leaves it in IPVS: ipvsadm's format, and the configured weight is kept for -S.
      const int32_t weight = (r.flags & DumpReal::kDown) ? 0 : r.spec.weight;
      if (cmd.has(kOptStats)) {
        out += fmt::sprintf("  -> %-28s", dname);
        counters(r.stats);
      } else if (cmd.has(kOptRate)) {
        // ipvsadm prints a real's CPS and PPS in full, its BPS abbreviated.
        out += fmt::sprintf("  -> %-28s %8llu %8llu %8llu", dname, (unsigned long long)r.rates.cps,
                            (unsigned long long)r.rates.inpps, (unsigned long long)r.rates.outpps);
        largenum(r.rates.inbps);
        largenum(r.rates.outbps);
        out += '\n';
      } else if (cmd.has(kOptThresholds)) {
        out += fmt::sprintf("  -> %-28s %-10u %-10u %-10u %-10u\n", dname, r.spec.u_threshold,
                            r.spec.l_threshold, r.active, r.inactive);
      } else if (cmd.has(kOptPersistentConn)) {
        out += fmt::sprintf("  -> %-28s %-9u %-11u %-10u %-10u\n", dname, unsigned(weight),
                            r.persist_conns, r.active, r.inactive);
      } else if (cmd.has(kOptTunInfo)) {
        out += fmt::sprintf("  -> %-28s %-7s %-13s %-6d %-10u %-10u\n", dname, fwd_name(r.spec.fwd),
                            tunnel_info(r.spec).c_str(), weight, r.active, r.inactive);
      } else {
        out += fmt::sprintf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, fwd_name(r.spec.fwd), weight,
                            r.active, r.inactive);
      }
    }
  }

  void save_service(DumpService s) {
    const char* flag = s.key.fwmark ? "-f" : protocol_info(s.key.protocol).flag;
    const std::string vname = s.key.fwmark ? std::to_string(s.key.fwmark) + (s.key.vip.v6() ? " -6" : "")
                                           : addrport(s.key.vip, s.key.port, s.key.protocol);
    std::vector<std::string> opts;
    const std::string h = health::format_service_health(s.options.health);
    append_service_flags(opts, s.options, "", h.empty() ? std::nullopt : std::optional(h));
    out += fmt::format("-A {} {}{}\n", flag, vname, spaced(opts));
    std::sort(s.reals.begin(), s.reals.end(), real_order);
    for (const auto& r : s.reals) {
      if (r.flags & DumpReal::kSorry) continue;  // saved in the service's --health
      // Thresholds are saved too (ipvsadm -S drops them, so its restore loses them).
      std::vector<std::string> flags;
      append_real_flags(flags, r.spec, r.health().empty() ? std::nullopt : std::optional(r.health()));
      out += fmt::format("-a {} {} -r {}{}\n", flag, vname, addrport(r.spec.addr, r.spec.port, s.key.protocol),
                         spaced(flags));
    }
  }

  void conns(const Dump& d) {
    out += "IPVS connection entries\n";
    if (cmd.has(kOptPersistentConn))  // (lbd has no persistence engine: no pe rows)
      out += fmt::sprintf("pro expire %-11s %-18s %-18s %-18s %-16s %s\n", "state", "source",
                          "virtual", "destination", "pe name", "pe_data");
    else
      out += fmt::sprintf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual",
                          "destination");
    for (const auto& c : d.conns) {
      const std::string expire = fmt::sprintf("%02d:%02d", c.expires / 60, c.expires % 60);
      out += fmt::sprintf("%-3s %-6s %-11s %-18s %-18s %s\n", c.protocol ? proto_name(c.protocol) : "IP", expire,
                          c.state, addrport(c.caddr, c.cport, c.protocol),
                          addrport(c.vaddr, c.vport, c.protocol),
                          addrport(c.daddr, c.dport, c.protocol));
    }
  }
};

}  // namespace

Result<std::string> render_listing(const CliCommand& cmd, const Dump& dump, const NameResolver& names) {
  Renderer r{cmd, names, cmd.has(kOptNumeric), {}};
  std::vector<DumpService> services = dump.services;
  if (cmd.cmd == Command::kSave || !cmd.has(kOptNoSort))
    std::sort(services.begin(), services.end(), service_order);

  if (cmd.cmd == Command::kSave) {
    // lbd's extension first: the settings the rules after it are applied under.
    for (const std::string& a : changed_sysctls(dump.timeouts.sysctl)) r.out += "--lbd-sysctl " + a + "\n";
    // Timeouts set with --set are saved too (ipvsadm -S drops them, so a reload from its
    // output would put them back to 900 120 300).
    const Timeouts dflt;
    if (dump.timeouts.tcp != dflt.tcp || dump.timeouts.tcpfin != dflt.tcpfin || dump.timeouts.udp != dflt.udp)
      r.out += fmt::format("--set {} {} {}\n", dump.timeouts.tcp, dump.timeouts.tcpfin, dump.timeouts.udp);
    for (const auto& s : services) r.save_service(s);
    return r.out;
  }
  if (cmd.has(kOptTimeout)) {
    r.out = fmt::format("Timeout (tcp tcpfin udp): {} {} {}\n", dump.timeouts.tcp,
                        dump.timeouts.tcpfin, dump.timeouts.udp);
    return r.out;
  }
  if (cmd.has(kOptDaemon)) {  // ipvsadm's list_daemon: the master first
    for (const char* role : {"master", "backup"})
      for (const DumpDaemon& d : dump.daemons) {
        if (d.role != role) continue;
        r.out += fmt::format("{} sync daemon (mcast={}, syncid={}", d.role, d.spec.mcast_ifn, d.spec.syncid);
        if (d.spec.maxlen) r.out += fmt::format(", maxlen={}", d.spec.maxlen);
        r.out += fmt::format(", group={}, port={}, ttl={})\n", d.spec.group, d.spec.port, d.spec.ttl);
      }
    return r.out;
  }
  if (cmd.has(kOptConnection)) {
    r.conns(dump);
    return r.out;
  }
  if (cmd.has(kOptService)) {
    for (const auto& s : services) {
      if (s.key == cmd.service) {
        r.title();
        r.service(s);
        return r.out;
      }
    }
    return Status::error(ESRCH, "No such service");
  }
  r.out = fmt::format("IP Virtual Server version 1.2.1 (size={})\n", dump.table_size);
  r.title();
  for (const auto& s : services) r.service(s);
  return r.out;
}

}  // namespace lbd

// ipvsadm output formats (ipvsadm.c 1.31 print_title, print_service_entry, list_conn,
// print_largenum, FMT_RULE); see listing.hpp.
#include "lb/listing.hpp"

#include <fmt/format.h>
#include <fmt/printf.h>

#include <algorithm>

namespace lbd {
namespace {

const char* proto_name(uint8_t p) { return p == kProtoTcp ? "TCP" : p == kProtoUdp ? "UDP" : "SCTP"; }

// libipvs compares addresses as `int r = ntohl(a) - ntohl(b)`: the unsigned difference cast
// to int, so addresses more than 2^31 apart sort "backwards". Reproduced on purpose.
int addr_cmp(Ipv4 a, Ipv4 b) { return int(uint32_t(a.host() - b.host())); }

bool service_less(const DumpService& a, const DumpService& b) {
  if (a.key.protocol != b.key.protocol) return a.key.protocol < b.key.protocol;
  if (int r = addr_cmp(a.key.vip, b.key.vip)) return r < 0;
  return a.key.port < b.key.port;
}

bool real_less(const DumpReal& a, const DumpReal& b) {
  if (int r = addr_cmp(a.addr, b.addr)) return r < 0;
  return a.port < b.port;
}

struct Renderer {
  const CliCommand& cmd;
  const NameResolver& names;
  bool numeric;
  std::string out;

  std::string addrport(Ipv4 a, uint16_t port, uint8_t proto) {
    std::string host, serv;
    if (!numeric && names.host) host = names.host(a);
    if (host.empty()) host = to_string(a);
    if (!numeric && names.service) serv = names.service(port, protocol_token(proto));
    if (serv.empty()) serv = std::to_string(port);
    return host + ":" + serv;
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

  void title() {
    if (cmd.has(kOptStats)) {
      out += fmt::sprintf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
                          "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes",
                          "OutBytes");
    } else {
      out += "Prot LocalAddress:Port Scheduler Flags\n"
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    }
  }

  void service(DumpService s) {
    std::string svc_name =
        fmt::sprintf("%-4s %s", proto_name(s.key.protocol),
                     addrport(s.key.vip, s.key.port, s.key.protocol));
    if (svc_name.size() > 33) svc_name.resize(33);
    if (cmd.has(kOptStats)) {
      out += fmt::sprintf("%-33s", svc_name);
      counters(s.stats);
    } else {
      out += fmt::sprintf("%s %s\n", svc_name, s.scheduler);
    }
    if (!cmd.has(kOptNoSort)) std::sort(s.reals.begin(), s.reals.end(), real_less);
    for (const auto& r : s.reals) {
      std::string dname = addrport(r.addr, r.port, s.key.protocol);
      if (dname.size() > 28) dname.resize(28);
      if (cmd.has(kOptStats)) {
        out += fmt::sprintf("  -> %-28s", dname);
        counters(r.stats);
      } else {
        // A real down by its checks shows weight 0, as keepalived's inhibit_on_failure
        // leaves it in IPVS: ipvsadm's format, and the configured weight is kept for -S.
        const int32_t weight = (r.flags & DumpReal::kDown) ? 0 : r.weight;
        out += fmt::sprintf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, fwd_name(r.fwd), weight,
                            r.active, r.inactive);
      }
    }
  }

  void save_service(DumpService s) {
    const char* flag = s.key.protocol == kProtoTcp ? "-t" : s.key.protocol == kProtoUdp ? "-u"
                                                                                        : "--sctp-service";
    const std::string vname = addrport(s.key.vip, s.key.port, s.key.protocol);
    out += fmt::format("-A {} {} -s {}{}\n", flag, vname, s.scheduler,
                       s.health.empty() ? "" : " --health " + s.health);
    std::sort(s.reals.begin(), s.reals.end(), real_less);
    for (const auto& r : s.reals) {
      if (r.flags & DumpReal::kSorry) continue;  // saved in the service's --health
      const char* fwd = r.fwd == FwdMethod::kRoute ? "-g" : r.fwd == FwdMethod::kMasq ? "-m" : "-i";
      out += fmt::format("-a {} {} -r {} {} -w {}{}{}\n", flag, vname,
                         addrport(r.addr, r.port, s.key.protocol), fwd, r.weight,
                         r.fwd == FwdMethod::kTunnel ? " --tun-type ipip" : "",
                         r.health.empty() ? "" : " --health " + r.health);
    }
  }

  void conns(const Dump& d) {
    out += "IPVS connection entries\n";
    out += fmt::sprintf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual",
                        "destination");
    for (const auto& c : d.conns) {
      const std::string expire = fmt::sprintf("%02d:%02d", c.expires / 60, c.expires % 60);
      out += fmt::sprintf("%-3s %-6s %-11s %-18s %-18s %s\n", proto_name(c.protocol), expire,
                          c.state, addrport(c.caddr, c.cport, c.protocol),
                          addrport(c.vaddr, c.vport, c.protocol),
                          addrport(c.daddr, c.dport, c.protocol));
    }
  }
};

}  // namespace

std::optional<std::string> render_listing(const CliCommand& cmd, const Dump& dump,
                                          const NameResolver& names, std::string& error) {
  Renderer r{cmd, names, cmd.has(kOptNumeric), {}};
  std::vector<DumpService> services = dump.services;
  if (cmd.cmd == Command::kSave || !cmd.has(kOptNoSort))
    std::sort(services.begin(), services.end(), service_less);

  if (cmd.cmd == Command::kSave) {
    for (const auto& s : services) r.save_service(s);
    return r.out;
  }
  if (cmd.has(kOptTimeout)) {
    r.out = fmt::format("Timeout (tcp tcpfin udp): {} {} {}\n", dump.timeouts.tcp,
                        dump.timeouts.tcpfin, dump.timeouts.udp);
    return r.out;
  }
  if (cmd.has(kOptDaemon)) return std::string();  // lbd runs no sync daemon: nothing to print
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
    error = "No such service";
    return std::nullopt;
  }
  r.out = fmt::format("IP Virtual Server version 1.2.1 (size={})\n", dump.table_size);
  r.title();
  for (const auto& s : services) r.service(s);
  return r.out;
}

}  // namespace lbd

// Listings byte for byte against ipvsadm's printf formats (expected texts written from
// ipvsadm.c's formats, not captured from lbadm).
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/ctl/listing.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
CliCommand cmd(const std::string& line) {
  auto r = parse_command(split_line(line), "ipvsadm");
  REQUIRE(std::holds_alternative<CliCommand>(r));
  return std::get<CliCommand>(r);
}
std::string render(const std::string& line, const Dump& d, const NameResolver& names = {}) {
  auto out = render_listing(cmd(line), d, names);
  REQUIRE(out);
  return *out;
}
DumpReal dreal(Ipv4 addr, uint16_t port, FwdMethod fwd, int32_t weight, uint32_t active, uint32_t inactive,
               Counters stats = {}) {
  DumpReal r;
  r.spec = RealSpec(addr, port, fwd, weight);
  r.active = active;
  r.inactive = inactive;
  r.stats = stats;
  return r;
}
Dump sample() {
  Dump d;
  d.table_size = 4096;
  DumpService tcp{{kProtoTcp, ip("198.18.0.100"), 80}, std::string("wlc"), {105116, 827026, 774414, 55260589, 151457957}, {}};
  tcp.reals.push_back(dreal(ip("198.18.0.12"), 80, FwdMethod::kRoute, 2, 0, 0, {}));
  tcp.reals.push_back(dreal(ip("198.18.0.11"), 80, FwdMethod::kRoute, 1, 3, 12,
                            {92972, 729968, 711766, 49472933, 1047000000}));
  DumpService udp{{kProtoUdp, ip("198.18.0.100"), 53}, std::string("rr"), {}, {}};
  udp.reals.push_back(dreal(ip("198.18.0.13"), 53, FwdMethod::kRoute, 0, 0, 5, {}));
  d.services = {udp, tcp};  // sorted on output: TCP before UDP
  d.conns.push_back({kProtoTcp, ip("198.18.0.5"), ip("198.18.0.100"), ip("198.18.0.11"), 51234, 80, 80, "ESTABLISHED", 897});
  d.conns.push_back({kProtoUdp, ip("198.18.0.5"), ip("198.18.0.100"), ip("198.18.0.13"), 40000, 53, 53, "UDP", 287});
  return d;
}
}  // namespace

TEST_CASE("-L -n is ipvsadm's default listing, sorted, with its padding") {
  CHECK(render("-L -n", sample()) ==
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  198.18.0.100:80 wlc\n"
        "  -> 198.18.0.11:80               Route   1      3          12        \n"
        "  -> 198.18.0.12:80               Route   2      0          0         \n"
        "UDP  198.18.0.100:53 rr\n"
        "  -> 198.18.0.13:53               Route   0      0          5         \n");
}

TEST_CASE("-L -n -t lists one service without the version line; unknown → No such service") {
  CHECK(render("-L -n -u 198.18.0.100:53", sample()) ==
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "UDP  198.18.0.100:53 rr\n"
        "  -> 198.18.0.13:53               Route   0      0          5         \n");
  CHECK(render_listing(cmd("-L -n -t 198.18.0.100:54"), sample(), {}).message() == "No such service");
}

TEST_CASE("--nosort keeps list order") {
  const std::string out = render("-L -n --nosort", sample());
  CHECK(out.find("UDP") < out.find("TCP"));
  CHECK(out.find("198.18.0.12:80") < out.find("198.18.0.11:80"));
}

TEST_CASE("-L -n -c lists connections in ipvsadm's columns") {
  CHECK(render("-L -n -c", sample()) ==
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination\n"
        "TCP 14:57  ESTABLISHED 198.18.0.5:51234   198.18.0.100:80    198.18.0.11:80\n"
        "UDP 04:47  UDP         198.18.0.5:40000   198.18.0.100:53    198.18.0.13:53\n");
}

TEST_CASE("--stats uses print_largenum's K/M/G/T; -X prints exact numbers") {
  CHECK(render("-L -n --stats", sample()) ==
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
        "  -> RemoteAddress:Port\n"
        "TCP  198.18.0.100:80                105116   827026   774414 55260589  151457K\n"
        "  -> 198.18.0.11:80                  92972   729968   711766 49472933    1047M\n"
        "  -> 198.18.0.12:80                      0        0        0        0        0\n"
        "UDP  198.18.0.100:53                     0        0        0        0        0\n"
        "  -> 198.18.0.13:53                      0        0        0        0        0\n");
  const std::string exact = render("-L -n --stats -X", sample());
  CHECK(exact.find(" 151457957\n") != std::string::npos);
  CHECK(exact.find(" 1047000000\n") != std::string::npos);
}

TEST_CASE("-S -n prints restorable rules, sorted") {
  CHECK(render("-S -n", sample()) ==
        "-A -t 198.18.0.100:80 -s wlc\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 2\n"
        "-A -u 198.18.0.100:53 -s rr\n"
        "-a -u 198.18.0.100:53 -r 198.18.0.13:53 -g -w 0\n");
}

TEST_CASE("-S -n saves timeouts set with --set (ipvsadm's -S does not: lbd's deliberate difference)") {
  Dump d = sample();
  d.timeouts.tcp = 7200;
  d.timeouts.udp = 60;
  const std::string out = render("-S -n", d);
  CHECK(out.starts_with("--set 7200 120 60\n-A -t 198.18.0.100:80 -s wlc\n"));
  CHECK(render("-S -n", sample()).find("--set") == std::string::npos);  // defaults: nothing written
}

TEST_CASE("--timeout prints the three timeouts") {
  CHECK(render("-L --timeout", sample()) == "Timeout (tcp tcpfin udp): 900 120 300\n");
}

TEST_CASE("without -n, names come from the resolver; service names are truncated to 33") {
  NameResolver names;
  names.host = [](Ipv4 a) { return a == ip("198.18.0.100") ? std::string("a-very-long-virtual-host-name.example") : std::string(); };
  names.service = [](uint16_t p, const char*) { return p == 80 ? std::string("http") : std::string(); };
  const std::string out = render("-L", sample(), names);
  CHECK(out.find("TCP  a-very-long-virtual-host-nam wlc\n") != std::string::npos);
  CHECK(out.find("  -> 198.18.0.11:http             Route") != std::string::npos);
}

TEST_CASE("address sorting reproduces libipvs's signed-difference quirk") {
  Dump d;
  d.table_size = 4096;
  // More than 2^31 apart: int(ntohl(a) - ntohl(b)) has the "wrong" sign, so the lower
  // address sorts last, exactly as ipvsadm's listing does.
  for (const char* a : {"64.0.0.1", "198.18.0.1"})
    d.services.push_back({{kProtoTcp, ip(a), 80}, std::string("rr"), {}, {}});
  const std::string out = render("-L -n", d);
  CHECK(out.find("198.18.0.1") < out.find("64.0.0.1"));
}

namespace {
// A configuration with every service flag and real option ipvsadm shows.
Dump flagged() {
  Dump d;
  d.table_size = 4096;
  DumpService web{{kProtoTcp, ip("198.18.0.100"), 443}, std::string("wlc"), {}, {}};
  web.options.persistent = 360;
  web.options.netmask = ip("255.255.255.0");
  web.options.sched_flags = kSchedFlag2;
  web.rates = {12, 340, 310, 25000, 180000000};
  DumpReal a = dreal(ip("198.18.0.11"), 443, FwdMethod::kRoute, 1, 3, 12, {});
  a.spec.u_threshold = 100;
  a.persist_conns = 7;
  a.rates = {12, 340, 310, 25000, 180000000};
  DumpReal b = dreal(ip("198.18.0.12"), 443, FwdMethod::kTunnel, 2, 0, 1, {});
  b.spec.u_threshold = 50;
  b.spec.l_threshold = 20;
  web.reals = {b, a};
  DumpService dns{{kProtoUdp, ip("198.18.0.100"), 53}, std::string("rr"), {}, {}};
  dns.options.ops = true;
  dns.reals.push_back(dreal(ip("198.18.0.13"), 5353, FwdMethod::kMasq, 1, 0, 0, {}));
  DumpService any{{kProtoTcp, ip("198.18.0.101"), 0}, std::string("lc"), {}, {}};
  any.options.persistent = 60;
  d.services = {dns, any, web};
  d.conns.push_back({kProtoTcp, ip("198.18.1.0"), ip("198.18.0.100"), ip("198.18.0.11"), 0, 443, 443, "NONE", 1765});
  d.conns.push_back({kProtoTcp, ip("198.18.1.5"), ip("198.18.0.100"), ip("198.18.0.11"), 51234, 443, 443, "ESTABLISHED", 897});
  return d;
}
}  // namespace

TEST_CASE("service flags: (sched flags), persistent, mask, ops") {
  CHECK(render("-L -n", flagged()) ==
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  198.18.0.100:443 wlc (flag-2) persistent 360 mask 255.255.255.0\n"
        "  -> 198.18.0.11:443              Route   1      3          12        \n"
        "  -> 198.18.0.12:443              Tunnel  2      0          1         \n"
        "TCP  198.18.0.101:0 lc persistent 60\n"
        "UDP  198.18.0.100:53 rr ops\n"
        "  -> 198.18.0.13:5353             Masq    1      0          0         \n");
}

TEST_CASE("--rate: service rates abbreviated, a real's CPS and PPS in full") {
  CHECK(render("-L -n --rate -t 198.18.0.100:443", flagged()) ==
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"
        "  -> RemoteAddress:Port\n"
        "TCP  198.18.0.100:443                   12      340      310    25000  180000K\n"
        "  -> 198.18.0.11:443                    12      340      310    25000  180000K\n"
        "  -> 198.18.0.12:443                     0        0        0        0        0\n");
}

TEST_CASE("--thresholds, --persistent-conn and --tun-info columns") {
  CHECK(render("-L -n --thresholds -t 198.18.0.100:443", flagged()) ==
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n"
        "  -> RemoteAddress:Port\n"
        "TCP  198.18.0.100:443 wlc (flag-2) persistent 360 mask 255.255.255.0\n"
        "  -> 198.18.0.11:443              100        0          3          12        \n"
        "  -> 198.18.0.12:443              50         20         0          1         \n");
  CHECK(render("-L -n --persistent-conn -t 198.18.0.100:443", flagged()) ==
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n"
        "  -> RemoteAddress:Port\n"
        "TCP  198.18.0.100:443 wlc (flag-2) persistent 360 mask 255.255.255.0\n"
        "  -> 198.18.0.11:443              1         7           3          12        \n"
        "  -> 198.18.0.12:443              2         0           0          1         \n");
  CHECK(render("-L -n --tun-info -t 198.18.0.100:443", flagged()) ==
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        "TCP  198.18.0.100:443 wlc (flag-2) persistent 360 mask 255.255.255.0\n"
        "  -> 198.18.0.11:443              Route   n/a           1      3          12        \n"
        "  -> 198.18.0.12:443              Tunnel  ipip          2      0          1         \n");
  // ipvsadm's fwd_tun_info(): gue:PORT:-c|+c|r+c and gre:-c|+c.
  Dump d = flagged();
  for (DumpService& sv : d.services) {
    for (DumpReal& r : sv.reals) {
      if (sv.key.port != 443) continue;
      r.spec.fwd = FwdMethod::kTunnel;
      r.spec.tun = r.spec.addr == ip("198.18.0.11") ? TunnelSpec{TunType::kGue, 6080, TunCsum::kRemCsum}
                                                    : TunnelSpec{TunType::kGre, 0, TunCsum::kCsum};
    }
  }
  CHECK(render("-L -n --tun-info -t 198.18.0.100:443", d) ==
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        "TCP  198.18.0.100:443 wlc (flag-2) persistent 360 mask 255.255.255.0\n"
        "  -> 198.18.0.11:443              Tunnel  gue:6080:r+c  1      3          12        \n"
        "  -> 198.18.0.12:443              Tunnel  gre:+c        2      0          1         \n");
  // ipvsadm's print_tunnel_rule() order: -w, --tun-type, --tun-port, the checksum option.
  const std::string saved = render("-S -n", d);
  CHECK(saved.find("-a -t 198.18.0.100:443 -r 198.18.0.11:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum -x 100\n") !=
        std::string::npos);
  CHECK(saved.find("-a -t 198.18.0.100:443 -r 198.18.0.12:443 -i -w 2 --tun-type gre --tun-csum -x 50 -y 20\n") !=
        std::string::npos);
}

TEST_CASE("-c lists templates with client port 0; --persistent-conn widens the header") {
  CHECK(render("-L -n -c", flagged()) ==
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination\n"
        "TCP 29:25  NONE        198.18.1.0:0       198.18.0.100:443   198.18.0.11:443\n"
        "TCP 14:57  ESTABLISHED 198.18.1.5:51234   198.18.0.100:443   198.18.0.11:443\n");
  const std::string pc = render("-L -n -c --persistent-conn", flagged());
  CHECK(pc.substr(0, pc.find("TCP")) ==
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination        pe name          pe_data\n");
}

TEST_CASE("-S -n saves -p/-M/-o/-b in ipvsadm's order, and thresholds") {
  CHECK(render("-S -n", flagged()) ==
        "-A -t 198.18.0.100:443 -s wlc -p 360 -M 255.255.255.0 -b flag-2\n"
        "-a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 1 -x 100\n"
        "-a -t 198.18.0.100:443 -r 198.18.0.12:443 -i -w 2 --tun-type ipip -x 50 -y 20\n"
        "-A -t 198.18.0.101:0 -s lc -p 60\n"
        "-A -u 198.18.0.100:53 -s rr -o\n"
        "-a -u 198.18.0.100:53 -r 198.18.0.13:5353 -m -w 1\n");
}

TEST_CASE("-L --daemon: ipvsadm's list_daemon lines, the master first; nothing without a daemon") {
  Dump d = sample();
  CHECK(render("-L --daemon", d) == "");
  DumpDaemon backup{"backup", {}};
  backup.spec.mcast_ifn = "eth1";
  backup.spec.syncid = 9;
  backup.spec.maxlen = 1472;
  DumpDaemon master{"master", {}};
  master.spec.mcast_ifn = "eth0";
  master.spec.maxlen = 1472;
  d.daemons = {backup, master};
  // printf("%s sync daemon (mcast=%s, syncid=%d", ...), then ", maxlen=%u", ", group=%s",
  // ", port=%u", ", ttl=%u", ")\n"
  CHECK(render("-L --daemon", d) ==
        "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        "backup sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
  // The dump carries them to lbadm.
  Dump back;
  REQUIRE(decode_dump(encode_dump(d), back));
  REQUIRE(back.daemons.size() == 2);
  CHECK(back.daemons[0].spec == backup.spec);
  CHECK(back.daemons[1].role == "master");
}

TEST_CASE("--start-daemon: its options parsed with ipvsadm's checks and sent in canonical form") {
  const CliCommand c = cmd("--start-daemon backup --mcast-interface eth1 --syncid 9 --mcast-group 239.1.2.3 "
                           "--mcast-port 9000 --mcast-ttl 4 --sync-maxlen 1000");
  CHECK(c.cmd == Command::kStartDaemon);
  CHECK(c.daemon_state == "backup");
  CHECK(c.daemon.mcast_ifn == "eth1");
  CHECK(c.daemon.syncid == 9);
  CHECK(c.daemon.group == ip("239.1.2.3"));
  CHECK(c.daemon.port == 9000);
  CHECK(c.daemon.ttl == 4);
  CHECK(c.daemon.maxlen == 1000);
  const CliCommand again = cmd(join_args(canonical_args(c)));
  CHECK(again.daemon == c.daemon);
  CHECK(again.daemon_state == "backup");
  const CliCommand defaults = cmd("--start-daemon master");
  CHECK(defaults.daemon.mcast_ifn == "eth0");  // ipvsadm's DEF_MCAST_IFN
  CHECK(defaults.daemon.group == ip("224.0.0.81"));
  CHECK(defaults.daemon.port == 8848);
  for (const auto& [line, msg] : std::vector<std::pair<std::string, std::string>>{
           {"--start-daemon master --mcast-group 198.18.0.1", "invalid IPv4 mcast-group `198.18.0.1'"},
           {"--start-daemon master --mcast-port 0", "illegal mcast-port specified"},
           {"--start-daemon master --mcast-ttl 256", "illegal mcast-ttl specified"},
           {"--start-daemon master --sync-maxlen 65508", "illegal sync-maxlen specified"},
           {"--start-daemon master --syncid 256", "illegal syncid specified"},
           {"--start-daemon primary", "illegal start-daemon parameter specified"}}) {
    auto r = parse_command(split_line(line), "ipvsadm");
    REQUIRE(std::holds_alternative<CliError>(r));
    CHECK(std::get<CliError>(r).message == msg);
    CHECK(std::get<CliError>(r).exit_code == 2);
  }
}

// ipvsadm 1.31 for AF_INET6: addrport_to_anyname's "[%s]:%s", no cut of the service name at
// 33 nor of the real's at 28, " mask %i" for a prefix, "FWM  %u IPv6", -S's "-f N -6";
// ipvs_cmp_services sorts by family (AF_INET before AF_INET6), ipvs_cmp_dests by the four
// 32-bit words.
TEST_CASE("IPv6 services in ipvsadm's IPv6 formats") {
  Dump d;
  d.table_size = 4096;
  const IpAddr vip(v6("2001:db8::100")), wide(v6("2001:db8:1234:5678:9abc:def0:1234:5678"));
  DumpService web{{kProtoTcp, vip, 80}, std::string("rr"), {}, {}};
  DumpReal far;
  far.spec = RealSpec(wide, 65535, FwdMethod::kMasq, 1);
  DumpReal near;
  near.spec = RealSpec(IpAddr(v6("2001:db8::11")), 80, FwdMethod::kRoute, 2);
  near.active = 1;
  web.reals = {far, near};
  DumpService sticky{{kProtoUdp, wide, 53}, std::string("wlc"), {}, {}};
  sticky.options.persistent = 60;
  sticky.options.netmask6 = 64;
  DumpService marked{fwmark_key(7), std::string("rr"), {}, {}};
  marked.key.vip = IpAddr(Ipv6{});
  DumpService v4{{kProtoTcp, ip("198.18.0.100"), 80}, std::string("rr"), {}, {}};
  d.services = {sticky, web, marked, v4};
  d.conns.push_back({kProtoTcp, IpAddr(v6("2001:db8::1")), vip, IpAddr(v6("2001:db8::11")), 51234, 80, 80,
                     "ESTABLISHED", 897});
  CHECK(render("-L -n", d) ==
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  198.18.0.100:80 rr\n"
        "TCP  [2001:db8::100]:80 rr\n"
        "  -> [2001:db8::11]:80            Route   2      1          0         \n"
        "  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 Masq    1      0          0         \n"
        "UDP  [2001:db8:1234:5678:9abc:def0:1234:5678]:53 wlc persistent 60 mask 64\n"
        "FWM  7 IPv6 rr\n");
  CHECK(render("-S -n", d) ==
        "-A -t 198.18.0.100:80 -s rr\n"
        "-A -t [2001:db8::100]:80 -s rr\n"
        "-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 2\n"
        "-a -t [2001:db8::100]:80 -r [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -m -w 1\n"
        "-A -u [2001:db8:1234:5678:9abc:def0:1234:5678]:53 -s wlc -p 60 -M 64\n"
        "-A -f 7 -6 -s rr\n");
  CHECK(render("-L -n -c", d) ==
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination\n"
        "TCP 14:57  ESTABLISHED [2001:db8::1]:51234 [2001:db8::100]:80 [2001:db8::11]:80\n");
  // What -S wrote parses back to the same services.
  CHECK(cmd("-A -u [2001:db8:1234:5678:9abc:def0:1234:5678]:53 -s wlc -p 60 -M 64").svc_options.netmask6 == 64);
  CHECK(cmd("-A -f 7 -6 -s rr").service == marked.key);
}

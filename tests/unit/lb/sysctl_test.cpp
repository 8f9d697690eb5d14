// IPVS's sysctls as lbd settings: their grammar (--lbd-sysctl, -S), and what each changes
// on crafted frames, as IPVS's source has it (ip_vs_core.c ip_vs_in_hook() for
// conn_reuse_mode and expire_nodest_conn, ip_vs_proto_tcp.c tcp_conn_schedule() for
// sloppy_tcp, ip_vs_check_template() for expire_quiescent_template, ip_vs_out_hook() for
// nat_icmp_send).
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/core/data_path.hpp"
#include "lb/ctl/commands.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/ctl/listing.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;
const ServiceKey kSvc{kProtoTcp, ip("198.18.0.100"), 80};
Ipv4 rip(int i) { return Be32::from_host(0xc612000au + uint32_t(i)); }

struct Path {
  ServiceTable services;
  ConnTable conns{1024, 5};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  Path(ServiceOptions opt, FwdMethod method, int nreals, std::vector<std::string> sysctls) {
    for (const auto& a : sysctls) REQUIRE(set_sysctl(timeouts.sysctl, a).is_ok());
    REQUIRE(services.add_service(kSvc, opt).is_ok());
    for (int i = 1; i <= nreals; ++i) {
      REQUIRE(services.add_real(kSvc, {rip(i), 80, method, 1}).is_ok());
      services.find_real(kSvc, rip(i), 80)->hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
    }
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  // The real a client's frame went to (0: not sent), or -1 for a frame back to its sender.
  int send(uint16_t sport, uint8_t flags, uint64_t now_ms = 1000, const char* client = "198.18.1.1") {
    FrameSpec s;
    s.saddr = ip(client);
    s.sport = sport;
    s.dst = mac(0xd1);
    s.flags = flags;
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(2048);
    const Verdict v = dp.process(std::span<uint8_t>(f.data(), len), kIf, now_ms, f.size());
    if (!v.transmit) return 0;
    return f[5] > 0xa0 && f[5] < 0xaa ? f[5] - 0xa0 : -1;
  }
  uint64_t dropped(DropReason r) const { return dp.counters().drops[size_t(r)]; }
  const Conn* conn(uint16_t sport) {
    return conns.find(ConnKey{ip("198.18.1.1"), kSvc.vip, sport, 80, kProtoTcp});
  }
};

constexpr uint8_t kSyn = tcp_flag::kSyn, kAck = tcp_flag::kAck, kFin = tcp_flag::kFin, kRst = tcp_flag::kRst;

}  // namespace

TEST_CASE("sysctls: IPVS's defaults, their ranges, and the values lbd cannot behave as refused with why") {
  Sysctls s;
  CHECK(s.sloppy_tcp == 0);
  CHECK(s.expire_nodest_conn == 0);
  CHECK(s.expire_quiescent_template == 0);
  CHECK(s.conn_reuse_mode == 1);
  CHECK(s.nat_icmp_send == 0);
  CHECK(s.amemthresh == 1024);
  CHECK(changed_sysctls(s).empty());
  REQUIRE(set_sysctl(s, "sloppy_tcp=1").is_ok());
  REQUIRE(set_sysctl(s, "conn_reuse_mode=3").is_ok());
  CHECK(changed_sysctls(s) == std::vector<std::string>{"sloppy_tcp=1", "conn_reuse_mode=3"});
  const Sysctls before = s;
  CHECK(set_sysctl(s, "conn_reuse_mode=4").message() == "--lbd-sysctl conn_reuse_mode=4: expected 0 to 3");
  CHECK(set_sysctl(s, "sloppy_tcp=yes").message() == "--lbd-sysctl sloppy_tcp: `yes' is not a number");
  CHECK(set_sysctl(s, "sloppy_tcp").message() == "--lbd-sysctl `sloppy_tcp': expected NAME=VALUE");
  CHECK(set_sysctl(s, "secure_tcp=3").message().rfind("--lbd-sysctl secure_tcp=3: lbd takes only secure_tcp=0: ", 0) == 0);
  CHECK(set_sysctl(s, "ignore_tunneled=0").message().rfind("--lbd-sysctl ignore_tunneled=0: lbd takes only ignore_tunneled=1", 0) == 0);
  CHECK(set_sysctl(s, "sloppy_udp=1").message().find("IPVS has no such sysctl") != std::string::npos);
  CHECK(set_sysctl(s, "frob=1").message().rfind("--lbd-sysctl `frob': unknown (lbd takes sloppy_tcp, ", 0) == 0);
  CHECK(s == before);  // refusals change nothing
  CHECK(set_sysctl(s, "secure_tcp=0").is_ok());  // a value lbd behaves as: accepted
  CHECK(sysctl_listing(s).find("sloppy_tcp = 1\nexpire_nodest_conn = 0\n") == 0);
}

TEST_CASE("--lbd-sysctl: a command of its own, checked at parse time, canonical, listed by -S first") {
  auto parsed = parse_command({"--lbd-sysctl", "sloppy_tcp=1"}, "lbadm");
  REQUIRE(std::holds_alternative<CliCommand>(parsed));
  const CliCommand c = std::get<CliCommand>(parsed);
  CHECK(c.cmd == Command::kSetSysctl);
  CHECK(join_args(canonical_args(c)) == "--lbd-sysctl sloppy_tcp=1");
  auto bad = parse_command({"--lbd-sysctl", "sloppy_tcp=2"}, "lbadm");
  REQUIRE(std::holds_alternative<CliError>(bad));
  CHECK(std::get<CliError>(bad).exit_code == 2);
  CHECK(std::get<CliError>(bad).message == "--lbd-sysctl sloppy_tcp=2: expected 0 to 1");
  auto with_service = parse_command({"--lbd-sysctl", "sloppy_tcp=1", "-t", "198.18.0.100:80"}, "lbadm");
  REQUIRE(std::holds_alternative<CliError>(with_service));
  CHECK(std::get<CliError>(with_service).message == "Illegal 'service-address' option with the 'lbd-sysctl' command");
  auto list = parse_command({"--lbd-sysctl"}, "lbadm");
  REQUIRE(std::holds_alternative<CliCommand>(list));
  CHECK(std::get<CliCommand>(list).sysctl.empty());

  // Through the control protocol's dump and -S: the changed ones, before the services.
  Dump d;
  REQUIRE(set_sysctl(d.timeouts.sysctl, "expire_nodest_conn=1").is_ok());
  REQUIRE(set_sysctl(d.timeouts.sysctl, "sloppy_tcp=1").is_ok());
  DumpService svc;
  svc.key = kSvc;
  svc.options = ServiceOptions{"mh"};
  d.services.push_back(svc);
  Dump back;
  REQUIRE(decode_dump(encode_dump(d), back));
  CHECK(back.timeouts.sysctl == d.timeouts.sysctl);
  CliCommand save;
  save.cmd = Command::kSave;
  save.options = 1ULL << kOptNumeric;
  const auto text = render_listing(save, back, {});
  REQUIRE(text.is_ok());
  CHECK(*text == "--lbd-sysctl sloppy_tcp=1\n--lbd-sysctl expire_nodest_conn=1\n-A -t 198.18.0.100:80 -s mh\n");
  // ... and a rules file carrying them loads them.
  std::vector<CliCommand> rules;
  REQUIRE(parse_rules(*text, rules, {}).is_ok());
  ServiceTable t;
  Timeouts to;
  REQUIRE(apply_rules_atomically(rules, t, to).is_ok());
  CHECK(to.sysctl == d.timeouts.sysctl);
}

TEST_CASE("sloppy_tcp: 0, only a SYN makes a connection; 1, any packet but a RST does, in ESTABLISHED for an ACK") {
  Path off({"rr"}, FwdMethod::kRoute, 2, {});
  CHECK(off.send(1000, kAck) == 0);
  CHECK(off.dropped(DropReason::kNotSyn) == 1);
  Path on({"rr"}, FwdMethod::kRoute, 2, {"sloppy_tcp=1"});
  CHECK(on.send(1000, kAck) > 0);
  REQUIRE(on.conn(1000));
  CHECK(on.conn(1000)->state == ConnState::kEstablished);  // IPVS's INPUT_ONLY table: sNO + ack → sES
  CHECK_FALSE(on.conn(1000)->flags & Conn::kEmbryonic);      // its client did more than a SYN
  CHECK(on.send(1001, kRst | kAck) == 0);
  CHECK(on.dropped(DropReason::kNotSyn) == 1);
  CHECK(on.conns.size() == 1);
}

TEST_CASE("sloppy_tcp with mh: a mid-stream packet goes to the real the hash gives its SYN") {
  ServiceOptions mh{"mh"};
  Path a(mh, FwdMethod::kRoute, 5, {});
  Path b(mh, FwdMethod::kRoute, 5, {"sloppy_tcp=1"});
  for (uint16_t port = 2000; port < 2040; ++port) {
    const int first = a.send(port, kSyn);
    REQUIRE(first > 0);
    CHECK(b.send(port, kAck) == first);  // a fresh director, the same real
  }
}

TEST_CASE("conn_reuse_mode: which new SYN on an entry is scheduled afresh") {
  // rr over two reals: the second SYN of a fresh connection would go to the other real.
  auto close_to_time_wait = [](Path& p, uint16_t port) {
    REQUIRE(p.send(port, kSyn) > 0);
    REQUIRE(p.send(port, kAck) > 0);
    REQUIRE(p.send(port, kFin | kAck) > 0);  // DR: INPUT_ONLY, FIN → FIN_WAIT
    REQUIRE(p.conn(port)->state == ConnState::kFinWait);
  };
  SECTION("1 (IPVS's default): FIN_WAIT is reused; CLOSE and TIME_WAIT are not") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {});
    close_to_time_wait(p, 3000);
    const uint32_t real = p.conn(3000)->real_id;
    CHECK(p.send(3000, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 0);
    CHECK(p.conn(3000)->real_id == real);
    REQUIRE(p.send(3001, kSyn) > 0);
    REQUIRE(p.send(3001, kAck) > 0);
    REQUIRE(p.send(3001, kRst) > 0);  // ESTABLISHED → CLOSE
    REQUIRE(p.conn(3001)->state == ConnState::kClose);
    CHECK(p.send(3001, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 1);
  }
  SECTION("2 and 3: a DR FIN_WAIT is rescheduled too") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {"conn_reuse_mode=3"});
    close_to_time_wait(p, 3000);
    CHECK(p.send(3000, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 1);
  }
  SECTION("0: never; the old entry (and its real) is reused") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {"conn_reuse_mode=0"});
    REQUIRE(p.send(3001, kSyn) > 0);
    const uint32_t real = p.conn(3001)->real_id;
    REQUIRE(p.send(3001, kAck) > 0);
    REQUIRE(p.send(3001, kRst) > 0);
    REQUIRE(p.conn(3001)->state == ConnState::kClose);
    CHECK(p.send(3001, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 0);
    CHECK(p.conn(3001)->real_id == real);
  }
  SECTION("a connection under a persistence template is never rescheduled (IPVS: cp->control)") {
    ServiceOptions sticky{"rr"};
    sticky.persistent = 300;
    Path p(sticky, FwdMethod::kRoute, 2, {});
    REQUIRE(p.send(3001, kSyn) > 0);
    REQUIRE(p.send(3001, kAck) > 0);
    REQUIRE(p.send(3001, kRst) > 0);
    REQUIRE(p.conn(3001)->state == ConnState::kClose);
    CHECK(p.send(3001, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 0);
  }
  SECTION("with expire_nodest_conn, a SYN on a real of weight 0 is rescheduled whatever the state") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {"expire_nodest_conn=1"});
    REQUIRE(p.send(3002, kSyn) > 0);
    REQUIRE(p.send(3002, kAck) > 0);  // ESTABLISHED
    Real& r = p.services.real(p.conn(3002)->real_id);
    RealSpec spec{r.addr, r.port, r.fwd, 0};
    REQUIRE(p.services.edit_real(kSvc, spec).is_ok());
    const IpAddr quiesced = r.addr;
    CHECK(p.send(3002, kSyn) > 0);
    CHECK(p.dp.counters().conns_rescheduled == 1);
    CHECK_FALSE(p.services.real(p.conn(3002)->real_id).addr == quiesced);
  }
}

TEST_CASE("expire_nodest_conn: a packet for a deleted real ends its connection; 0 only drops it") {
  SECTION("0: dropped, the entry stays") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {});
    REQUIRE(p.send(4000, kSyn) > 0);
    const Real& r = p.services.real(p.conn(4000)->real_id);
    REQUIRE(p.services.delete_real(kSvc, r.addr, r.port).is_ok());
    CHECK(p.send(4000, kAck) == 0);
    CHECK(p.dropped(DropReason::kRealUnavailable) == 1);
    CHECK(p.conn(4000));
  }
  SECTION("1: the entry ends; the packet is a new one: with sloppy_tcp an ACK goes to a real there is") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {"expire_nodest_conn=1", "sloppy_tcp=1"});
    REQUIRE(p.send(4000, kSyn) > 0);
    const Real& r = p.services.real(p.conn(4000)->real_id);
    const IpAddr gone = r.addr;
    REQUIRE(p.services.delete_real(kSvc, r.addr, r.port).is_ok());
    CHECK(p.send(4000, kAck) > 0);
    REQUIRE(p.conn(4000));
    CHECK_FALSE(p.services.real(p.conn(4000)->real_id).addr == gone);
  }
  SECTION("1 without sloppy_tcp: the entry ends and the ACK, not a SYN, is dropped") {
    Path p({"rr"}, FwdMethod::kRoute, 2, {"expire_nodest_conn=1"});
    REQUIRE(p.send(4000, kSyn) > 0);
    const Real& r = p.services.real(p.conn(4000)->real_id);
    REQUIRE(p.services.delete_real(kSvc, r.addr, r.port).is_ok());
    CHECK(p.send(4000, kAck) == 0);
    CHECK_FALSE(p.conn(4000));
  }
}

TEST_CASE("expire_quiescent_template: a template on a real of weight 0 keeps its client only with 0") {
  ServiceOptions sticky{"rr"};
  sticky.persistent = 300;
  for (const bool expire : {false, true}) {
    Path p(sticky, FwdMethod::kRoute, 2, {expire ? "expire_quiescent_template=1" : "expire_quiescent_template=0"});
    const int first = p.send(5000, kSyn);
    REQUIRE(first > 0);
    const Ipv4 addr = rip(first);
    REQUIRE(p.services.edit_real(kSvc, RealSpec{addr, 80, FwdMethod::kRoute, 0}).is_ok());
    const int next = p.send(5001, kSyn);
    if (expire)
      CHECK(next != first);
    else
      CHECK(next == first);
  }
}

TEST_CASE("nat_icmp_send: a NAT real's stray packet from its service port is answered with port unreachable") {
  for (const bool send : {false, true}) {
    Path p({"rr"}, FwdMethod::kMasq, 1, {send ? "nat_icmp_send=1" : "nat_icmp_send=0"});
    FrameSpec s;  // the real's packet to a client, no connection for it
    s.saddr = rip(1);
    s.sport = 80;
    s.daddr = ip("198.18.1.9");
    s.dport = 5555;
    s.dst = mac(0xd1);
    s.src = mac(0xa1);
    s.flags = kAck;
    auto f = make_frame(s);
    const size_t len = f.size();
    f.resize(2048);
    const Verdict v = p.dp.process(std::span<uint8_t>(f.data(), len), kIf, 1000, f.size());
    CHECK(p.dropped(DropReason::kOrphanReply) == 1);
    CHECK(v.transmit == send);
    if (send) {
      ParsedPacket icmp;
      DropReason why{};
      REQUIRE(parse_frame(std::span<uint8_t>(f.data(), v.length ? v.length : len), icmp, why));
      CHECK(icmp.protocol == kProtoIcmp);
      CHECK(icmp.icmp_type == icmp_type::kDestUnreachable);
      CHECK(icmp.icmp_code == icmp_code::kPortUnreachable);
      CHECK(icmp.daddr == rip(1));
    }
    s.flags = kRst | kAck;  // never for a RST
    auto r = make_frame(s);
    CHECK_FALSE(p.dp.process(r, kIf, 1000).transmit);
  }
}

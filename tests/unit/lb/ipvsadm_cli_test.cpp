// lbadm's parser: ipvsadm's defaults, its legality matrix, messages and exit codes, and the
// canonical form that round-trips through the control socket and -S/-R.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "frames.hpp"
#include "lb/ctl/commands.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
std::variant<CliCommand, CliError> parse(const std::string& line) {
  return parse_command(split_line(line), "ipvsadm");
}
CliCommand ok(const std::string& line) {
  auto r = parse(line);
  if (auto* e = std::get_if<CliError>(&r)) FAIL("unexpected error: " << e->message);
  return std::get<CliCommand>(r);
}
CliError err(const std::string& line) {
  auto r = parse(line);
  REQUIRE(std::holds_alternative<CliError>(r));
  return std::get<CliError>(r);
}
}  // namespace

TEST_CASE("defaults: wlc scheduler, DR, weight 1, real port = service port") {
  auto a = ok("-A -t 198.18.0.100:80");
  CHECK(a.cmd == Command::kAddService);
  CHECK(a.svc_options.scheduler == "wlc");
  CHECK(a.service == ServiceKey{kProtoTcp, ip("198.18.0.100"), 80});
  auto r = ok("-a -t 198.18.0.100:80 -r 198.18.0.11");
  CHECK(r.real.fwd == FwdMethod::kRoute);
  CHECK(r.real.weight == 1);
  CHECK(r.real.port == 80);
}

TEST_CASE("DR and TUN reals take the service port; NAT keeps its own") {
  CHECK(ok("-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -g").real.port == 80);
  CHECK(ok("-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -m").real.port == 8080);
}

TEST_CASE("bundled short options and --long=value forms") {
  auto l = ok("-Ln");
  CHECK(l.cmd == Command::kList);
  CHECK(l.has(kOptNumeric));
  auto a = ok("-at 198.18.0.100:80 -r 198.18.0.11 -w3");
  CHECK(a.real.weight == 3);
  CHECK(ok("-A -u 198.18.0.100:53 --scheduler=rr").svc_options.scheduler == "rr");
  // A port name, through the injected lookup (lbadm's is /etc/services).
  const NameLookup services{{}, [](const std::string& name) -> std::optional<uint16_t> {
                              return name == "http" ? std::optional<uint16_t>(80) : std::nullopt;
                            }};
  auto named = parse_command(split_line("-A -t 198.18.0.100:http"), "ipvsadm", services);
  REQUIRE(std::holds_alternative<CliCommand>(named));
  CHECK(std::get<CliCommand>(named).service.port == 80);
}

TEST_CASE("ipvsadm's messages and exit codes for bad input") {
  struct Case {
    const char* line;
    int code;
    const char* message;
  };
  const Case cases[] = {
      {"-A", 2, "You need to supply the 'service-address' option for the 'add-service' command"},
      {"-a -t 198.18.0.100:80", 2, "You need to supply the 'real-server' option for the 'add-server' command"},
      {"-A -t 198.18.0.100:80 -w 2", 2, "Illegal 'weight' option with the 'add-service' command"},
      {"-L -c -t 198.18.0.100:80", 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command"},
      {"-L --timeout --daemon", 2, "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"},
      {"-L -c --stats", 2, "options conflicts in the list command"},
      {"-A -t 198.18.0.100:80 -D -t 198.18.0.100:80", 2, "multiple commands specified"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -g -m", 2, "multiple 'forwarding-method' options specified"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -w 70000", 2, "illegal weight specified"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -w x", 2, "illegal weight specified"},
      {"-A -t 198.18.0.300:80", 2, "illegal virtual server address[:port] specified"},
      {"-A -t 80", 2, "illegal virtual server address[:port] specified"},
      {"-a -t 198.18.0.100:80 -r nosuchhost!", 2, "illegal real server address[:port] specified"},
      {"-A -t 198.18.0.100", 2, "Zero port specified for non-persistent service"},
      {"-A -t 198.18.0.100:80 -o", 2, "One-Packet Scheduling is only for UDP virtual services"},
      {"--set 1 2", 2, "--set option requires 3 timeout values"},
      {"--set 1 2 x", 2, "invalid timeout value `x' specified"},
      {"-C extra", 2, "unexpected argument extra"},
      {"--start-daemon foo", 2, "illegal start-daemon parameter specified"},
      {"-S -c", 2, "Illegal 'connection' option with the 'save' command"},
      {"-A -t 198.18.0.100:80 --foo", 255, "--foo: unknown option"},
      {"-A -t", 255, "-t: missing argument"},
      {"-n", 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information."},
      {"-f 0 -A", 2, "invalid fwmark value `0' specified"},
      {"-A -t 198.18.0.100:80 -p 0", 2, "invalid timeout value `0' specified"},
      {"-A -t 198.18.0.100:80 -p 2678401", 2, "invalid timeout value `2678401' specified"},
      {"-A -t 198.18.0.100:80 -p 60 -M 300.0.0.0", 2, "illegal virtual server persistent mask specified"},
      {"-A -t 198.18.0.100:80 -b flag-9", 2, "invalid scheduler flag `flag-9'"},
      {"-A -t 198.18.0.100:80 -s rr -b sh-port", 2, "incompatible scheduler flag `sh-port'"},
      {"-A -t 198.18.0.100:80 -b flag-1 extra", 2, "unexpected argument extra"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -x -1", 2, "illegal u_threshold specified"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -y 2147483648", 2, "illegal l_threshold specified"},
      {"-A -t 198.18.0.100:80 -x 5", 2, "Illegal 'u-threshold' option with the 'add-service' command"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11 -p", 2, "Illegal 'persistent' option with the 'add-server' command"},
      {"-L --thresholds --rate -c", 2, "options conflicts in the list command"},
      {"-L --timeout --persistent-conn", 2, "options conflicts in the list command"},
      {"--stop-daemon foo", 2, "illegal start_daemon specified"},
      {"-A -u 198.18.0.100:53 -o -o", 2, "multiple 'ops' options specified"},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    const CliError e = err(c.line);
    CHECK(e.exit_code == c.code);
    CHECK(e.message == c.message);
  }
}

TEST_CASE("-p, -M, -o, -b and -x/-y parse into the service and real options") {
  CliCommand c = ok("-A -u 198.18.0.100:53 -s rr -p -M 255.255.255.0 -o -b flag-3,flag-1");
  CHECK(c.svc_options.persistent == 360);  // IPVS_SVC_PERSISTENT_TIMEOUT, not the man page's 300
  CHECK(c.svc_options.netmask == ip("255.255.255.0"));
  CHECK(c.svc_options.ops);
  CHECK(c.svc_options.sched_flags == (kSchedFlag1 | kSchedFlag3));
  CHECK(join_args(canonical_args(c)) == "-A -u 198.18.0.100:53 -s rr -p 360 -M 255.255.255.0 -o -b flag-1,flag-3");
  CHECK(ok("-A -t 198.18.0.100:0 -p 60").service.port == 0);  // port zero needs -p
  CHECK(ok("-A -t 198.18.0.100:80 -p 120").svc_options.persistent == 120);
  c = ok("-a -t 198.18.0.100:80 -r 198.18.0.11 -x 100 -y 50");
  CHECK(c.real.u_threshold == 100);
  CHECK(c.real.l_threshold == 50);
  CHECK(join_args(canonical_args(c)) == "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1 -x 100 -y 50");
  // -b sh-fallback is checked against -s whatever the order.
  CHECK(ok("-A -t 198.18.0.100:80 -b sh-fallback,sh-port -s sh").svc_options.sched_flags == 3);
}

TEST_CASE("no arguments lists, like ipvsadm alone") {
  auto r = parse_command({}, "ipvsadm");
  REQUIRE(std::holds_alternative<CliCommand>(r));
  CHECK(std::get<CliCommand>(r).cmd == Command::kList);
}

TEST_CASE("-h and -v act at once") {
  CHECK(ok("-h").cmd == Command::kHelp);
  CHECK(ok("-A -v").cmd == Command::kVersion);
  CHECK(usage_text("ipvsadm").find("  ipvsadm -L|l [virtual-service] [options]\n") != std::string::npos);
}

TEST_CASE("the canonical form reads back to the same command") {
  for (const char* line : {"-A -t 198.18.0.100:80 -s rr", "-E -u 198.18.0.100:53 -s wlc",
                           "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3",
                           "-e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 0",
                           "-d -t 198.18.0.100:80 -r 198.18.0.11:80", "-D -t 198.18.0.100:80",
                           "-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -m -w 1",
                           "-a -u 198.18.0.100:53 -r 198.18.0.11:53 -i -w 1 --tun-type ipip",
                           "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
                           "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum",
                           "-e -t 198.18.0.100:80 -r 198.18.0.11:80 -i -w 3 --tun-type gre --tun-csum",
                           "-C", "-Z", "--set 10 20 30"}) {
    INFO(line);
    const auto c = ok(line);
    CHECK(join_args(canonical_args(c)) == line);
    CHECK(join_args(canonical_args(ok(join_args(canonical_args(c))))) == line);
  }
}

TEST_CASE("--tun-*: ipvsadm's tunnel_types_v_options matrix and messages, exit 2") {
  // Written from ipvsadm.c's tunnel_opt_check(), parse_tun_type() and TAG_TUN_PORT.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type"},
      {"--tun-type gue --tun-port 0", "illegal tunnel port specified"},
      {"--tun-type gue --tun-port 65536", "illegal tunnel port specified"},
      {"--tun-type vxlan", "illegal tunnel type specified"},
      {"--tun-port 6080", "Illegal 'tun-port' option with the 'ipip' tunnel type"},
      {"--tun-csum", "Illegal 'tun-csum' option with the 'ipip' tunnel type"},
      {"--tun-type gre --tun-port 6080", "Illegal 'tun-port' option with the 'gre' tunnel type"},
      {"--tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type"},
      {"--tun-type gue --tun-port 6080 --tun-csum --tun-remcsum",
       "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"},
      {"--tun-type gre --tun-nocsum --tun-csum",
       "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type"},
  };
  for (const auto& [opts, message] : cases) {
    INFO(opts);
    const CliError e = err("-a -t 198.18.0.100:80 -r 198.18.0.11 -i " + opts);
    CHECK(e.exit_code == 2);
    CHECK(e.message == message);
  }
  CHECK(err("-a -t 198.18.0.100:80 -r 198.18.0.11 -g --tun-type gre").message ==
        "Tunnel options conflict with forward method");
  const CliCommand gue = ok("-a -t 198.18.0.100:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080 --tun-csum");
  CHECK(gue.real.tun == TunnelSpec{TunType::kGue, 6080, TunCsum::kCsum});
  CHECK(ok("-a -t 198.18.0.100:80 -r 198.18.0.11 -i --tun-type gre").real.tun == TunnelSpec{TunType::kGre, 0, TunCsum::kNoCsum});
}

TEST_CASE("a GUE or GRE real keeps its tunnel in the table; -e replaces it as IPVS does") {
  ServiceTable services;
  Timeouts timeouts;
  REQUIRE(execute(ok("-A -t 198.18.0.100:80"), services, timeouts).is_ok());
  REQUIRE(execute(ok("-a -t 198.18.0.100:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080"), services, timeouts).is_ok());
  const ServiceKey key{kProtoTcp, ip("198.18.0.100"), 80};
  CHECK(services.find_real(key, ip("198.18.0.11"), 80)->tun == TunnelSpec{TunType::kGue, 6080, TunCsum::kNoCsum});
  // ipvsadm -e sends the tunnel attributes it was given, ipip by default.
  REQUIRE(execute(ok("-e -t 198.18.0.100:80 -r 198.18.0.11 -i"), services, timeouts).is_ok());
  CHECK(services.find_real(key, ip("198.18.0.11"), 80)->tun == TunnelSpec{});
}

TEST_CASE("rules streams: ipvsadm tokens dropped, comments and blanks skipped, line numbers") {
  std::vector<CliCommand> rules;
  REQUIRE(parse_rules("# saved\n\nipvsadm -A -t 198.18.0.100:80 -s rr\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n", rules).is_ok());
  REQUIRE(rules.size() == 2);
  CHECK(rules[1].line == 4);
  Status s = parse_rules("-A -t 198.18.0.100:80\n-a -t 198.18.0.100:80 -r 198.18.0.11 -w 99999\n", rules);
  CHECK_FALSE(s.is_ok());
  CHECK(s.message() == "line 2: illegal weight specified");
  s = parse_rules("-A -t 198.18.0.100:80 -p 60\n--sctp-service 198.18.0.100:80 -A\n", rules);
  CHECK(s.message() == "line 2: an SCTP service is not supported by lbd yet");
}

TEST_CASE("-f: a firewall-mark service, its reals with port 0, saved as ipvsadm writes them") {
  const CliCommand a = ok("-A -f 1 -s rr -p 60");
  CHECK(a.service == fwmark_key(1));
  CHECK(a.service.protocol == kProtoTcp);  // ipvsadm: "protocol set to TCP internally"
  for (const char* line : {"-A -f 1 -s rr -p 60", "-a -f 1 -r 198.18.0.11:0 -g -w 1", "-a -f 7 -r 198.18.0.11:0 -m -w 2",
                           "-a -f 4294967295 -r 198.18.0.12:8080 -m -w 1", "-D -f 1", "-d -f 1 -r 198.18.0.11:0"}) {
    INFO(line);
    CHECK(join_args(canonical_args(ok(line))) == line);
  }
  // ipvsadm: a real's port omitted is the service's (0); DR keeps a port given (fwmark).
  CHECK(ok("-a -f 1 -r 198.18.0.11 -g").real.port == 0);
  CHECK(ok("-a -f 1 -r 198.18.0.11:80 -g").real.port == 80);
  CHECK(err("-A -f 0").message == "invalid fwmark value `0' specified");
  CHECK(err("-A -f 4294967296").message == "invalid fwmark value `4294967296' specified");
  ServiceTable services;
  Timeouts timeouts;
  REQUIRE(execute(ok("-A -f 1 -s rr -p 60"), services, timeouts).is_ok());
  REQUIRE(execute(ok("-a -f 1 -r 198.18.0.11 -m"), services, timeouts).is_ok());  // keeps each packet's port
  CHECK(services.find_real(fwmark_key(1), ip("198.18.0.11"), 0) != nullptr);
  CHECK(services.find_for_packet(kProtoUdp, ip("198.18.0.100"), 443, 1) == services.find(fwmark_key(1)));
  CHECK(services.find_for_packet(kProtoTcp, ip("198.18.0.100"), 443, 2) == nullptr);
  CHECK(services.find_for_packet(kProtoTcp, ip("198.18.0.100"), 443) == nullptr);
  CHECK(execute(ok("-A -f 1"), services, timeouts).code() == EEXIST);
}

TEST_CASE("applying rules is all or nothing") {
  ServiceTable t;
  Timeouts to;
  std::vector<CliCommand> rules;
  REQUIRE(parse_rules("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11\n", rules).is_ok());
  REQUIRE(apply_rules_atomically(rules, t, to).is_ok());
  REQUIRE(parse_rules("-A -t 198.18.0.100:81\n-a -t 198.18.0.100:80 -r 198.18.0.11\n", rules).is_ok());
  const Status s = apply_rules_atomically(rules, t, to);
  CHECK_FALSE(s.is_ok());
  CHECK(s.message().rfind("line 2:", 0) == 0);
  CHECK(t.find({kProtoTcp, ip("198.18.0.100"), 81}) == nullptr);  // line 1 did not apply
  CHECK(t.find({kProtoTcp, ip("198.18.0.100"), 80})->reals.size() == 1);
}

TEST_CASE("--health on -A/-E/-a/-e: validated, merged on -E, saved and restored") {
  ServiceTable services;
  Timeouts timeouts;
  auto run = [&](const char* line) { return execute(ok(line), services, timeouts); };
  REQUIRE(run("-A -t 198.18.0.100:80 -s rr --health check=http,interval=1,timeout=0.5").is_ok());
  REQUIRE(run("-a -t 198.18.0.100:80 -r 198.18.0.11 --health port=8081").is_ok());
  REQUIRE(run("-a -t 198.18.0.100:80 -r 198.18.0.12").is_ok());
  REQUIRE(run("-E -t 198.18.0.100:80 -s rr --health fall=5").is_ok());
  const Service& s = *services.find(ServiceKey{kProtoTcp, ip("198.18.0.100"), 80});
  CHECK(s.options.health.check.kind == health::find_check("http"));  // kept by -E
  CHECK(s.options.health.check.fall == 5);
  REQUIRE(run("-E -t 198.18.0.100:80 -s wrr").is_ok());              // -E without --health
  CHECK(s.options.health.check.fall == 5);
  std::vector<std::string> saved;
  for (const auto& c : configuration_commands(services)) saved.push_back(join_args(canonical_args(c)));
  CHECK(saved == std::vector<std::string>{
                     "-A -t 198.18.0.100:80 -s wrr --health check=http,interval=1,timeout=0.5,fall=5",
                     "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1 --health port=8081",
                     "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1"});
  REQUIRE(run("-e -t 198.18.0.100:80 -r 198.18.0.11 --health inherit").is_ok());
  CHECK(services.find_real(ServiceKey{kProtoTcp, ip("198.18.0.100"), 80}, ip("198.18.0.11"), 80)
            ->health_override.empty());
  // An exec check without a command is refused for the real it would apply to.
  REQUIRE(run("-A -t 198.18.0.100:81 --health check=exec").is_ok());
  const Status st = run("-a -t 198.18.0.100:81 -r 198.18.0.11");
  CHECK(st.message() == "health check of 198.18.0.11:81: check=exec needs cmd=");
  CHECK(run("-a -t 198.18.0.100:81 -r 198.18.0.11 --health cmd=/bin/true").is_ok());
  // Parse-time refusals: exit 2, ipvsadm style, nothing applied.
  auto bad = parse_command(split_line("-A -t 198.18.0.100:82 --health interval=1,timeout=3"), "lbadm");
  REQUIRE(std::holds_alternative<CliError>(bad));
  CHECK(std::get<CliError>(bad).exit_code == 2);
  CHECK(std::get<CliError>(bad).message == "illegal health specification: timeout=3 is longer than interval=1");
  auto bad2 = parse_command(split_line("-a -t 198.18.0.100:80 -r 198.18.0.13 --health on-down=expire"), "lbadm");
  REQUIRE(std::holds_alternative<CliError>(bad2));
  CHECK(std::get<CliError>(bad2).message ==
        "illegal health specification: 'on-down' is a service setting (give it with -A/-E)");
  auto bad3 = parse_command(split_line("-D -t 198.18.0.100:80 --health check=tcp"), "lbadm");
  REQUIRE(std::holds_alternative<CliError>(bad3));
  CHECK(std::get<CliError>(bad3).message == "Illegal 'health' option with the 'delete-service' command");
}

TEST_CASE("reload applies only the difference: what stays keeps its identity and state") {
  ServiceTable t;
  Timeouts to;
  std::vector<CliCommand> rules;
  REQUIRE(parse_rules("-A -t 198.18.0.100:80 -s rr\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.13:80 -g -w 1\n"
                      "-A -u 198.18.0.100:53 -s rr\n", rules).is_ok());
  REQUIRE(apply_rules_atomically(rules, t, to).is_ok());
  Real* keep = t.find_real({kProtoTcp, ip("198.18.0.100"), 80}, ip("198.18.0.11"), 80);
  t.bind_conn(*keep, false);  // a live connection
  keep->stats.conns = 42;
  const uint32_t keep_id = keep->id;

  size_t changes = 0;
  // A bad file changes nothing.
  REQUIRE(parse_rules("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:81 -r 198.18.0.11\n", rules).is_ok());
  const Status bad = reload_rules(rules, t, to, changes);
  CHECK(bad.message().rfind("line 2:", 0) == 0);
  CHECK(t.find({kProtoUdp, ip("198.18.0.100"), 53}));
  CHECK(changes == 0);

  REQUIRE(parse_rules("-A -t 198.18.0.100:80 -s rr\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n"
                      "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 3\n"
                      "-A -t 198.18.0.100:443 -s wlc -p 600\n"
                      "-a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 1\n"
                      "--set 60 30 20\n", rules).is_ok());
  std::vector<std::string> what;
  REQUIRE(reload_rules(rules, t, to, changes, &what).is_ok());
  // -D udp:53, -d .13, -e .12 (weight), -A 443, -a 443's real, the timeouts.
  CHECK(changes == 6);
  CHECK(what == std::vector<std::string>{"-D -u 198.18.0.100:53",
                                         "-d -t 198.18.0.100:80 -r 198.18.0.13:80",
                                         "-e -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 3",
                                         "-A -t 198.18.0.100:443 -s wlc -p 600",
                                         "-a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 1",
                                         "--set 60 30 20"});
  CHECK_FALSE(t.find({kProtoUdp, ip("198.18.0.100"), 53}));
  const Real* still = t.find_real({kProtoTcp, ip("198.18.0.100"), 80}, ip("198.18.0.11"), 80);
  REQUIRE(still);
  CHECK(still->id == keep_id);
  CHECK(still->stats.conns == 42);
  CHECK(still->dest.active_conns == 1);
  CHECK(t.find_real({kProtoTcp, ip("198.18.0.100"), 80}, ip("198.18.0.12"), 80)->dest.weight == 3);
  CHECK_FALSE(t.find_real({kProtoTcp, ip("198.18.0.100"), 80}, ip("198.18.0.13"), 80));
  CHECK(t.find({kProtoTcp, ip("198.18.0.100"), 443})->options.persistent == 600);
  CHECK(to.tcp == 60);
  CHECK(to.udp == 20);
  // The same file again: nothing to do.
  REQUIRE(reload_rules(rules, t, to, changes).is_ok());
  CHECK(changes == 0);
}

// ipvsadm's commands_v_options, transcribed here from the reference (ipvs-compat.md §1.4)
// independently of the parser's table: every 'x' cell must give ipvsadm's message, exit 2.
TEST_CASE("every illegal command x option pair gives ipvsadm's message") {
  struct Row {
    const char* base;     // a valid invocation of the command
    const char* name;     // ipvsadm's internal command name
    const char* cells;    // one per option, in optnames[] order
  };
  const Row rows[] = {
      {"-A -t 198.18.0.100:80", "add-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"},
      {"-E -t 198.18.0.100:80", "edit-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"},
      {"-D -t 198.18.0.100:80", "delete-service", "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"-C", "flush", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"-L", "list", " 11xxxxxxxxx11       xxxxxxx xxxxx"},
      {"-a -t 198.18.0.100:80 -r 198.18.0.11", "add-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "},
      {"-d -t 198.18.0.100:80 -r 198.18.0.11", "delete-server", "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"-e -t 198.18.0.100:80 -r 198.18.0.11", "edit-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "},
      {"--set 1 2 3", "set", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"--start-daemon master", "start-daemon", "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx"},
      {"--stop-daemon master", "stop-daemon", "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx"},
      {"-R", "restore", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"-S", "save", " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
      {"-Z", "zero", "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
  };
  struct Option {
    const char* name;  // optnames[]
    const char* args;  // how to give it
  };
  const Option options[] = {
      {"numeric", "-n"}, {"connection", "-c"}, {"service-address", "-t 198.18.0.100:80"},
      {"scheduler", "-s rr"}, {"persistent", "-p 60"}, {"netmask", "-M 255.255.255.0"},
      {"real-server", "-r 198.18.0.12"}, {"forwarding-method", "-m"}, {"weight", "-w 2"},
      {"u-threshold", "-x 5"}, {"l-threshold", "-y 1"}, {"mcast-interface", "--mcast-interface eth0"},
      {"timeout", "--timeout"}, {"daemon", "--daemon"}, {"stats", "--stats"}, {"rate", "--rate"},
      {"thresholds", "--thresholds"}, {"persistent-conn", "--persistent-conn"}, {"nosort", "--nosort"},
      {"syncid", "--syncid 1"}, {"exact", "-X"}, {"ops", "-o"}, {"pe", "--pe sip"},
      {"sched-flags", "-b flag-1"}, {"mcast-group", "--mcast-group 224.0.0.81"},
      {"mcast-port", "--mcast-port 8848"}, {"mcast-ttl", "--mcast-ttl 1"},
      {"sync-maxlen", "--sync-maxlen 1400"}, {"tun-info", "--tun-info"}, {"tun-type", "--tun-type ipip"},
      {"tun-port", "--tun-port 6080"}, {"tun-nocsum", "--tun-nocsum"}, {"tun-csum", "--tun-csum"},
      {"tun-remcsum", "--tun-remcsum"},
  };
  size_t checked = 0;
  for (const auto& row : rows) {
    REQUIRE(std::string(row.cells).size() == std::size(options));
    for (size_t j = 0; j < std::size(options); ++j) {
      if (row.cells[j] != 'x') continue;
      const std::string line = std::string(row.base) + " " + options[j].args;
      INFO(line);
      const CliError e = err(line);
      CHECK(e.exit_code == 2);
      CHECK(e.message == fmt::format("Illegal '{}' option with the '{}' command", options[j].name, row.name));
      ++checked;
    }
    // And what is compulsory is asked for.
    for (size_t j = 0; j < std::size(options); ++j) {
      if (row.cells[j] != '+') continue;
      std::string base = row.base;
      const std::string given = std::string(" ") + options[j].args;
      const std::string given_base = j == 2 ? " -t 198.18.0.100:80" : " -r 198.18.0.11";
      base.erase(base.find(given_base), given_base.size());
      INFO(base);
      CHECK(err(base).message ==
            fmt::format("You need to supply the '{}' option for the '{}' command", options[j].name, row.name));
    }
  }
  CHECK(checked > 350);
}

TEST_CASE("rules streams resolve host and port names through the injected lookup, as ipvsadm -R") {
  std::vector<CliCommand> rules;
  const NameLookup hosts{[](const std::string& name, Ipv4& out) {
                           if (name != "web-1") return false;
                           out = ip("198.18.0.11");
                           return true;
                         },
                         [](const std::string& name) -> std::optional<uint16_t> {
                           if (name == "www") return 80;
                           return std::nullopt;
                         }};
  REQUIRE(parse_rules("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r web-1:80 -g\n", rules, hosts).is_ok());
  CHECK(rules[1].real.addr == ip("198.18.0.11"));
  CHECK(parse_rules("-a -t 198.18.0.100:80 -r web-2:80 -g\n", rules, hosts).message() ==
        "line 1: illegal real server address[:port] specified: `web-2:80'");
  CHECK_FALSE(parse_rules("-a -t 198.18.0.100:80 -r web-1:80 -g\n", rules).is_ok());  // numeric only
  // Port names too, through the same lookup (ipvsadm: getservbyname); none without it.
  REQUIRE(parse_rules("-A -t 198.18.0.100:www -s rr\n", rules, hosts).is_ok());
  CHECK(rules[0].service.port == 80);
  CHECK_FALSE(parse_rules("-A -t 198.18.0.100:www -s rr\n", rules).is_ok());
}

TEST_CASE("messages: a garbage rules line names its line and token") {
  std::vector<CliCommand> rules;
  const Status st = parse_rules("-A -t 198.18.0.100:80 -s rr\nfrobnicate the table\n", rules);
  CHECK(st.message() == "line 2: `frobnicate': no command (expected -A, -a, -E, -e, -D, -d, -C, -Z, --set or --lbd-sysctl)");
}

// ipvsadm 1.31's parse_service(): "[addr]:port" (brackets need the port), a bare IPv6
// address (no port), "addr[:port]" for IPv4; -M a prefix length when the service given
// before it is IPv6 (atoi, 1..128); -6 after -f only.
TEST_CASE("ipvsadm's IPv6 forms: services, reals, -M prefixes, -f with -6") {
  auto svc = ok("-A -t [2001:db8::1]:80 -s rr");
  CHECK(svc.service.vip == IpAddr(v6("2001:db8::1")));
  CHECK(svc.service.port == 80);
  CHECK(svc.svc_options.netmask6 == 128);
  auto bare = ok("-A -u 2001:db8::1 -p");
  CHECK(bare.service.vip == IpAddr(v6("2001:db8::1")));
  CHECK(bare.service.port == 0);
  CHECK(ok("-A -t [2001:db8::1]:80 -p 60 -M 64").svc_options.netmask6 == 64);
  CHECK(ok("-A -t [2001:db8::1]:80 -p 60 -M 64abc").svc_options.netmask6 == 64);  // atoi
  CHECK(err("-A -t [2001:db8::1]:80 -p 60 -M 129").message == "illegal ipv6 netmask specified");
  CHECK(err("-A -t [2001:db8::1]:80 -p 60 -M 0").message == "illegal ipv6 netmask specified");
  // -M before the service is read as an IPv4 mask, as ipvsadm reads it.
  CHECK(err("-A -p 60 -M 64 -t [2001:db8::1]:80").message == "illegal virtual server persistent mask specified");
  CHECK(err("-A -t [2001:db8::1] -s rr").exit_code == 2);
  CHECK(err("-A -t [2001:db8::1] -s rr").message == "illegal virtual server address[:port] specified");
  CHECK(err("-A -t [198.18.0.100]:80 -s rr").message == "illegal virtual server address[:port] specified");
  CHECK(err("-A -t [::ffff:198.18.0.100]:80 -s rr").message == "illegal virtual server address[:port] specified");
  auto real = ok("-a -t [2001:db8::1]:80 -r [2001:db8::11]:8080 -m");
  CHECK(real.real.addr == IpAddr(v6("2001:db8::11")));
  CHECK(real.real.port == 8080);
  CHECK(ok("-a -t [2001:db8::1]:80 -r 2001:db8::11 -g").real.port == 80);  // DR: the service's port
  const auto mixed = err("-a -t 198.18.0.100:80 -r 2001:db8::11");
  CHECK(mixed.exit_code == 2);
  CHECK(mixed.message == "Different address family is allowed only for tunneling servers");
  CHECK(err("-a -t [2001:db8::1]:80 -r 198.18.0.11 -m").message ==
        "Different address family is allowed only for tunneling servers");
  CHECK(ok("-a -t [2001:db8::1]:80 -r 198.18.0.11 -i").real.addr == IpAddr(ip("198.18.0.11")));
  auto fw6 = ok("-A -f 7 -6 -s rr");
  CHECK(fw6.service.fwmark == 7);
  CHECK(fw6.service.vip.v6());
  CHECK(ok("-A -f 7 -6 -p 60 -M 48").svc_options.netmask6 == 48);
  CHECK_FALSE(ok("-A -f 7 -s rr").service.vip.v6());
  CHECK(err("-A -6 -f 7 -s rr").message == "-6 used before -f\n");
  CHECK(err("-A -t 198.18.0.100:80 -6").message == "-6 used before -f\n");
}

TEST_CASE("-h lists every option the parser takes and lbadm's own") {
  const std::string help = usage_text("lbadm");
  for (const auto& [short_name, long_name] : parser_options()) {
    if (!long_name.empty()) {
      INFO("--" << long_name);
      CHECK((help.find("--" + long_name + " ") != std::string::npos ||
             help.find("--" + long_name + "|") != std::string::npos));
    }
    if (short_name) {
      INFO("-" << short_name);
      const std::string s = std::string("-") + short_name;
      CHECK((help.find(s + " ") != std::string::npos || help.find(s + "|") != std::string::npos ||
             help.find(s + "\n") != std::string::npos || help.find("|" + std::string(1, short_name)) != std::string::npos));
    }
  }
  for (const char* own : kLbadmOwnOptions) {
    INFO(own);
    CHECK(help.find(std::string(own) + " ") != std::string::npos);
  }
}

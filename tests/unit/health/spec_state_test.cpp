// The --health grammar (parse, refuse, canonical form that reads back) and the rise/fall
// state machine as sequences of results.
#include <catch2/catch.hpp>

#include <set>

#include "frames.hpp"
#include "health/spec.hpp"
#include "health/state.hpp"

using namespace lbd;
using namespace lbd::health;
using lbd::test::ip;

TEST_CASE("health spec: defaults, keys, canonical form that reads back") {
  CHECK(format_service_health(ServiceHealth{}).empty());
  const auto parsed = parse_service_health("check=http,path=/healthz,interval=0.5,timeout=0.25,rise=3,fall=4,"
                                           "status=200-299/302,body=all%20good,on-down=expire,"
                                           "sorry=198.18.0.50:8080,sorry-fwd=m,notify=/usr/local/bin/tell");
  REQUIRE(parsed);
  const ServiceHealth& h = *parsed;
  CHECK(h.check.kind == find_check("http"));
  CHECK(h.check.interval_ms == 500);
  CHECK(h.check.timeout_ms == 250);
  CHECK(h.check.status == std::vector<StatusRange>{{200, 299}, {302, 302}});
  CHECK(h.check.body == "all good");
  CHECK(h.on_down == OnDown::kExpire);
  CHECK(h.sorry_addr == ip("198.18.0.50"));
  CHECK(h.sorry_port == 8080);
  CHECK(h.sorry_fwd == FwdMethod::kMasq);
  const std::string text = format_service_health(h);
  CHECK(text == "check=http,interval=0.5,timeout=0.25,rise=3,fall=4,path=/healthz,"
                "status=200-299/302,body=all%20good,on-down=expire,sorry=198.18.0.50:8080,"
                "sorry-fwd=m,notify=/usr/local/bin/tell");
  const auto again = parse_service_health(text);
  REQUIRE(again);
  CHECK(*again == h);
  // -E semantics: keys given change, the rest stays.
  const auto edited = parse_service_health("fall=2,sorry=none", *again);
  REQUIRE(edited);
  CHECK(edited->check.fall == 2);
  CHECK(edited->check.rise == 3);
  CHECK_FALSE(edited->sorry_addr);
}

TEST_CASE("health spec: bad input is refused with the reason and changes nothing") {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"check=ping", "check=ping: expected tcp, http, https, mysql, exec, dns, udp or none"},
      {"interval=0.05", "interval=0.05: expected 0.1 to 3600 seconds"},
      {"interval=1,timeout=2", "timeout=2 is longer than interval=1"},
      {"rise=0", "rise=0: expected 1 to 1000"},
      {"status=99", "status=99: expected codes or ranges such as 200-299/302"},
      {"status=300-200", "status=300-200: expected codes or ranges such as 200-299/302"},
      {"max-lag=5", "max-lag needs user= (the replica check logs in)"},
      {"colour=blue", "unknown key 'colour'"},
      {"check", "'check': expected KEY=VALUE"},
      {"check=tcp,", "trailing ','"},
      {"body=%zz", "'body=%zz': bad %-escape"},
      {"sorry=198.18.0.50:0", "sorry=198.18.0.50:0: expected ADDRESS[:PORT] or none"},
      {"path=health", "path=health: expected a path starting with /"},
      {"cmd=check.sh", "cmd=check.sh: expected an absolute path"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    ServiceHealth h;
    h.check.fall = 7;
    const auto r = parse_service_health(c.text, h);
    CHECK_FALSE(r);
    CHECK(r.message() == c.error);
    CHECK(r.status().code() == EINVAL);
  }
}

TEST_CASE("a real's overrides: check keys only, canonical, applied over the service's") {
  const auto canon = parse_real_health("port=8081,check=tcp,port=8082");
  REQUIRE(canon);
  CHECK(*canon == "check=tcp,port=8082");
  CHECK(parse_real_health("sorry=198.18.0.9").message() == "'sorry' is a service setting (give it with -A/-E)");
  const auto svc = parse_service_health("check=http,fall=5");
  REQUIRE(svc);
  const CheckSpec eff = effective_check(svc->check, "check=tcp,port=8082");
  CHECK(eff.kind == find_check("tcp"));
  CHECK(eff.port == 8082);
  CHECK(eff.fall == 5);
  CheckSpec exec;
  exec.kind = find_check("exec");
  CHECK(validate_check(exec).message() == "check=exec needs cmd=");
  exec.cmd = "/bin/true";
  CHECK(validate_check(exec).is_ok());
}

TEST_CASE("rise/fall: fall failures in a row take it down, rise successes bring it back") {
  State s;
  auto run = [&](const char* seq) {
    std::string changes;
    for (const char* p = seq; *p; ++p) {
      switch (record(s, *p == '+', 2, 3)) {
        case Change::kWentDown: changes += 'D'; break;
        case Change::kWentUp: changes += 'U'; break;
        case Change::kNone: changes += '.'; break;
      }
    }
    return changes;
  };
  CHECK(run("+++") == "...");
  CHECK(run("--+--+") == "......");  // never 3 failures in a row: stays up
  CHECK(s.up);
  CHECK(run("---") == "..D");
  CHECK_FALSE(s.up);
  CHECK(run("-+-+-") == ".....");     // never 2 successes in a row: stays down
  CHECK(run("++") == ".U");
  CHECK(s.up);
  CHECK(run("---+---") == "..D....");
  State one;
  CHECK(record(one, false, 1, 1) == Change::kWentDown);
  CHECK(record(one, true, 1, 1) == Change::kWentUp);
}

TEST_CASE("health spec: no control characters in any value; no header injection through path") {
  for (const char* text : {"check=http,host=a%0Ab", "check=http,path=/%0d%0aX-Evil:%201", "check=http,body=a%1bb",
                           "check=exec,cmd=/bin/true%0a"}) {
    INFO(text);
    const auto r = parse_service_health(text);
    CHECK_FALSE(r);
    CHECK(r.message().find("control characters are not allowed") != std::string::npos);
  }
  CHECK(parse_service_health("check=http,path=/a%20b").message() == "path=/a b: a path has no blanks (write %20 as %2520)");
}

TEST_CASE("secrets: password-file=, redaction, and a redacted password is refused on restore") {
  const auto h = parse_service_health("check=mysql,user=lbd,password-file=/etc/lbd/mysql.pw");
  REQUIRE(h);
  CHECK(h->check.password_file == "/etc/lbd/mysql.pw");
  CHECK(format_service_health(*h) == "check=mysql,user=lbd,password-file=/etc/lbd/mysql.pw");
  CHECK(parse_service_health("password=x,password-file=/p", *h).message() == "give password= or password-file=, not both");
  CHECK(redact_secrets("-A -t 198.18.0.100:3306 --health check=mysql,user=u,password=s3cr%2Ct,rise=1") ==
        "-A -t 198.18.0.100:3306 --health check=mysql,user=u,password=<redacted>,rise=1");
  CHECK(redact_secrets("password=abc") == "password=<redacted>");
  CHECK(redact_secrets("user=u,password-file=/p") == "user=u,password-file=/p");
  CHECK(parse_service_health("check=mysql,user=u,password=<redacted>").message().find("redacted by lbadm -S") !=
        std::string::npos);
}

TEST_CASE("check kinds: each named once, found by its name, listed in check='s error") {
  std::set<std::string> names;
  for (const CheckKind* k : check_kinds()) {
    CHECK(names.insert(k->name).second);
    CHECK(find_check(k->name) == k);
    CHECK(k->start != nullptr);
  }
  CHECK(names == std::set<std::string>{"tcp", "http", "https", "mysql", "exec", "dns", "udp"});
  CHECK(find_check("none") == nullptr);
  CHECK(find_check("ping") == nullptr);
  CHECK(std::string(check_name(nullptr)) == "none");
  // A service may leave what its kind needs to each real (exec's cmd=); a real may not.
  REQUIRE(parse_service_health("check=exec"));
  CHECK(parse_service_health("check=exec,timeout=3").message() == "timeout=3 is longer than interval=2");
}

// The DNS check's bytes: the query laid out as RFC 1035 §4.1 has it (written here byte by
// byte), replies crafted the same way judged by ID, RCODE and A record; the new check keys
// parsed and printed back.
#include <catch2/catch.hpp>

#include "health/dns.hpp"
#include "health/spec.hpp"

using namespace lbd;
using namespace lbd::health;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s += char(x);
  return s;
}
CheckSpec spec(const std::string& text) {
  auto h = parse_service_health(text);
  INFO(h.message());
  REQUIRE(h);
  return h->check;
}
// A reply to id 0x1234 for lab.example. A: header, the question, then `answers` A records.
std::string reply(int rcode, std::initializer_list<std::array<int, 4>> answers, int id = 0x1234) {
  std::string r = bytes({id >> 8, id & 0xff, 0x81, 0x80 | rcode, 0, 1, 0, int(answers.size()), 0, 0, 0, 0});
  r += bytes({3, 'l', 'a', 'b', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1});
  for (const auto& a : answers)
    r += bytes({0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, a[0], a[1], a[2], a[3]});
  return r;
}
}  // namespace

TEST_CASE("DNS names in wire form; bad names refused") {
  CHECK(dns_name_wire("lab.example") == bytes({3, 'l', 'a', 'b', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0}));
  CHECK(dns_name_wire("lab.example.") == dns_name_wire("lab.example"));
  CHECK(dns_name_wire(".") == std::string(1, '\0'));
  CHECK(dns_name_wire("a..b").empty());
  CHECK(dns_name_wire(std::string(64, 'a')).empty());
  CHECK(dns_name_wire(std::string(63, 'a')).size() == 65);
}

TEST_CASE("DNS query: header, one IN question, recursion desired") {
  const CheckSpec c = spec("check=dns,query=lab.example,qtype=AAAA");
  CHECK(dns_query(0xbeef, c) == bytes({0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'l', 'a', 'b', 7, 'e', 'x',
                                       'a', 'm', 'p', 'l', 'e', 0, 0, 28, 0, 1}));
}

TEST_CASE("DNS replies judged by ID, RCODE and the A record asked for") {
  CheckSpec c = spec("check=dns,query=lab.example");
  CHECK(judge_dns(reply(0, {{198, 18, 0, 50}}), 0x1234, c).passed());
  CHECK(judge_dns(reply(0, {}), 0x1234, c).passed());  // no answer= : the rcode is enough
  CHECK(judge_dns(reply(3, {}), 0x1234, c).why() == "rcode NXDOMAIN, expected NOERROR");
  CHECK(judge_dns(reply(0, {}), 0x4321, c).why() == "reply for another query");
  CHECK(judge_dns(reply(0, {}).substr(0, 11), 0x1234, c).why() == "truncated reply (11 bytes)");
  c = spec("check=dns,query=lab.example,answer=198.18.0.50");
  CHECK(judge_dns(reply(0, {{198, 18, 0, 9}, {198, 18, 0, 50}}), 0x1234, c).passed());
  CHECK(judge_dns(reply(0, {{198, 18, 0, 9}}), 0x1234, c).why() == "no A record 198.18.0.50 in 1 answer");
  std::string cut = reply(0, {{198, 18, 0, 50}});
  CHECK(judge_dns(cut.substr(0, cut.size() - 2), 0x1234, c).why() == "malformed answer section");
  c = spec("check=dns,query=nothing.example,rcode=NXDOMAIN");
  CHECK(judge_dns(reply(3, {}), 0x1234, c).passed());
}

TEST_CASE("https, dns and udp keys: parsed, checked, printed back") {
  CHECK(format_service_health(*parse_service_health("check=https,sni=www.lab.example,ca=/etc/ssl/lab.pem,path=/h")) ==
        "check=https,path=/h,sni=www.lab.example,ca=/etc/ssl/lab.pem");
  CHECK(format_service_health(*parse_service_health("check=dns,query=lab.example,qtype=MX,rcode=NXDOMAIN")) ==
        "check=dns,query=lab.example,qtype=MX,rcode=NXDOMAIN");
  CHECK(format_service_health(*parse_service_health("check=udp,send=ping,expect=pong")) == "check=udp,send=ping,expect=pong");
  CHECK(validate_check(spec("check=dns")).message() == "check=dns needs query=");  // checked per real
  CHECK(parse_service_health("check=dns,query=a..b").message().starts_with("query=a..b: expected a DNS name"));
  CHECK(parse_service_health("check=dns,query=x,qtype=WKS").message().starts_with("qtype=WKS: expected A, NS"));
  CHECK(parse_service_health("check=dns,query=x,answer=host").message().starts_with("answer=host: expected an IPv4"));
  CHECK(parse_service_health("check=https,ca=lab.pem").message().starts_with("ca=lab.pem:"));
}

// lbadm --from-keepalived: expected rules written from keepalived's documented semantics
// and defaults (keepalived.conf(5), check_data.c alloc_vs / validate_check_config), the
// inputs written here in the shapes of keepalived's doc/samples.
#include <catch2/catch.hpp>

#include "lb/ctl/commands.hpp"
#include "lb/ctl/keepalived_import.hpp"

using namespace lbd;

namespace {
// The imported rules without their comment lines.
std::string rules_of(const std::string& conf) {
  auto r = import_keepalived_text(conf, "k.conf");
  INFO(r.message());
  REQUIRE(r);
  std::vector<CliCommand> parsed;
  const Status st = parse_rules(r->rules, parsed);
  INFO(st.message() << "\n" << r->rules);
  REQUIRE(st.is_ok());  // what is printed loads
  std::string out, line;
  for (char c : r->rules) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (!line.starts_with("#")) out += line + "\n";
    line.clear();
  }
  return out;
}
std::string refusal(const std::string& conf) {
  auto r = import_keepalived_text(conf, "k.conf");
  REQUIRE_FALSE(r);
  return r.message();
}
}  // namespace

TEST_CASE("keepalived import: the sample's virtual server, defaults written out") {
  // doc/samples' shape: NAT, persistence, an HTTP_GET with a status code and retries.
  const std::string conf = R"(! Configuration File for keepalived
global_defs {
   notification_email {
     ops@example.invalid
   }
   router_id LVS_DEVEL
}
virtual_server 198.18.0.100 8080 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP
    sorry_server 198.18.0.200 8080

    real_server 198.18.0.11 8080 {
        weight 1
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 198.18.0.12 8080 {
        weight 2
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
        }
    }
}
)";
  // fall = retry + 1 (keepalived goes down after retry+1 failures), rise 1; NAT's sorry
  // server is reached by NAT too.
  CHECK(rules_of(conf) ==
        "-A -t 198.18.0.100:8080 -s rr -p 50 --health check=http,interval=6,timeout=3,rise=1,fall=4,path=/health,"
        "status=200,sorry=198.18.0.200:8080,sorry-fwd=m\n"
        "-a -t 198.18.0.100:8080 -r 198.18.0.11:8080 -m -w 1\n"
        "-a -t 198.18.0.100:8080 -r 198.18.0.12:8080 -m -w 2\n");
}

TEST_CASE("keepalived import: keepalived's defaults when keywords are missing") {
  // No protocol: UDP ("no protocol set - defaulting to UDP"); no lb_kind: NAT; no lb_algo:
  // wlc; delay_loop 60, connect_timeout 5, retry 1 (down after 2 failures).
  CHECK(rules_of("virtual_server 198.18.0.100 53 {\n real_server 198.18.0.11 53 {\n TCP_CHECK {\n }\n }\n}\n") ==
        "-A -u 198.18.0.100:53 -s wlc --health check=tcp,interval=60,timeout=5,rise=1,fall=2\n"
        "-a -u 198.18.0.100:53 -r 198.18.0.11:53 -m -w 1\n");
  // A real without port takes the service's; no checker at all: no check.
  CHECK(rules_of("virtual_server 198.18.0.100 80 {\n protocol tcp\n lb_kind DR\n real_server 198.18.0.11 {\n }\n}\n") ==
        "-A -t 198.18.0.100:80 -s wlc --health check=none\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n");
}

TEST_CASE("keepalived import: braces anywhere, both comment styles, the cascade") {
  const std::string conf =
      "virtual_server 198.18.0.100 80 { # the web VIP\n"
      "  protocol TCP ; lb_kind DR\n"  // (';' is no separator in keepalived: refused below)
      "}\n";
  CHECK(refusal(conf) == "k.conf:2: protocol: expected one value");
  const std::string ok =
      "virtual_server 198.18.0.100 80 { ! web\n"
      "  protocol TCP\n  lb_kind DR\n  lb_algo wrr\n  delay_loop 2\n  connect_timeout 1\n"
      "  real_server 198.18.0.11 80 { weight 3\n TCP_CHECK { connect_port 8080 } }\n"
      "  real_server 198.18.0.12 80 { weight 1\n HTTP_GET { url { path /ok\n status_code 200-299 302 } retry 0 } }\n"
      "}\n";
  // The service takes the first real's check; a real whose check differs carries its own.
  CHECK(rules_of(ok) ==
        "-A -t 198.18.0.100:80 -s wrr --health check=tcp,port=8080,interval=2,timeout=1,rise=1,fall=2\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1 --health "
        "check=http,interval=2,timeout=1,rise=1,fall=1,path=/ok,status=200-299/302\n");
}

TEST_CASE("keepalived import: groups, granularity, DR port reset, timeouts, exec") {
  const std::string conf =
      "global_defs {\n lvs_timeouts tcp 7200 tcpfin 60 udp 120\n}\n"
      "virtual_server_group WEB {\n 198.18.0.100 80\n 198.18.0.101 80\n}\n"
      "virtual_server group WEB {\n protocol TCP\n lb_kind DR\n persistence_granularity 24\n"
      "  real_server 198.18.0.11 8080 {\n alpha\n MISC_CHECK {\n misc_path /usr/local/bin/check-web\n misc_timeout 2\n }\n }\n"
      "}\n";
  // granularity implies persistence 360; a DR real's other port is reset to the service's.
  CHECK(rules_of(conf) ==
        "--set 7200 60 120\n"
        "-A -t 198.18.0.100:80 -s wlc -p 360 -M 255.255.255.0 --health "
        "check=exec,interval=60,timeout=2,rise=1,fall=1,start=down,cmd=/usr/local/bin/check-web\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n"
        "-A -t 198.18.0.101:80 -s wlc -p 360 -M 255.255.255.0 --health "
        "check=exec,interval=60,timeout=2,rise=1,fall=1,start=down,cmd=/usr/local/bin/check-web\n"
        "-a -t 198.18.0.101:80 -r 198.18.0.11:80 -g -w 1\n");
  auto r = import_keepalived_text(conf, "k.conf");
  REQUIRE(r);
  CHECK(std::find_if(r->notes.begin(), r->notes.end(), [](const std::string& n) {
          return n.find("DR and TUN reals use the service's port 80") != std::string::npos;
        }) != r->notes.end());
}

TEST_CASE("keepalived import: SSL_GET as check=https, its SNI") {
  CHECK(rules_of("virtual_server 198.18.0.100 443 {\n protocol TCP\n lb_kind DR\n delay_loop 5\n"
                 " real_server 198.18.0.11 443 {\n SSL_GET {\n url {\n path /health\n status_code 200\n }\n"
                 " sni_name www.lab.example\n connect_timeout 2\n }\n }\n}\n") ==
        "-A -t 198.18.0.100:443 -s wlc --health check=https,interval=5,timeout=2,rise=1,fall=2,path=/health,"
        "status=200,sni=www.lab.example\n"
        "-a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 1\n");
}

TEST_CASE("keepalived import: quorum, hysteresis and their commands") {
  CHECK(rules_of("virtual_server 198.18.0.100 80 {\n protocol TCP\n lb_kind DR\n quorum 3\n hysteresis 1\n"
                 " quorum_up /usr/local/bin/q-up\n quorum_down /usr/local/bin/q-down\n sorry_server 198.18.0.50 80\n"
                 " real_server 198.18.0.11 80 {\n weight 2\n TCP_CHECK {\n }\n }\n}\n") ==
        "-A -t 198.18.0.100:80 -s wlc --health check=tcp,interval=60,timeout=5,rise=1,fall=2,"
        "sorry=198.18.0.50:80,quorum=3,hysteresis=1,quorum-up=/usr/local/bin/q-up,quorum-down=/usr/local/bin/q-down\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 2\n");
  // keepalived lowers a hysteresis not below the quorum to quorum - 1.
  auto r = import_keepalived_text("virtual_server 198.18.0.100 80 {\n protocol TCP\n quorum 2\n hysteresis 5\n"
                                  " real_server 198.18.0.11 80 {\n }\n}\n", "k.conf");
  REQUIRE(r);
  CHECK(r->rules.find("quorum=2,hysteresis=1") != std::string::npos);
}

TEST_CASE("keepalived import: VRRP is skipped and said; a timeout longer than the loop is capped") {
  const std::string conf =
      "vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_ipaddress {\n 198.18.0.100\n }\n}\n"
      "virtual_server 198.18.0.100 80 {\n protocol TCP\n delay_loop 2\n real_server 198.18.0.11 80 {\n"
      " TCP_CHECK {\n connect_timeout 5\n }\n }\n}\n";
  auto r = import_keepalived_text(conf, "k.conf");
  REQUIRE(r);
  CHECK(r->rules.find("timeout=2,") != std::string::npos);
  REQUIRE(r->notes.size() == 2);
  CHECK(r->notes[0].starts_with("k.conf:1: vrrp_instance skipped"));
  CHECK(r->notes[1].find("connect_timeout 5 s is longer than delay_loop 2 s") != std::string::npos);
}

TEST_CASE("keepalived import: refused whole, with file, line and keyword") {
  const std::string head = "virtual_server 198.18.0.100 80 {\n protocol TCP\n";
  CHECK(refusal(head + " real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n path /\n digest 640205b7\n }\n }\n }\n}\n") ==
        "k.conf:7: digest: lbd matches statuses (status_code), not a body digest or regex");
  CHECK(refusal("virtual_server fwmark {\n}\n") == "k.conf:1: fwmark: expected fwmark N");
  CHECK(refusal(head + " lvs_method TUN type gue\n}\n") == "k.conf:3: gue: gue needs port N");
  CHECK(refusal(head + " lvs_method TUN type gre remcsum\n}\n") == "k.conf:3: remcsum: not a checksum option of this tunnel type");
  CHECK(refusal(head + " lvs_method DR type gre\n}\n").starts_with("k.conf:3: type: tunnel options are taken only after TUN"));
  CHECK(refusal(head + " real_server 198.18.0.11 80 {\n SMTP_CHECK {\n }\n }\n}\n").starts_with("k.conf:4: SMTP_CHECK:"));
  CHECK(refusal(head + " quorum_up \"/bin/echo up\"\n}\n").starts_with("k.conf:3: quorum_up: lbd runs one absolute"));
  CHECK(refusal(head + " lb_algo wrrr\n}\n") == "k.conf:3: wrrr: not one of IPVS's schedulers");
  CHECK(refusal(head + " protocol SCTP\n}\n").starts_with("k.conf:3: SCTP: SCTP is refused"));
  CHECK(refusal("virtual_server_group G {\n 198.18.0.100-110 80\n}\n").starts_with("k.conf:2: 198.18.0.100-110"));
  CHECK(refusal(head + " real_server 198.18.0.11 80 {\n weight 70000\n }\n}\n").starts_with("k.conf:4: 70000"));
  CHECK(refusal(head + " real_server 198.18.0.11 80 {\n MISC_CHECK {\n misc_path \"/bin/check -p 80\"\n }\n }\n}\n")
            .starts_with("k.conf:5: misc_path: lbd's exec check runs one absolute path"));
  CHECK(refusal(head).starts_with("k.conf:"));  // a block never closed
  CHECK(refusal("$PORT=80\n").starts_with("k.conf:1: $PORT=80: keepalived's parameters"));
  CHECK(refusal("virtual_server 2001:db8::1 80 {\n persistence_granularity 255.255.255.0\n real_server 2001:db8::11 80 "
                "{\n }\n}\n").starts_with("k.conf:2: 255.255.255.0: expected a prefix length"));
  CHECK(refusal("virtual_server 198.18.0.100 80 {\n ip_family inet6\n real_server 198.18.0.11 80 {\n }\n}\n")
            .starts_with("k.conf:1: ip_family inet6 with the IPv4 address 198.18.0.100"));
  CHECK(refusal("include other.conf\n").starts_with("k.conf:1: include: include is not followed here"));
  // A value lbd's grammar refuses, named by its virtual server.
  CHECK(refusal(head + " real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n path /\n status_code 99\n }\n }\n }\n}\n")
            .find("k.conf:1: virtual_server: line 2: illegal health specification: status=99") == 0);
}

TEST_CASE("keepalived import: virtual_server fwmark, and lvs_method TUN's GUE and GRE") {
  // keepalived.conf(5): protocol is ignored for fwmark services; a DR/TUN real's port is
  // cleared (check_data.c); lvs_method TUN type gue port N [nocsum|csum|remcsum] | gre.
  CHECK(rules_of("virtual_server fwmark 7 {\n lb_algo rr\n lb_kind DR\n persistence_timeout 300\n"
                 " real_server 198.18.0.11 80 {\n }\n"
                 " real_server 198.18.0.12 443 {\n  lvs_method NAT\n }\n}\n") ==
        "-A -f 7 -s rr -p 300 --health check=none\n"
        "-a -f 7 -r 198.18.0.11:0 -g -w 1\n"
        "-a -f 7 -r 198.18.0.12:443 -m -w 1\n");
  CHECK(rules_of("virtual_server 198.18.0.100 80 {\n protocol TCP\n lvs_method TUN type gue port 6080 csum\n"
                 " real_server 198.18.0.11 80 {\n }\n"
                 " real_server 198.18.0.12 80 {\n  lvs_method TUN type gre\n }\n"
                 " real_server 198.18.0.13 80 {\n  lvs_method TUN\n }\n}\n") ==
        "-A -t 198.18.0.100:80 -s wlc --health check=none\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -i -w 1 --tun-type gre\n"
        "-a -t 198.18.0.100:80 -r 198.18.0.13:80 -i -w 1\n");
}

TEST_CASE("keepalived import: IPv6 virtual servers in ipvsadm's IPv6 forms, a fwmark service's ip_family inet6") {
  // keepalived.conf(5): an IPv6 address where an IPv4 one goes; persistence_granularity a
  // prefix length for IPv6 (ipvsadm's -M for an IPv6 service); ip_family inet6 makes a
  // fwmark service IPv6 (ipvsadm's -f N -6).
  const std::string conf = R"(virtual_server 2001:db8::100 443 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    persistence_timeout 300
    persistence_granularity 64
    sorry_server 2001:db8::99 443
    real_server 2001:db8::11 443 {
        weight 2
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 2001:db8::12 443 {
    }
}
virtual_server fwmark 7 {
    ip_family inet6
    lb_algo wlc
    lb_kind NAT
    real_server 2001:db8::13 0 {
    }
}
virtual_server 198.18.0.100 80 {
    lb_kind TUN
    protocol TCP
    real_server 2001:db8::21 80 {
    }
}
)";
  CHECK(rules_of(conf) ==
        "-A -t [2001:db8::100]:443 -s rr -p 300 -M 64 --health check=tcp,interval=60,timeout=2,rise=1,fall=2,"
        "sorry=[2001:db8::99]:443\n"
        "-a -t [2001:db8::100]:443 -r [2001:db8::11]:443 -g -w 2\n"
        "-a -t [2001:db8::100]:443 -r [2001:db8::12]:443 -g -w 1 --health check=none\n"
        "-A -f 7 -6 -s wlc --health check=none\n"
        "-a -f 7 -6 -r [2001:db8::13]:0 -m -w 1\n"
        "-A -t 198.18.0.100:80 -s wlc --health check=none\n"
        "-a -t 198.18.0.100:80 -r [2001:db8::21]:80 -i -w 1\n");  // IPv4 in IPv6
}

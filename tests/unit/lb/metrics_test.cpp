// /metrics' node_exporter labels for a firewall-mark service: as procfs reads IPVS's FWM
// lines (proto FWM, the mark in local_mark, no address, port 0); the others' unchanged.
#include <catch2/catch.hpp>

#include "frames.hpp"
#include "lb/ctl/metrics.hpp"

using namespace lbd;
using namespace lbd::test;

TEST_CASE("metrics: a fwmark service's backends are labelled proto FWM with their mark") {
  Dump d;
  DumpService tcp;
  tcp.key = {kProtoTcp, ip("198.18.0.100"), 80};
  DumpReal r;
  r.spec = RealSpec(ip("198.18.0.11"), 80, FwdMethod::kRoute, 2);
  tcp.reals.push_back(r);
  DumpService fwm;
  fwm.key = fwmark_key(7);
  r.spec = RealSpec(ip("198.18.0.12"), 0, FwdMethod::kRoute, 3);
  fwm.reals.push_back(r);
  d.services = {tcp, fwm};
  const std::vector<Counter> counters;
  const std::vector<RealHealthView> health;
  const std::string text = prometheus_text({d, counters, health, "off", 1024, "test"});
  CHECK(text.find("node_ipvs_backend_weight{local_address=\"198.18.0.100\",local_port=\"80\",remote_address="
                  "\"198.18.0.11\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 2\n") != std::string::npos);
  CHECK(text.find("node_ipvs_backend_weight{local_address=\"<nil>\",local_port=\"0\",remote_address="
                  "\"198.18.0.12\",remote_port=\"0\",proto=\"FWM\",local_mark=\"7\"} 3\n") != std::string::npos);
}

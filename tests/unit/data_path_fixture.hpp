// A data path with one service (lab VIP:vport) and one real server (lab RIP:rport) whose
// next hop is resolved on one interface: what the data-path tests start from.
#pragma once

#include "frames.hpp"
#include "lb/core/data_path.hpp"

namespace lbd::test {

// The tables a data path works on (a connection table of 1,024), and the data path.
struct PathParts {
  ServiceTable services;
  ConnTable conns;
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  explicit PathParts(uint64_t seed = 7) : conns(1024, seed) {}
};

struct OneRealPath : PathParts {
  ServiceKey svc;
  int ifindex;

  explicit OneRealPath(FwdMethod method, uint8_t protocol = kProtoTcp, const ServiceOptions& opt = {"rr"},
                       uint16_t vport = 80, uint16_t rport = 8080, int ifindex_ = 7, uint64_t seed = 7)
      : PathParts(seed), ifindex(ifindex_) {
    svc = ServiceKey{protocol, lab::kVip, vport};
    REQUIRE(services.add_service(svc, opt).is_ok());
    REQUIRE(services.add_real(svc, {lab::kRip, rport, method, 1}).is_ok());
    real().hop = NextHop{ifindex, mac(0xd1), mac(0xa1), 1500, true, lab::kDirector};
    dp.set_interfaces({{ifindex, mac(0xd1), 1500}});
  }
  Real& real() { return services.real(services.find(svc)->reals[0]); }
};

}  // namespace lbd::test

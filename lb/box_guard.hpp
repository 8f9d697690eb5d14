// What lbd changes on the director, and undoes at exit: GRO/LRO turned off on capture
// interfaces (super-frames cannot be re-sent), and an nftables table `netdev lbd` whose
// ingress chain on the capture interfaces drops exactly the captured service traffic
// before the director's own IP stack sees it (no RST, no ICMP, no second forwarded copy).
// The chain's rules are fixed and look up sets (services, VIPs, NAT endpoints); a change
// of services adds and deletes set elements in one nft transaction. The table's comment records
// which offloads lbd turned off, so an lbd started after one that was killed (a watchdog,
// SIGKILL) still restores them at its exit.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "lb/service_table.hpp"

namespace lbd {

class BoxGuard {
 public:
  explicit BoxGuard(std::vector<std::string> interfaces);  // throws on failure
  ~BoxGuard();  // restores offloads, deletes the nftables table
  BoxGuard(const BoxGuard&) = delete;
  BoxGuard& operator=(const BoxGuard&) = delete;

  // Rewrites the drop rules for the current services. False with `error` on failure.
  bool apply(const ServiceTable& services, std::string& error);

  static constexpr const char* kTable = "lbd";

 private:
  // What the guard's sets hold (nft's element syntax), wanted or applied.
  struct Elements {
    std::set<std::string> svc, svc_any, vips, nat, nat_addrs, local;
  };
  static Elements wanted(const ServiceTable& services);
  std::string table_script() const;
  std::string offloads_comment() const;
  struct Offloads {
    std::string ifname;
    bool had_gro = false, had_lro = false;
  };
  std::vector<std::string> interfaces_;
  std::vector<Offloads> saved_;
  Elements have_;
};

// Runs `nft -f -` with `script` on stdin. Exit status 0 → true (and its output in
// `output`, if given); otherwise `error`.
bool run_nft(const std::string& script, std::string& error, std::string* output = nullptr);

}  // namespace lbd

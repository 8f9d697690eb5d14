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

#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/core/traffic_model.hpp"

namespace lbd {

class BoxGuard {
 public:
  explicit BoxGuard(std::vector<std::string> interfaces);  // throws on failure
  ~BoxGuard();  // restores offloads, deletes the nftables table
  BoxGuard(const BoxGuard&) = delete;
  BoxGuard& operator=(const BoxGuard&) = delete;

  // Sets the chain's sets to what the model owns (guard_elements); on failure nothing
  // changed.
  Status apply(const TrafficModel& model);

  // Someone else's nftables change can remove the guard (`nft flush ruleset`, which
  // Debian's nftables.service runs on every start and reload): the director's kernel would
  // then answer captured traffic with RSTs. The kernel's nftables events arrive on this
  // descriptor (a netlink socket); on_events() reads them and, when one removed the guard's
  // table, chain, rule or set, puts the whole table back at once, sets included. Whether
  // it had to restore it, or why that failed.
  int event_fd() const { return events_fd_.get(); }
  Result<bool> on_events(const TrafficModel& model);

  // A capture interface re-created (deleted, then added again): GRO and LRO off on it
  // again, and the table made anew with its chain on it.
  Status interface_back(const std::string& ifname, const TrafficModel& model);

  static constexpr const char* kTable = "lbd";
  struct Offloads {
    std::string ifname;
    bool had_gro = false, had_lro = false;  // what exit restores
  };

 private:
  std::string table_script() const;
  std::string offloads_comment() const;
  Status rebuild(const TrafficModel& model);  // the whole table, sets included
  std::vector<std::string> interfaces_;
  std::vector<Offloads> saved_;
  GuardElements have_;  // what the sets hold
  UniqueFd events_fd_;
  void drain_events();  // what our own nft run just caused
};

// Runs an nft script in one transaction (libnftables, as `nft -f` would): its output, or
// nft's error ("nft: Error: ...").
Result<std::string> run_nft(const std::string& script);

}  // namespace lbd

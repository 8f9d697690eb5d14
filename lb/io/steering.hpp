// Several workers: one capture socket per worker on each interface, joined in one packet
// fanout group per interface, and lbd's fanout program (forwarding/xdp/steer.bpf.c) choosing
// the socket: the worker that owns the frame's client (see steer_abi.h for why the client's
// address and not its port). lbd keeps the program's VIP set and mask in step with the
// services.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/base/owned.hpp"
#include "lb/base/status.hpp"

struct bpf_object;
extern "C" void bpf_object__close(bpf_object* object);

namespace lbd {

class Steering {
 public:
  // Loads the program for `workers` workers. Throws std::runtime_error with the reason.
  explicit Steering(uint32_t workers);
  ~Steering();
  Steering(const Steering&) = delete;
  Steering& operator=(const Steering&) = delete;

  int program_fd() const { return prog_fd_; }
  uint32_t workers() const { return workers_; }
  // The VIPs of both families (a frame to one is a client's), the client address bits that
  // choose the worker (IPv4: a netmask; IPv6: a prefix length), and the GUE reals' ports (an
  // ICMP error about lbd's GUE packet goes to the client's worker). Only what changed is
  // written; why not if the kernel refused.
  Status configure(const std::vector<IpAddr>& vips, Ipv4 mask, uint8_t prefix6 = 128,
                   const std::vector<uint16_t>& gue_ports = {});

 private:
  Owned<bpf_object, bpf_object__close> obj_;
  int prog_fd_ = -1, config_fd_ = -1, vips_fd_ = -1, vips6_fd_ = -1, gue_fd_ = -1;
  std::vector<uint16_t> gue_ports_;  // what the GUE port map holds, sorted
  uint32_t workers_;
  std::vector<IpAddr> vips_;  // what the maps hold, sorted
};

// The worker owning frames of this client (the program's choice, for tests and benchmarks).
uint32_t steer_worker(Ipv4 client, Ipv4 mask, uint32_t workers);
// Of either family: an IPv6 client by its first `prefix6` bits, folded (steer_abi.h).
uint32_t steer_worker(const IpAddr& client, Ipv4 mask, uint8_t prefix6, uint32_t workers);

}  // namespace lbd

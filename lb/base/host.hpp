// What lbd, lbadm and lbd-decap ask of the host they run on: its monotonic clock, its
// IPv4 addresses (with their subnets, for broadcast addresses), and one instance per
// network namespace.
#pragma once

#include <signal.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"

namespace lbd {

// Milliseconds on CLOCK_MONOTONIC: every timeout and expiry (never the wall clock).
uint64_t monotonic_ms();

// Blocks `signals` in the calling thread (and the threads it starts after) and returns
// their set, for a signalfd: a daemon's signals are read by its loop, never delivered.
sigset_t block_signals(std::initializer_list<int> signals);

struct LocalAddress {
  Ipv4 addr;
  Ipv4 netmask;
  // The subnet's broadcast and network addresses; none for a /31 or /32.
  bool has_broadcast() const { return netmask.host() < 0xfffffffeu; }
  Ipv4 broadcast() const { return Be32::from_host(addr.host() | ~netmask.host()); }
  Ipv4 network() const { return Be32::from_host(addr.host() & netmask.host()); }
};

// Every IPv4 address of every interface of this network namespace.
std::vector<LocalAddress> local_ipv4();
// The same, addresses only.
std::vector<Ipv4> local_ipv4_addresses();
// Every IPv4 and IPv6 address of every interface of this network namespace.
std::vector<IpAddr> local_addresses();

// Claims `name` for this process in this network namespace: an abstract Unix socket name
// is per namespace and released by the kernel when its holder dies, so a killed instance
// never blocks the next. Returns the descriptor that holds the claim (close it to release),
// or throws std::runtime_error with `busy` if another process holds it.
int claim_in_namespace(const std::string& name, const std::string& busy);

}  // namespace lbd

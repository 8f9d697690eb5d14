// What the engine checks: one real of one service, with the check it runs. Pure.
#pragma once

#include <cstdint>
#include <string>

#include "forwarding/packet.hpp"
#include "health/spec.hpp"

namespace lbd::health {

struct Target {
  uint32_t real_id = 0;
  std::string service;  // "TCP 198.18.0.100:80", for logs and the notify command
  IpAddr addr;          // the real server
  uint16_t port = 0;    // its port (the check's unless check.port)
  IpAddr vip;
  uint16_t vport = 0;
  uint8_t protocol = 0;
  CheckSpec check;
  std::string notify;   // command run on this real's transitions
  bool down_now = false;  // down as lbd starts checking it (a previous lbd's state): its first state
  // The port the check connects to: its own port=, else the real's.
  uint16_t check_port() const { return check.port ? check.port : port; }
  friend bool operator==(const Target&, const Target&) = default;
};

// "198.18.0.11:80", "[2001:db8::11]:80": the real a target checks, as logs and notify commands name it.
std::string real_name(const Target& t);

}  // namespace lbd::health

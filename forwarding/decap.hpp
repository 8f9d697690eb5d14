// The real server's side of LVS TUN: what lbd-decap does with each tunnelled packet, IPIP
// or GRE as a raw socket hands it, GUE as its UDP socket does. Pure (the daemon in
// lb/main/lbd_decap_main.cpp does the I/O): the outer packet must come from an allowed
// director and be sent to one of this host's own unicast addresses (not a broadcast or
// group address), the inner one be whole, not a tunnel packet again, and be addressed to
// one of the VIPs this server serves; anything else is counted and dropped. What it delivers bypasses the real's interface-bound firewall
// rules (it arrives on the TUN device), so the director list is the trust boundary.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "forwarding/tunnel.hpp"
#include "forwarding/packet.hpp"

namespace lbd {

struct Cidr {
  Ipv4 net;
  uint8_t len = 32;
  bool contains(Ipv4 a) const {
    const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
    return (a.host() & mask) == (net.host() & mask);
  }
};
// "198.18.0.0/24" or a bare address (/32); false on anything else or host bits set.
bool parse_cidr(std::string_view s, Cidr& out);

class Decapsulator {
 public:
  enum Outcome : uint8_t {
    kDelivered, kNotIpip, kMalformed, kSourceNotAllowed, kNotForVip, kNotToThisHost, kNested,
    kOutcomeCount
  };
  static const char* outcome_name(Outcome o);

  // Tunnelled packets are accepted from the `allowed` networks only; `allow_any` (a lab's
  // explicit choice) accepts any source instead.
  Decapsulator(std::vector<Ipv4> vips, std::vector<Cidr> allowed, bool allow_any = false)
      : vips_(std::move(vips)), allowed_(std::move(allowed)), allow_any_(allow_any) {}

  // This host's unicast addresses: the only outer destinations accepted (none until set).
  void set_local_addresses(std::vector<Ipv4> addrs) { local_ = std::move(addrs); }

  // `packet` starts at the outer IPv4 header (IPIP or GRE). Returns the inner datagram to
  // deliver, or an empty span (the reason counted).
  std::span<const uint8_t> handle(std::span<const uint8_t> packet);
  // A GUE packet (the UDP payload) from `src` to `dst`; the same answer. Remote checksum
  // offload completes the inner checksum in `payload`.
  std::span<const uint8_t> handle_gue(Ipv4 src, Ipv4 dst, std::span<uint8_t> payload);

  uint64_t count(Outcome o) const { return counts_[o]; }

 private:
  std::span<const uint8_t> admit(DecapStatus st, Ipv4 src, Ipv4 dst, std::span<const uint8_t> inner);

  std::vector<Ipv4> vips_;
  std::vector<Cidr> allowed_;
  bool allow_any_;
  std::vector<Ipv4> local_;
  std::array<uint64_t, kOutcomeCount> counts_{};
};

}  // namespace lbd

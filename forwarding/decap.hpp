// The real server's side of LVS TUN: what lbd-decap does with each tunnelled packet, IPIP
// (IPv4 or IPv6 inside) or GRE as a raw socket hands it, GUE as its UDP socket does, over
// IPv4 or IPv6. Pure (the daemon in
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
  IpAddr net;
  uint8_t len = 32;  // within the family's width (IPv4: 0-32)
  bool contains(const IpAddr& a) const { return a.v6() == net.v6() && masked(a, len) == net; }
};
// "198.18.0.0/24", "2001:db8::/64" or a bare address (/32, /128); false on anything else
// or host bits set.
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
  Decapsulator(std::vector<IpAddr> vips, std::vector<Cidr> allowed, bool allow_any = false)
      : vips_(std::move(vips)), allowed_(std::move(allowed)), allow_any_(allow_any) {}

  // This host's unicast addresses: the only outer destinations accepted (none until set).
  void set_local_addresses(std::vector<IpAddr> addrs) { local_ = std::move(addrs); }

  // `packet` starts at the outer IPv4 header (IPIP, IPv6 in IPv4, or GRE). Returns the inner
  // datagram to deliver, or an empty span (the reason counted).
  std::span<const uint8_t> handle(std::span<const uint8_t> packet);
  // What followed an outer IPv6 header from `src` to `dst`, announced as protocol `proto`
  // (4, 41 or 47), as a raw IPv6 socket hands it; the same answer.
  std::span<const uint8_t> handle_carrier(const IpAddr& src, const IpAddr& dst, uint8_t proto,
                                          std::span<const uint8_t> payload);
  // A GUE packet (the UDP payload) from `src` to `dst`; the same answer. Remote checksum
  // offload completes the inner checksum in `payload`.
  std::span<const uint8_t> handle_gue(const IpAddr& src, const IpAddr& dst, std::span<uint8_t> payload);

  uint64_t count(Outcome o) const { return counts_[o]; }

 private:
  std::span<const uint8_t> admit(DecapStatus st, const IpAddr& src, const IpAddr& dst, std::span<const uint8_t> inner);

  std::vector<IpAddr> vips_;
  std::vector<Cidr> allowed_;
  bool allow_any_;
  std::vector<IpAddr> local_;
  std::array<uint64_t, kOutcomeCount> counts_{};
};

}  // namespace lbd

// What lbd's traffic is, derived once from the service table and the director's own
// addresses: the one description its consumers are rendered from, so they cannot disagree.
// The capture filter is what lbd sees; the nftables guard is what the director's kernel must
// not handle as well (answer, forward a second copy). classify() is the reference both
// renderings are tested against on crafted frames.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"
#include "lb/core/service_table.hpp"

namespace lbd {

struct TrafficModel {
  struct Endpoint {
    uint8_t protocol;
    IpAddr addr;
    uint16_t port;  // services: 0 = every port of the protocol (a port-zero service)
  };
  std::vector<Endpoint> services;  // VIP:vport
  std::vector<Endpoint> nat;       // NAT reals' RIP:rport: their replies
  std::vector<IpAddr> vips;        // each distinct VIP once
  std::vector<IpAddr> nat_addrs;   // each distinct NAT real once
  std::vector<IpAddr> local;       // the director's own: a NAT real's packets to it are the director's
  // TUN reals: ICMP errors quoting an IPIP or GRE packet, or a UDP datagram to a GUE real's
  // port, are lbd's to relay (about its tunnels).
  bool tunnels = false;
  std::vector<uint16_t> gue_ports;  // each distinct GUE --tun-port once
  // Firewall-mark services: their packets reach lbd through the fwmark queue, not the
  // captures (fwmark_queue.hpp): their marks, and their NAT reals' addresses (whose
  // replies go through the queue too). None of the above lists them. `fwmarks6`: the IPv6
  // services' (-f N -6), queued by ip6tables.
  std::vector<uint32_t> fwmarks, fwmarks6;
  std::vector<IpAddr> fwmark_nat_addrs;
  size_t service_count = 0;

  enum class Claim {
    kNone,   // not lbd's: the director's kernel alone handles it
    kSeen,   // lbd sees it (and drops it, counted); the kernel keeps its copy
    kOwned,  // lbd's alone: captured, and dropped before the director's IP stack
  };
  // An Ethernet frame addressed to the director (or an ARP request).
  Claim classify(std::span<const uint8_t> frame) const;

 private:
  Claim classify6(std::span<const uint8_t> frame) const;
};

TrafficModel traffic_model(const ServiceTable& services, std::vector<IpAddr> local);

// The capture filter (libpcap syntax). Past kMaxFilterClauses the broad one: every ARP
// request and every IPv4 frame to the interface's MAC, sorted out by the data path (which
// drops and counts what is not lbd's). libpcap's compiler is quadratic in the clauses
// (1,000 services: 0.4 s; 5,000: 31 s, all of it stalling the loop) and the kernel takes at
// most 4096 instructions (about 2,000 services). Never a filter that misses a service.
inline constexpr size_t kMaxFilterClauses = 512;
struct CaptureFilter {
  std::string text;
  bool broad = false;
};
CaptureFilter capture_filter(const TrafficModel& model, const MacAddr& mac);
CaptureFilter broad_capture_filter(const MacAddr& mac);

// The capture is split in two classes, each its own socket per interface and worker: TCP
// SYNs without ACK (what a SYN flood sends), and everything else, which a worker serves
// first. At saturation a flood overflows only the SYN socket's ring: the packets of
// connections already made are not lost to it. The two are disjoint, and together they
// are the filter.
enum class CaptureClass : uint8_t { kConnections, kSyns };
inline constexpr CaptureClass kCaptureClasses[] = {CaptureClass::kConnections, CaptureClass::kSyns};
std::string class_filter(const CaptureFilter& filter, CaptureClass c);

// The guard's sets (nft's element syntax) for its fixed rules, kGuardRules.
struct GuardElements {
  std::set<std::string> svc, svc_any, vips, nat, nat_addrs, local;
  std::set<std::string> svc6, svc_any6, vips6, nat6, nat_addrs6, local6;  // IPv6's
  friend bool operator==(const GuardElements&, const GuardElements&) = default;
};
GuardElements guard_elements(const TrafficModel& model);
extern const char* const kGuardRules;

}  // namespace lbd

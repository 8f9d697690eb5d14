// IPVS's three tunnels (ipvsadm -i --tun-type ipip|gue|gre; ip_vs_xmit.c ip_vs_tunnel_xmit
// and ip_vs_tunnel_xmit_v6) on both ends: the director wraps a client's datagram in an outer
// header of the real server's family, with nothing between (IPIP: protocol 4 for an IPv4
// datagram, 41 for an IPv6 one), a UDP header and a 4-byte GUE header (GUE, UDP to the
// real's --tun-port) or a GRE header (GRE, protocol 47, 4 bytes or 8 with a checksum); the
// families may differ (IPv4 in IPv6, IPv6 in IPv4), as IPVS allows for tunnels only. The
// real server's decapsulator (lbd-decap) takes the inner datagram back out. Pure: no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "forwarding/packet.hpp"

namespace lbd {

// The kernel's IP_VS_CONN_F_TUNNEL_TYPE_* (ipip 0, gue 1, gre 2) and ipvsadm's names.
enum class TunType : uint8_t { kIpip, kGue, kGre };
// IP_VS_TUNNEL_ENCAP_FLAG_{NOCSUM,CSUM,REMCSUM} (0, 1, 2): ipvsadm indexes its tables by it.
enum class TunCsum : uint8_t { kNoCsum, kCsum, kRemCsum };

inline constexpr std::array<const char*, 3> kTunTypeNames = {"ipip", "gue", "gre"};
inline constexpr std::array<const char*, 3> kTunCsumOptions = {"tun-nocsum", "tun-csum", "tun-remcsum"};
inline constexpr std::array<const char*, 3> kTunCsumShort = {"-c", "+c", "r+c"};  // --tun-info

constexpr const char* tun_type_name(TunType t) { return kTunTypeNames[uint8_t(t)]; }
constexpr std::optional<TunType> tun_type_from_name(std::string_view s) {
  for (uint8_t i = 0; i < kTunTypeNames.size(); ++i)
    if (s == kTunTypeNames[i]) return TunType(i);
  return std::nullopt;
}

// A real server's tunnel, as IPVS keeps it per destination (tun_type, tun_port, tun_flags).
struct TunnelSpec {
  TunType type = TunType::kIpip;
  uint16_t port = 0;  // GUE: the UDP destination port (--tun-port); 0 otherwise
  TunCsum csum = TunCsum::kNoCsum;
  friend constexpr bool operator==(const TunnelSpec&, const TunnelSpec&) = default;
};

inline constexpr uint8_t kProtoGre = 47;
inline constexpr uint16_t kGreFlagCsum = 0x8000, kGreFlagKey = 0x2000, kGreFlagSeq = 0x1000,
                          kGreFlagRouting = 0x4000, kGreVersionMask = 0x0007;

struct GueHdr {           // draft-ietf-intarea-gue, version 0
  uint8_t ver_c_hlen;     // version (2 bits) | control (1) | hlen in 32-bit words (5)
  uint8_t proto_ctype;    // the inner protocol: 4 for IPv4, 41 for IPv6
  Be16 flags;             // bit 0 (GUE_FLAG_PRIV): 4 bytes of private flags follow
};
static_assert(sizeof(GueHdr) == 4);
inline constexpr uint16_t kGueFlagPriv = 0x0001;
inline constexpr uint32_t kGuePrivFlagRemCsum = 0x80000000;

// Bytes a tunnel adds in front of the inner datagram, the outer header (IPv4's 20 bytes, or
// IPv6's 40 when the real server's address is IPv6) included: IPVS subtracts the same from
// the route's MTU (__ip_vs_get_out_rt, __ip_vs_get_out_rt_v6). lbd never sends GUE's
// remote-checksum option (it completes every checksum before encapsulating, as the kernel
// does for a packet that is not CHECKSUM_PARTIAL), so remcsum adds nothing here.
constexpr size_t tunnel_overhead(const TunnelSpec& t, bool outer_v6) {
  const size_t outer = outer_v6 ? sizeof(Ipv6Hdr) : sizeof(Ipv4Hdr);
  switch (t.type) {
    case TunType::kIpip: return outer;
    case TunType::kGue: return outer + sizeof(UdpHdr) + sizeof(GueHdr);
    case TunType::kGre: return outer + (t.csum == TunCsum::kCsum ? 8 : 4);
  }
  return outer;
}

// GUE's UDP source port for a flow: IPVS takes udp_flow_src_port(), a hash of the flow in the
// local port range (32768-60999 by default), so one flow keeps one port (ECMP and RSS on the
// way keep it together) and flows spread over many.
uint16_t gue_source_port(const ParsedPacket& p);

// Wraps the parsed datagram of `buf` (an Ethernet frame; `buf` spans the whole buffer, its
// capacity), IPv4 or IPv6, in `t`'s tunnel from `src` to `dst` (both of one family, the
// outer header's), in place; the EtherType follows the outer family. As IPVS does, the
// outer TOS / traffic class and TTL / hop limit are the inner packet's; an IPv4 outer header
// copies DF from an IPv4 datagram (an IPv6 one has none: DF clear) and has `id` as its IP id;
// an IPv6 outer header has flow label 0. GUE's UDP checksum is computed with --tun-csum or
// --tun-remcsum and 0 with --tun-nocsum (over IPv6 as well: udp6_set_csum(), RFC 6935's
// tunnel exception; the decapsulator must accept it); GRE carries its checksum with
// --tun-csum. Ethernet padding is dropped. Returns the new frame length, or 0 (nothing
// changed) when the buffer is too small or the result would exceed 65535 bytes of IP.
size_t tunnel_encapsulate(std::span<uint8_t> buf, const ParsedPacket& p, const IpAddr& src, const IpAddr& dst,
                          uint16_t id, const TunnelSpec& t);

// The real server's side. On success `inner` is the encapsulated datagram, whole and
// well-formed: IPv4 (valid header length and checksum, total length within its carrier) or
// IPv6 (40 + payload length within its carrier), as its carrier announced it.
enum class DecapStatus { kOk, kNotIpip, kTruncatedOuter, kBadInner };

// `packet` is an IPv4 packet (from its IP header) as a raw AF_INET socket of protocol
// IPPROTO_IPIP, IPPROTO_IPV6 or IPPROTO_GRE delivers it.
DecapStatus ipip_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner);
DecapStatus gre_decapsulate(std::span<const uint8_t> packet, std::span<const uint8_t>& inner);

// What follows the outer header, as a raw AF_INET6 socket delivers it (the kernel has taken
// the IPv6 header and its extension headers off): `proto` 4 or 41 (the datagram itself) or
// 47 (GRE: version 0, protocol 0x0800 or 0x86DD, no routing; a checksum, when present, must
// hold; key and sequence number are skipped).
DecapStatus carrier_decapsulate(uint8_t proto, std::span<const uint8_t> payload, std::span<const uint8_t>& inner);

// `payload` is a GUE packet as a UDP socket delivers it (after the UDP header, whose checksum
// the kernel has checked): version 0, a data message carrying IPv4 or IPv6, flags the
// kernel's fou accepts (the private flags word, remote checksum offload). With remote
// checksum offload the inner TCP/UDP checksum is completed in place, as fou's gue_remcsum()
// does.
DecapStatus gue_decapsulate(std::span<uint8_t> payload, std::span<const uint8_t>& inner);

}  // namespace lbd

// Wire formats and the bounds-checked parser every other layer reads packets through.
// Parsing never writes and never trusts a length field it has not checked against the
// frame; the result is a ParsedPacket of offsets, so rewrites work on the original bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace lbd {

// Network byte order as its own type: mixing host and network order does not compile.
// Byte arrays keep every header 1-aligned, so views over a frame never do unaligned loads.
struct Be16 {
  std::array<uint8_t, 2> b{};
  static constexpr Be16 from_host(uint16_t v) { return Be16{{uint8_t(v >> 8), uint8_t(v)}}; }
  constexpr uint16_t host() const { return uint16_t(b[0] << 8 | b[1]); }
  friend constexpr bool operator==(const Be16&, const Be16&) = default;
};

struct Be32 {
  std::array<uint8_t, 4> b{};
  static constexpr Be32 from_host(uint32_t v) {
    return Be32{{uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}};
  }
  constexpr uint32_t host() const {
    return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
  }
  friend constexpr bool operator==(const Be32&, const Be32&) = default;
};

// An IPv4 address is a Be32; the alias names intent at API boundaries.
using Ipv4 = Be32;

struct Ipv6 {
  std::array<uint8_t, 16> b{};
  friend constexpr bool operator==(const Ipv6&, const Ipv6&) = default;
  friend constexpr auto operator<=>(const Ipv6&, const Ipv6&) = default;
};

// An address of either family: what services, reals and connections hold, in 16 bytes. An
// IPv4 address is held IPv4-mapped (::ffff:a.b.c.d, RFC 4291 2.5.5.2), a form that never
// appears on the wire (parse_frame refuses it there), so the family needs no byte of its
// own and a connection's hot fields stay in one cache line. Order: IPv4 before IPv6, then
// the bytes in network order (as ipvsadm sorts).
struct IpAddr {
  std::array<uint8_t, 16> b{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};  // 0.0.0.0
  constexpr IpAddr() = default;
  constexpr IpAddr(Ipv4 a)  // NOLINT: every IPv4 address is one
      : b{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a.b[0], a.b[1], a.b[2], a.b[3]} {}
  constexpr explicit IpAddr(const Ipv6& a) : b(a.b) {}
  static constexpr bool mapped(const std::array<uint8_t, 16>& x) {
    for (int i = 0; i < 10; ++i)
      if (x[i]) return false;
    return x[10] == 0xff && x[11] == 0xff;
  }
  constexpr bool v6() const { return !mapped(b); }
  constexpr Ipv4 v4() const { return Ipv4{{b[12], b[13], b[14], b[15]}}; }
  constexpr Ipv6 v6addr() const { return Ipv6{b}; }
  constexpr unsigned width() const { return v6() ? 128 : 32; }
  // The address's own bytes: 4 or 16, in network order.
  constexpr std::span<const uint8_t> bytes() const {
    return v6() ? std::span<const uint8_t>(b) : std::span<const uint8_t>(b).subspan(12);
  }
  constexpr bool is_zero() const {  // 0.0.0.0 or ::
    for (size_t i = v6() ? 0 : 12; i < 16; ++i)
      if (b[i]) return false;
    return true;
  }
  // IPVS's fold of an address into 32 bits (ip_vs_sh/dh/mh/lblc: the IPv6 address's four
  // words XORed), in host order: the IPv4 address itself.
  constexpr uint32_t fold() const {
    uint32_t r = 0;
    for (size_t w = v6() ? 0 : 3; w < 4; ++w)
      r ^= uint32_t(b[4 * w]) << 24 | uint32_t(b[4 * w + 1]) << 16 | uint32_t(b[4 * w + 2]) << 8 | b[4 * w + 3];
    return r;
  }
  friend constexpr bool operator==(const IpAddr&, const IpAddr&) = default;
  friend constexpr auto operator<=>(const IpAddr& x, const IpAddr& y) {
    if (x.v6() != y.v6()) return x.v6() <=> y.v6();
    return x.b <=> y.b;
  }
};
static_assert(sizeof(IpAddr) == 16);

struct MacAddr {
  std::array<uint8_t, 6> b{};
  friend constexpr bool operator==(const MacAddr&, const MacAddr&) = default;
  bool is_zero() const { return *this == MacAddr{}; }
};

std::string to_string(Ipv4 a);
std::string to_string(const IpAddr& a);  // 198.18.0.1, 2001:db8::1 (RFC 5952, as inet_ntop)
std::string to_string(const MacAddr& m);
// Parses dotted-quad only ("198.18.0.1"); false on anything else.
bool parse_ipv4(std::string_view s, Ipv4& out);
// Parses an IPv4 address (dotted quad) or an IPv6 one (inet_pton's forms, no brackets, no
// zone); false on anything else.
bool parse_ip(std::string_view s, IpAddr& out);
// The IPv4 addresses among `v`, in order (for what handles IPv4 only).
std::vector<Ipv4> ipv4_only(const std::vector<IpAddr>& v);
// "198.18.0.1:80", "[2001:db8::1]:80": ipvsadm's address:port forms.
std::string addr_port(const IpAddr& a, uint16_t port);
// `a` with all but its first `prefix` bits cleared (prefix >= the family's width: `a`).
IpAddr masked(const IpAddr& a, unsigned prefix);

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpip = 4;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIpv6 = 41;  // IPv6 in IPv4 or IPv6 (a tunnel's inner packet)
inline constexpr uint8_t kProtoIcmpv6 = 58;
// IPv6 extension headers (RFC 8200 4.1) the parser walks.
inline constexpr uint8_t kIp6HopByHop = 0, kIp6Routing = 43, kIp6Fragment = 44, kIp6Ah = 51,
                         kIp6NoNext = 59, kIp6DestOpts = 60;

struct EthHdr {
  MacAddr dst, src;
  Be16 type;
};
static_assert(sizeof(EthHdr) == 14);

struct Ipv4Hdr {
  uint8_t ver_ihl;
  uint8_t tos;
  Be16 tot_len;
  Be16 id;
  Be16 frag_off;
  uint8_t ttl;
  uint8_t protocol;
  Be16 check;
  Be32 saddr;
  Be32 daddr;
};
static_assert(sizeof(Ipv4Hdr) == 20);

struct Ipv6Hdr {
  Be32 ver_tc_flow;  // version 6, traffic class, flow label
  Be16 payload_len;
  uint8_t next_header;
  uint8_t hop_limit;
  Ipv6 saddr;
  Ipv6 daddr;
};
static_assert(sizeof(Ipv6Hdr) == 40);

struct Ipv6FragHdr {
  uint8_t next_header;
  uint8_t reserved;
  Be16 off_flags;  // offset << 3 | M
  Be32 id;
};
static_assert(sizeof(Ipv6FragHdr) == 8);

struct TcpHdr {
  Be16 sport, dport;
  Be32 seq, ack;
  uint8_t doff_res;
  uint8_t flags;
  Be16 window;
  Be16 check;
  Be16 urg;
};
static_assert(sizeof(TcpHdr) == 20);

struct UdpHdr {
  Be16 sport, dport, len;
  Be16 check;
};
static_assert(sizeof(UdpHdr) == 8);

struct ArpHdr {  // Ethernet/IPv4 ARP only
  Be16 htype, ptype;
  uint8_t hlen, plen;
  Be16 oper;
  MacAddr sha;
  Be32 spa;
  MacAddr tha;
  Be32 tpa;
};
static_assert(sizeof(ArpHdr) == 28);

struct IcmpHdr {
  uint8_t type, code;
  Be16 check;
  Be16 id;   // echo: identifier; frag-needed: unused
  Be16 seq;  // echo: sequence; frag-needed: next-hop MTU (RFC 1191)
};
static_assert(sizeof(IcmpHdr) == 8);

// ICMPv6 (RFC 4443, RFC 4861): the header is ICMP's; the 4 bytes after the checksum are
// the MTU of a Packet Too Big, the pointer of a Parameter Problem, unused otherwise.
namespace icmp6_type {
inline constexpr uint8_t kDestUnreachable = 1, kPacketTooBig = 2, kTimeExceeded = 3,
                         kParamProblem = 4, kEchoRequest = 128, kEchoReply = 129,
                         kNeighbourSolicit = 135, kNeighbourAdvert = 136;
}
inline constexpr uint16_t kIpv6MinMtu = 1280;  // RFC 8200 5: every link carries this

namespace icmp_type {
inline constexpr uint8_t kEchoReply = 0, kDestUnreachable = 3, kSourceQuench = 4,
                         kEchoRequest = 8, kTimeExceeded = 11;
}
namespace icmp_code {
inline constexpr uint8_t kPortUnreachable = 3, kFragNeeded = 4;
}
inline constexpr uint16_t kIpDf = 0x4000, kIpMf = 0x2000;

namespace tcp_flag {
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}

// Why a frame was not forwarded. Every drop on the data path is one of these, counted.
enum class DropReason : uint8_t {
  kTruncatedEthernet,
  kUnsupportedEtherType,
  kTruncatedIp,
  kBadIpVersion,
  kBadIhl,
  kBadIpLength,
  kIpOptions,
  kFragment,            // an IP fragment lbd cannot place (not TCP/UDP)
  kUnsupportedProtocol,
  kTruncatedL4,
  kBadTcpOffset,
  kBadUdpLength,
  kMalformedArp,
  kNoService,       // addressed to no configured service
  kNotSyn,          // TCP segment of no known connection that is not a SYN
  kNoRealServer,    // service has no eligible real server
  kConnTableFull,
  kRealUnavailable, // the connection's real server was deleted
  kNextHopUnresolved,
  kFrameTooBig,     // larger than the egress MTU (e.g. a GRO super-frame)
  kInjectFailed,
  kTruncatedIcmpQuote,  // an ICMP error too short to name the connection it is about
  kUnhandledIcmp,       // ICMP lbd does not forward (not an error or echo about a VIP)
  kIcmpNoConnection,    // an ICMP error about no connection lbd knows
  kOrphanReply,         // from a NAT real server's service port, matching no connection
  kNatTupleBusy,        // NAT: the real's reply tuple already belongs to another connection
  kTunnelMtuTooSmall,   // the tunnel's path MTU leaves no room (IPVS: mtu < 68)
  kFragNeeded,          // DF packet too big for the tunnel: ICMP frag-needed sent instead
  kRealDown,            // the connection's real failed its checks (on-down=expire): expired
  kIcmpNotSent,         // an ICMP error to relay held back by the rate limit (or no room)
  kFragmentUnmatched,   // a later IP fragment whose first was not seen (or too long ago)
  kBadChecksum,         // a packet that would create a connection fails its IP or L4 checksum
  kBadArpSender,        // an ARP request from a multicast or broadcast MAC: never answered
  kPmtuNotOurs,         // a frag-needed about an IPIP packet lbd did not send: ignored
  kBackupOnly,          // lbd is a passive sync backup (backup_only): it forwards nothing
  kVipArpOff,           // an ARP request for a VIP that --vip-arp says lbd does not answer now
  kBadExtHeader,        // IPv6: an extension header cut short, out of place, or more than 8
  kRoutingHeader,       // IPv6: a routing header with segments left (not for this hop)
  kMalformedNdp,        // IPv6: a Neighbour Solicitation failing RFC 4861 7.1.1's checks
  kMappedAddress,       // IPv6: an IPv4-mapped address on the wire (RFC 4291 2.5.5.2)
  kCount
};
const char* to_string(DropReason r);

// Offsets and the fields the data path keys on, read once. Ports are host order.
struct ParsedPacket {
  uint16_t ether_type = 0;
  uint16_t l3_off = 0;
  uint16_t l4_off = 0;       // IPv6: after the extension headers
  uint16_t ip_len = 0;       // the datagram's length, header included (IPv4 total length,
                             // IPv6 40 + payload length; Ethernet padding may follow it)
  uint8_t protocol = 0;      // IPv6: the upper-layer protocol the extension headers lead to
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0, icmp_code = 0;  // ICMP, or ICMPv6 when v6
  bool v6 = false;
  bool dont_fragment = false;  // IPv6: always (routers never fragment it)
  // A fragment (parse_frame then fails with kFragment, the fields below filled): the
  // first carries the ports, later ones only addresses, protocol and the IP id.
  bool fragment = false, first_fragment = false;
  uint32_t ip_id = 0;         // IPv4's 16-bit identification, IPv6's 32-bit one
  IpAddr saddr{}, daddr{};
  uint16_t sport = 0, dport = 0;  // ICMP echo: sport = identifier, dport = 0
};

// The datagram an ICMP error quotes: its IPv4 header and, when quoted, the ports.
struct IcmpQuote {
  uint16_t ip_off = 0;   // frame offset of the quoted IP header
  uint16_t l4_off = 0;   // frame offset of its L4 header (IPv6: after its extension headers)
  uint16_t end = 0;      // frame offset where the quote ends (the ICMP message's end)
  uint8_t protocol = 0;
  IpAddr saddr{}, daddr{};
  uint16_t sport = 0, dport = 0;
  uint16_t tot_len = 0;  // the quoted datagram's own total length field
  bool dont_fragment = false;
};

// Parses the IPv4 or IPv6 datagram quoted from frame offset `off` to `end` (an ICMP or
// ICMPv6 error's payload, or the datagram inside a quoted IPIP packet): its header must be
// complete (IPv6: with its extension headers) and for TCP/UDP the first 8 bytes of its L4
// header too (ports). False if too short.
bool parse_quote(std::span<const uint8_t> frame, size_t off, size_t end, IcmpQuote& q);

inline bool is_icmp_error(uint8_t type) {
  return type == icmp_type::kDestUnreachable || type == icmp_type::kSourceQuench ||
         type == icmp_type::kTimeExceeded;
}
// ICMPv6's errors (RFC 4443 2.1: types below 128): unreachable, too big, time exceeded,
// parameter problem.
inline bool is_icmp6_error(uint8_t type) {
  return type >= icmp6_type::kDestUnreachable && type <= icmp6_type::kParamProblem;
}
// The parsed datagram is an ICMP or ICMPv6 error (never answered with another error).
inline bool is_error_message(const ParsedPacket& p) {
  return p.v6 ? p.protocol == kProtoIcmpv6 && is_icmp6_error(p.icmp_type)
              : p.protocol == kProtoIcmp && is_icmp_error(p.icmp_type);
}

// Parses Ethernet → IPv4 → TCP/UDP/ICMP, Ethernet → IPv6 → extension headers → TCP/UDP/
// ICMPv6, or Ethernet → ARP. Returns true and fills `out`, or false and sets `why`. Frames
// with IPv4 options are refused. IPv6 extension headers are walked as RFC 8200 orders them
// (hop-by-hop only first; at most 8; each within the payload); a routing header with
// segments left is not for this hop. A fragment is refused too (kFragment: it is not a
// whole packet), but with `out` filled as far as it goes, so the data path can forward
// fragments after their first (an IPv6 first fragment names its ports when the headers
// before them are in it; a later one's protocol is the fragment header's next header).
bool parse_frame(std::span<const uint8_t> frame, ParsedPacket& out, DropReason& why);

template <class T>
inline T* header_at(std::span<uint8_t> frame, size_t off) {
  return off + sizeof(T) <= frame.size() ? reinterpret_cast<T*>(frame.data() + off) : nullptr;
}
template <class T>
inline const T* header_at(std::span<const uint8_t> frame, size_t off) {
  return off + sizeof(T) <= frame.size() ? reinterpret_cast<const T*>(frame.data() + off) : nullptr;
}

}  // namespace lbd

// fmt: "{}" of an address is its usual text (198.18.0.1, 02:00:00:00:00:01) and of a drop
// reason its counter's name; width and alignment apply as to a string.
template <>
struct fmt::formatter<lbd::Be32> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const lbd::Be32& a, Ctx& ctx) const {
    char buf[16];
    const auto r = fmt::format_to_n(buf, sizeof buf, "{}.{}.{}.{}", a.b[0], a.b[1], a.b[2], a.b[3]);
    return fmt::formatter<std::string_view>::format(std::string_view(buf, r.size), ctx);
  }
};
namespace lbd {
// RFC 5952 text of an IPv6 address into `buf` (inet_ntop's), its length returned.
size_t ipv6_text(const Ipv6& a, char (&buf)[46]);
}  // namespace lbd
template <>
struct fmt::formatter<lbd::IpAddr> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const lbd::IpAddr& a, Ctx& ctx) const {
    if (!a.v6()) return fmt::formatter<lbd::Be32>{*this}.format(a.v4(), ctx);  // the dotted quad's formatter
    char buf[46];
    return fmt::formatter<std::string_view>::format(std::string_view(buf, lbd::ipv6_text(a.v6addr(), buf)), ctx);
  }
};
template <>
struct fmt::formatter<lbd::MacAddr> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const lbd::MacAddr& m, Ctx& ctx) const {
    char buf[18];
    const auto r = fmt::format_to_n(buf, sizeof buf, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m.b[0], m.b[1],
                                    m.b[2], m.b[3], m.b[4], m.b[5]);
    return fmt::formatter<std::string_view>::format(std::string_view(buf, r.size), ctx);
  }
};
template <>
struct fmt::formatter<lbd::DropReason> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(lbd::DropReason r, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(lbd::to_string(r), ctx);
  }
};

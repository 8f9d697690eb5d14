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

struct MacAddr {
  std::array<uint8_t, 6> b{};
  friend constexpr bool operator==(const MacAddr&, const MacAddr&) = default;
  bool is_zero() const { return *this == MacAddr{}; }
};

std::string to_string(Ipv4 a);
std::string to_string(const MacAddr& m);
// Parses dotted-quad only ("198.18.0.1"); false on anything else.
bool parse_ipv4(std::string_view s, Ipv4& out);

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpip = 4;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

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
  kCount
};
const char* to_string(DropReason r);

// Offsets and the fields the data path keys on, read once. Ports are host order.
struct ParsedPacket {
  uint16_t ether_type = 0;
  uint16_t l3_off = 0;
  uint16_t l4_off = 0;
  uint16_t ip_len = 0;       // IPv4 total length (the frame may carry Ethernet padding after it)
  uint8_t protocol = 0;
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  bool dont_fragment = false;
  // A fragment (parse_frame then fails with kFragment, the fields below filled): the
  // first carries the ports, later ones only addresses, protocol and the IP id.
  bool fragment = false, first_fragment = false;
  uint16_t ip_id = 0;
  Ipv4 saddr{}, daddr{};
  uint16_t sport = 0, dport = 0;  // ICMP echo: sport = identifier, dport = 0
};

// The datagram an ICMP error quotes: its IPv4 header and, when quoted, the ports.
struct IcmpQuote {
  uint16_t ip_off = 0;   // frame offset of the quoted IPv4 header
  uint16_t l4_off = 0;   // frame offset of its L4 header
  uint16_t end = 0;      // frame offset where the quote ends (the ICMP message's end)
  uint8_t protocol = 0;
  Ipv4 saddr{}, daddr{};
  uint16_t sport = 0, dport = 0;
  uint16_t tot_len = 0;  // the quoted datagram's own total length field
  bool dont_fragment = false;
};

// Parses the IPv4 datagram quoted from frame offset `off` to `end` (an ICMP error's
// payload, or the datagram inside a quoted IPIP packet): its header must be complete and
// for TCP/UDP the first 8 bytes of its L4 header too (ports). False if too short.
bool parse_quote(std::span<const uint8_t> frame, size_t off, size_t end, IcmpQuote& q);

inline bool is_icmp_error(uint8_t type) {
  return type == icmp_type::kDestUnreachable || type == icmp_type::kSourceQuench ||
         type == icmp_type::kTimeExceeded;
}

// Parses Ethernet → IPv4 → TCP/UDP/ICMP, or Ethernet → ARP. Returns true and fills `out`, or
// false and sets `why`. Frames with IP options are refused. A fragment is refused too
// (kFragment: it is not a whole packet), but with `out` filled as far as it goes, so the
// data path can forward fragments after their first.
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

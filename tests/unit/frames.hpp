// Crafting frames for unit tests, with checksums computed by a naive reference
// implementation written here (not the one under test).
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"

namespace lbd::test {

inline Ipv4 ip(const char* s) {
  Ipv4 a;
  parse_ipv4(s, a);
  return a;
}

// (Usable at namespace scope: no Catch2 assertion, a test's own text parses or aborts.)
inline Ipv6 v6(const char* s) {
  IpAddr a;
  if (!parse_ip(s, a) || !a.v6()) std::abort();
  return a.v6addr();
}

inline MacAddr mac(uint8_t last) { return MacAddr{{0x02, 0, 0, 0, 0, last}}; }

// RFC 1071, byte by byte, the slow obvious way.
inline uint16_t ref_checksum(const std::vector<uint8_t>& data) {
  uint32_t sum = 0;
  for (size_t i = 0; i < data.size(); i += 2) {
    uint16_t w = uint16_t(data[i] << 8);
    if (i + 1 < data.size()) w |= data[i + 1];
    sum += w;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  }
  return uint16_t(~sum);
}

struct FrameSpec {
  MacAddr src = mac(1), dst = mac(2);
  Ipv4 saddr = ip("198.18.0.1"), daddr = ip("198.18.0.100");
  uint16_t sport = 40000, dport = 80;
  uint8_t protocol = kProtoTcp;
  uint8_t flags = tcp_flag::kSyn;
  std::string payload;
  uint8_t ttl = 64;
  bool dont_fragment = true;
};

inline void put16(std::vector<uint8_t>& v, size_t off, uint16_t x) {
  v[off] = uint8_t(x >> 8);
  v[off + 1] = uint8_t(x);
}

// An Ethernet/IPv4/TCP-or-UDP frame with correct IP and L4 checksums.
inline std::vector<uint8_t> make_frame(const FrameSpec& s) {
  const size_t l4h = s.protocol == kProtoTcp ? 20 : 8;
  const size_t l4len = l4h + s.payload.size();
  std::vector<uint8_t> f(14 + 20 + l4len, 0);
  std::copy(s.dst.b.begin(), s.dst.b.end(), f.begin());
  std::copy(s.src.b.begin(), s.src.b.end(), f.begin() + 6);
  put16(f, 12, kEtherTypeIpv4);
  f[14] = 0x45;
  put16(f, 16, uint16_t(20 + l4len));
  put16(f, 18, 0x1234);
  put16(f, 20, s.dont_fragment ? 0x4000 : 0);  // DF
  f[22] = s.ttl;
  f[23] = s.protocol;
  std::copy(s.saddr.b.begin(), s.saddr.b.end(), f.begin() + 26);
  std::copy(s.daddr.b.begin(), s.daddr.b.end(), f.begin() + 30);
  put16(f, 24, ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34)));
  const size_t l4 = 34;
  put16(f, l4, s.sport);
  put16(f, l4 + 2, s.dport);
  if (s.protocol == kProtoTcp) {
    put16(f, l4 + 4, 0x0102);
    f[l4 + 12] = 0x50;
    f[l4 + 13] = s.flags;
    put16(f, l4 + 14, 65535);
  } else {
    put16(f, l4 + 4, uint16_t(l4len));
  }
  std::copy(s.payload.begin(), s.payload.end(), f.begin() + long(l4 + l4h));
  std::vector<uint8_t> pseudo;
  pseudo.insert(pseudo.end(), s.saddr.b.begin(), s.saddr.b.end());
  pseudo.insert(pseudo.end(), s.daddr.b.begin(), s.daddr.b.end());
  pseudo.push_back(0);
  pseudo.push_back(s.protocol);
  pseudo.push_back(uint8_t(l4len >> 8));
  pseudo.push_back(uint8_t(l4len));
  pseudo.insert(pseudo.end(), f.begin() + long(l4), f.end());
  uint16_t c = ref_checksum(pseudo);
  if (s.protocol == kProtoUdp && c == 0) c = 0xffff;
  put16(f, l4 + (s.protocol == kProtoTcp ? 16 : 6), c);
  return f;
}

// True if the TCP/UDP checksum of an Ethernet/IPv4 (no options) frame verifies, by the
// reference sum over pseudo-header and segment.
inline bool l4_checksum_ok(const std::vector<uint8_t>& f) {
  std::vector<uint8_t> pseudo(f.begin() + 26, f.begin() + 34);
  const size_t len = f.size() - 34;
  pseudo.insert(pseudo.end(), {0, f[23], uint8_t(len >> 8), uint8_t(len)});
  pseudo.insert(pseudo.end(), f.begin() + 34, f.end());
  return ref_checksum(pseudo) == 0;
}

struct FrameSpec6 {
  MacAddr src = mac(1), dst = mac(2);
  Ipv6 saddr = v6("2001:db8::1"), daddr = v6("2001:db8::100");
  uint16_t sport = 40000, dport = 80;
  uint8_t protocol = kProtoTcp;  // TCP, UDP or ICMPv6 (then `icmp` is the message, check 0)
  uint8_t flags = tcp_flag::kSyn;
  std::string payload;
  std::vector<uint8_t> icmp;
  uint8_t hop_limit = 64;
  // Extension headers before the upper layer, each {type, bytes (its next-header byte is
  // filled in)}.
  std::vector<std::pair<uint8_t, std::vector<uint8_t>>> ext;
};

// The reference checksum of `l4` under the IPv6 pseudo-header (RFC 8200 8.1).
inline uint16_t ref_checksum6(const Ipv6& s, const Ipv6& d, uint8_t next, const std::vector<uint8_t>& l4) {
  std::vector<uint8_t> pseudo(s.b.begin(), s.b.end());
  pseudo.insert(pseudo.end(), d.b.begin(), d.b.end());
  pseudo.insert(pseudo.end(), {uint8_t(l4.size() >> 24), uint8_t(l4.size() >> 16), uint8_t(l4.size() >> 8),
                               uint8_t(l4.size()), 0, 0, 0, next});
  pseudo.insert(pseudo.end(), l4.begin(), l4.end());
  return ref_checksum(pseudo);
}

// An Ethernet/IPv6 (extension headers as given)/TCP, UDP or ICMPv6 frame with a correct
// upper-layer checksum.
inline std::vector<uint8_t> make_frame6(const FrameSpec6& s) {
  std::vector<uint8_t> l4;
  if (s.protocol == kProtoIcmpv6) {
    l4 = s.icmp;
  } else {
    const size_t l4h = s.protocol == kProtoTcp ? 20 : 8;
    l4.assign(l4h + s.payload.size(), 0);
    put16(l4, 0, s.sport);
    put16(l4, 2, s.dport);
    if (s.protocol == kProtoTcp) {
      put16(l4, 4, 0x0102);
      l4[12] = 0x50;
      l4[13] = s.flags;
      put16(l4, 14, 65535);
    } else {
      put16(l4, 4, uint16_t(l4.size()));
    }
    std::copy(s.payload.begin(), s.payload.end(), l4.begin() + long(l4h));
  }
  const size_t check_at = s.protocol == kProtoTcp ? 16 : s.protocol == kProtoUdp ? 6 : 2;
  if (l4.size() >= check_at + 2) {
    l4[check_at] = l4[check_at + 1] = 0;
    uint16_t c = ref_checksum6(s.saddr, s.daddr, s.protocol, l4);
    if (s.protocol == kProtoUdp && c == 0) c = 0xffff;
    put16(l4, check_at, c);
  }
  std::vector<uint8_t> ext;
  for (size_t i = 0; i < s.ext.size(); ++i) {
    std::vector<uint8_t> h = s.ext[i].second;
    h[0] = i + 1 < s.ext.size() ? s.ext[i + 1].first : s.protocol;
    ext.insert(ext.end(), h.begin(), h.end());
  }
  std::vector<uint8_t> f(14 + 40, 0);
  std::copy(s.dst.b.begin(), s.dst.b.end(), f.begin());
  std::copy(s.src.b.begin(), s.src.b.end(), f.begin() + 6);
  put16(f, 12, kEtherTypeIpv6);
  f[14] = 0x60;
  put16(f, 18, uint16_t(ext.size() + l4.size()));
  f[20] = s.ext.empty() ? s.protocol : s.ext[0].first;
  f[21] = s.hop_limit;
  std::copy(s.saddr.b.begin(), s.saddr.b.end(), f.begin() + 22);
  std::copy(s.daddr.b.begin(), s.daddr.b.end(), f.begin() + 38);
  f.insert(f.end(), ext.begin(), ext.end());
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

// Whether the upper-layer checksum of an Ethernet/IPv6 frame without extension headers
// verifies by the reference sum.
inline bool l4_checksum6_ok(const std::vector<uint8_t>& f) {
  Ipv6 s, d;
  std::copy(f.begin() + 22, f.begin() + 38, s.b.begin());
  std::copy(f.begin() + 38, f.begin() + 54, d.b.begin());
  return ref_checksum6(s, d, f[20], std::vector<uint8_t>(f.begin() + 54, f.end())) == 0;
}

// Parses a frame the test built to be valid; the test fails if it does not parse.
inline ParsedPacket parse_ok(std::span<const uint8_t> f) {
  ParsedPacket p;
  DropReason why{};
  REQUIRE(parse_frame(f, p, why));
  return p;
}

// Parses a frame the test made malformed: the test fails if it parses; returns the reason.
inline DropReason refusal(std::span<const uint8_t> f) {
  ParsedPacket p;
  DropReason why{};
  CHECK_FALSE(parse_frame(f, p, why));
  return why;
}

// The IP datagram of a frame (Ethernet header removed), e.g. to quote it in ICMP.
inline std::vector<uint8_t> ip_part(const std::vector<uint8_t>& frame) {
  return std::vector<uint8_t>(frame.begin() + 14, frame.end());
}

struct IcmpSpec {
  MacAddr src = mac(1), dst = mac(2);
  Ipv4 saddr, daddr;
  uint8_t type = 3, code = 3;
  uint16_t id = 0, seq = 0;  // frag-needed: seq = next-hop MTU
  std::vector<uint8_t> payload;  // errors: the quoted datagram
  uint16_t frag_off = 0;
};

// An Ethernet/IPv4/ICMP frame with checksums by the reference sum.
inline std::vector<uint8_t> make_icmp_frame(const IcmpSpec& s) {
  std::vector<uint8_t> f(14 + 20 + 8 + s.payload.size(), 0);
  std::copy(s.dst.b.begin(), s.dst.b.end(), f.begin());
  std::copy(s.src.b.begin(), s.src.b.end(), f.begin() + 6);
  put16(f, 12, kEtherTypeIpv4);
  f[14] = 0x45;
  put16(f, 16, uint16_t(f.size() - 14));
  put16(f, 20, s.frag_off);
  f[22] = 64;
  f[23] = kProtoIcmp;
  std::copy(s.saddr.b.begin(), s.saddr.b.end(), f.begin() + 26);
  std::copy(s.daddr.b.begin(), s.daddr.b.end(), f.begin() + 30);
  put16(f, 24, ref_checksum(std::vector<uint8_t>(f.begin() + 14, f.begin() + 34)));
  f[34] = s.type;
  f[35] = s.code;
  put16(f, 38, s.id);
  put16(f, 40, s.seq);
  std::copy(s.payload.begin(), s.payload.end(), f.begin() + 42);
  put16(f, 36, ref_checksum(std::vector<uint8_t>(f.begin() + 34, f.end())));
  return f;
}

// True if the IPv4 header checksum at frame offset `off` verifies (reference sum).
inline bool ip_checksum_ok(const std::vector<uint8_t>& f, size_t off = 14) {
  const size_t ihl = (f[off] & 0x0f) * 4u;
  return ref_checksum(std::vector<uint8_t>(f.begin() + long(off), f.begin() + long(off + ihl))) == 0;
}

inline std::vector<uint8_t> make_arp_request(MacAddr sha, Ipv4 spa, Ipv4 tpa) {
  std::vector<uint8_t> f(42, 0);
  for (int i = 0; i < 6; ++i) f[size_t(i)] = 0xff;
  std::copy(sha.b.begin(), sha.b.end(), f.begin() + 6);
  put16(f, 12, kEtherTypeArp);
  put16(f, 14, 1);
  put16(f, 16, kEtherTypeIpv4);
  f[18] = 6;
  f[19] = 4;
  put16(f, 20, 1);
  std::copy(sha.b.begin(), sha.b.end(), f.begin() + 22);
  std::copy(spa.b.begin(), spa.b.end(), f.begin() + 28);
  std::copy(tpa.b.begin(), tpa.b.end(), f.begin() + 38);
  return f;
}

// The one-segment lab the data-path tests share: a client, the director, a VIP and a real
// server, and the frames each side sends (the director's MAC 0xd1, the client's 0xc1, the
// real's 0xa1).
namespace lab {
inline const Ipv4 kVip = ip("198.18.0.100");
inline const Ipv4 kClient = ip("198.18.0.1");
inline const Ipv4 kDirector = ip("198.18.0.2");
inline const Ipv4 kRip = ip("198.18.0.11");

inline FrameSpec from_client(uint8_t flags, std::string payload = "", uint8_t protocol = kProtoTcp,
                             uint16_t vport = 80) {
  FrameSpec s;
  s.src = mac(0xc1);  // the client (or its router)
  s.dst = mac(0xd1);  // the director
  s.saddr = kClient;
  s.daddr = kVip;
  s.dport = vport;
  s.protocol = protocol;
  s.flags = flags;
  s.payload = std::move(payload);
  return s;
}

// A NAT real's reply from RIP:8080 to the client's 40000.
inline FrameSpec from_real(uint8_t flags, std::string payload = "", uint8_t protocol = kProtoTcp) {
  FrameSpec s;
  s.src = mac(0xa1);
  s.dst = mac(0xd1);
  s.saddr = kRip;
  s.sport = 8080;
  s.daddr = kClient;
  s.dport = 40000;
  s.protocol = protocol;
  s.flags = flags;
  s.payload = std::move(payload);
  return s;
}
}  // namespace lab

}  // namespace lbd::test

// ICMP messages lbd originates; see icmp.hpp.
#include "forwarding/icmp.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {

// Moves the quote (at most max_quote bytes of [quote_off, +quote_len)) behind `hdrs` bytes
// of headers and writes the Ethernet header; its length, or 0 if the buffer is too small.
static size_t place_quote(std::span<uint8_t> buf, size_t hdrs, size_t max_quote, size_t quote_off,
                          size_t quote_len, const IcmpError& e, uint16_t ether_type) {
  const size_t quote = std::min(quote_len, max_quote);
  if (!quote || hdrs + quote > buf.size() || quote_off + quote > buf.size()) return 0;
  std::memmove(buf.data() + hdrs, buf.data() + quote_off, quote);
  auto* eth = reinterpret_cast<EthHdr*>(buf.data());
  eth->dst = e.eth_dst;
  eth->src = e.eth_src;
  eth->type = Be16::from_host(ether_type);
  return quote;
}

// ICMPv6's form of the two errors lbd originates (RFC 4443): port unreachable is type 1
// code 4, fragmentation needed is Packet Too Big (type 2) with a 32-bit MTU; the message
// quotes as much as keeps the packet within the IPv6 minimum MTU, 1280.
static size_t write_icmp6_error(std::span<uint8_t> buf, size_t quote_off, size_t quote_len, const IcmpError& e) {
  constexpr size_t kHdrs = sizeof(EthHdr) + sizeof(Ipv6Hdr) + sizeof(IcmpHdr);
  const size_t quote = place_quote(buf, kHdrs, kIpv6MinMtu - sizeof(Ipv6Hdr) - sizeof(IcmpHdr), quote_off,
                                   quote_len, e, kEtherTypeIpv6);
  if (!quote) return 0;
  uint8_t* b = buf.data();
  auto* ip = reinterpret_cast<Ipv6Hdr*>(b + sizeof(EthHdr));
  *ip = Ipv6Hdr{};
  ip->ver_tc_flow = Be32::from_host(0x6c000000u);  // traffic class 0xc0, as the kernel's ICMPv6
  ip->payload_len = Be16::from_host(uint16_t(sizeof(IcmpHdr) + quote));
  ip->next_header = kProtoIcmpv6;
  ip->hop_limit = 64;
  ip->saddr = e.src.v6addr();
  ip->daddr = e.dst.v6addr();
  auto* icmp = reinterpret_cast<IcmpHdr*>(b + sizeof(EthHdr) + sizeof(Ipv6Hdr));
  *icmp = IcmpHdr{};
  const bool too_big = e.type == icmp_type::kDestUnreachable && e.code == icmp_code::kFragNeeded;
  if (too_big) {
    icmp->type = icmp6_type::kPacketTooBig;
    icmp->seq = Be16::from_host(std::max(e.mtu, kIpv6MinMtu));  // the MTU's low 16 bits; never below 1280
  } else if (e.type == icmp_type::kDestUnreachable && e.code == icmp_code::kPortUnreachable) {
    icmp->type = icmp6_type::kDestUnreachable;
    icmp->code = 4;  // port unreachable
  } else {
    icmp->type = e.type;
    icmp->code = e.code;
  }
  const std::span<const uint8_t> msg{reinterpret_cast<uint8_t*>(icmp), sizeof(IcmpHdr) + quote};
  icmp->check = Be16::from_host(csum::l4_full(e.src, e.dst, kProtoIcmpv6, msg, offsetof(IcmpHdr, check)));
  return kHdrs + quote;
}

size_t write_icmp_error(std::span<uint8_t> buf, size_t quote_off, size_t quote_len,
                        const IcmpError& e) {
  if (e.src.v6()) return write_icmp6_error(buf, quote_off, quote_len, e);
  constexpr size_t kHdrs = sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(IcmpHdr);
  const size_t quote =
      place_quote(buf, kHdrs, 576 - sizeof(Ipv4Hdr) - sizeof(IcmpHdr), quote_off, quote_len, e, kEtherTypeIpv4);
  if (!quote) return 0;
  uint8_t* b = buf.data();
  auto* ip = reinterpret_cast<Ipv4Hdr*>(b + sizeof(EthHdr));
  *ip = Ipv4Hdr{};
  ip->ver_ihl = 0x45;
  ip->tos = 0xc0;  // internetwork control, as the kernel sends ICMP errors
  ip->tot_len = Be16::from_host(uint16_t(sizeof(Ipv4Hdr) + sizeof(IcmpHdr) + quote));
  ip->ttl = 64;
  ip->protocol = kProtoIcmp;
  ip->saddr = e.src.v4();
  ip->daddr = e.dst.v4();
  ip->check = Be16::from_host(csum::ipv4_header({b + sizeof(EthHdr), sizeof(Ipv4Hdr)}));
  auto* icmp = reinterpret_cast<IcmpHdr*>(b + sizeof(EthHdr) + sizeof(Ipv4Hdr));
  *icmp = IcmpHdr{};
  icmp->type = e.type;
  icmp->code = e.code;
  icmp->seq = Be16::from_host(e.mtu);
  icmp->check = Be16::from_host(uint16_t(
      ~csum::fold(csum::accumulate({reinterpret_cast<uint8_t*>(icmp), sizeof(IcmpHdr) + quote}))));
  return kHdrs + quote;
}

bool translate_icmp_error(bool from_v6, uint8_t type, uint8_t code, uint8_t& out_type, uint8_t& out_code) {
  if (from_v6) {  // to ICMPv4
    if (type == icmp6_type::kTimeExceeded && code <= 1) {
      out_type = icmp_type::kTimeExceeded;
      out_code = code;
      return true;
    }
    if (type != icmp6_type::kDestUnreachable) return false;
    out_type = icmp_type::kDestUnreachable;
    switch (code) {
      case 0: case 2: case 3: out_code = 1; return true;  // no route, beyond scope, address: host unreachable
      case 1: out_code = 10; return true;                 // administratively prohibited: host prohibited
      case 4: out_code = icmp_code::kPortUnreachable; return true;
      default: return false;
    }
  }
  if (type == icmp_type::kTimeExceeded && code <= 1) {  // to ICMPv6
    out_type = icmp6_type::kTimeExceeded;
    out_code = code;
    return true;
  }
  if (type != icmp_type::kDestUnreachable) return false;
  out_type = icmp6_type::kDestUnreachable;
  switch (code) {
    case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12: out_code = 0; return true;  // no route
    case 9: case 10: case 13: out_code = 1; return true;  // administratively prohibited
    case icmp_code::kPortUnreachable: out_code = 4; return true;
    default: return false;
  }
}

IcmpError error_to_sender(std::span<const uint8_t> frame, const ParsedPacket& p, uint8_t code,
                          uint16_t mtu, const MacAddr& our_mac) {
  IcmpError e;
  e.code = code;
  e.mtu = mtu;
  e.src = p.daddr;
  e.dst = p.saddr;
  e.eth_src = our_mac;
  e.eth_dst = reinterpret_cast<const EthHdr*>(frame.data())->src;
  return e;
}

size_t make_dest_unreachable(std::span<uint8_t> frame, size_t capacity, const ParsedPacket& p,
                             uint8_t code, const MacAddr& our_mac, uint16_t mtu) {
  if (p.l3_off != sizeof(EthHdr) || capacity < frame.size()) return 0;
  return write_icmp_error({frame.data(), capacity}, p.l3_off, p.ip_len,
                          error_to_sender(frame, p, code, mtu, our_mac));
}

void echo_request_to_reply(std::span<uint8_t> frame, const ParsedPacket& p) {
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  std::swap(eth->dst, eth->src);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame.data() + p.l3_off);
  std::swap(ip->saddr, ip->daddr);  // the header checksum is unchanged by a swap
  ip->ttl = 64;
  ip->check = Be16{};
  ip->check = Be16::from_host(csum::ipv4_header({frame.data() + p.l3_off, size_t(p.l4_off - p.l3_off)}));
  auto* icmp = reinterpret_cast<IcmpHdr*>(frame.data() + p.l4_off);
  icmp->type = icmp_type::kEchoReply;
  icmp->check = Be16::from_host(csum::replace16(icmp->check.host(), uint16_t(icmp_type::kEchoRequest << 8),
                                                uint16_t(icmp_type::kEchoReply << 8)));
}

}  // namespace lbd

// ICMP destination unreachable; see icmp.hpp.
#include "forwarding/icmp.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {

size_t make_dest_unreachable(std::span<uint8_t> frame, size_t capacity, const ParsedPacket& p,
                             uint8_t code, const MacAddr& our_mac) {
  constexpr size_t kIcmpHdr = 8;
  constexpr size_t kMaxQuote = 576 - sizeof(Ipv4Hdr) - kIcmpHdr;
  const size_t quote = std::min<size_t>(p.ip_len, kMaxQuote);
  const size_t out_len = sizeof(EthHdr) + sizeof(Ipv4Hdr) + kIcmpHdr + quote;
  if (out_len > capacity || p.l3_off != sizeof(EthHdr)) return 0;
  uint8_t* b = frame.data();
  const auto* eth_in = reinterpret_cast<const EthHdr*>(b);
  const MacAddr client_mac = eth_in->src;
  // The quoted datagram moves back by the new IP + ICMP headers before they are written.
  std::memmove(b + sizeof(EthHdr) + sizeof(Ipv4Hdr) + kIcmpHdr, b + p.l3_off, quote);

  auto* eth = reinterpret_cast<EthHdr*>(b);
  eth->dst = client_mac;
  eth->src = our_mac;
  eth->type = Be16::from_host(kEtherTypeIpv4);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(b + sizeof(EthHdr));
  *ip = Ipv4Hdr{};
  ip->ver_ihl = 0x45;
  ip->tos = 0xc0;  // internetwork control, as the kernel sends ICMP errors
  ip->tot_len = Be16::from_host(uint16_t(sizeof(Ipv4Hdr) + kIcmpHdr + quote));
  ip->ttl = 64;
  ip->protocol = kProtoIcmp;
  ip->saddr = p.daddr;
  ip->daddr = p.saddr;
  ip->check = Be16::from_host(csum::ipv4_header({b + sizeof(EthHdr), sizeof(Ipv4Hdr)}));
  uint8_t* icmp = b + sizeof(EthHdr) + sizeof(Ipv4Hdr);
  icmp[0] = 3;  // destination unreachable
  icmp[1] = code;
  std::memset(icmp + 2, 0, 6);  // checksum, unused
  const uint16_t c = uint16_t(~csum::fold(csum::accumulate({icmp, kIcmpHdr + quote})));
  icmp[2] = uint8_t(c >> 8);
  icmp[3] = uint8_t(c);
  return out_len;
}

}  // namespace lbd

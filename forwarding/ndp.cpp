// Neighbour discovery and ICMPv6 echo replies; see ndp.hpp.
#include "forwarding/ndp.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {
namespace {

constexpr size_t kNsLen = 24;         // type, code, checksum, reserved, target
constexpr uint8_t kOptTargetLl = 2;   // target link-layer address option (RFC 4861 4.6.1)
constexpr uint8_t kNaSolicited = 0x40, kNaOverride = 0x20;

bool group_mac(const MacAddr& m) { return m.b[0] & 1; }

}  // namespace

bool neighbour_solicitation(std::span<const uint8_t> frame, const ParsedPacket& p, IpAddr& target) {
  if (!p.v6 || p.protocol != kProtoIcmpv6 || p.icmp_type != icmp6_type::kNeighbourSolicit || p.icmp_code != 0)
    return false;
  const auto* ip = reinterpret_cast<const Ipv6Hdr*>(frame.data() + p.l3_off);
  if (ip->hop_limit != 255 || p.l4_off != p.l3_off + sizeof(Ipv6Hdr)) return false;
  if (size_t(p.l3_off) + p.ip_len < size_t(p.l4_off) + kNsLen) return false;
  Ipv6 t;
  std::memcpy(t.b.data(), frame.data() + p.l4_off + 8, 16);
  if (t.b[0] == 0xff || p.saddr.is_zero() || p.saddr.b[0] == 0xff) return false;
  if (group_mac(reinterpret_cast<const EthHdr*>(frame.data())->src)) return false;
  target = IpAddr(t);
  return true;
}

size_t solicitation_to_advert(std::span<uint8_t> buf, const ParsedPacket& p, const IpAddr& target,
                              const MacAddr& mac) {
  constexpr size_t kLen = sizeof(EthHdr) + sizeof(Ipv6Hdr) + kNsLen + 8;
  if (buf.size() < kLen) return 0;
  auto* eth = reinterpret_cast<EthHdr*>(buf.data());
  eth->dst = eth->src;
  eth->src = mac;
  eth->type = Be16::from_host(kEtherTypeIpv6);
  auto* ip = reinterpret_cast<Ipv6Hdr*>(buf.data() + sizeof(EthHdr));
  ip->ver_tc_flow = Be32::from_host(0x60000000u);
  ip->payload_len = Be16::from_host(kNsLen + 8);
  ip->next_header = kProtoIcmpv6;
  ip->hop_limit = 255;
  ip->daddr = p.saddr.v6addr();
  ip->saddr = target.v6addr();
  uint8_t* na = buf.data() + sizeof(EthHdr) + sizeof(Ipv6Hdr);
  std::fill(na, na + kNsLen + 8, uint8_t{0});
  na[0] = icmp6_type::kNeighbourAdvert;
  na[4] = kNaSolicited | kNaOverride;
  std::memcpy(na + 8, target.b.data(), 16);
  na[24] = kOptTargetLl;
  na[25] = 1;  // in units of 8 bytes
  std::memcpy(na + 26, mac.b.data(), 6);
  const uint16_t c = csum::l4_full(target, p.saddr, kProtoIcmpv6, {na, kNsLen + 8}, offsetof(IcmpHdr, check));
  na[2] = uint8_t(c >> 8);
  na[3] = uint8_t(c);
  return kLen;
}

void echo6_request_to_reply(std::span<uint8_t> frame, const ParsedPacket& p) {
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  std::swap(eth->dst, eth->src);
  auto* ip = reinterpret_cast<Ipv6Hdr*>(frame.data() + p.l3_off);
  std::swap(ip->saddr, ip->daddr);  // the pseudo-header's sum does not change
  ip->hop_limit = 64;
  auto* icmp = reinterpret_cast<IcmpHdr*>(frame.data() + p.l4_off);
  const uint16_t before = uint16_t(icmp->type << 8 | icmp->code);
  icmp->type = icmp6_type::kEchoReply;
  icmp->check = Be16::from_host(csum::replace16(icmp->check.host(), before, uint16_t(icmp->type << 8 | icmp->code)));
}

}  // namespace lbd

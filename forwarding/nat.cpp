// NAT rewrites; see nat.hpp.
#include "forwarding/nat.hpp"

#include "forwarding/checksum.hpp"

namespace lbd {
namespace {

void store16(uint8_t* at, uint16_t v) {
  at[0] = uint8_t(v >> 8);
  at[1] = uint8_t(v);
}
uint16_t load16(const uint8_t* at) { return uint16_t(at[0] << 8 | at[1]); }

// The L4 checksum field's offset for TCP/UDP; 0 for anything else.
size_t l4_check_offset(uint8_t protocol) {
  return protocol == kProtoTcp ? offsetof(TcpHdr, check)
         : protocol == kProtoUdp ? offsetof(UdpHdr, check)
                                 : 0;
}

// Replaces the address at `addr_at` (inside the IPv4 header at `ip`) and the port at
// `port_at` (inside the L4 header at `l4`, which may be cut short at `end`), fixing the IP
// header checksum and the L4 checksum when it lies before `end`.
void rewrite_endpoint(uint8_t* ip, uint8_t* addr_at, uint8_t* l4, uint8_t* port_at,
                      const uint8_t* end, uint8_t protocol, Ipv4 addr, uint16_t port) {
  Ipv4 old_addr;
  std::copy(addr_at, addr_at + 4, old_addr.b.begin());
  auto* iph = reinterpret_cast<Ipv4Hdr*>(ip);
  iph->check = Be16::from_host(csum::replace32(iph->check.host(), old_addr.host(), addr.host()));
  std::copy(addr.b.begin(), addr.b.end(), addr_at);
  const uint16_t old_port = load16(port_at);
  store16(port_at, port);

  const size_t check_off = l4_check_offset(protocol);
  if (!check_off || l4 + check_off + 2 > end) return;
  uint8_t* check_at = l4 + check_off;
  uint16_t c = load16(check_at);
  if (protocol == kProtoUdp && c == 0) return;  // no checksum
  c = csum::replace32(c, old_addr.host(), addr.host());  // the pseudo-header's address
  c = csum::replace16(c, old_port, port);
  if (protocol == kProtoUdp && c == 0) c = 0xffff;
  store16(check_at, c);
}

}  // namespace

void nat_rewrite(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, Ipv4 addr,
                 uint16_t port) {
  uint8_t* ip = frame.data() + p.l3_off;
  uint8_t* l4 = frame.data() + p.l4_off;
  const bool dst = side == NatSide::kDestination;
  rewrite_endpoint(ip, ip + (dst ? offsetof(Ipv4Hdr, daddr) : offsetof(Ipv4Hdr, saddr)), l4,
                   l4 + (dst ? 2 : 0), frame.data() + p.l3_off + p.ip_len, p.protocol, addr,
                   port);
}

void nat_rewrite_address(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, Ipv4 addr) {
  auto* iph = reinterpret_cast<Ipv4Hdr*>(frame.data() + p.l3_off);
  Be32& field = side == NatSide::kDestination ? iph->daddr : iph->saddr;
  iph->check = Be16::from_host(csum::replace32(iph->check.host(), field.host(), addr.host()));
  field = addr;
}

void nat_rewrite_icmp(std::span<uint8_t> frame, const ParsedPacket& p, const IcmpQuote& q,
                      NatSide side, Ipv4 addr, uint16_t port) {
  uint8_t* ip = frame.data() + p.l3_off;
  auto* iph = reinterpret_cast<Ipv4Hdr*>(ip);
  const bool dst = side == NatSide::kDestination;
  // Outer header: the address the translation moves (no ports at this level).
  Be32& outer = dst ? iph->daddr : iph->saddr;
  iph->check = Be16::from_host(csum::replace32(iph->check.host(), outer.host(), addr.host()));
  outer = addr;
  // Quoted datagram: it travelled the other way, so the other end changes.
  uint8_t* qip = frame.data() + q.ip_off;
  rewrite_endpoint(qip, qip + (dst ? offsetof(Ipv4Hdr, saddr) : offsetof(Ipv4Hdr, daddr)),
                   frame.data() + q.l4_off, frame.data() + q.l4_off + (dst ? 0 : 2),
                   frame.data() + q.end, q.protocol, addr, port);
  // The ICMP checksum covers the whole message, quote included: recompute it (errors are
  // rare and short).
  auto* icmp = reinterpret_cast<IcmpHdr*>(frame.data() + p.l4_off);
  icmp->check = Be16{};
  const size_t len = p.l3_off + p.ip_len - p.l4_off;
  icmp->check =
      Be16::from_host(uint16_t(~csum::fold(csum::accumulate({frame.data() + p.l4_off, len}))));
}

}  // namespace lbd

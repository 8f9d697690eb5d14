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

// Writes `addr` at `addr_at` in the IP header at `ip` (its family's bytes), fixing the
// IPv4 header checksum; returns the address it replaced.
IpAddr replace_address(bool v6, uint8_t* ip, uint8_t* addr_at, const IpAddr& addr) {
  if (v6) {
    Ipv6 old;
    std::copy(addr_at, addr_at + 16, old.b.begin());
    std::copy(addr.b.begin(), addr.b.end(), addr_at);
    return IpAddr(old);
  }
  Ipv4 old;
  std::copy(addr_at, addr_at + 4, old.b.begin());
  auto* iph = reinterpret_cast<Ipv4Hdr*>(ip);
  const Ipv4 a = addr.v4();
  iph->check = Be16::from_host(csum::replace32(iph->check.host(), old.host(), a.host()));
  std::copy(a.b.begin(), a.b.end(), addr_at);
  return old;
}

// The L4 checksum field's offset for TCP/UDP; 0 for anything else.
size_t l4_check_offset(uint8_t protocol) {
  return protocol == kProtoTcp ? offsetof(TcpHdr, check)
         : protocol == kProtoUdp ? offsetof(UdpHdr, check)
                                 : 0;
}

// Replaces the address at `addr_at` (inside the IP header at `ip`: IPv4, or IPv6 when
// `v6`) and the port at `port_at` (inside the L4 header at `l4`, which may be cut short at
// `end`), fixing the IPv4 header checksum (IPv6 has none) and the L4 checksum when it lies
// before `end`.
void rewrite_endpoint(bool v6, uint8_t* ip, uint8_t* addr_at, uint8_t* l4, uint8_t* port_at,
                      const uint8_t* end, uint8_t protocol, const IpAddr& addr, uint16_t port) {
  const IpAddr old_addr = replace_address(v6, ip, addr_at, addr);
  const uint16_t old_port = load16(port_at);
  store16(port_at, port);

  const size_t check_off = l4_check_offset(protocol);
  if (!check_off || l4 + check_off + 2 > end) return;
  uint8_t* check_at = l4 + check_off;
  uint16_t c = load16(check_at);
  if (protocol == kProtoUdp && c == 0) return;  // no checksum
  // The pseudo-header's address (IPv4's two words directly: the common case, 7 ns less).
  c = v6 ? csum::replace_addr(c, old_addr, addr) : csum::replace32(c, old_addr.v4().host(), addr.v4().host());
  c = csum::replace16(c, old_port, port);
  if (protocol == kProtoUdp && c == 0) c = 0xffff;
  store16(check_at, c);
}

size_t addr_offset(bool v6, bool dst) {
  return v6 ? (dst ? offsetof(Ipv6Hdr, daddr) : offsetof(Ipv6Hdr, saddr))
            : (dst ? offsetof(Ipv4Hdr, daddr) : offsetof(Ipv4Hdr, saddr));
}

}  // namespace

void nat_rewrite(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, const IpAddr& addr,
                 uint16_t port) {
  uint8_t* ip = frame.data() + p.l3_off;
  uint8_t* l4 = frame.data() + p.l4_off;
  const bool dst = side == NatSide::kDestination;
  rewrite_endpoint(p.v6, ip, ip + addr_offset(p.v6, dst), l4, l4 + (dst ? 2 : 0),
                   frame.data() + p.l3_off + p.ip_len, p.protocol, addr, port);
}

void nat_rewrite_address(std::span<uint8_t> frame, const ParsedPacket& p, NatSide side, const IpAddr& addr) {
  uint8_t* ip = frame.data() + p.l3_off;
  replace_address(p.v6, ip, ip + addr_offset(p.v6, side == NatSide::kDestination), addr);
}

void nat_rewrite_icmp(std::span<uint8_t> frame, const ParsedPacket& p, const IcmpQuote& q,
                      NatSide side, const IpAddr& addr, uint16_t port) {
  uint8_t* ip = frame.data() + p.l3_off;
  const bool dst = side == NatSide::kDestination;
  // Outer header: the address the translation moves (no ports at this level).
  replace_address(p.v6, ip, ip + addr_offset(p.v6, dst), addr);
  // Quoted datagram: it travelled the other way, so the other end changes.
  uint8_t* qip = frame.data() + q.ip_off;
  rewrite_endpoint(p.v6, qip, qip + addr_offset(p.v6, !dst), frame.data() + q.l4_off,
                   frame.data() + q.l4_off + (dst ? 0 : 2), frame.data() + q.end, q.protocol, addr, port);
  // The ICMP checksum covers the whole message, quote included: recompute it (errors are
  // rare and short).
  // ICMPv6's also covers the pseudo-header, whose address just changed.
  auto* icmp = reinterpret_cast<IcmpHdr*>(frame.data() + p.l4_off);
  icmp->check = Be16{};
  const size_t len = p.l3_off + p.ip_len - p.l4_off;
  const std::span<const uint8_t> msg{frame.data() + p.l4_off, len};
  icmp->check = Be16::from_host(p.v6 ? csum::l4_full(dst ? p.saddr : addr, dst ? addr : p.daddr, kProtoIcmpv6,
                                                     msg, offsetof(IcmpHdr, check))
                                     : uint16_t(~csum::fold(csum::accumulate(msg))));
}

}  // namespace lbd

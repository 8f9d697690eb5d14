// Fuzzes the whole packet path: arbitrary bytes as frames through parse, the data path
// (TCP and UDP services with DR, NAT and TUN reals, a firewall-mark service with NAT, GUE
// and GRE reals), TCP segmentation, tunnels and outer fragmentation, and the real server's
// decapsulator (IPIP, GRE, GUE). Checked: no crash or undefined
// behaviour (ASan/UBSan), replies fit their buffer, and the reals' connection counts
// always equal the table's size.
#include <cstdint>
#include <cstring>
#include <vector>

#include "forwarding/decap.hpp"
#include "forwarding/ipip.hpp"
#include "forwarding/segment.hpp"
#include "lb/core/data_path.hpp"

using namespace lbd;

namespace {
struct World {
  ServiceTable services;
  ConnTable conns{256, 1};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  World() {
    const Ipv4 vip = Be32::from_host(0xc6120064);
    // Port 80: DR; 81: NAT onto 8080; 82: TUN.
    const FwdMethod methods[] = {FwdMethod::kRoute, FwdMethod::kMasq, FwdMethod::kTunnel};
    for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
      for (uint16_t m = 0; m < 3; ++m) {
        const ServiceKey k{proto, vip, uint16_t(80 + m)};
        (void)services.add_service(k, {proto == kProtoTcp ? "wlc" : "rr"});
        for (uint32_t i = 1; i <= 3; ++i)
          (void)services.add_real(k, {Be32::from_host(0xc612000a + i), uint16_t(m == 1 ? 8080 : 80 + m),
                                      methods[m], int32_t(i)});
      }
    }
    // Port 83: persistent (-p 30 -M /24) with thresholds; UDP 84: one-packet; and a
    // port-zero persistent service on 198.18.0.101.
    for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
      ServiceOptions o{"rr"};
      o.persistent = 30;
      o.netmask = Ipv4{{255, 255, 255, 0}};
      const ServiceKey k{proto, vip, 83};
      (void)services.add_service(k, o);
      for (uint32_t i = 1; i <= 3; ++i) {
        RealSpec r{Be32::from_host(0xc612000a + i), 83, FwdMethod::kRoute, 1};
        r.u_threshold = 2 + i;
        r.l_threshold = i - 1;
        (void)services.add_real(k, r);
      }
      const ServiceKey any{proto, Be32::from_host(0xc6120065), 0};
      (void)services.add_service(any, o);
      for (uint32_t i = 1; i <= 2; ++i)
        (void)services.add_real(any, {Be32::from_host(0xc612000a + i), 0, FwdMethod::kTunnel, 1});
    }
    // Firewall mark 1 (inputs whose second byte is odd carry it): persistent, NAT reals
    // keeping the packet's port, a GUE and a GRE real.
    ServiceOptions fwm{"rr"};
    fwm.persistent = 30;
    (void)services.add_service(fwmark_key(1), fwm);
    (void)services.add_real(fwmark_key(1), {Be32::from_host(0xc612000b), 0, FwdMethod::kMasq, 1});
    RealSpec gue{Be32::from_host(0xc612000c), 0, FwdMethod::kTunnel, 1};
    gue.tun = TunnelSpec{TunType::kGue, 6080, TunCsum::kCsum};
    (void)services.add_real(fwmark_key(1), gue);
    RealSpec gre{Be32::from_host(0xc612000d), 0, FwdMethod::kTunnel, 1};
    gre.tun = TunnelSpec{TunType::kGre, 0, TunCsum::kCsum};
    (void)services.add_real(fwmark_key(1), gre);
    ServiceOptions ops{"rr"};
    ops.ops = true;
    const ServiceKey u84{kProtoUdp, vip, 84};
    (void)services.add_service(u84, ops);
    for (uint32_t i = 1; i <= 3; ++i)
      (void)services.add_real(u84, {Be32::from_host(0xc612000a + i), uint16_t(i == 2 ? 5353 : 84),
                                    i == 2 ? FwdMethod::kMasq : FwdMethod::kRoute, 1});
    // IPv6: 2001:db8::100 port 80 by DR, 81 by NAT66 onto 8080, persistent by a /64 on 83.
    Ipv6 vip6{{0x20, 0x01, 0x0d, 0xb8}};
    vip6.b[15] = 0x00, vip6.b[14] = 0x01;
    for (uint16_t m = 0; m < 2; ++m) {
      const ServiceKey k{kProtoTcp, IpAddr(vip6), uint16_t(80 + m)};
      (void)services.add_service(k, {"rr"});
      for (uint8_t i = 1; i <= 3; ++i) {
        Ipv6 rip{{0x20, 0x01, 0x0d, 0xb8}};
        rip.b[15] = uint8_t(0x10 + i);
        (void)services.add_real(k, {IpAddr(rip), uint16_t(m ? 8080 : 80), m ? FwdMethod::kMasq : FwdMethod::kRoute, 1});
      }
    }
    ServiceOptions p6{"rr"};
    p6.persistent = 30;
    p6.netmask6 = 64;
    (void)services.add_service({kProtoUdp, IpAddr(vip6), 83}, p6);
    Ipv6 rip1{{0x20, 0x01, 0x0d, 0xb8}};
    rip1.b[15] = 0x11;
    (void)services.add_real({kProtoUdp, IpAddr(vip6), 83}, {IpAddr(rip1), 83, FwdMethod::kRoute, 1});
    // IPv6 tunnels: 2001:db8::100 port 82 in IPv6 (IPIP, GUE 6080) and in IPv4 (GRE with
    // its checksum); 198.18.0.100:85 in IPv6.
    const ServiceKey t6{kProtoTcp, IpAddr(vip6), 82};
    (void)services.add_service(t6, {"rr"});
    for (uint8_t i = 1; i <= 2; ++i) {
      Ipv6 rip{{0x20, 0x01, 0x0d, 0xb8}};
      rip.b[15] = uint8_t(0x20 + i);
      RealSpec r{IpAddr(rip), 82, FwdMethod::kTunnel, 1};
      if (i == 2) r.tun = TunnelSpec{TunType::kGue, 6080, TunCsum::kNoCsum};
      (void)services.add_real(t6, r);
    }
    RealSpec gre4{Be32::from_host(0xc6120015), 82, FwdMethod::kTunnel, 1};
    gre4.tun = TunnelSpec{TunType::kGre, 0, TunCsum::kCsum};
    (void)services.add_real(t6, gre4);
    const ServiceKey t4{kProtoTcp, Be32::from_host(0xc6120064), 85};
    (void)services.add_service(t4, {"rr"});
    (void)services.add_real(t4, {IpAddr(Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23}}), 85,
                                 FwdMethod::kTunnel, 1});
    services.for_each_real([](Real& r) {
      // One real unresolved: frames get held.
      r.hop = NextHop{1, MacAddr{{2, 0, 0, 0, 0, 1}}, MacAddr{{2, 0, 0, 0, 0, 2}}, 1500, r.addr.b[15] != 13,
                      r.addr.v6() ? IpAddr(Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}})
                                  : IpAddr(Ipv4{{198, 18, 0, 2}})};
    });
    dp.set_interfaces({{1, MacAddr{{2, 0, 0, 0, 0, 1}}, 1500}});
  }
};
// A valid TCP SYN to 198.18.0.100:80; inputs starting with 0xAA patch it (offset, value)
// pairs, so the fuzzer reaches the connection logic quickly.
const uint8_t kSyn[] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 8, 0, 0x45, 0, 0, 40, 0x12, 0x34,
                        0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 100, 0x9c, 0x40, 0,
                        80, 0, 0, 1, 2, 0, 0, 0, 0, 0x50, 2, 0xff, 0xff, 0, 0, 0, 0};
// The same SYN over IPv6 (2001:db8::1 → 2001:db8::100): inputs starting with 0xBB patch it.
const uint8_t kSyn6[] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64,
                         0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                         0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                         0x9c, 0x40, 0, 80, 0, 0, 1, 2, 0, 0, 0, 0, 0x50, 2, 0xff, 0xff, 0, 0, 0, 0};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  static uint64_t now = 0;
  std::vector<uint8_t> frame;
  if (size && (data[0] == 0xAA || data[0] == 0xBB)) {
    if (data[0] == 0xAA)
      frame.assign(kSyn, kSyn + sizeof kSyn);
    else
      frame.assign(kSyn6, kSyn6 + sizeof kSyn6);
    for (size_t i = 1; i + 1 < size; i += 2) {
      const size_t off = data[i] % (data[0] == 0xAA ? 80 : 120);
      if (off >= frame.size()) frame.resize(off + 1);
      frame[off] = data[i + 1];
    }
  } else {
    frame.assign(data, data + size);
  }
  const size_t capacity = frame.size() + 600;
  frame.resize(capacity);
  now += 250;  // time moves: connections and held frames expire as the run goes
  const uint32_t mark = size > 1 ? data[1] & 1 : 0;
  const Verdict v = w.dp.process({frame.data(), capacity - 600}, 1, now, capacity, mark);
  if (v.transmit && v.length > capacity) __builtin_trap();
  const std::span<const uint8_t> out(frame.data(), v.length ? v.length : capacity - 600);
  if (v.transmit && v.segment_mtu) {
    ParsedPacket p;
    DropReason why{};
    if (parse_frame(out, p, why)) {
      std::vector<uint8_t> seg(14 + v.segment_mtu + 64);
      for (size_t i = 0; i < 100; ++i) {
        const size_t n = tcp_segment_one(out, p, v.segment_mtu, i, seg.data());
        if (!n) break;
        ParsedPacket sp;
        if (v.encapsulate && parse_frame({seg.data(), n}, sp, why) &&
            tunnel_encapsulate(seg, sp, v.tun_src, v.tun_dst, 1, v.tun) > seg.size())
          __builtin_trap();
      }
    }
  }
  if (v.transmit && v.fragment_mtu) {
    std::vector<uint8_t> piece(14 + v.fragment_mtu);
    const bool v6 = out.size() > 14 && out[12] == 0x86 && out[13] == 0xdd;
    for (size_t i = 0; i < 100; ++i) {
      const size_t n = v6 ? ipv6_fragment_one(out, v.fragment_mtu, 1, i, piece.data())
                          : ipv4_fragment_one(out, v.fragment_mtu, i, piece.data());
      if (!n) break;
      if (n > piece.size()) __builtin_trap();
    }
  }
  const IpAddr vip6(Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}});
  const IpAddr dir6(Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}});
  const IpAddr real6(Ipv6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21}});
  static Decapsulator decap({Be32::from_host(0xc6120064), vip6}, {}, true);
  decap.set_local_addresses({Be32::from_host(0xc612000b), real6});
  if (size > 14) (void)decap.handle({data + 14, size - 14});
  std::vector<uint8_t> gue(data, data + size);  // as GUE's UDP socket hands it over
  (void)decap.handle_gue(Be32::from_host(0xc6120002), Be32::from_host(0xc612000b), gue);
  // As raw IPv6 sockets hand a tunnel's payload over (its first byte choosing the protocol).
  if (size > 1) {
    constexpr uint8_t kCarriers[] = {kProtoIpip, kProtoIpv6, kProtoGre};
    (void)decap.handle_carrier(dir6, real6, kCarriers[data[0] % 3], {data + 1, size - 1});
  }
  w.dp.release_held(now, [](std::span<const uint8_t>, const Verdict&) {});
  w.dp.expire(now, 64);
  // Every entry is counted once by its real (templates as PersistConn); a template's
  // control count is the number of connections naming it; overload follows -x.
  uint64_t counted = 0;
  w.services.for_each_real([&](Real& r) {
    counted += r.dest.active_conns + r.dest.inactive_conns + r.persist_conns;
    const uint64_t total = uint64_t(r.dest.active_conns) + r.dest.inactive_conns;
    if (r.u_threshold && total >= r.u_threshold && !r.dest.overloaded) __builtin_trap();
  });
  if (counted != w.conns.size()) __builtin_trap();
  std::vector<uint32_t> controls(w.conns.capacity() + 1);
  w.conns.for_each([&](const Conn& c) {
    if (c.flags & Conn::kTemplate) return;
    if (c.control) {
      if (!(w.conns.at_slot(c.control).flags & Conn::kTemplate)) __builtin_trap();
      ++controls[c.control];
    }
  });
  w.conns.for_each([&](const Conn& c) {
    if ((c.flags & Conn::kTemplate) && c.control != controls[w.conns.slot_of(&c)]) __builtin_trap();
  });
  return 0;
}

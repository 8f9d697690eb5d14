// How a packet leaves for its real, one function per method (IPVS ip_vs_xmit.c): DR and NAT by
// forwarding/dr's layer-2 send, TUN in the real's tunnel (IPIP, GUE, GRE) with its MTU policy; frames held for an
// unresolved next hop; see data_path.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/checksum.hpp"
#include "forwarding/dr.hpp"
#include "forwarding/ipip.hpp"
#include "forwarding/nat.hpp"

namespace lbd {

// Sends at layer 2 (DR, and NAT after its rewrite) with forwarding/'s MTU policy.
Verdict DataPath::finish_l2(const Frame& f, const NextHop& hop, uint16_t mtu) {
  Verdict v = Verdict::send(hop.ifindex);
  switch (xmit_l2(f.bytes, f.p, hop, mtu)) {
    case XmitStatus::kTooBig: return drop(DropReason::kFrameTooBig);
    case XmitStatus::kSegment:
      v.segment_mtu = mtu;
      ++counters_.superframes_segmented;
      break;
    case XmitStatus::kFragment: v.fragment_mtu = mtu; break;
    case XmitStatus::kSend: break;
  }
  ++counters_.tx_frames;
  return v;
}

bool DataPath::hold(const Frame& f, uint32_t real_id, FwdMethod method) {
  if (!held_.hold(f.bytes, real_id, method, f.in_ifindex, f.now_ms)) return false;
  ++counters_.frames_held;
  return true;
}

Verdict DataPath::forward(const Frame& f, FwdMethod method, Real& real, uint16_t port) {
  if (method == FwdMethod::kTunnel) return tunnel(f, real);
  // IPVS ensure_mtu_is_adequate(): a datagram the real's link cannot take whole, with DF
  // (IPv6: always), gets frag-needed / Packet Too Big with that MTU, quoting it as the
  // client sent it. (TCP is segmented instead; see xmit_l2.)
  if (f.p.ip_len > real.hop.mtu && f.p.dont_fragment && f.p.protocol != kProtoTcp)
    return too_big_to_sender(f, real.hop.mtu);
  // Complete an offloaded checksum (NAT: while it still matches the original addresses);
  // a super-frame's are computed in full when it is segmented.
  if (f.p.ip_len <= real.hop.mtu && csum::complete_partial(f.bytes, f.p))
    ++counters_.checksums_completed;
  if (method == FwdMethod::kMasq && f.p.protocol != kProtoIcmp && f.p.protocol != kProtoIcmpv6)
    nat_rewrite(f.bytes, f.p, NatSide::kDestination, real.addr, port);
  return finish_l2(f, real.hop, real.hop.mtu);
}

Verdict DataPath::too_big_to_sender(const Frame& f, uint16_t mtu) {
  const ParsedPacket& p = f.p;
  const InterfaceInfo* in = interface(f.in_ifindex);
  // Never an error about an error (nor about a later fragment, whose sender learns from
  // the first's).
  if (!in || is_error_message(p) || (p.fragment && !p.first_fragment)) return drop(DropReason::kFrameTooBig);
  drop(DropReason::kFragNeeded);
  const Verdict v =
      icmp_error(f, error_to_sender(f.bytes, p, icmp_code::kFragNeeded, mtu, in->mac), p.l3_off, p.ip_len, f.in_ifindex);
  if (v.transmit) ++counters_.icmp_frag_needed_sent;
  return v;
}

// IPVS ip_vs_tunnel_xmit() and ip_vs_tunnel_xmit_v6(): IPIP, GUE or GRE to the real server,
// the outer header of its family, with ensure_mtu_is_adequate() counting the tunnel's headers.
Verdict DataPath::tunnel(const Frame& f, Real& real) {
  const ParsedPacket& p = f.p;
  const bool outer_v6 = real.addr.v6();
  const uint16_t mtu = tunnel_mtu(real, f.now_ms);
  const size_t overhead = tunnel_overhead(real.tun, outer_v6);
  const InterfaceInfo* in = interface(f.in_ifindex);
  const TunnelXmit how =
      tunnel_xmit(p, mtu, overhead, outer_v6, in && p.ip_len > in->mtu && p.protocol == kProtoTcp);
  if (how == TunnelXmit::kMtuTooSmall) return drop(DropReason::kTunnelMtuTooSmall);
  if (how == TunnelXmit::kFragNeeded) {
    // The client does path MTU discovery: tell it the tunnel's MTU (ICMPv6: Packet Too Big),
    // drop the packet.
    drop(DropReason::kFragNeeded);
    if (!in) return {};
    const Verdict v = icmp_error(
        f, error_to_sender(f.bytes, p, icmp_code::kFragNeeded, tunnel_client_mtu(p.v6, mtu, overhead), in->mac),
        p.l3_off, p.ip_len, f.in_ifindex);
    if (v.transmit) ++counters_.icmp_frag_needed_sent;
    return v;
  }
  auto* eth = reinterpret_cast<EthHdr*>(f.bytes.data());
  eth->dst = real.hop.dst;
  eth->src = real.hop.src;
  if (how == TunnelXmit::kSegmentEncapsulate) {
    ++counters_.tunnelled;
    ++counters_.tx_frames;
    ++counters_.superframes_segmented;
    Verdict v = Verdict::send(real.hop.ifindex);
    v.segment_mtu = uint16_t(mtu - overhead);
    v.encapsulate = true;
    v.tun_src = real.hop.src_ip;
    v.tun_dst = real.addr;
    v.tun = real.tun;
    v.fragment_id = tunnel_ip_id_;  // the segments' outer IPv4 ids count up from it
    tunnel_ip_id_ += 64;
    return v;
  }
  if (csum::complete_partial(f.bytes, p)) ++counters_.checksums_completed;
  const uint32_t id = tunnel_ip_id_++;
  const size_t len = tunnel_encapsulate({f.bytes.data(), f.capacity}, p, real.hop.src_ip, real.addr, uint16_t(id),
                                        real.tun);
  if (!len) return drop(DropReason::kFrameTooBig);
  ++counters_.tunnelled;
  ++counters_.tx_frames;
  Verdict v = Verdict::send(real.hop.ifindex, len);
  if (how == TunnelXmit::kEncapsulateFragment) {
    if (!outer_v6 && !p.v6 && p.dont_fragment) {  // a relayed ICMP error keeps its DF inside; the outer packet may be cut
      auto* outer = reinterpret_cast<Ipv4Hdr*>(f.bytes.data() + p.l3_off);
      outer->frag_off = Be16{};
      outer->check = Be16{};
      outer->check = Be16::from_host(csum::ipv4_header({f.bytes.data() + p.l3_off, sizeof(Ipv4Hdr)}));
    }
    v.fragment_mtu = mtu;
    v.fragment_id = id;
    ++counters_.tunnel_fragmented;
  }
  return v;
}

}  // namespace lbd

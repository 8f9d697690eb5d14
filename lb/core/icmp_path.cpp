// ICMP: the errors lbd sends (port unreachable, fragmentation needed; rate-limited), errors about
// a connection relayed to its real or client (IPVS ip_vs_in_icmp/ip_vs_out_icmp), errors
// about lbd's own tunnel packets (path MTU), and pings to a VIP; see data_path.hpp.
#include "lb/core/data_path.hpp"

#include <algorithm>
#include <cstring>

#include "forwarding/ipip.hpp"
#include "forwarding/nat.hpp"
#include "forwarding/ndp.hpp"

namespace lbd {

// Replaces the frame by the ICMP error `e` quoting [quote_off, +quote_len) of it: the
// verdict that sends it, or an empty one when the rate limit or the buffer says no. Callers
// count what happened to the frame that caused it.
Verdict DataPath::icmp_error(const Frame& f, const IcmpError& e, size_t quote_off,
                             size_t quote_len, int out_ifindex) {
  if (!icmp_limit_.allow(f.now_ms)) {
    ++counters_.icmp_rate_limited;
    return {};
  }
  const size_t len = write_icmp_error({f.bytes.data(), f.capacity}, quote_off, quote_len, e);
  if (!len) return {};
  ++counters_.tx_frames;
  return Verdict::send(out_ifindex, len);
}

// IPVS ip_vs_leave(): no real server for a new connection → ICMP port unreachable to the
// client (TCP and UDP alike), so it fails at once instead of retrying into silence.
Verdict DataPath::port_unreachable(const Frame& f) { return unreachable_to_sender(f, DropReason::kNoRealServer); }

Verdict DataPath::unreachable_to_sender(const Frame& f, DropReason why) {
  const InterfaceInfo* itf = interface(f.in_ifindex);
  if (!itf) return drop(why);
  drop(why);
  const Verdict v = icmp_error(
      f, error_to_sender(f.bytes, f.p, icmp_code::kPortUnreachable, 0, itf->mac), f.p.l3_off,
      f.p.ip_len, f.in_ifindex);
  if (v.transmit) ++counters_.icmp_unreachable_sent;
  return v;
}

// ICMP: echo to a VIP, and errors about a connection (IPVS ip_vs_in_icmp / ip_vs_out_icmp).
Verdict DataPath::handle_icmp(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (p.v6) {
    if (p.icmp_type == icmp6_type::kNeighbourSolicit) return handle_solicitation(f);
    if (p.icmp_type == icmp6_type::kEchoRequest) return handle_echo(f);
    if (!is_icmp6_error(p.icmp_type)) return drop(DropReason::kUnhandledIcmp);
  } else {
    if (p.icmp_type == icmp_type::kEchoRequest) return handle_echo(f);
    if (!is_icmp_error(p.icmp_type)) return drop(DropReason::kUnhandledIcmp);
  }
  IcmpQuote q;
  if (!parse_quote(f.bytes, p.l4_off + sizeof(IcmpHdr), p.l3_off + p.ip_len, q) || q.saddr.v6() != p.v6)
    return drop(DropReason::kTruncatedIcmpQuote);
  if (q.protocol == kProtoIpip || q.protocol == kProtoIpv6 || q.protocol == kProtoGre) return icmp_about_tunnel(f, q);
  if (q.protocol != kProtoTcp && q.protocol != kProtoUdp) return drop(DropReason::kUnhandledIcmp);

  // From a client, about a packet it got from VIP:vport: to the connection's real server.
  const ConnKey conn_key{q.daddr, q.saddr, q.dport, q.sport, q.protocol};
  if (Conn* c = conns_.find(conn_key)) {
    Real& real = services_.real(c->real_id);
    if (real.deleted || !real.hop.resolved) return drop(DropReason::kRealUnavailable);
    ++counters_.icmp_errors_forwarded;
    count(real, p.ip_len, false);
    const FwdMethod method = c->method;
    if (method == FwdMethod::kMasq)
      nat_rewrite_icmp(f.bytes, p, q, NatSide::kDestination, real.addr, c->dport);
    return forward(f, method, real, c->dport);
  }
  // From a NAT real server, about a packet from the client: to the client, as the VIP.
  const ConnKey reply_key{q.daddr, q.saddr, q.dport, q.sport, q.protocol};
  if (Conn* c = conns_.find_reply(reply_key)) {
    const auto back = back_to_client(c->if_slot, c->client_mac);
    if (!back) return drop(DropReason::kNextHopUnresolved);
    ++counters_.icmp_errors_forwarded;
    count(services_.real(c->real_id), p.ip_len, true);
    nat_rewrite_icmp(f.bytes, p, q, NatSide::kSource, c->key.vaddr, c->key.vport);
    return finish_l2(f, *back, back->mtu);
  }
  // About no connection: a UDP quote may still be one of our GUE packets to a real.
  if (q.protocol == kProtoUdp &&
      std::binary_search(gue_endpoints_.begin(), gue_endpoints_.end(), ServiceTable::Endpoint{kProtoUdp, q.daddr, q.dport}))
    return icmp_about_tunnel(f, q);
  return drop(DropReason::kIcmpNoConnection);
}

// Where the client's packet starts inside a quoted tunnel packet (IPIP, GRE, GUE), or 0 when
// the quote is too short to tell.
static size_t tunnelled_offset(std::span<const uint8_t> frame, const IcmpQuote& outer) {
  size_t off = outer.l4_off;
  if (outer.protocol == kProtoGre) {
    if (off + 4 > outer.end) return 0;
    off += frame[off] & 0x80 ? 8 : 4;  // lbd's GRE has a checksum or nothing else
  } else if (outer.protocol == kProtoUdp) {
    if (off + sizeof(UdpHdr) + sizeof(GueHdr) > outer.end) return 0;
    off += sizeof(UdpHdr) + sizeof(GueHdr) + (frame[off + sizeof(UdpHdr)] & 0x1f) * 4u;
  }
  return off;
}

// Whether a quoted tunnel packet is of `real`'s kind (protocol, and for GUE its port).
static bool carrier_of(const Real& real, const IcmpQuote& outer) {
  switch (real.tun.type) {
    case TunType::kIpip: return outer.protocol == kProtoIpip || outer.protocol == kProtoIpv6;
    case TunType::kGre: return outer.protocol == kProtoGre;
    case TunType::kGue: return outer.protocol == kProtoUdp && outer.dport == real.tun.port;
  }
  return false;
}

// An ICMP error about one of our tunnel packets (a router on the way to a TUN real server):
// as IPVS does, the client hears of it. Frag-needed (ICMPv6: Packet Too Big) lowers the
// tunnel's path MTU and, if the client does path MTU discovery (DF set; IPv6 always), gets it
// a frag-needed / Packet Too Big with room for the tunnel's headers; other errors are relayed
// with their type and code, translated when the client's family is not the tunnel's. The
// quote is the client's own packet.
Verdict DataPath::icmp_about_tunnel(const Frame& f, const IcmpQuote& outer) {
  IcmpQuote inner;
  const size_t inner_off = tunnelled_offset(f.bytes, outer);
  if (!inner_off || !parse_quote(f.bytes, inner_off, outer.end, inner))
    return drop(DropReason::kTruncatedIcmpQuote);
  Real* real = nullptr;
  MacAddr client_mac;
  uint8_t if_slot = 0;
  bool about_connection = false;
  if (inner.protocol == kProtoIcmp || inner.protocol == kProtoIcmpv6) {  // about a ping we passed on
    const EchoPeer& peer = echo_peers_[echo_slot(inner.saddr)];
    if (!(peer.client == inner.saddr)) return drop(DropReason::kIcmpNoConnection);
    real = tunnel_real(outer.daddr);
    client_mac = peer.mac;
    if_slot = peer.if_slot;
  } else {
    Conn* c = conns_.find(ConnKey{inner.saddr, inner.daddr, inner.sport, inner.dport, inner.protocol});
    if (c && c->method == FwdMethod::kTunnel) {
      real = &services_.real(c->real_id);
      client_mac = c->client_mac;
      if_slot = c->if_slot;
      about_connection = true;
    }
  }
  if (!real || !(real->addr == outer.daddr) || if_slot >= interfaces_.size())
    return drop(DropReason::kIcmpNoConnection);
  // The quote must be a packet lbd sent: from the address lbd tunnels from, to that real, in
  // its tunnel. Anyone on the client side can quote a made-up tunnel header.
  if (!(outer.saddr == real->hop.src_ip) || !carrier_of(*real, outer)) return drop(DropReason::kPmtuNotOurs);
  const InterfaceInfo& out = interfaces_[if_slot];
  const bool from_v6 = f.p.v6, to_v6 = inner.saddr.v6();
  IcmpError e;
  e.src = inner.daddr;  // the VIP
  e.dst = inner.saddr;  // the client
  e.eth_src = out.mac;
  e.eth_dst = client_mac;
  const bool too_big = from_v6 ? f.p.icmp_type == icmp6_type::kPacketTooBig
                               : f.p.icmp_type == icmp_type::kDestUnreachable && f.p.icmp_code == icmp_code::kFragNeeded;
  if (too_big) {
    const auto* icmp = reinterpret_cast<const IcmpHdr*>(f.bytes.data() + f.p.l4_off);
    // As the kernel's __ip_rt_update_pmtu() and IPv6's: never below min_pmtu (IPv6: 1280).
    // Only a report about a live connection changes the real's path MTU (a ping is no
    // connection). ICMPv6 carries 32 bits of MTU: its low 16 are the field read here.
    const uint16_t reported = std::max(icmp->seq.host(), from_v6 ? kIpv6MinMtu : kMinPmtu);
    if (about_connection && reported <= tunnel_mtu(*real, f.now_ms)) {
      // A path's MTU is its destination's, as the kernel's route cache keeps it: every
      // service's tunnel to this address learns it (a ping may go by any of them).
      const IpAddr addr = real->addr;
      services_.for_each_real([&](Real& r) {
        if (r.deleted || r.fwd != FwdMethod::kTunnel || !(r.addr == addr)) return;
        r.tun_pmtu = reported;
        r.tun_pmtu_until = seconds(f.now_ms) + kPmtuSeconds;
        if (pmtu_learnt_.size() < 64 && std::find(pmtu_learnt_.begin(), pmtu_learnt_.end(), r.id) == pmtu_learnt_.end())
          pmtu_learnt_.push_back(r.id);  // capacity reserved at construction
      });
      ++counters_.tunnel_pmtu_updates;
    }
    // Client does not do PMTU discovery: its packets are fragmented from now on; done.
    if (!inner.dont_fragment) return drop(DropReason::kIcmpNoConnection);
    const uint16_t mtu = std::min(reported, tunnel_mtu(*real, f.now_ms));
    const size_t overhead = tunnel_overhead(real->tun, from_v6);
    e.type = icmp_type::kDestUnreachable;  // written as Packet Too Big for an IPv6 client
    e.code = icmp_code::kFragNeeded;
    e.mtu = mtu > min_tunnel_mtu(overhead, from_v6) ? tunnel_client_mtu(to_v6, mtu, overhead) : mtu;
  } else if (from_v6 == to_v6) {
    e.type = f.p.icmp_type;
    e.code = f.p.icmp_code;
  } else if (!translate_icmp_error(from_v6, f.p.icmp_type, f.p.icmp_code, e.type, e.code)) {
    return drop(DropReason::kUnhandledIcmp);
  }
  const Verdict v = icmp_error(f, e, inner.ip_off, inner.end - inner.ip_off, out.ifindex);
  if (!v.transmit) return drop(DropReason::kIcmpNotSent);
  ++counters_.icmp_errors_forwarded;
  return v;
}

// A tunnel real server with this address (slow path: ICMP errors only).
Real* DataPath::tunnel_real(const IpAddr& addr) {
  Real* found = nullptr;
  services_.for_each_real([&](Real& r) {
    if (!found && !r.deleted && r.fwd == FwdMethod::kTunnel && r.addr == addr) found = &r;
  });
  return found;
}

// A ping to a VIP. A VIP with DR or TUN real servers passes it to one of them (the real
// owns the VIP and answers; the ping then measures the whole path, tunnel MTU included),
// chosen by a hash of the client and the echo id so one ping run sticks to one real. A VIP
// with only NAT real servers is answered by lbd itself.
Verdict DataPath::handle_echo(const Frame& f) {
  const ParsedPacket& p = f.p;
  if (std::find(vips_.begin(), vips_.end(), p.daddr) == vips_.end())
    return drop(DropReason::kUnhandledIcmp);
  uint32_t candidates = 0;
  const uint32_t h = (p.saddr.fold() * 0x9e3779b1u) ^ (uint32_t(p.sport) * 0x85ebca6bu);
  Real* chosen = nullptr;
  services_.for_each_service([&](const Service& s) {
    if (!(s.key.vip == p.daddr)) return;
    for (uint32_t id : s.reals) {
      Real& r = services_.real(id);
      if (r.fwd == FwdMethod::kMasq || !r.dest.schedulable() || !r.hop.resolved) continue;
      // Reservoir choice over the candidates, driven by the hash: uniform and stable.
      ++candidates;
      if ((h ^ (candidates * 0x27d4eb2fu)) % candidates == 0) chosen = &r;
    }
  });
  if (chosen) {
    if (const InterfaceInfo* itf = interface(f.in_ifindex)) {
      EchoPeer& peer = echo_peers_[echo_slot(p.saddr)];
      peer.client = p.saddr;
      peer.mac = reinterpret_cast<const EthHdr*>(f.bytes.data())->src;
      peer.if_slot = uint8_t(itf - interfaces_.data());
    }
    ++counters_.echo_forwarded;
    return forward(f, chosen->fwd, *chosen, chosen->port);
  }
  if (!interface(f.in_ifindex)) return drop(DropReason::kUnhandledIcmp);
  if (p.v6)
    echo6_request_to_reply(f.bytes, p);
  else
    echo_request_to_reply(f.bytes, p);
  ++counters_.echo_replies;
  ++counters_.tx_frames;
  return Verdict::send(f.in_ifindex);
}

// A Neighbour Solicitation: for a VIP, answered as ARP for one is (handle_arp), under the
// same --vip-arp policy.
Verdict DataPath::handle_solicitation(const Frame& f) {
  IpAddr target;
  if (!neighbour_solicitation(f.bytes, f.p, target)) return drop(DropReason::kMalformedNdp);
  if (std::find(vips_.begin(), vips_.end(), target) == vips_.end()) return drop(DropReason::kNoService);
  if (vip_arp_ == VipArp::kNever || (vip_arp_ == VipArp::kActive && passive())) return drop(DropReason::kVipArpOff);
  const InterfaceInfo* itf = interface(f.in_ifindex);
  if (!itf) return drop(DropReason::kNoService);
  const size_t len = solicitation_to_advert({f.bytes.data(), f.capacity}, f.p, target, itf->mac);
  if (!len) return drop(DropReason::kFrameTooBig);
  ++counters_.neighbour_adverts;
  ++counters_.tx_frames;
  return Verdict::send(f.in_ifindex, len);
}

}  // namespace lbd

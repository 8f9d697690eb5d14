// Real-server decapsulation decisions; see decap.hpp.
#include "forwarding/decap.hpp"

#include <algorithm>
#include <charconv>

namespace lbd {

bool parse_cidr(std::string_view s, Cidr& out) {
  Cidr c;
  const auto slash = s.find('/');
  if (!parse_ip(s.substr(0, slash), c.net)) return false;
  c.len = uint8_t(c.net.width());
  if (slash != std::string_view::npos) {
    const auto len = s.substr(slash + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (len.empty() || ec != std::errc{} || p != len.data() + len.size() || v > c.net.width()) return false;
    c.len = uint8_t(v);
  }
  if (!(masked(c.net, c.len) == c.net)) return false;  // host bits set
  out = c;
  return true;
}

const char* Decapsulator::outcome_name(Outcome o) {
  switch (o) {
    case kDelivered: return "delivered";
    case kNotIpip: return "not_ipip";
    case kMalformed: return "malformed";
    case kSourceNotAllowed: return "source_not_allowed";
    case kNotForVip: return "not_for_a_vip";
    case kNotToThisHost: return "not_to_this_host";
    case kNested: return "nested_tunnel";
    case kOutcomeCount: break;
  }
  return "unknown";
}

std::span<const uint8_t> Decapsulator::handle(std::span<const uint8_t> packet) {
  std::span<const uint8_t> inner;
  const auto* outer = reinterpret_cast<const Ipv4Hdr*>(packet.data());
  if (packet.size() < sizeof(Ipv4Hdr)) return admit(DecapStatus::kTruncatedOuter, {}, {}, inner);
  const DecapStatus st = outer->protocol == kProtoGre ? gre_decapsulate(packet, inner)
                                                      : ipip_decapsulate(packet, inner);
  return admit(st, outer->saddr, outer->daddr, inner);
}

std::span<const uint8_t> Decapsulator::handle_carrier(const IpAddr& src, const IpAddr& dst, uint8_t proto,
                                                    std::span<const uint8_t> payload) {
  std::span<const uint8_t> inner;
  const DecapStatus st = carrier_decapsulate(proto, payload, inner);
  return admit(st, src, dst, inner);
}

std::span<const uint8_t> Decapsulator::handle_gue(const IpAddr& src, const IpAddr& dst, std::span<uint8_t> payload) {
  std::span<const uint8_t> inner;
  const DecapStatus st = gue_decapsulate(payload, inner);
  return admit(st, src, dst, inner);
}

std::span<const uint8_t> Decapsulator::admit(DecapStatus st, const IpAddr& src, const IpAddr& dst,
                                             std::span<const uint8_t> inner) {
  switch (st) {
    case DecapStatus::kOk: break;
    case DecapStatus::kNotIpip: ++counts_[kNotIpip]; return {};
    case DecapStatus::kTruncatedOuter:
    case DecapStatus::kBadInner: ++counts_[kMalformed]; return {};
  }
  if (!allow_any_ &&
      std::none_of(allowed_.begin(), allowed_.end(), [&](const Cidr& c) { return c.contains(src); })) {
    ++counts_[kSourceNotAllowed];
    return {};
  }
  if (std::find(local_.begin(), local_.end(), dst) == local_.end()) {
    ++counts_[kNotToThisHost];  // a broadcast, a group, or another host's address
    return {};
  }
  // One level only: a director never nests (GUE inside would be UDP to a port: not counted
  // here, and refused below unless it is addressed to a VIP). An IPv6 datagram's first
  // next header is the one a nested tunnel would name (lbd's directors add no extension
  // headers in front of it).
  uint8_t proto;
  IpAddr daddr;
  if ((inner[0] >> 4) == 6) {
    const auto* ip = reinterpret_cast<const Ipv6Hdr*>(inner.data());
    proto = ip->next_header;
    daddr = IpAddr(ip->daddr);
  } else {
    const auto* ip = reinterpret_cast<const Ipv4Hdr*>(inner.data());
    proto = ip->protocol;
    daddr = ip->daddr;
  }
  if (proto == kProtoIpip || proto == kProtoIpv6 || proto == kProtoGre) {
    ++counts_[kNested];
    return {};
  }
  if (std::find(vips_.begin(), vips_.end(), daddr) == vips_.end()) {
    ++counts_[kNotForVip];
    return {};
  }
  ++counts_[kDelivered];
  return inner;
}

}  // namespace lbd

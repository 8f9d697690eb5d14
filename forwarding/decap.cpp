// Real-server decapsulation decisions; see decap.hpp.
#include "forwarding/decap.hpp"

#include <algorithm>
#include <charconv>

namespace lbd {

bool parse_cidr(std::string_view s, Cidr& out) {
  Cidr c;
  const auto slash = s.find('/');
  if (!parse_ipv4(s.substr(0, slash), c.net)) return false;
  if (slash != std::string_view::npos) {
    const auto len = s.substr(slash + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (len.empty() || ec != std::errc{} || p != len.data() + len.size() || v > 32) return false;
    c.len = uint8_t(v);
  }
  if (c.len < 32 && (c.net.host() << c.len) != 0) return false;  // host bits set
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

std::span<const uint8_t> Decapsulator::handle_gue(Ipv4 src, Ipv4 dst, std::span<uint8_t> payload) {
  std::span<const uint8_t> inner;
  const DecapStatus st = gue_decapsulate(payload, inner);
  return admit(st, src, dst, inner);
}

std::span<const uint8_t> Decapsulator::admit(DecapStatus st, Ipv4 src, Ipv4 dst, std::span<const uint8_t> inner) {
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
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(inner.data());
  // One level only: a director never nests (GUE inside would be UDP to a port: not counted
  // here, and refused below unless it is addressed to a VIP).
  if (ip->protocol == kProtoIpip || ip->protocol == kProtoGre) {
    ++counts_[kNested];
    return {};
  }
  if (std::find(vips_.begin(), vips_.end(), ip->daddr) == vips_.end()) {
    ++counts_[kNotForVip];
    return {};
  }
  ++counts_[kDelivered];
  return inner;
}

}  // namespace lbd

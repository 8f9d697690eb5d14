// The later fragments' table; see fragments.hpp.
#include "lb/core/fragments.hpp"

namespace lbd {

size_t FragmentTable::slot(const ParsedPacket& p) const {
  const uint32_t h = (p.saddr.fold() * 0x9e3779b1u) ^ (p.daddr.fold() * 0x85ebca6bu) ^
                     (p.ip_id << 8 ^ p.protocol) * 0xc2b2ae35u;
  return (h >> 16) % slots_.size();
}

void FragmentTable::remember(const ParsedPacket& first, const Route& route, uint64_t now_ms) {
  slots_[slot(first)] = {first.saddr, first.daddr, first.ip_id, first.protocol, true, now_ms + kFragmentMs, route};
}

const FragmentTable::Route* FragmentTable::find(const ParsedPacket& later, uint64_t now_ms) const {
  const Entry& e = slots_[slot(later)];
  if (!e.used || !(e.saddr == later.saddr) || !(e.daddr == later.daddr) || e.id != later.ip_id ||
      e.protocol != later.protocol || now_ms > e.until_ms)
    return nullptr;
  return &e.route;
}

}  // namespace lbd

// IP fragments without their ports: the first fragment carries the ports and goes with its
// connection; the later ones follow it through this table, keyed by (source, destination,
// protocol, IP id) as the receiver reassembles them. Direct-mapped (a newer datagram in the
// same slot replaces the older), no allocation; an entry lives kFragmentMs.
#pragma once

#include <cstdint>
#include <vector>

#include "forwarding/method.hpp"
#include "forwarding/packet.hpp"

namespace lbd {

class FragmentTable {
 public:
  static constexpr uint64_t kFragmentMs = 5000;  // after its first fragment

  // Where the datagram's later fragments go, as its first one went.
  struct Route {
    bool reply = false;     // a NAT real's reply: source rewritten, sent to the client
    FwdMethod method{};
    uint8_t if_slot = 0;    // reply: the client's interface and MAC
    MacAddr client_mac;
    IpAddr vaddr;           // reply: the VIP its source becomes
    uint32_t real_id = 0;
  };

  explicit FragmentTable(size_t slots = 1024) : slots_(slots) {}

  // `first` is the datagram's first fragment: its later ones take `route` until now + kFragmentMs.
  void remember(const ParsedPacket& first, const Route& route, uint64_t now_ms);
  // The route of the datagram `later` belongs to, or nullptr (none remembered, expired, or
  // its slot taken by another datagram since).
  const Route* find(const ParsedPacket& later, uint64_t now_ms) const;

 private:
  struct Entry {
    IpAddr saddr, daddr;
    uint32_t id = 0;
    uint8_t protocol = 0;
    bool used = false;
    uint64_t until_ms = 0;
    Route route;
  };
  size_t slot(const ParsedPacket& p) const;
  std::vector<Entry> slots_;
};

}  // namespace lbd

// The fast path's table, as the data path sees it: entries lbd writes for the connections
// it has decided, each keeping its last packet's time, and per real what the kernel
// forwarded for it (XdpFlowCache: the
// XDP program's maps; MemoryFlowCache: the same in memory, for unit tests on crafted
// frames). Keys and entries are the program's own structures (forwarding/xdp/flow_abi.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>

#include "forwarding/xdp/flow_abi.h"
#include "lb/core/conn_table.hpp"

namespace lbd {

inline lbd_flow_key flow_key(const ConnKey& k) {
  lbd_flow_key f{};
  std::memcpy(f.saddr, k.caddr.b.data(), 16);  // IpAddr's 16 bytes: IPv4 mapped, as the program keys it
  std::memcpy(f.daddr, k.vaddr.b.data(), 16);
  std::memcpy(&f.sport, Be16::from_host(k.cport).b.data(), 2);
  std::memcpy(&f.dport, Be16::from_host(k.vport).b.data(), 2);
  f.protocol = k.protocol;
  return f;
}

inline ConnKey conn_key(const lbd_flow_key& f) {
  ConnKey k;
  std::memcpy(k.caddr.b.data(), f.saddr, 16);
  std::memcpy(k.vaddr.b.data(), f.daddr, 16);
  Be16 p;
  std::memcpy(p.b.data(), &f.sport, 2);
  k.cport = p.host();
  std::memcpy(p.b.data(), &f.dport, 2);
  k.vport = p.host();
  k.protocol = f.protocol;
  return k;
}

class FlowCache {
 public:
  virtual ~FlowCache() = default;
  // Enters or replaces an entry (its use fields start at 0); false when the table is full
  // or the kernel refuses (the connection then stays on the slow path).
  virtual bool put(const lbd_flow_key& key, const lbd_flow& flow) = 0;
  virtual void erase(const lbd_flow_key& key) = 0;
  virtual bool get(const lbd_flow_key& key, lbd_flow& flow) = 0;
  // Removes an entry and returns it with its final use, in one step (nothing the kernel
  // forwards in between is lost); false if there was none.
  virtual bool take(const lbd_flow_key& key, lbd_flow& flow) = 0;
  // Every entry, with its use so far.
  virtual void for_each(const std::function<void(const lbd_flow_key&, const lbd_flow&)>& f) = 0;
  // A real's next hop (ifindex 0: its packets go to lbd).
  virtual void set_real(uint32_t real_id, const lbd_real_hop& hop) = 0;
  // What was forwarded for a real since the cache began (client side; `reply`: a NAT
  // real's replies), summed over the CPUs.
  virtual lbd_real_use real_use(uint32_t real_id, bool reply) = 0;
};

struct FlowKeyLess {
  bool operator()(const lbd_flow_key& a, const lbd_flow_key& b) const {
    return std::memcmp(&a, &b, sizeof a) < 0;
  }
};

// The table in memory. `forward(key, bytes, now_ms)` is what a hit in the program does to
// the use fields, so tests can stand in for the kernel's packets.
class MemoryFlowCache final : public FlowCache {
 public:
  bool put(const lbd_flow_key& key, const lbd_flow& flow) override {
    if (flows.size() >= capacity && !flows.count(key)) return false;
    flows[key] = flow;
    return true;
  }
  void erase(const lbd_flow_key& key) override { flows.erase(key); }
  bool get(const lbd_flow_key& key, lbd_flow& flow) override {
    const auto it = flows.find(key);
    if (it == flows.end()) return false;
    flow = it->second;
    return true;
  }
  bool take(const lbd_flow_key& key, lbd_flow& flow) override {
    if (!get(key, flow)) return false;
    flows.erase(key);
    return true;
  }
  void for_each(const std::function<void(const lbd_flow_key&, const lbd_flow&)>& f) override {
    for (const auto& [k, v] : flows) f(k, v);
  }
  void set_real(uint32_t real_id, const lbd_real_hop& hop) override { reals[real_id] = hop; }
  lbd_real_use real_use(uint32_t real_id, bool reply) override { return use[real_id * 2 + reply]; }

  bool forward(const lbd_flow_key& key, uint32_t bytes, uint64_t now_ms) {
    const auto it = flows.find(key);
    if (it == flows.end()) return false;
    lbd_flow& f = it->second;
    ++f.packets;
    f.bytes += bytes;
    f.last_ns = now_ms * 1000000;
    lbd_real_use& u = use[f.real_id * 2 + (f.action == LBD_FLOW_NAT_OUT)];
    ++u.packets;
    u.bytes += bytes;
    return true;
  }

  size_t capacity = 1 << 20;
  std::map<lbd_flow_key, lbd_flow, FlowKeyLess> flows;
  std::map<uint32_t, lbd_real_hop> reals;
  std::map<uint32_t, lbd_real_use> use;
};

}  // namespace lbd

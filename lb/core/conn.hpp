// A connection as the table holds it, and its key. Trivially copyable, and all zero when
// free: a table's entries live in a ConnSlab (conn_slab.hpp) another lbd can adopt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "forwarding/method.hpp"
#include "forwarding/packet.hpp"
#include "lb/core/tcp_state.hpp"

namespace lbd {

// Both addresses are of one family (a connection's client and VIP; a NAT reply key's real
// and client), so IPv4 and IPv6 connections share one table and never match each other.
struct ConnKey {
  IpAddr caddr, vaddr;
  uint16_t cport = 0, vport = 0;
  uint8_t protocol = 0;
  friend bool operator==(const ConnKey&, const ConnKey&) = default;
};

static_assert(sizeof(ConnKey) == 38);

// Persistence templates live in the same table under a key no packet can have: the
// protocol with this bit set, client port 0 (IPVS IP_VS_CONN_F_TEMPLATE entries).
inline constexpr uint8_t kTemplateProtocolBit = 0x80;

// A packet's key as it travels: (saddr, daddr, sport, dport, protocol). A client's packet
// has the connection's key; a NAT reply has its reply key.
inline ConnKey packet_key(const ParsedPacket& p) {
  return ConnKey{p.saddr, p.daddr, p.sport, p.dport, p.protocol};
}

// What a packet reads sits in the first 64 bytes: key, state, flags, method, real.
struct Conn {
  ConnKey key;
  ConnState state = ConnState::kNone;
  bool inactive = false;     // counted in the real's InActConn (IPVS IP_VS_CONN_F_INACTIVE)
  uint8_t if_slot = 0;       // the client's interface (the data path's interface index)
  bool reply_indexed = false;
  FwdMethod method{};        // the forwarding method at creation, kept for life
  static constexpr uint8_t kTemplate = 1, kOnePacket = 2, kOffloaded = 4, kOffloadRefused = 8,
                           kEmbryonic = 16;
  // kTemplate: a persistence template; kOnePacket: -o (UDP); kOffloaded: in the fast path;
  // kOffloadRefused: the fast path's table had no room for it (not asked again);
  // kEmbryonic: a TCP connection that has had nothing from its client but its SYN (the first
  // evicted when the table is full: see ConnTable::oldest_embryonic)
  uint8_t flags = 0;
  IpAddr daddr;              // the real server's address and port (NAT: what replies come from);
  uint16_t dport = 0;        // TUN: the real's family may differ from the key's
  MacAddr client_mac;        // where the client's packets came from: replies go back there
  uint32_t real_id = 0;
  // A template: how many connections it controls (it outlives them, IPVS n_control). A
  // connection of a persistent service: its template's slot + 1. Otherwise 0.
  uint32_t control = 0;
  uint32_t expires = 0;      // seconds on the table's clock; a packet may move it later
  uint32_t hash = 0;
  uint32_t armed = 0;        // the second whose wheel slot holds this connection
  uint32_t wheel_prev = 0, wheel_next = 0;  // slab slot + 1; 0 = none
};

static_assert(std::is_trivially_copyable_v<Conn>);

// A connection as an lbd before IPv6 laid it out (slab version 1, 60 bytes): read from a
// previous lbd's slab and converted (ConnSlab::open), never written.
struct ConnV1 {
  Ipv4 caddr, vaddr;
  uint16_t cport, vport;
  uint8_t protocol;
  ConnState state;
  bool inactive;
  Ipv4 daddr;
  uint16_t dport;
  MacAddr client_mac;
  uint8_t if_slot;
  bool reply_indexed;
  FwdMethod method;
  uint8_t flags;
  uint32_t real_id, control, expires, hash, armed, wheel_prev, wheel_next;
};
static_assert(sizeof(ConnV1) == 60 && std::is_trivially_copyable_v<ConnV1>);
inline Conn from_v1(const ConnV1& o) {
  Conn c;
  c.key = ConnKey{o.caddr, o.vaddr, o.cport, o.vport, o.protocol};
  c.state = o.state;
  c.inactive = o.inactive;
  c.if_slot = o.if_slot;
  c.reply_indexed = o.reply_indexed;
  c.method = o.method;
  c.flags = o.flags;
  c.daddr = o.daddr;
  c.dport = o.dport;
  c.client_mac = o.client_mac;
  c.real_id = o.real_id;
  c.control = o.control;
  c.expires = o.expires;
  c.hash = o.hash;
  c.armed = o.armed;
  c.wheel_prev = o.wheel_prev;
  c.wheel_next = o.wheel_next;
  return c;
}
static_assert(offsetof(Conn, dport) + sizeof(Conn::dport) <= 64);
static_assert(sizeof(Conn) == 96);

}  // namespace lbd

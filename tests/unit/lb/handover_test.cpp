// The handover's parts on their own: a slab's layout and its refusal, the directory's
// double buffer, and adoption into a table whose real ids, capacity and worker split
// differ from the previous lbd's — each connection on the real of the same address, with
// its state, timeout, client side, NAT reply index, template and counts.
#include <catch2/catch.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "frames.hpp"
#include "lb/core/data_path.hpp"
#include "lb/core/handover.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {

constexpr int kIf = 7;
const ServiceKey kWeb{kProtoTcp, ip("198.18.0.100"), 80};
const ServiceKey kNat{kProtoTcp, ip("198.18.0.100"), 8000};
const ServiceKey kSticky{kProtoTcp, ip("198.18.0.100"), 443};
Ipv4 rip(int i) { return Be32::from_host(0xc612000au + uint32_t(i)); }

// One lbd's tables: a DR service, a NAT one and a persistent one over reals 1..n, the
// reals added in `order` (which decides their ids).
struct Director {
  ServiceTable services;
  ConnTable conns;
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};

  Director(ConnSlab slab, std::vector<int> order) : conns(std::move(slab), 99) {
    ServiceOptions sticky{"rr"};
    sticky.persistent = 300;
    REQUIRE(services.add_service(kWeb, {"rr"}).is_ok());
    REQUIRE(services.add_service(kNat, {"rr"}).is_ok());
    REQUIRE(services.add_service(kSticky, sticky).is_ok());
    for (int i : order) {
      for (const auto& [key, method, port] : {std::tuple{kWeb, FwdMethod::kRoute, uint16_t(80)},
                                             std::tuple{kNat, FwdMethod::kMasq, uint16_t(8080)},
                                             std::tuple{kSticky, FwdMethod::kRoute, uint16_t(443)}}) {
        REQUIRE(services.add_real(key, {rip(i), port, method, 1}).is_ok());
        services.find_real(key, rip(i), port)->hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
      }
    }
    dp.set_interfaces({{kIf, mac(0xd1), 1500}});
  }
  bool send(const char* client, uint16_t sport, uint16_t dport, uint8_t flags, uint64_t now_ms, uint32_t mark = 0) {
    FrameSpec s;
    s.saddr = ip(client);
    s.sport = sport;
    s.dport = dport;
    s.dst = mac(0xd1);
    s.src = mac(0x33);
    s.flags = flags;
    auto f = make_frame(s);
    return dp.process(f, kIf, now_ms, 0, mark).transmit;
  }
  // Every connection as "key -> real address:port state expires control?", comparable
  // between two tables whatever their real ids and slots.
  std::map<std::string, std::string> listing() {
    std::map<std::string, std::string> m;
    conns.for_each([&](const Conn& c) {
      const Real& r = services.real(c.real_id);
      m[fmt::format("{}:{}>{}:{}/{}", c.key.caddr, c.key.cport, c.key.vaddr, c.key.vport, c.key.protocol)] =
          fmt::format("{}:{} {} {} {} {} {}", r.addr, r.port, int(c.state), c.expires, c.inactive,
                      c.control ? "controlled" : "", c.flags & Conn::kTemplate ? c.control : 0);
    });
    return m;
  }
};

HandoverState state_of(Director& d) { return handover_state(d.services); }

}  // namespace

TEST_CASE("a shared slab: a header naming its layout, free entries all zero, an erased one zeroed again") {
  ConnSlab slab = ConnSlab::shared(64);
  REQUIRE(slab.fd() >= 0);
  SlabHeader h{};
  REQUIRE(pread(slab.fd(), &h, sizeof h, 0) == sizeof h);
  CHECK(std::string(h.magic) == "LBDCONN");
  CHECK(h.version == kSlabVersion);
  CHECK(h.conn_size == sizeof(Conn));
  CHECK(h.capacity == 64);
  const int fd = slab.fd();
  ConnTable t(std::move(slab), 1);
  Conn* c = t.insert(ConnKey{ip("198.18.1.1"), ip("198.18.0.100"), 1000, 80, kProtoTcp}, 50);
  REQUIRE(c);
  Conn seen{};
  const off_t at = off_t(sizeof(SlabHeader) + size_t(t.slot_of(c) - 1) * sizeof(Conn));
  REQUIRE(pread(fd, &seen, sizeof seen, at) == sizeof seen);  // the memfd holds the table itself
  CHECK(seen.key == c->key);
  CHECK(seen.expires == 50);
  t.erase(c);
  std::vector<uint8_t> bytes(sizeof(Conn));
  REQUIRE(pread(fd, bytes.data(), bytes.size(), at) == ssize_t(bytes.size()));
  CHECK(std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; }));
}

TEST_CASE("a slab of another layout version, or truncated, is refused with the reason") {
  {
    ConnSlab slab = ConnSlab::shared(8);
    const uint32_t v = 999;
    REQUIRE(pwrite(slab.fd(), &v, sizeof v, offsetof(SlabHeader, version)) == sizeof v);
    const Result<ConnSlab> r = ConnSlab::open(UniqueFd(dup(slab.fd())));
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.message() == fmt::format("connection table layout version 999 ({}-byte entries); this lbd reads "
                                     "version {} ({}-byte entries)", sizeof(Conn), kSlabVersion, sizeof(Conn)));
  }
  {
    ConnSlab slab = ConnSlab::shared(8);
    REQUIRE(ftruncate(slab.fd(), off_t(sizeof(SlabHeader) + 3 * sizeof(Conn))) == 0);
    const Result<ConnSlab> r = ConnSlab::open(UniqueFd(dup(slab.fd())));
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.message().find("truncated or corrupt") != std::string::npos);
  }
  const Result<ConnSlab> ok = ConnSlab::open(UniqueFd(dup(ConnSlab::shared(8).fd())));
  CHECK(ok.is_ok());
}

TEST_CASE("the directory: the last write is what is read, also after it grew; another version is refused") {
  HandoverDirectory dir;
  CHECK_FALSE(HandoverDirectory::read(dir.fd()).is_ok());  // nothing written yet
  HandoverState s;
  s.pid = 42;
  s.written_ms = 1000;
  for (uint32_t i = 0; i < 3; ++i)
    s.reals.push_back({i, kProtoTcp, uint8_t(i == 1 ? HandoverReal::kDown : 0), {}, kWeb.vip, rip(int(i)), 80, 80, 0, {i, 2, 3, 4, 5}});
  s.services.push_back({kProtoTcp, 0, 80, kWeb.vip, 0, {7, 8, 9, 10, 11}});
  REQUIRE(dir.write(s));
  auto r = HandoverDirectory::read(dir.fd());
  REQUIRE(r.is_ok());
  CHECK(r->pid == 42);
  CHECK(r->reals.size() == 3);
  CHECK(r->reals[2].addr == rip(2));
  CHECK(r->reals[2].stats.conns == 2);
  CHECK(r->services[0].stats.outbytes == 11);
  // Many more reals than the first slot holds: the memfd grows, the read sees the new one.
  s.reals.resize(5000, s.reals[0]);
  s.reals.back().id = 4999;
  s.stopped_ms = 2000;
  REQUIRE(dir.write(s));
  r = HandoverDirectory::read(dir.fd());
  REQUIRE(r.is_ok());
  CHECK(r->reals.size() == 5000);
  CHECK(r->reals.back().id == 4999);
  CHECK(r->stopped_ms == 2000);
  s.reals.resize(1);
  REQUIRE(dir.write(s));  // the other slot
  CHECK(HandoverDirectory::read(dir.fd())->reals.size() == 1);
  const uint32_t v = 7;
  REQUIRE(pwrite(dir.fd(), &v, sizeof v, 8) == sizeof v);
  const auto refused = HandoverDirectory::read(dir.fd());
  REQUIRE_FALSE(refused.is_ok());
  CHECK(refused.message() == fmt::format("directory layout version 7; this lbd reads version {}", kDirectoryVersion));
}

TEST_CASE("adoption: every connection on the real of the same address, as it was, though ids and capacity differ") {
  Director old(ConnSlab::shared(256), {1, 2, 3});
  const uint64_t t0 = 100000;
  // Established DR connections, a NAT one with its reply tuple, a SYN-only one (embryonic),
  // a persistent client with two connections under one template.
  for (uint16_t p = 1000; p < 1006; ++p) {
    REQUIRE(old.send("198.18.1.1", p, 80, tcp_flag::kSyn, t0));
    REQUIRE(old.send("198.18.1.1", p, 80, tcp_flag::kAck, t0 + 5));
  }
  REQUIRE(old.send("198.18.1.2", 2000, 8000, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.3", 3000, 80, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.4", 4000, 443, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.4", 4001, 443, tcp_flag::kSyn, t0));
  // A DR connection its client has closed (FIN_WAIT).
  REQUIRE(old.send("198.18.1.5", 5000, 80, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.5", 5000, 80, tcp_flag::kAck, t0));
  REQUIRE(old.send("198.18.1.5", 5000, 80, tcp_flag::kFin | tcp_flag::kAck, t0));
  const auto before = old.listing();
  REQUIRE(before.size() == 6 + 1 + 1 + 3 + 1);
  HandoverState dir = state_of(old);

  // The next lbd: the reals in another order (other ids), a larger table, one worker of two.
  Director next(ConnSlab::shared(1000), {3, 1, 2});
  REQUIRE(next.services.find_real(kWeb, rip(1), 80)->id != old.services.find_real(kWeb, rip(1), 80)->id);
  const ConnSlab previous[] = {ConnSlab::open(UniqueFd(dup(old.conns.slab().fd()))).value()};
  const uint32_t now_s = DataPath::seconds(t0 + 1000);
  const AdoptCounts n = adopt_connections(next.dp, next.services, previous, dir,
                                          [](const IpAddr&, uint32_t) { return true; }, now_s);
  CHECK(n.adopted == before.size());
  CHECK(n.expired == 0);
  CHECK(next.listing() == before);
  // Counts: the reals' active and inactive connections and persistent templates.
  for (int i = 1; i <= 3; ++i)
    for (const auto& [key, port] : {std::pair{kWeb, uint16_t(80)}, std::pair{kNat, uint16_t(8080)}, std::pair{kSticky, uint16_t(443)}}) {
      const Real& a = *old.services.find_real(key, rip(i), port);
      const Real& b = *next.services.find_real(key, rip(i), port);
      CHECK(a.dest.active_conns == b.dest.active_conns);
      CHECK(a.dest.inactive_conns == b.dest.inactive_conns);
      CHECK(a.persist_conns == b.persist_conns);
    }
  // The NAT reply finds its connection; a later packet of an adopted connection goes on.
  const Real& nat = *next.services.find_real(kNat, rip(1), 8080);
  bool found_reply = false;
  next.conns.for_each([&](const Conn& c) {
    if (c.method == FwdMethod::kMasq) found_reply = next.conns.find_reply(ConnTable::reply_key(c)) == &c;
  });
  CHECK(found_reply);
  CHECK(nat.dest.active_conns == old.services.find_real(kNat, rip(1), 8080)->dest.active_conns);
  CHECK(next.send("198.18.1.1", 1000, 80, tcp_flag::kAck, t0 + 1000));
  CHECK(next.dp.counters().conns_created == 0);  // no connection made anew
  // The persistent client's next connection uses the adopted template (same real).
  CHECK(next.send("198.18.1.4", 4002, 443, tcp_flag::kSyn, t0 + 1000));
  size_t templates = 0;
  next.conns.for_each([&](const Conn& c) {
    if (c.flags & Conn::kTemplate) {
      ++templates;
      CHECK(c.control == 3);
    }
  });
  CHECK(templates == 1);
}

TEST_CASE("adoption leaves what is due, what another worker owns, and what has no real now") {
  Director old(ConnSlab::shared(64), {1, 2});
  const uint64_t t0 = 100000;
  REQUIRE(old.send("198.18.1.9", 1000, 80, tcp_flag::kSyn, t0 - 70000));  // SYN_RECV's 60 s: due at t0
  for (const char* c : {"198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6"})
    REQUIRE(old.send(c, 1000, 80, tcp_flag::kSyn, t0));
  // What the next lbd should find: of the live ones another worker's (.4) aside, those on
  // real 1 adopted, those on real 2 (not configured now) left.
  uint64_t on1 = 0, on2 = 0;
  old.conns.for_each([&](const Conn& c) {
    if (c.key.caddr == ip("198.18.1.9") || c.key.caddr == ip("198.18.1.4")) return;
    (old.services.real(c.real_id).addr == rip(1) ? on1 : on2) += 1;
  });
  REQUIRE(on1 + on2 == 5);
  REQUIRE(on2 > 0);
  HandoverState dir = state_of(old);
  Director next(ConnSlab::anonymous(64), {1});
  const ConnSlab previous[] = {ConnSlab::open(UniqueFd(dup(old.conns.slab().fd()))).value()};
  const AdoptCounts n = adopt_connections(
      next.dp, next.services, previous, dir, [](const IpAddr& c, uint32_t) { return !(c == IpAddr(ip("198.18.1.4"))); },
      DataPath::seconds(t0));
  CHECK(n.expired == 1);
  CHECK(n.no_real == on2);
  CHECK(n.adopted == on1);
  CHECK(next.conns.size() == on1);
}

TEST_CASE("a firewall-mark service's connections, templates and counters are handed over by its mark") {
  // FWM 1 (persistent, over reals 1 and 2 port 0) and FWM 2 (real 1), beside the TCP services.
  const auto add_marks = [](Director& d, std::vector<int> order) {
    ServiceOptions sticky{"rr"};
    sticky.persistent = 60;
    REQUIRE(d.services.add_service(fwmark_key(1), sticky).is_ok());
    REQUIRE(d.services.add_service(fwmark_key(2), {"rr"}).is_ok());
    for (int i : order) {
      REQUIRE(d.services.add_real(fwmark_key(1), {rip(i), 0, FwdMethod::kRoute, 1}).is_ok());
      d.services.find_real(fwmark_key(1), rip(i), 0)->hop = NextHop{kIf, mac(0xd1), mac(uint8_t(0xa0 + i)), 1500, true, {}};
    }
    REQUIRE(d.services.add_real(fwmark_key(2), {rip(1), 0, FwdMethod::kRoute, 1}).is_ok());
    d.services.find_real(fwmark_key(2), rip(1), 0)->hop = NextHop{kIf, mac(0xd1), mac(0xa1), 1500, true, {}};
  };
  Director old(ConnSlab::shared(64), {1, 2});
  add_marks(old, {1, 2});
  const uint64_t t0 = 100000;
  // Two clients on 80 and 443 under FWM 1 (one template each), one under FWM 2, one plain.
  for (const char* c : {"198.18.1.1", "198.18.1.2"})
    for (const uint16_t port : {80, 443}) REQUIRE(old.send(c, 1000 + port, port, tcp_flag::kSyn, t0, 1));
  REQUIRE(old.send("198.18.1.3", 2000, 8080, tcp_flag::kSyn, t0, 2));
  REQUIRE(old.send("198.18.1.4", 3000, 80, tcp_flag::kSyn, t0));
  const auto before = old.listing();
  REQUIRE(before.size() == 4 + 2 + 1 + 1);
  HandoverState dir = state_of(old);
  std::map<uint32_t, int> real_marks, service_marks;
  for (const HandoverReal& e : dir.reals) ++real_marks[e.fwmark];
  for (const HandoverService& e : dir.services) ++service_marks[e.fwmark];
  CHECK(real_marks == std::map<uint32_t, int>{{0, 6}, {1, 2}, {2, 1}});
  CHECK(service_marks == std::map<uint32_t, int>{{0, 3}, {1, 1}, {2, 1}});

  // The next lbd, reals in another order; `mine` is told each connection's mark: the
  // plain one's is 0, every other one's its service's.
  Director next(ConnSlab::shared(64), {2, 1});
  add_marks(next, {2, 1});
  const ConnSlab previous[] = {ConnSlab::open(UniqueFd(dup(old.conns.slab().fd()))).value()};
  std::map<std::string, uint32_t> marks_seen;
  const AdoptCounts n = adopt_connections(next.dp, next.services, previous, dir,
                                          [&](const IpAddr& c, uint32_t mark) {
                                            marks_seen[fmt::format("{}", c)] |= mark << 8 | 1;
                                            return true;
                                          },
                                          DataPath::seconds(t0 + 1000));
  CHECK(n.adopted == before.size());
  CHECK(n.no_real == 0);
  CHECK(next.listing() == before);
  CHECK(marks_seen == std::map<std::string, uint32_t>{
                          {"198.18.1.1", 0x101}, {"198.18.1.2", 0x101}, {"198.18.1.3", 0x201}, {"198.18.1.4", 0x001}});
  // The client's next connection on a third port follows its adopted template.
  const Real& was = old.services.real(old.conns.find(ConnKey{ip("198.18.1.1"), ip("198.18.0.100"), 1080, 80, kProtoTcp})->real_id);
  REQUIRE(next.send("198.18.1.1", 1022, 22, tcp_flag::kSyn, t0 + 1000, 1));
  const Conn* c22 = next.conns.find(ConnKey{ip("198.18.1.1"), ip("198.18.0.100"), 1022, 22, kProtoTcp});
  REQUIRE(c22);
  CHECK(next.services.real(c22->real_id).addr == was.addr);
  // The counters carried to the marks' reals and services (the next lbd's own connection
  // on port 22 aside).
  Director counted(ConnSlab::anonymous(64), {1, 2});
  add_marks(counted, {1, 2});
  adopt_counters(counted.services, dir);
  for (int i = 1; i <= 2; ++i) {
    CHECK(counted.services.find_real(fwmark_key(1), rip(i), 0)->stats.conns ==
          old.services.find_real(fwmark_key(1), rip(i), 0)->stats.conns);
    CHECK(counted.services.find_real(fwmark_key(1), rip(i), 0)->stats.inpkts ==
          old.services.find_real(fwmark_key(1), rip(i), 0)->stats.inpkts);
  }
  CHECK(counted.services.find(fwmark_key(1))->stats.conns == old.services.find(fwmark_key(1))->stats.conns);
  CHECK(counted.services.find(fwmark_key(1))->stats.conns > 0);
  CHECK(counted.services.find(fwmark_key(2))->stats.inpkts == 1);
}

TEST_CASE("adopted counters: each real's and service's, summed into one table") {
  Director old(ConnSlab::anonymous(64), {1, 2});
  const uint64_t t0 = 100000;
  for (uint16_t p = 1000; p < 1004; ++p) REQUIRE(old.send("198.18.1.1", p, 80, tcp_flag::kSyn, t0));
  Director next(ConnSlab::anonymous(64), {2, 1});
  adopt_counters(next.services, state_of(old));
  for (int i = 1; i <= 2; ++i) {
    CHECK(next.services.find_real(kWeb, rip(i), 80)->stats.conns == 2);
    CHECK(next.services.find_real(kWeb, rip(i), 80)->stats.inpkts == 2);
  }
  CHECK(next.services.find(kWeb)->stats.conns == 4);
}

TEST_CASE("adopted health: a real the previous lbd had down stays down while it is checked") {
  Director old(ConnSlab::anonymous(64), {1, 2});
  ServiceOptions checked{"rr"};
  checked.health = *health::parse_service_health("check=tcp");
  REQUIRE(old.services.edit_service(kWeb, checked).is_ok());
  old.services.set_health(*old.services.find_real(kWeb, rip(2), 80), false);
  old.services.set_health(*old.services.find_real(kNat, rip(2), 8080), false);  // kNat: no check in `next`
  const HandoverState dir = state_of(old);
  Director next(ConnSlab::anonymous(64), {2, 1});
  REQUIRE(next.services.edit_service(kWeb, checked).is_ok());
  CHECK(adopt_health(next.services, dir) == 1);
  CHECK(next.services.find_real(kWeb, rip(2), 80)->health_down);
  CHECK_FALSE(next.services.find_real(kWeb, rip(1), 80)->health_down);
  CHECK_FALSE(next.services.find_real(kNat, rip(2), 8080)->health_down);  // unchecked now: nothing brings it back
}

// An lbd before IPv6 wrote slab and directory version 1 (60-byte entries, 64- and 48-byte
// records with IPv4 addresses; the layouts below are that version's, fixed). The restart
// that installs IPv6 reads both, converted: nothing is lost across the upgrade.
TEST_CASE("adoption from an lbd before IPv6: version 1's slab and directory, converted") {
  Director old(ConnSlab::shared(256), {1, 2, 3});
  const uint64_t t0 = 100000;
  for (uint16_t p = 1000; p < 1004; ++p) {
    REQUIRE(old.send("198.18.1.1", p, 80, tcp_flag::kSyn, t0));
    REQUIRE(old.send("198.18.1.1", p, 80, tcp_flag::kAck, t0 + 5));
  }
  REQUIRE(old.send("198.18.1.2", 2000, 8000, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.4", 4000, 443, tcp_flag::kSyn, t0));
  REQUIRE(old.send("198.18.1.4", 4001, 443, tcp_flag::kSyn, t0));
  const auto before = old.listing();
  REQUIRE(before.size() == 4 + 1 + 2 + 1);

  // The v1 slab: the same entries at the same slots, in version 1's layout.
  const uint32_t capacity = 256;
  UniqueFd slab_fd(memfd_create("v1-conns", 0));
  SlabHeader h{};
  std::memcpy(h.magic, kSlabMagic, sizeof h.magic);
  h.version = 1;
  h.conn_size = sizeof(ConnV1);
  h.capacity = capacity;
  h.header_size = sizeof(SlabHeader);
  REQUIRE(ftruncate(slab_fd.get(), off_t(sizeof h + capacity * sizeof(ConnV1))) == 0);
  REQUIRE(pwrite(slab_fd.get(), &h, sizeof h, 0) == sizeof h);
  const auto entries = old.conns.slab().entries();
  for (uint32_t i = 0; i < capacity; ++i) {
    const Conn& c = entries[i];
    if (!c.key.protocol) continue;
    const ConnV1 o{c.key.caddr.v4(), c.key.vaddr.v4(), c.key.cport, c.key.vport, c.key.protocol, c.state,
                   c.inactive, c.daddr.v4(), c.dport, c.client_mac, c.if_slot, c.reply_indexed, c.method, c.flags,
                   c.real_id, c.control, c.expires, c.hash, c.armed, c.wheel_prev, c.wheel_next};
    REQUIRE(pwrite(slab_fd.get(), &o, sizeof o, off_t(sizeof h + i * sizeof(ConnV1))) == sizeof o);
  }
  // The v1 directory: header (magic, version 1, layout = slot bytes << 1 | slot 0), the slot at 4096.
  const HandoverState state = state_of(old);
  UniqueFd dir_fd(memfd_create("v1-dir", 0));
  struct {
    char magic[8] = {'L', 'B', 'D', 'R', 'E', 'A', 'L', 'S'};
    uint32_t version = 1, reserved = 0;
    uint64_t layout = uint64_t(64 << 10) << 1;
    uint8_t reserved2[40]{};
  } dh;
  struct {
    uint64_t written_ms, stopped_ms;
    uint32_t pid, reals, services, reserved;
  } sh{1000, 0, 42, uint32_t(state.reals.size()), uint32_t(state.services.size()), 0};
  REQUIRE(ftruncate(dir_fd.get(), 4096 + 2 * (64 << 10)) == 0);
  REQUIRE(pwrite(dir_fd.get(), &dh, sizeof dh, 0) == sizeof dh);
  off_t at = 4096;
  REQUIRE(pwrite(dir_fd.get(), &sh, sizeof sh, at) == sizeof sh);
  at += sizeof sh;
  for (const HandoverReal& r : state.reals) {
    const HandoverRealV1 o{r.id, r.protocol, r.flags, {}, r.vip.v4(), r.addr.v4(), r.vport, r.port, 0, r.stats};
    REQUIRE(pwrite(dir_fd.get(), &o, sizeof o, at) == sizeof o);
    at += sizeof o;
  }
  for (const HandoverService& v : state.services) {
    const HandoverServiceV1 o{v.protocol, 0, v.port, v.vip.v4(), v.stats};
    REQUIRE(pwrite(dir_fd.get(), &o, sizeof o, at) == sizeof o);
    at += sizeof o;
  }

  const Result<HandoverState> dir = HandoverDirectory::read(dir_fd.get());
  REQUIRE(dir.is_ok());
  CHECK(dir.value().pid == 42);
  CHECK(dir.value().reals.size() == state.reals.size());
  Result<ConnSlab> slab = ConnSlab::open(UniqueFd(dup(slab_fd.get())));
  REQUIRE(slab.is_ok());
  const ConnSlab previous[] = {std::move(slab).value()};
  Director next(ConnSlab::shared(1000), {3, 1, 2});
  const AdoptCounts n = adopt_connections(next.dp, next.services, previous, dir.value(),
                                          [](const IpAddr&, uint32_t) { return true; }, DataPath::seconds(t0 + 1000));
  CHECK(n.adopted == before.size());
  CHECK(next.listing() == before);
  CHECK(next.send("198.18.1.1", 1000, 80, tcp_flag::kAck, t0 + 1000));
  CHECK(next.dp.counters().conns_created == 0);
}

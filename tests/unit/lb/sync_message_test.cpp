// IPVS sync messages against byte layouts written from ip_vs_sync.c's structures
// (struct ip_vs_sync_mesg, struct ip_vs_sync_v4, the options and the 32-bit padding), not
// from lbd's own output: each case spells the bytes a kernel master sends.
#include <catch2/catch.hpp>

#include <vector>

#include "frames.hpp"
#include "lb/core/sync_message.hpp"

using namespace lbd;
using namespace lbd::test;
using sync::Record;

namespace {

// An ESTABLISHED DR connection 198.18.0.10:40000 -> 198.18.1.100:80 on 198.18.2.11:80,
// timeout 900 s: struct ip_vs_sync_v4 field by field.
const std::vector<uint8_t> kEstablishedDr = {
    0x00, 0x06, 0x00, 0x24,              // type 0 (IPv4), IPPROTO_TCP, version 0 | size 36
    0x00, 0x00, 0x00, 0x03,              // flags IP_VS_CONN_F_DROUTE
    0x00, 0x01, 0x9c, 0x40,              // state IP_VS_TCP_S_ESTABLISHED, cport 40000
    0x00, 0x50, 0x00, 0x50,              // vport 80, dport 80
    0x00, 0x00, 0x00, 0x00,              // fwmark
    0x00, 0x00, 0x03, 0x84,              // timeout 900
    198, 18, 0, 10, 198, 18, 1, 100, 198, 18, 2, 11};

Record established_dr() {
  Record r;
  r.protocol = kProtoTcp;
  r.flags = sync::flag::kDroute;
  r.state = 1;
  r.cport = 40000;
  r.vport = 80;
  r.dport = 80;
  r.timeout = 900;
  r.caddr = ip("198.18.0.10");
  r.vaddr = ip("198.18.1.100");
  r.daddr = ip("198.18.2.11");
  return r;
}

std::vector<uint8_t> header(uint8_t syncid, uint16_t size, uint8_t count) {
  return {0x00, syncid, uint8_t(size >> 8), uint8_t(size), count, 0x01, 0x00, 0x00};
}

std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("sync: one IPv4 connection encodes as the kernel's version 1 message") {
  sync::MessageBuilder m(7, 1472);
  REQUIRE(m.add(established_dr()));
  const auto bytes = m.bytes();
  CHECK(std::vector<uint8_t>(bytes.begin(), bytes.end()) == cat(header(7, 44, 1), kEstablishedDr));
}

TEST_CASE("sync: a kernel's message decodes to its connection, flagged as synced") {
  const auto msg = cat(header(7, 44, 1), kEstablishedDr);
  const sync::Decoded d = sync::decode(msg, 0);
  REQUIRE(d.refusal == sync::Refusal::kNone);
  REQUIRE(d.records.size() == 1);
  Record want = established_dr();
  want.flags |= sync::flag::kSync;  // ip_vs_proc_sync_conn adds IP_VS_CONN_F_SYNC
  CHECK(d.records[0] == want);
}

TEST_CASE("sync: a template and a connection with sequence data, each padded to 32 bits") {
  // A persistence template <TCP, 198.18.0.10, 0, 198.18.1.100, 80> on 198.18.2.11:80
  // (flags TEMPLATE | INACTIVE | DROUTE, state 0, timeout 300), then a NAT connection
  // with IP_VS_CONN_F_IN_SEQ and its 24-byte option: 36 + 2 + 24 = 62 bytes, padded to
  // 64 before the next entry (not after the last).
  const std::vector<uint8_t> templ = {
      0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x50,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c, 198, 18, 0, 10, 198, 18, 1, 100, 198, 18, 2, 11};
  const std::vector<uint8_t> nat_seq = {
      0x00, 0x06, 0x00, 0x3e, 0x00, 0x00, 0x04, 0x00, 0x00, 0x07, 0x9c, 0x41, 0x00, 0x50, 0x1f, 0x90,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 198, 18, 0, 10, 198, 18, 1, 100, 198, 18, 2, 12,
      0x01, 0x18,                                            // IPVS_OPT_SEQ_DATA, 24 bytes
      0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x02,  // in_seq
      0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // out_seq
      0x00, 0x00};                                           // padding
  const std::vector<uint8_t> udp = {
      0x00, 0x11, 0x00, 0x24, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0x13, 0x88, 0x00, 0x35, 0x00, 0x35,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c, 198, 18, 0, 10, 198, 18, 1, 100, 198, 18, 2, 11};
  const auto msg = cat(cat(cat(header(0, 8 + 36 + 64 + 36, 3), templ), nat_seq), udp);

  Record t;
  t.protocol = kProtoTcp;
  t.flags = sync::flag::kTemplate | sync::flag::kInactive | sync::flag::kDroute;
  t.vport = 80;
  t.dport = 80;
  t.timeout = 300;
  t.caddr = ip("198.18.0.10");
  t.vaddr = ip("198.18.1.100");
  t.daddr = ip("198.18.2.11");
  Record n;
  n.protocol = kProtoTcp;
  n.flags = sync::flag::kInSeq | sync::flag::kMasq;
  n.state = 7;  // CLOSE_WAIT
  n.cport = 40001;
  n.vport = 80;
  n.dport = 8080;
  n.timeout = 120;
  n.caddr = ip("198.18.0.10");
  n.vaddr = ip("198.18.1.100");
  n.daddr = ip("198.18.2.12");
  n.has_seq = true;
  n.in_seq = {0x1000, 5, 2};
  n.out_seq = {0x2000, 0, 0};
  Record u;
  u.protocol = kProtoUdp;
  u.flags = sync::flag::kInactive | sync::flag::kDroute;
  u.cport = 5000;
  u.vport = 53;
  u.dport = 53;
  u.timeout = 300;
  u.caddr = ip("198.18.0.10");
  u.vaddr = ip("198.18.1.100");
  u.daddr = ip("198.18.2.11");

  sync::MessageBuilder m(0, 1472);
  REQUIRE(m.add(t));
  REQUIRE(m.add(n));
  REQUIRE(m.add(u));
  CHECK(std::vector<uint8_t>(m.bytes().begin(), m.bytes().end()) == msg);

  const sync::Decoded d = sync::decode(msg, 0);
  REQUIRE(d.refusal == sync::Refusal::kNone);
  REQUIRE(d.records.size() == 3);
  for (Record* r : {&t, &n, &u}) r->flags |= sync::flag::kSync;
  CHECK(d.records[0] == t);
  CHECK(d.records[1] == n);
  CHECK(d.records[2] == u);
}

TEST_CASE("sync: a message is full at its maxlen or at 255 entries") {
  sync::MessageBuilder small(0, 8 + 36 + 36 + 10);
  CHECK(small.add(established_dr()));
  CHECK(small.add(established_dr()));
  CHECK_FALSE(small.add(established_dr()));
  CHECK(small.count() == 2);
  small.clear();
  CHECK(small.empty());
  CHECK(small.bytes().size() == 8);

  sync::MessageBuilder big(0, 65507);
  int n = 0;
  while (big.add(established_dr())) ++n;
  CHECK(n == 255);  // nr_conns is a byte
}

TEST_CASE("sync: malformed, foreign and old messages are refused whole") {
  const auto good = cat(header(7, 44, 1), kEstablishedDr);
  SECTION("shorter than a header") { CHECK(sync::decode(std::vector<uint8_t>{0, 7, 0}, 0).refusal == sync::Refusal::kTooShort); }
  SECTION("size field is not the datagram's length") {
    auto m = good;
    m.push_back(0);
    CHECK(sync::decode(m, 0).refusal == sync::Refusal::kBadSize);
  }
  SECTION("another sync id, unless ours is 0") {
    CHECK(sync::decode(good, 8).refusal == sync::Refusal::kOtherSyncId);
    CHECK(sync::decode(good, 7).refusal == sync::Refusal::kNone);
    CHECK(sync::decode(good, 0).refusal == sync::Refusal::kNone);
  }
  SECTION("a version 0 message (its first byte is the count)") {
    auto m = good;
    m[0] = 1;
    CHECK(sync::decode(m, 0).refusal == sync::Refusal::kVersion);
  }
  SECTION("an entry longer than the message") {
    auto m = good;
    m[8 + 3] = 0x30;
    const auto d = sync::decode(m, 0);
    CHECK(d.refusal == sync::Refusal::kMalformed);
    CHECK(d.records.empty());
  }
  SECTION("a second entry cut short: the first is not applied either") {
    auto m = cat(header(7, 8 + 36 + 20, 2), kEstablishedDr);
    m.resize(8 + 36 + 20);
    const auto d = sync::decode(m, 0);
    CHECK(d.refusal == sync::Refusal::kMalformed);
    CHECK(d.records.empty());
  }
  SECTION("an option with a zero length") {
    auto entry = kEstablishedDr;
    entry[3] = 36 + 4;
    entry.insert(entry.end(), {0x41, 0x00, 0x00, 0x00});
    CHECK(sync::decode(cat(header(7, 48, 1), entry), 0).refusal == sync::Refusal::kMalformed);
  }
  SECTION("an unknown entry version") {
    auto m = good;
    m[8 + 2] = 0x10;
    CHECK(sync::decode(m, 0).refusal == sync::Refusal::kMalformed);
  }
}

TEST_CASE("sync: entries the kernel skips are skipped, the others applied") {
  auto optional_param = kEstablishedDr;  // IPVS_OPT_F_PARAM: a receiver may ignore it
  optional_param[3] = 36 + 4;
  optional_param.insert(optional_param.end(), {0x45, 0x02, 0xaa, 0xbb});
  auto mandatory = kEstablishedDr;  // an unknown option without the flag
  mandatory[3] = 36 + 4;
  mandatory.insert(mandatory.end(), {0x05, 0x02, 0xaa, 0xbb});
  auto bad_state = kEstablishedDr;
  bad_state[9] = 11;  // IP_VS_TCP_S_LAST
  auto sctp = kEstablishedDr;
  sctp[1] = 132;
  const auto msg = cat(cat(cat(cat(header(0, 8 + 40 + 40 + 36 + 36, 4), optional_param), mandatory), bad_state), sctp);
  const sync::Decoded d = sync::decode(msg, 0);
  REQUIRE(d.refusal == sync::Refusal::kNone);
  REQUIRE(d.records.size() == 1);
  CHECK(d.records[0].cport == 40000);
  CHECK(d.skipped[size_t(sync::Skip::kMandatoryOption)] == 1);
  CHECK(d.skipped[size_t(sync::Skip::kState)] == 1);
  CHECK(d.skipped[size_t(sync::Skip::kProtocol)] == 1);
}

TEST_CASE("sync: an IPv6 connection is struct ip_vs_sync_v6 (72 bytes), both ways, beside an IPv4 one") {
  // An ESTABLISHED NAT66 connection [2001:db8::1]:40000 -> [2001:db8::100]:80 on
  // [2001:db8::13]:8080, timeout 900 s: the v4 entry's fields, then three 16-byte addresses.
  std::vector<uint8_t> entry = {
      0x01, 0x06, 0x00, 0x48,  // type STYPE_F_INET6, IPPROTO_TCP, version 0 | size 72
      0x00, 0x00, 0x00, 0x00,  // flags IP_VS_CONN_F_MASQ
      0x00, 0x01, 0x9c, 0x40,  // ESTABLISHED, cport 40000
      0x00, 0x50, 0x1f, 0x90,  // vport 80, dport 8080
      0x00, 0x00, 0x00, 0x00,  // fwmark
      0x00, 0x00, 0x03, 0x84,  // timeout 900
  };
  for (const uint8_t last : {0x01, 0x00, 0x13}) {
    entry.insert(entry.end(), {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    entry.insert(entry.end(), {uint8_t(last == 0x00 ? 0x01 : 0x00), last});
  }
  REQUIRE(entry.size() == 72);
  Record r;
  r.ipv6 = true;
  r.protocol = kProtoTcp;
  r.state = 1;
  r.cport = 40000;
  r.vport = 80;
  r.dport = 8080;
  r.timeout = 900;
  r.caddr = IpAddr(v6("2001:db8::1"));
  r.vaddr = IpAddr(v6("2001:db8::100"));
  r.daddr = IpAddr(v6("2001:db8::13"));
  sync::MessageBuilder m(0, 1472);
  REQUIRE(m.add(r));
  REQUIRE(m.add(established_dr()));
  const auto msg = cat(cat(header(0, 8 + 72 + 36, 2), entry), kEstablishedDr);
  const auto bytes = m.bytes();
  CHECK(std::vector<uint8_t>(bytes.begin(), bytes.end()) == msg);
  const sync::Decoded d = sync::decode(msg, 0);
  REQUIRE(d.refusal == sync::Refusal::kNone);
  REQUIRE(d.records.size() == 2);
  r.flags |= sync::flag::kSync;
  CHECK(d.records[0] == r);
  CHECK(d.records[1].caddr == ip("198.18.0.10"));
  // An IPv4-mapped address in an IPv6 entry: skipped, the rest applied.
  auto mapped = entry;
  std::fill(mapped.begin() + 24, mapped.begin() + 40, 0);
  mapped[34] = mapped[35] = 0xff;
  const sync::Decoded dm = sync::decode(cat(cat(header(0, 8 + 72 + 36, 2), mapped), kEstablishedDr), 0);
  REQUIRE(dm.records.size() == 1);
  CHECK(dm.skipped[size_t(sync::Skip::kMappedAddress)] == 1);
}

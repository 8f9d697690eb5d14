// IPVS TCP states: the DR (input-only) life of a connection, and the active/inactive split.
#include <catch2/catch.hpp>

#include "forwarding/packet.hpp"
#include "lb/core/tcp_state.hpp"

using namespace lbd;
using namespace lbd::tcp_flag;

TEST_CASE("DR: SYN, ACK, FIN, RST walk IPVS's input-only table") {
  auto s = ConnState::kNone;
  s = tcp_next_state(TcpTable::kInputOnly, kSyn, s);
  CHECK(s == ConnState::kSynRecv);
  s = tcp_next_state(TcpTable::kInputOnly, kAck, s);
  CHECK(s == ConnState::kEstablished);
  s = tcp_next_state(TcpTable::kInputOnly, kAck | kPsh, s);
  CHECK(s == ConnState::kEstablished);
  s = tcp_next_state(TcpTable::kInputOnly, kFin | kAck, s);
  CHECK(s == ConnState::kFinWait);
  s = tcp_next_state(TcpTable::kInputOnly, kAck, s);
  CHECK(s == ConnState::kFinWait);
  s = tcp_next_state(TcpTable::kInputOnly, kRst | kAck, s);
  CHECK(s == ConnState::kClose);
}

TEST_CASE("flag priority is RST > SYN > FIN > ACK; no flag keeps the state") {
  CHECK(tcp_next_state(TcpTable::kInputOnly, kRst | kSyn, ConnState::kEstablished) == ConnState::kClose);
  CHECK(tcp_next_state(TcpTable::kInputOnly, kSyn | kFin, ConnState::kEstablished) == ConnState::kEstablished);
  CHECK(tcp_next_state(TcpTable::kInputOnly, 0, ConnState::kSynRecv) == ConnState::kSynRecv);
}

TEST_CASE("NAT's input and output tables differ from input-only where IPVS's do") {
  CHECK(tcp_next_state(TcpTable::kInput, kFin, ConnState::kEstablished) == ConnState::kCloseWait);
  CHECK(tcp_next_state(TcpTable::kOutput, kFin, ConnState::kEstablished) == ConnState::kFinWait);
  CHECK(tcp_next_state(TcpTable::kOutput, kSyn, ConnState::kNone) == ConnState::kSynSent);
}

TEST_CASE("active states and timeouts are IPVS's defaults; --set changes three") {
  CHECK(state_is_active(ConnState::kEstablished));
  CHECK(state_is_active(ConnState::kSynRecv));
  CHECK_FALSE(state_is_active(ConnState::kFinWait));
  CHECK_FALSE(state_is_active(ConnState::kUdp));
  Timeouts t;
  CHECK(t.seconds(ConnState::kEstablished) == 900);
  CHECK(t.seconds(ConnState::kSynRecv) == 60);
  CHECK(t.seconds(ConnState::kFinWait) == 120);
  CHECK(t.seconds(ConnState::kClose) == 10);
  CHECK(t.seconds(ConnState::kUdp) == 300);
  t.tcp = 60;
  CHECK(t.seconds(ConnState::kEstablished) == 60);
  CHECK(std::string(state_name(ConnState::kSynRecv)) == "SYN_RECV");
}

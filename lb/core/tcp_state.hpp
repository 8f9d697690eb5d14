// IPVS's connection states, its TCP transition tables and default timeouts
// (net/netfilter/ipvs/ip_vs_proto_tcp.c). Pure functions of (table, flags, state).
#pragma once

#include "lb/core/sysctl.hpp"

#include <cstdint>

namespace lbd {

// Order is IPVS's (sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA); kUdp is UDP's one state.
enum class ConnState : uint8_t {
  kNone, kEstablished, kSynSent, kSynRecv, kFinWait, kTimeWait, kClose, kCloseWait, kLastAck,
  kListen, kSynAck, kUdp
};

// INPUT: client → real (NAT); OUTPUT: real → client (NAT); INPUT_ONLY: DR/TUN, where the
// director never sees the replies.
enum class TcpTable : uint8_t { kInput, kOutput, kInputOnly };

ConnState tcp_next_state(TcpTable table, uint8_t tcp_flags, ConnState current);

// Recent kernels count these as ActiveConn (tcp_state_active_table); the rest as InActConn.
bool state_is_active(ConnState s);

const char* state_name(ConnState s);

// `ipvsadm --set tcp tcpfin udp` sets the first three; the rest are IPVS's fixed defaults.
// IPVS's run-time settings: --set's three timeouts, and the sysctls lbd takes (--lbd-sysctl).
struct Timeouts {
  uint32_t tcp = 900;
  uint32_t tcpfin = 120;
  uint32_t udp = 300;
  Sysctls sysctl;
  uint32_t seconds(ConnState s) const;
};

}  // namespace lbd

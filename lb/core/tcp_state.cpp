// IPVS TCP state tables; see tcp_state.hpp.
#include "lb/core/tcp_state.hpp"

#include "forwarding/packet.hpp"

namespace lbd {
namespace {

using S = ConnState;
// (The tables never lead to NONE or SYN_ACK: those two have no short name.)
constexpr S ES = S::kEstablished, SS = S::kSynSent, SR = S::kSynRecv, FW = S::kFinWait, TW = S::kTimeWait,
            CL = S::kClose, CW = S::kCloseWait, LA = S::kLastAck, LI = S::kListen;

// [table][event: syn, fin, ack, rst][current state]
constexpr S kTables[3][4][11] = {
    {// INPUT
     {SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR},
     {CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW},
     {ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES},
     {CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR}},
    {// OUTPUT
     {SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR},
     {TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW},
     {ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES},
     {CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL}},
    {// INPUT_ONLY
     {SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR},
     {CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW},
     {ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES},
     {CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL}},
};
constexpr uint32_t kFixed[] = {2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120};

}  // namespace

ConnState tcp_next_state(TcpTable table, uint8_t f, ConnState current) {
  int event;  // IPVS tcp_state_idx(): RST > SYN > FIN > ACK
  if (f & tcp_flag::kRst) event = 3;
  else if (f & tcp_flag::kSyn) event = 0;
  else if (f & tcp_flag::kFin) event = 1;
  else if (f & tcp_flag::kAck) event = 2;
  else return current;
  if (current == ConnState::kUdp) return current;
  return kTables[int(table)][event][int(current)];
}

bool state_is_active(ConnState s) {
  return s == ConnState::kEstablished || s == ConnState::kSynSent || s == ConnState::kSynRecv ||
         s == ConnState::kSynAck;
}

const char* state_name(ConnState s) {
  static const char* const names[] = {"NONE",     "ESTABLISHED", "SYN_SENT",   "SYN_RECV",
                                      "FIN_WAIT", "TIME_WAIT",   "CLOSE",      "CLOSE_WAIT",
                                      "LAST_ACK", "LISTEN",      "SYNACK",     "UDP"};
  return names[int(s)];
}

uint32_t Timeouts::seconds(ConnState s) const {
  switch (s) {
    case ConnState::kEstablished: return tcp;
    case ConnState::kFinWait: return tcpfin;
    case ConnState::kUdp: return udp;
    default: return kFixed[int(s)];
  }
}

}  // namespace lbd

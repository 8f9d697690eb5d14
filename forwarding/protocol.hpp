// The transport protocols a virtual service can be: one table says what each is called
// where (ipvsadm's listings and flags, the token of pcap, nft and /etc/services), so a new
// one (SCTP's parsing, say) is a row here and its packet code.
#pragma once

#include <array>
#include <cstdint>

#include "forwarding/packet.hpp"

namespace lbd {

struct ProtocolInfo {
  uint8_t number;     // IPPROTO_*
  const char* name;   // ipvsadm -L: TCP, UDP, SCTP
  const char* token;  // pcap, nft, getservbyport: tcp, udp, sctp
  const char* flag;   // ipvsadm -S and the control requests: -t, -u, --sctp-service
};

inline constexpr uint8_t kProtoSctp = 132;
inline constexpr std::array<ProtocolInfo, 3> kProtocols = {{
    {kProtoTcp, "TCP", "tcp", "-t"},
    {kProtoUdp, "UDP", "udp", "-u"},
    {kProtoSctp, "SCTP", "sctp", "--sctp-service"},
}};

// The protocol's row (SCTP's for a number not in the table, as ipvsadm prints a third kind).
constexpr const ProtocolInfo& protocol_info(uint8_t number) {
  for (const auto& p : kProtocols)
    if (p.number == number) return p;
  return kProtocols.back();
}

}  // namespace lbd

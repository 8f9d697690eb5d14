// lbd's forwarding methods, IPVS's IP_VS_CONN_F_{DROUTE,MASQ,TUNNEL}: one table says what
// each is called where (ipvsadm's flag and long option, its Forward column, lbd's demo
// word), so a new method is a row here and its forward function in the data path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lbd {

enum class FwdMethod : uint8_t { kRoute, kMasq, kTunnel };

struct FwdMethodInfo {
  FwdMethod method;
  char flag;            // ipvsadm's -g, -m, -i
  const char* option;   // --gatewaying, --masquerading, --ipip
  const char* column;   // -L's Forward column: Route, Masq, Tunnel
};

inline constexpr std::array<FwdMethodInfo, 3> kFwdMethods = {{
    {FwdMethod::kRoute, 'g', "gatewaying", "Route"},
    {FwdMethod::kMasq, 'm', "masquerading", "Masq"},
    {FwdMethod::kTunnel, 'i', "ipip", "Tunnel"},
}};

constexpr const FwdMethodInfo& fwd_info(FwdMethod m) { return kFwdMethods[static_cast<uint8_t>(m)]; }
constexpr const char* fwd_name(FwdMethod m) { return fwd_info(m).column; }
// The method a number names (the control dump's), if it names one.
constexpr std::optional<FwdMethod> fwd_from_number(unsigned n) {
  if (n >= kFwdMethods.size()) return std::nullopt;
  return kFwdMethods[n].method;
}
// The method ipvsadm's flag ('g') or long option ("gatewaying") names, if any.
constexpr std::optional<FwdMethod> fwd_from_name(std::string_view name) {
  for (const auto& m : kFwdMethods)
    if ((name.size() == 1 && name[0] == m.flag) || name == m.option) return m.method;
  return std::nullopt;
}

}  // namespace lbd

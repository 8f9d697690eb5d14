// System name resolution; see names.hpp.
#include "lb/ctl/names.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

namespace lbd {

bool resolve_host(const std::string& name, Ipv4& out) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &res) != 0 || !res) return false;
  const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
  std::memcpy(out.b.data(), &sin->sin_addr, 4);
  freeaddrinfo(res);
  return true;
}

std::optional<uint16_t> resolve_service(const std::string& name) {
  const servent* se = getservbyname(name.c_str(), nullptr);
  if (!se) return std::nullopt;
  return ntohs(uint16_t(se->s_port));
}

NameLookup system_lookup() { return {resolve_host, resolve_service}; }

NameResolver system_names() {
  NameResolver n;
  n.host = [](Ipv4 a) -> std::string {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, a.b.data(), 4);
    char host[NI_MAXHOST];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&sin), sizeof sin, host, sizeof host, nullptr, 0,
                    NI_NAMEREQD) == 0)
      return host;
    return {};
  };
  n.service = [](uint16_t port, const char* proto) -> std::string {
    if (const servent* se = getservbyport(htons(port), proto)) return se->s_name;
    return {};
  };
  return n;
}

}  // namespace lbd

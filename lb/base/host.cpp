// The host's addresses and the per-namespace claim; see host.hpp.
#include "lb/base/host.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace lbd {

sigset_t block_signals(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : signals) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  return mask;
}

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

std::vector<LocalAddress> local_ipv4() {
  std::vector<LocalAddress> v;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return v;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    LocalAddress l;
    std::memcpy(l.addr.b.data(), &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, 4);
    l.netmask = Be32::from_host(0xffffffffu);
    if (a->ifa_netmask)
      std::memcpy(l.netmask.b.data(), &reinterpret_cast<sockaddr_in*>(a->ifa_netmask)->sin_addr, 4);
    v.push_back(l);
  }
  freeifaddrs(list);
  return v;
}

std::vector<Ipv4> local_ipv4_addresses() {
  std::vector<Ipv4> v;
  for (const auto& l : local_ipv4()) v.push_back(l.addr);
  return v;
}

std::vector<IpAddr> local_addresses() {
  std::vector<IpAddr> v;
  for (const auto& l : local_ipv4()) v.push_back(l.addr);
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return v;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET6) continue;
    Ipv6 addr;
    std::memcpy(addr.b.data(), &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, 16);
    v.push_back(IpAddr(addr));
  }
  freeifaddrs(list);
  return v;
}

int claim_in_namespace(const std::string& name, const std::string& busy) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof a.sun_path) throw std::runtime_error("claim name too long: " + name);
  std::memcpy(a.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size())) < 0) {
    const int err = errno;
    close(fd);
    throw std::runtime_error(err == EADDRINUSE ? busy : fmt::format("{}: cannot claim: {}", name, std::strerror(err)));
  }
  return fd;
}

}  // namespace lbd

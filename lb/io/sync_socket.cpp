// The sync daemon's sockets; see sync_socket.hpp.
#include "lb/io/sync_socket.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace lbd {
namespace {

Status failed(const sync::DaemonSpec& spec, const char* what) {
  return Status::error(errno, fmt::format("sync daemon on {}: {}: {}", spec.mcast_ifn, what, std::strerror(errno)));
}

}  // namespace

Result<SyncSocket> open_sync_socket(const sync::DaemonSpec& spec, bool master) {
  SyncSocket s;
  const unsigned ifindex = if_nametoindex(spec.mcast_ifn.c_str());
  if (!ifindex)
    return Status::error(ENODEV, fmt::format("sync daemon: no interface {} (--mcast-interface)", spec.mcast_ifn));
  s.fd.reset(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.fd) return failed(spec, "socket");
  const int fd = s.fd.get();
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, spec.mcast_ifn.c_str(), socklen_t(spec.mcast_ifn.size())) < 0)
    return failed(spec, "SO_BINDTODEVICE");
  s.group.sin_family = AF_INET;
  s.group.sin_port = htons(spec.port);
  std::memcpy(&s.group.sin_addr, spec.group.b.data(), 4);
  const int one = 1, zero = 0;
  if (master) {
    ip_mreqn mreq{};
    mreq.imr_ifindex = int(ifindex);
    const int ttl = spec.ttl, pmtu = IP_PMTUDISC_DONT;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof mreq) < 0) return failed(spec, "IP_MULTICAST_IF");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0) return failed(spec, "IP_MULTICAST_TTL");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero) < 0)
      return failed(spec, "IP_MULTICAST_LOOP");
    if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) return failed(spec, "IP_MTU_DISCOVER");
  } else {
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return failed(spec, "SO_REUSEADDR");
    if (bind(fd, reinterpret_cast<const sockaddr*>(&s.group), sizeof s.group) < 0)
      return failed(spec, fmt::format("bind {}:{}", spec.group, spec.port).c_str());
    ip_mreqn mreq{};
    std::memcpy(&mreq.imr_multiaddr, spec.group.b.data(), 4);
    mreq.imr_ifindex = int(ifindex);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0)
      return failed(spec, "IP_ADD_MEMBERSHIP");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) < 0)
      return failed(spec, "IP_MULTICAST_ALL");
  }
  s.maxlen = spec.maxlen;
  if (!s.maxlen) {  // the kernel's: the interface's MTU less the IPv4 and UDP headers, at most 1500's
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", spec.mcast_ifn.c_str());
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) return failed(spec, "SIOCGIFMTU");
    s.maxlen = uint32_t(std::min(ifr.ifr_mtu, 1500) - 28);
  }
  return s;
}

bool send_sync_message(int fd, const sockaddr_in& to, std::span<const uint8_t> msg) {
  return sendto(fd, msg.data(), msg.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
         ssize_t(msg.size());
}

}  // namespace lbd

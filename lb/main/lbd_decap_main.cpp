// lbd-decap: the real-server half of LVS TUN for hosts without the ipip, sit, ip6_tunnel,
// ip_gre or fou modules (most containers, this project's CI). It receives IPIP (IPv4 or
// IPv6 inside) and GRE packets on raw sockets of each family (IPPROTO_IPIP, IPPROTO_IPV6,
// IPPROTO_GRE) and GUE on a UDP socket per --gue-port and family, keeps those from an
// allowed director addressed to a configured VIP (forwarding/decap.*) and writes the inner
// datagrams to a TUN device, so the local stack receives them as if they had arrived
// directly; replies leave by the normal route, straight to the client.
//
// What it changes on the host, all undone at exit: the TUN device (the VIPs are its
// addresses, /32, so nothing else needs configuring), rp_filter 0 on that device, and
// unless --keep-arp-sysctls, net.ipv4.conf.all.arp_ignore=1 / arp_announce=2 (so the real
// server never answers ARP for a VIP). A strict net.ipv4.conf.all.rp_filter would drop
// every client packet arriving on the TUN device (the kernel uses the larger of 'all' and
// the device's value), so 'all' goes to 0 while every other interface, and 'default',
// is set strict itself: only the TUN device is relaxed.
//
// Every original value is written to a state file before it is changed. A killed
// lbd-decap cannot restore them; the next one finds the file and restores each value that
// still holds what lbd-decap set, before it records the originals again.
#include <boost/program_options.hpp>

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/if_addr.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/ranges.h>

#include "forwarding/decap.hpp"
#include "lb/base/host.hpp"
#include "lb/base/log.hpp"
#include "lb/base/owned.hpp"
#include "lb/base/unique_fd.hpp"

namespace po = boost::program_options;
using namespace lbd;

namespace {

std::optional<std::string> read_sysctl(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  if (!(f >> v)) return std::nullopt;
  return v;
}

bool write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value << "\n";
  f.flush();
  return bool(f);
}

// The originals of the sysctls this run changed, kept where a later lbd-decap finds them
// if this one is killed: "path original ours" lines, rewritten whole (rename) on change.
class SysctlState {
 public:
  explicit SysctlState(std::string path) : path_(std::move(path)) {}
  // A killed run's leftovers: each sysctl still holding the value it set gets its
  // original back. The file is then empty until this run records its own changes.
  void repair() {
    std::ifstream f(path_);
    std::string path, original, ours;
    int repaired = 0;
    while (f >> path >> original >> ours) {
      if (read_sysctl(path).value_or("") != ours) continue;  // changed since: not ours now
      if (write_sysctl(path, original)) ++repaired;
    }
    if (repaired)
      LBD_LOG(kWarn, "decap", "{}: restored {} sysctl(s) a killed lbd-decap had changed", path_, repaired);
    entries_.clear();
    if (!save()) throw std::runtime_error(path_ + ": cannot write");
  }
  // Before a change: no original is changed that a later run could not restore.
  void record(const std::string& path, const std::string& original, const std::string& ours) {
    entries_[path] = {original, ours};
    if (!save()) throw std::runtime_error(path_ + ": cannot write");
  }
  // After a restore (from a destructor: never throws).
  void forget(const std::string& path) {
    entries_.erase(path);
    if (!save()) LBD_LOG(kWarn, "decap", "{}: cannot write; a later start may restore {} again", path_, path);
  }
  void remove() { std::filesystem::remove(path_); }

 private:
  // The whole file again (written aside, then renamed over it). False if it cannot be.
  bool save() {
    const std::string tmp = path_ + ".new";
    {
      std::ofstream f(tmp, std::ios::trunc);
      for (const auto& [path, v] : entries_) f << path << " " << v.first << " " << v.second << "\n";
      if (!f) return false;
    }
    return rename(tmp.c_str(), path_.c_str()) == 0;
  }
  std::string path_;
  std::map<std::string, std::pair<std::string, std::string>> entries_;
};

// A sysctl set for our run and put back at exit.
class SysctlChange {
 public:
  SysctlChange(SysctlState& state, std::string path, std::string value)
      : state_(state), path_(std::move(path)) {
    old_ = read_sysctl(path_);
    if (!old_) throw std::runtime_error(path_ + ": cannot read");
    if (*old_ == value) return;
    state_.record(path_, *old_, value);
    if (!write_sysctl(path_, value)) throw std::runtime_error(path_ + ": cannot write");
    changed_ = true;
    LBD_LOG(kInfo, "decap", "{}: {} -> {} (restored at exit)", path_, *old_, value);
  }
  ~SysctlChange() {
    if (!changed_) return;
    if (!write_sysctl(path_, *old_))
      LBD_LOG(kError, "decap", "{}: cannot restore {}", path_, *old_);
    else
      state_.forget(path_);
  }
  SysctlChange(const SysctlChange&) = delete;
  SysctlChange& operator=(const SysctlChange&) = delete;

 private:
  SysctlState& state_;
  std::string path_;
  std::optional<std::string> old_;
  bool changed_ = false;
};

// The state file of this network namespace (sysctls are per namespace).
std::string state_path(const std::string& dir) {
  struct stat st{};
  if (stat("/proc/self/ns/net", &st) < 0) throw std::runtime_error("/proc/self/ns/net: cannot stat");
  return fmt::format("{}/sysctls-{}", dir, uint64_t(st.st_ino));
}

// The TUN device: exists while the fd is open, so it (and its addresses) vanish with us.
class TunDevice {
 public:
  explicit TunDevice(const std::string& name) : fd_(open("/dev/net/tun", O_RDWR | O_CLOEXEC)) {
    if (!fd_) throw std::runtime_error(std::string("/dev/net/tun: ") + std::strerror(errno));
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
    if (ioctl(fd_.get(), TUNSETIFF, &ifr) < 0)
      throw std::runtime_error(name + ": cannot create TUN device: " + std::strerror(errno));
    name_ = ifr.ifr_name;
  }
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

 private:
  UniqueFd fd_;
  std::string name_;
};

// Brings `ifname` up and gives it each VIP as a /32 or /128 (libnl; IPv6 ones without
// duplicate address detection: the VIP is the cluster's, on purpose).
void configure_device(const std::string& ifname, const std::vector<IpAddr>& vips) {
  const Owned<nl_sock, nl_socket_free> sock(nl_socket_alloc());
  if (!sock || nl_connect(sock.get(), NETLINK_ROUTE) < 0) throw std::runtime_error("netlink: cannot connect");
  nl_cache* dump = nullptr;
  if (rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &dump) < 0) throw std::runtime_error("netlink: link dump");
  const Owned<nl_cache, nl_cache_free> links(dump);
  const int ifindex = rtnl_link_name2i(links.get(), ifname.c_str());
  const Owned<rtnl_link, rtnl_link_put> link(rtnl_link_get(links.get(), ifindex));
  const Owned<rtnl_link, rtnl_link_put> change(rtnl_link_alloc());
  if (!change) throw std::runtime_error("netlink: out of memory");
  rtnl_link_set_flags(change.get(), IFF_UP);
  int err = link ? rtnl_link_change(sock.get(), link.get(), change.get(), 0) : -NLE_OBJ_NOTFOUND;
  if (err < 0) throw std::runtime_error(ifname + ": cannot bring up: " + nl_geterror(err));
  for (const IpAddr& vip : vips) {
    const Owned<rtnl_addr, rtnl_addr_put> a(rtnl_addr_alloc());
    const auto bytes = vip.bytes();
    const Owned<nl_addr, nl_addr_put> local(
        nl_addr_build(vip.v6() ? AF_INET6 : AF_INET, const_cast<uint8_t*>(bytes.data()), bytes.size()));
    if (!a || !local) throw std::runtime_error("netlink: out of memory");
    nl_addr_set_prefixlen(local.get(), int(vip.width()));
    rtnl_addr_set_ifindex(a.get(), ifindex);
    rtnl_addr_set_local(a.get(), local.get());
    if (vip.v6()) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
    err = rtnl_addr_add(sock.get(), a.get(), 0);
    if (err < 0)
      throw std::runtime_error(fmt::format("{}: cannot add {}: {}", ifname, vip, nl_geterror(err)));
  }
}

std::string counters_line(const Decapsulator& d) {
  std::string s;
  for (int o = 0; o < Decapsulator::kOutcomeCount; ++o)
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ",
                     Decapsulator::outcome_name(Decapsulator::Outcome(o)),
                     d.count(Decapsulator::Outcome(o)));
  return s;
}

// A UDP socket for GUE on `port` and family (every local address; IP_PKTINFO /
// IPV6_RECVPKTINFO tell which one a datagram was sent to). The kernel checks the UDP
// checksum before it is delivered; over IPv6 a zero checksum is taken as IPVS sends it with
// --tun-nocsum (RFC 6935's exception for tunnels, UDP_NO_CHECK6_RX).
UniqueFd gue_socket(uint16_t port, bool v6) {
  UniqueFd fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw std::runtime_error(std::string("GUE socket: ") + std::strerror(errno));
  const int on = 1;
  const auto opt = [&](int level, int name, const char* what) {
    if (setsockopt(fd.get(), level, name, &on, sizeof on) < 0)
      throw std::runtime_error(fmt::format("GUE socket: {}: {}", what, std::strerror(errno)));
  };
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    opt(IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY");
    opt(IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO");
    opt(IPPROTO_UDP, UDP_NO_CHECK6_RX, "UDP_NO_CHECK6_RX");
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    opt(IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO");
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
    throw std::runtime_error(fmt::format("GUE socket: UDP port {}{}: {}", port, v6 ? " (IPv6)" : "", std::strerror(errno)));
  return fd;
}

// A raw IPv6 socket of protocol `proto` (4, 41, 47) that tells each packet's destination.
UniqueFd raw6_socket(int proto) {
  UniqueFd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto));
  const int on = 1;
  if (fd && setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0) return UniqueFd();
  return fd;
}

// One datagram from `fd` (a UDP or raw IPv6 socket) into `buf`: its length (negative when
// none is waiting), with the sender and the address it was sent to (the outer header's).
ssize_t receive_from(int fd, std::vector<uint8_t>& buf, IpAddr& src, IpAddr& dst) {
  sockaddr_storage from{};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return n;
  dst = IpAddr{};
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      Ipv4 a;
      std::memcpy(a.b.data(), &info.ipi_addr, 4);  // the header's destination address
      dst = a;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      Ipv6 a;
      std::memcpy(a.b.data(), &info.ipi6_addr, 16);
      dst = IpAddr(a);
    }
  }
  if (from.ss_family == AF_INET6) {
    Ipv6 a;
    std::memcpy(a.b.data(), &reinterpret_cast<const sockaddr_in6*>(&from)->sin6_addr, 16);
    src = IpAddr(a);
  } else {
    Ipv4 a;
    std::memcpy(a.b.data(), &reinterpret_cast<const sockaddr_in*>(&from)->sin_addr, 4);
    src = a;
  }
  return n;
}

// The sockets lbd-decap reads: raw IPv4 ones hand the whole packet (batched), raw IPv6 ones
// what follows the IPv6 header, GUE ones the UDP payload.
struct Socket {
  enum Kind { kRaw4, kRaw6, kGue } kind;
  uint8_t proto = 0;  // kRaw6: the outer header's next header
  bool v6 = false;    // kGue: over IPv6
  UniqueFd fd;
};

// Up to 64 datagrams from a raw IPv6 or GUE socket, each decapsulated and written to the
// TUN device. (An IPv4-mapped address cannot arrive on an IPv6 socket's wire: such a packet
// is refused as malformed.)
void receive_datagrams(const Socket& s, Decapsulator& decap, int tun_fd, std::vector<uint8_t>& buf,
                       uint64_t& write_errors) {
  for (int budget = 64; budget > 0; --budget) {
    IpAddr src, dst;
    const ssize_t n = receive_from(s.fd.get(), buf, src, dst);
    if (n < 0) return;
    const bool v6 = s.kind == Socket::kRaw6 || s.v6;
    if (v6 && (!src.v6() || !dst.v6())) src = dst = IpAddr{};  // fails the local-address check
    const std::span<const uint8_t> inner =
        s.kind == Socket::kRaw6 ? decap.handle_carrier(src, dst, s.proto, {buf.data(), size_t(n)})
                                : decap.handle_gue(src, dst, {buf.data(), size_t(n)});
    if (!inner.empty() && write(tun_fd, inner.data(), inner.size()) < 0) ++write_errors;
  }
}

int run(const std::vector<IpAddr>& vips, const std::vector<Cidr>& allowed, bool allow_any,
        const std::vector<uint16_t>& gue_ports, const std::string& tun_name, bool keep_arp,
        const std::string& state_dir) {
  const UniqueFd lock(claim_in_namespace("lbd-decap", "another lbd-decap is already running in this network namespace"));
  // IPIP, IPv6-in-IPv4 and GRE over IPv4 arrive whole (outer header included) on raw
  // sockets of their protocols, the same over IPv6 without the outer header; a packet a raw
  // socket takes draws no ICMP protocol-unreachable from the kernel. A host whose IPv6 is
  // off (no AF_INET6) gets IPv4 tunnels only, and says so.
  std::vector<Socket> socks;
  constexpr std::array<std::pair<int, const char*>, 3> kProtos = {
      {{IPPROTO_IPIP, "IPIP"}, {IPPROTO_IPV6, "IPv6-in-IP"}, {IPPROTO_GRE, "GRE"}}};
  for (const auto& [proto, name] : kProtos) {
    Socket sk{Socket::kRaw4, uint8_t(proto), false,
              UniqueFd(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto))};
    if (!sk.fd) throw std::runtime_error(fmt::format("raw {} socket: {}", name, std::strerror(errno)));
    socks.push_back(std::move(sk));
  }
  bool have_v6 = true;
  for (const auto& [proto, name] : kProtos) {
    Socket sk{Socket::kRaw6, uint8_t(proto), true, raw6_socket(proto)};
    if (!sk.fd) {
      if (errno != EAFNOSUPPORT) throw std::runtime_error(fmt::format("raw IPv6 {} socket: {}", name, std::strerror(errno)));
      LBD_LOG(kWarn, "decap", "IPv6 is not available on this host: tunnels over IPv6 are not received");
      have_v6 = false;
      break;
    }
    socks.push_back(std::move(sk));
  }
  for (const uint16_t port : gue_ports) {
    socks.push_back(Socket{Socket::kGue, 0, false, gue_socket(port, false)});
    if (have_v6) socks.push_back(Socket{Socket::kGue, 0, true, gue_socket(port, true)});
  }
  if (mkdir(state_dir.c_str(), 0700) < 0 && errno != EEXIST)
    throw std::runtime_error(state_dir + ": " + std::strerror(errno));
  SysctlState state(state_path(state_dir));
  state.repair();
  TunDevice tun(tun_name);
  std::vector<std::unique_ptr<SysctlChange>> sysctls;
  const std::string conf = "/proc/sys/net/ipv4/conf/";
  sysctls.push_back(std::make_unique<SysctlChange>(state, conf + tun.name() + "/rp_filter", "0"));
  if (!keep_arp) {
    const std::string all = conf + "all/";
    if (read_sysctl(all + "arp_ignore").value_or("0") == "0")
      sysctls.push_back(std::make_unique<SysctlChange>(state, all + "arp_ignore", "1"));
    if (read_sysctl(all + "arp_announce").value_or("0") != "2")
      sysctls.push_back(std::make_unique<SysctlChange>(state, all + "arp_announce", "2"));
    if (read_sysctl(all + "rp_filter").value_or("0") == "1") {
      // Strict everywhere but on the TUN device: each interface (and 'default', for those
      // made later) strict by itself first, then 'all' no longer forces it.
      for (const auto& e : std::filesystem::directory_iterator(conf)) {
        const std::string name = e.path().filename();
        if (name == "all" || name == "lo" || name == tun.name()) continue;
        if (read_sysctl(e.path().string() + "/rp_filter").value_or("1") == "0")
          sysctls.push_back(std::make_unique<SysctlChange>(state, e.path().string() + "/rp_filter", "1"));
      }
      sysctls.push_back(std::make_unique<SysctlChange>(state, all + "rp_filter", "0"));
    }
  }
  configure_device(tun.name(), vips);

  const sigset_t mask = block_signals({SIGTERM, SIGINT, SIGUSR1});
  const UniqueFd signals(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
  const int sfd = signals.get();

  LBD_LOG(kInfo, "decap", "decapsulating IPIP, GRE{} over IPv4{} for {} into {}{}",
          gue_ports.empty() ? "" : fmt::format(" and GUE on UDP port {}", fmt::join(gue_ports, ", ")),
          have_v6 ? " and IPv6" : "", fmt::join(vips, " "), tun.name(), allow_any ? " (from any source: --allow-any)" : "");

  Decapsulator decap(vips, allowed, allow_any);
  decap.set_local_addresses(local_addresses());
  auto addresses_at = std::chrono::steady_clock::now();
  constexpr size_t kBatch = 64, kMax = 65536;
  std::vector<uint8_t> bufs(kBatch * kMax);
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  for (size_t i = 0; i < kBatch; ++i) {
    iov[i] = {bufs.data() + i * kMax, kMax};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t write_errors = 0;
  // Signals first, then the sockets in `socks`' order.
  std::vector<pollfd> pfds{{sfd, POLLIN, 0}};
  for (const auto& s : socks) pfds.push_back({s.fd.get(), POLLIN, 0});
  std::vector<uint8_t> one_buf(kMax);
  for (bool running = true; running;) {
    const int ready = poll(pfds.data(), pfds.size(), 1000);
    if (ready < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "decap", "poll: {}", std::strerror(errno));
      break;
    }
    // Addresses come and go (DHCP, an operator's `ip addr`): looked up again every second,
    // busy or idle.
    if (const auto now = std::chrono::steady_clock::now(); now - addresses_at >= std::chrono::seconds(1)) {
      decap.set_local_addresses(local_addresses());
      addresses_at = now;
    }
    if (ready == 0) continue;
    for (size_t k = 1; k < pfds.size(); ++k) {
      if (!pfds[k].revents) continue;
      if (socks[k - 1].kind != Socket::kRaw4) {
        receive_datagrams(socks[k - 1], decap, tun.fd(), one_buf, write_errors);
        continue;
      }
      const int n = recvmmsg(pfds[k].fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      for (int i = 0; i < n; ++i) {
        const auto inner = decap.handle({bufs.data() + size_t(i) * kMax, msgs[size_t(i)].msg_len});
        if (!inner.empty() && write(tun.fd(), inner.data(), inner.size()) < 0) ++write_errors;
      }
    }
    if (pfds[0].revents) {
      signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
          LBD_LOG(kInfo, "decap", "{}, write_errors {}", counters_line(decap), write_errors);
        } else {
          running = false;
        }
      }
    }
  }
  LBD_LOG(kInfo, "decap", "stopping: {}, write_errors {}", counters_line(decap), write_errors);
  sysctls.clear();  // each restored (distinct paths: order does not matter)
  state.remove();
  rmdir(state_dir.c_str());  // only once empty: other namespaces' instances may share it
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> vip_args, allow_args;
  std::vector<unsigned> gue_port_args;
  std::string tun_name = "lbdtun0";
  std::string state_dir = "/run/lbd-decap";
  po::options_description desc(
      "Usage: lbd-decap --vip VIP [--vip VIP ...] [options]\n\n"
      "The real-server side of lbd's tunnelling (ipvsadm -i, --tun-type ipip|gre|gue):\n"
      "delivers the packets a director tunnels to this host for the given VIPs to the local\n"
      "stack. IPIP (IPv4 or IPv6 inside) and GRE are always received, over IPv4 and IPv6;\n"
      "GUE on the UDP ports given.\nOptions");
  desc.add_options()
      ("help,h", "show this help and exit")
      ("vip", po::value<std::vector<std::string>>(&vip_args)->composing(),
       "a virtual IP this server serves, IPv4 or IPv6 (repeatable; required)")
      ("allow-from", po::value<std::vector<std::string>>(&allow_args)->composing(),
       "accept tunnelled packets only from this director address or CIDR (repeatable; "
       "required unless --allow-any)")
      ("gue-port", po::value<std::vector<unsigned>>(&gue_port_args)->composing(),
       "receive GUE on this UDP port (the director's --tun-port; repeatable)")
      ("allow-any", "accept tunnelled packets from any source (labs only: anyone who can reach "
       "this host can then inject packets with any client address)")
      ("state-dir", po::value<std::string>(&state_dir)->default_value(state_dir),
       "where the original sysctl values are kept while they are changed")
      ("device", po::value<std::string>(&tun_name)->default_value(tun_name),
       "the TUN device to create (holds the VIPs)")
      ("keep-arp-sysctls", "do not set arp_ignore=1/arp_announce=2 and do not relax a strict "
       "rp_filter on 'all' (configure them yourself)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "lbd-decap: " << e.what() << "\nTry 'lbd-decap --help' for more information.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  std::vector<IpAddr> vips;
  for (const auto& v : vip_args) {
    IpAddr a;
    if (!parse_ip(v, a)) {
      std::cerr << "lbd-decap: --vip " << v << ": not an IPv4 or IPv6 address\n";
      return 2;
    }
    vips.push_back(a);
  }
  std::vector<Cidr> allowed;
  for (const auto& v : allow_args) {
    Cidr c;
    if (!parse_cidr(v, c)) {
      std::cerr << "lbd-decap: --allow-from " << v << ": not an IPv4 or IPv6 address or CIDR\n";
      return 2;
    }
    allowed.push_back(c);
  }
  if (vips.empty()) {
    std::cerr << "lbd-decap: at least one --vip is required\nTry 'lbd-decap --help' for more information.\n";
    return 2;
  }
  std::vector<uint16_t> gue_ports;
  for (const unsigned p : gue_port_args) {
    if (p == 0 || p > 65535) {
      std::cerr << "lbd-decap: --gue-port " << p << ": not a UDP port (1-65535)\n";
      return 2;
    }
    gue_ports.push_back(uint16_t(p));
  }
  const bool allow_any = vm.count("allow-any") > 0;
  if (allowed.empty() && !allow_any) {
    std::cerr << "lbd-decap: --allow-from is required: name the directors that tunnel to this host "
                 "(--allow-any accepts any source, for labs only)\n";
    return 2;
  }
  if (!allowed.empty() && allow_any) {
    std::cerr << "lbd-decap: --allow-from and --allow-any exclude each other\n";
    return 2;
  }
  try {
    return run(vips, allowed, allow_any, gue_ports, tun_name, vm.count("keep-arp-sysctls") > 0, state_dir);
  } catch (const std::exception& e) {
    LBD_LOG(kError, "decap", "{}", e.what());
    return 1;
  }
}

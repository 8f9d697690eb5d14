// lbd-decap: the real-server half of LVS TUN for hosts without the ipip, ip_gre or fou
// modules (most containers, this project's CI). It receives IPIP and GRE packets on raw
// IPPROTO_IPIP and IPPROTO_GRE sockets and GUE on a UDP socket per --gue-port, keeps those
// from an allowed director addressed to a configured VIP (forwarding/decap.*)
// and writes the inner datagrams to a TUN device, so the local stack receives them as if
// they had arrived directly; replies leave by the normal route, straight to the client.
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
#include <netinet/in.h>
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

// Brings `ifname` up and gives it each VIP as a /32 (libnl).
void configure_device(const std::string& ifname, const std::vector<Ipv4>& vips) {
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
  for (const Ipv4& vip : vips) {
    const Owned<rtnl_addr, rtnl_addr_put> a(rtnl_addr_alloc());
    const Owned<nl_addr, nl_addr_put> local(nl_addr_build(AF_INET, vip.b.data(), 4));
    if (!a || !local) throw std::runtime_error("netlink: out of memory");
    nl_addr_set_prefixlen(local.get(), 32);
    rtnl_addr_set_ifindex(a.get(), ifindex);
    rtnl_addr_set_local(a.get(), local.get());
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

// A UDP socket for GUE on `port` (every local address; IP_PKTINFO tells which one a
// datagram was sent to). The kernel checks the UDP checksum before it is delivered.
UniqueFd gue_socket(uint16_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw std::runtime_error(std::string("GUE socket: ") + std::strerror(errno));
  const int on = 1;
  if (setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0)
    throw std::runtime_error(std::string("GUE socket: IP_PKTINFO: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    throw std::runtime_error(fmt::format("GUE socket: UDP port {}: {}", port, std::strerror(errno)));
  return fd;
}

// Up to `budget` GUE datagrams from `fd`, each decapsulated and written to the TUN device.
void receive_gue(int fd, Decapsulator& decap, int tun_fd, std::vector<uint8_t>& buf, uint64_t& write_errors) {
  for (int budget = 64; budget > 0; --budget) {
    sockaddr_in from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return;
    Ipv4 dst{};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        std::memcpy(dst.b.data(), &info.ipi_addr, 4);  // the header's destination address
      }
    Ipv4 src;
    std::memcpy(src.b.data(), &from.sin_addr, 4);
    const auto inner = decap.handle_gue(src, dst, {buf.data(), size_t(n)});
    if (!inner.empty() && write(tun_fd, inner.data(), inner.size()) < 0) ++write_errors;
  }
}

int run(const std::vector<Ipv4>& vips, const std::vector<Cidr>& allowed, bool allow_any,
        const std::vector<uint16_t>& gue_ports, const std::string& tun_name, bool keep_arp,
        const std::string& state_dir) {
  const UniqueFd lock(claim_in_namespace("lbd-decap", "another lbd-decap is already running in this network namespace"));
  // IPIP and GRE arrive whole (outer header included) on raw sockets of their protocols; a
  // packet a raw socket takes draws no ICMP protocol-unreachable from the kernel.
  std::vector<UniqueFd> raw_socks;
  for (const int proto : {int(IPPROTO_IPIP), int(IPPROTO_GRE)}) {
    raw_socks.emplace_back(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto));
    if (!raw_socks.back())
      throw std::runtime_error(fmt::format("raw {} socket: {}", proto == IPPROTO_IPIP ? "IPIP" : "GRE", std::strerror(errno)));
  }
  std::vector<UniqueFd> gue_socks;
  for (const uint16_t port : gue_ports) gue_socks.push_back(gue_socket(port));
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

  LBD_LOG(kInfo, "decap", "decapsulating IPIP, GRE{} for {} into {}{}",
          gue_ports.empty() ? "" : fmt::format(" and GUE on UDP port {}", fmt::join(gue_ports, ", ")),
          fmt::join(vips, " "), tun.name(), allow_any ? " (from any source: --allow-any)" : "");

  Decapsulator decap(vips, allowed, allow_any);
  decap.set_local_addresses(local_ipv4_addresses());
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
  // Signals first, then the raw sockets, then the GUE sockets.
  std::vector<pollfd> pfds{{sfd, POLLIN, 0}};
  for (const auto& s : raw_socks) pfds.push_back({s.get(), POLLIN, 0});
  for (const auto& s : gue_socks) pfds.push_back({s.get(), POLLIN, 0});
  std::vector<uint8_t> gue_buf(kMax);
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
      decap.set_local_addresses(local_ipv4_addresses());
      addresses_at = now;
    }
    if (ready == 0) continue;
    for (size_t k = 1; k < pfds.size(); ++k) {
      if (!pfds[k].revents) continue;
      if (k > raw_socks.size()) {
        receive_gue(pfds[k].fd, decap, tun.fd(), gue_buf, write_errors);
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
      "stack. IPIP and GRE are always received; GUE on the UDP ports given.\nOptions");
  desc.add_options()
      ("help,h", "show this help and exit")
      ("vip", po::value<std::vector<std::string>>(&vip_args)->composing(),
       "a virtual IP this server serves (repeatable; required)")
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
  std::vector<Ipv4> vips;
  for (const auto& v : vip_args) {
    Ipv4 a;
    if (!parse_ipv4(v, a)) {
      std::cerr << "lbd-decap: --vip " << v << ": not an IPv4 address\n";
      return 2;
    }
    vips.push_back(a);
  }
  std::vector<Cidr> allowed;
  for (const auto& v : allow_args) {
    Cidr c;
    if (!parse_cidr(v, c)) {
      std::cerr << "lbd-decap: --allow-from " << v << ": not an IPv4 address or CIDR\n";
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

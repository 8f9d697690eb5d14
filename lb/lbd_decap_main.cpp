// lbd-decap: the real-server half of LVS TUN for hosts without the ipip module (most
// containers, this project's CI). It receives IPIP packets on a raw IPPROTO_IPIP socket,
// keeps those from an allowed director addressed to a configured VIP (forwarding/decap.*)
// and writes the inner datagrams to a TUN device, so the local stack receives them as if
// they had arrived directly; replies leave by the normal route, straight to the client.
//
// What it changes on the host, all undone at exit: the TUN device (the VIPs are its
// addresses, /32, so nothing else needs configuring), rp_filter 0 on that device, and
// unless --keep-arp-sysctls, net.ipv4.conf.all.arp_ignore=1 / arp_announce=2 (so the real
// server never answers ARP for a VIP) and a strict net.ipv4.conf.all.rp_filter relaxed to
// loose (2): strict mode would drop every client packet arriving on the TUN device.
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
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "forwarding/decap.hpp"
#include "lb/log.hpp"

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

// A sysctl set for our run and put back at exit.
class SysctlChange {
 public:
  SysctlChange(std::string path, std::string value) : path_(std::move(path)) {
    old_ = read_sysctl(path_);
    if (!old_) throw std::runtime_error(path_ + ": cannot read");
    if (*old_ == value) return;
    if (!write_sysctl(path_, value)) throw std::runtime_error(path_ + ": cannot write");
    changed_ = true;
    LBD_LOG(kInfo, "decap", "{}: {} -> {} (restored at exit)", path_, *old_, value);
  }
  ~SysctlChange() {
    if (changed_ && !write_sysctl(path_, *old_))
      LBD_LOG(kError, "decap", "{}: cannot restore {}", path_, *old_);
  }
  SysctlChange(const SysctlChange&) = delete;
  SysctlChange& operator=(const SysctlChange&) = delete;

 private:
  std::string path_;
  std::optional<std::string> old_;
  bool changed_ = false;
};

// The TUN device: exists while the fd is open, so it (and its addresses) vanish with us.
class TunDevice {
 public:
  explicit TunDevice(const std::string& name) {
    fd_ = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(std::string("/dev/net/tun: ") + std::strerror(errno));
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
    if (ioctl(fd_, TUNSETIFF, &ifr) < 0)
      throw std::runtime_error(name + ": cannot create TUN device: " + std::strerror(errno));
    name_ = ifr.ifr_name;
  }
  ~TunDevice() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }

 private:
  int fd_ = -1;
  std::string name_;
};

// Brings `ifname` up and gives it each VIP as a /32 (libnl).
void configure_device(const std::string& ifname, const std::vector<Ipv4>& vips) {
  nl_sock* sock = nl_socket_alloc();
  if (!sock || nl_connect(sock, NETLINK_ROUTE) < 0) throw std::runtime_error("netlink: cannot connect");
  nl_cache* links = nullptr;
  if (rtnl_link_alloc_cache(sock, AF_UNSPEC, &links) < 0) throw std::runtime_error("netlink: link dump");
  const int ifindex = rtnl_link_name2i(links, ifname.c_str());
  rtnl_link* link = rtnl_link_get(links, ifindex);
  rtnl_link* change = rtnl_link_alloc();
  rtnl_link_set_flags(change, IFF_UP);
  int err = link ? rtnl_link_change(sock, link, change, 0) : -NLE_OBJ_NOTFOUND;
  rtnl_link_put(change);
  if (link) rtnl_link_put(link);
  nl_cache_free(links);
  if (err < 0) throw std::runtime_error(ifname + ": cannot bring up: " + nl_geterror(err));
  for (const Ipv4& vip : vips) {
    rtnl_addr* a = rtnl_addr_alloc();
    nl_addr* local = nl_addr_build(AF_INET, vip.b.data(), 4);
    nl_addr_set_prefixlen(local, 32);
    rtnl_addr_set_ifindex(a, ifindex);
    rtnl_addr_set_local(a, local);
    err = rtnl_addr_add(sock, a, 0);
    nl_addr_put(local);
    rtnl_addr_put(a);
    if (err < 0)
      throw std::runtime_error(fmt::format("{}: cannot add {}: {}", ifname, to_string(vip), nl_geterror(err)));
  }
  nl_socket_free(sock);
}

std::string counters_line(const Decapsulator& d) {
  std::string s;
  for (int o = 0; o < Decapsulator::kOutcomeCount; ++o)
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ",
                     Decapsulator::outcome_name(Decapsulator::Outcome(o)),
                     d.count(Decapsulator::Outcome(o)));
  return s;
}

int run(const std::vector<Ipv4>& vips, const std::vector<Cidr>& allowed, const std::string& tun_name,
        bool keep_arp) {
  const int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_IPIP);
  if (raw < 0) throw std::runtime_error(std::string("raw IPIP socket: ") + std::strerror(errno));
  TunDevice tun(tun_name);
  std::vector<std::unique_ptr<SysctlChange>> sysctls;
  sysctls.push_back(std::make_unique<SysctlChange>(
      "/proc/sys/net/ipv4/conf/" + tun.name() + "/rp_filter", "0"));
  if (!keep_arp) {
    const std::string all = "/proc/sys/net/ipv4/conf/all/";
    if (read_sysctl(all + "arp_ignore").value_or("0") == "0")
      sysctls.push_back(std::make_unique<SysctlChange>(all + "arp_ignore", "1"));
    if (read_sysctl(all + "arp_announce").value_or("0") != "2")
      sysctls.push_back(std::make_unique<SysctlChange>(all + "arp_announce", "2"));
    if (read_sysctl(all + "rp_filter").value_or("0") == "1")
      sysctls.push_back(std::make_unique<SysctlChange>(all + "rp_filter", "2"));
  }
  configure_device(tun.name(), vips);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGUSR1);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  std::string vip_list;
  for (const Ipv4& v : vips) vip_list += (vip_list.empty() ? "" : " ") + to_string(v);
  LBD_LOG(kInfo, "decap", "decapsulating IPIP for {} into {}{}", vip_list, tun.name(),
          allowed.empty() ? " (from any source)" : "");

  Decapsulator decap(vips, allowed);
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
  pollfd pfds[2] = {{raw, POLLIN, 0}, {sfd, POLLIN, 0}};
  for (bool running = true; running;) {
    if (poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LBD_LOG(kError, "decap", "poll: {}", std::strerror(errno));
      break;
    }
    if (pfds[0].revents) {
      const int n = recvmmsg(raw, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      for (int i = 0; i < n; ++i) {
        const auto inner = decap.handle({bufs.data() + size_t(i) * kMax, msgs[size_t(i)].msg_len});
        if (!inner.empty() && write(tun.fd(), inner.data(), inner.size()) < 0) ++write_errors;
      }
    }
    if (pfds[1].revents) {
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
  close(sfd);
  close(raw);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> vip_args, allow_args;
  std::string tun_name = "lbdtun0";
  po::options_description desc(
      "Usage: lbd-decap --vip VIP [--vip VIP ...] [options]\n\n"
      "The real-server side of lbd's IPIP tunnelling (ipvsadm -i): delivers the packets a\n"
      "director tunnels to this host for the given VIPs to the local stack.\nOptions");
  desc.add_options()
      ("help,h", "show this help and exit")
      ("vip", po::value<std::vector<std::string>>(&vip_args)->composing(),
       "a virtual IP this server serves (repeatable; required)")
      ("allow-from", po::value<std::vector<std::string>>(&allow_args)->composing(),
       "accept tunnelled packets only from this director address or CIDR (repeatable; "
       "default: any)")
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
  try {
    return run(vips, allowed, tun_name, vm.count("keep-arp-sysctls") > 0);
  } catch (const std::exception& e) {
    LBD_LOG(kError, "decap", "{}", e.what());
    return 1;
  }
}

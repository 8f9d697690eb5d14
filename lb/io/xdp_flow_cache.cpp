// The XDP program's loader and maps; see xdp_flow_cache.hpp.
#include "lb/io/xdp_flow_cache.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "lb/base/log.hpp"

// The program's object file, built by CMake from forwarding/xdp/flow_cache.bpf.c.
extern "C" const unsigned char lbd_flow_cache_object[];
extern "C" const unsigned long lbd_flow_cache_object_size;

namespace lbd {
namespace {

// Linux's netdev netlink family (include/uapi/linux/netdev.h, 6.3; Debian 12's headers are 6.1).
constexpr int kNetdevCmdDevGet = 1;
constexpr int kNetdevAttrIfindex = 1;
constexpr int kNetdevAttrXdpFeatures = 3;

int libbpf_log(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  const int n = std::vsnprintf(line, sizeof line, format, args);
  std::string text(line, n > 0 ? std::min<size_t>(size_t(n), sizeof line - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty()) LBD_LOG(kInfo, "offload", "libbpf: {}", text);
  return 0;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// The name of the program with this id, "" when it cannot be read.
std::string program_name(uint32_t id) {
  const UniqueFd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) return "";
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 ? std::string(info.name) : "";
}

}  // namespace

const char* to_string(XdpMode m) { return m == XdpMode::kNative ? "native" : "generic"; }

std::string driver_name(const std::string& ifname) {
  const UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return "";
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  return ioctl(fd.get(), SIOCETHTOOL, &ifr) == 0 ? std::string(info.driver) : "";
}

std::optional<uint64_t> xdp_features(int ifindex) {
  const Owned<nl_sock, nl_socket_free> sock(nl_socket_alloc());
  nl_sock* sk = sock.get();
  if (!sk) return std::nullopt;
  std::optional<uint64_t> result;
  Owned<nl_msg, nlmsg_free> message;
  if (genl_connect(sk) == 0) {
    const int family = genl_ctrl_resolve(sk, "netdev");
    if (family >= 0) message.reset(nlmsg_alloc());
    nl_msg* msg = message.get();
    if (msg && genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, kNetdevCmdDevGet, 1) &&
        nla_put_u32(msg, kNetdevAttrIfindex, uint32_t(ifindex)) == 0 && nl_send_auto(sk, msg) >= 0) {
      auto parse = [](nl_msg* m, void* arg) -> int {
        nlattr* attrs[kNetdevAttrXdpFeatures + 1] = {};
        if (genlmsg_parse(nlmsg_hdr(m), 0, attrs, kNetdevAttrXdpFeatures, nullptr) == 0 &&
            attrs[kNetdevAttrXdpFeatures])
          *static_cast<std::optional<uint64_t>*>(arg) = nla_get_u64(attrs[kNetdevAttrXdpFeatures]);
        return NL_OK;
      };
      nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, parse, &result);
      nl_recvmsgs_default(sk);
    }
  }
  return result;
}

XdpFlowCache::XdpFlowCache(uint32_t entries, uint32_t workers) : entries_(entries), workers_(workers) {
  libbpf_set_print(libbpf_log);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "lbd_flow_cache");
  obj_.reset(bpf_object__open_mem(lbd_flow_cache_object, lbd_flow_cache_object_size, &opts));
  if (!obj_) throw std::runtime_error(fmt::format("cannot open the XDP program: {}", errno_text(errno)));
  bpf_object* obj = obj_.get();
  bpf_map* flows = bpf_object__find_map_by_name(obj, "lbd_flows");
  if (!flows || bpf_map__set_max_entries(flows, entries) ||
      bpf_map__set_map_flags(flows, bpf_map__map_flags(flows) | BPF_F_NO_PREALLOC))
    throw std::runtime_error("the XDP program has no flow map");
  bpf_map* use = bpf_object__find_map_by_name(obj, "lbd_real_use");
  if (!use || bpf_map__set_max_entries(use, 2 * LBD_XDP_MAX_REALS * workers))
    throw std::runtime_error("the XDP program has no use map");
  if (const int err = bpf_object__load(obj))
    throw std::runtime_error(fmt::format("cannot load the XDP program: {}", errno_text(err)));
  prog_fd_ = bpf_program__fd(bpf_object__find_program_by_name(obj, LBD_XDP_PROG_NAME));
  flows_fd_ = bpf_map__fd(flows);
  reals_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj, "lbd_reals"));
  tx_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj, "lbd_tx_ok"));
  use_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj, "lbd_real_use"));
  stats_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj, "lbd_stats"));
  cpus_ = std::max(libbpf_num_possible_cpus(), 1);
}

XdpFlowCache::~XdpFlowCache() {
  attached_.clear();  // the links first (each detaches its program), then the object
  obj_.reset();
}

Status XdpFlowCache::attach(int ifindex, const std::string& name, XdpMode mode) {
  // A BPF link, not a netlink attachment: the kernel detaches the program when lbd's last
  // descriptor of it closes, so even a killed lbd leaves nothing attached.
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = mode == XdpMode::kNative ? uint32_t(XDP_FLAGS_DRV_MODE)
                                                                                : uint32_t(XDP_FLAGS_SKB_MODE));
  const int fd = bpf_link_create(prog_fd_, ifindex, BPF_XDP, &opts);
  if (fd >= 0) {
    attached_.push_back({ifindex, UniqueFd(fd), name});
    return Status::ok();
  }
  const int err = -fd;
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if ((err == EBUSY || err == EEXIST) && bpf_xdp_query(ifindex, 0, &q) == 0 && q.prog_id) {
    // Its name needs CAP_SYS_ADMIN (BPF_PROG_GET_FD_BY_ID), which the unit does not grant.
    const std::string other = program_name(q.prog_id);
    return Status::error(EBUSY, fmt::format("another XDP program is attached ({}id {}): not replacing it",
                                            other.empty() ? "" : other + ", ", q.prog_id));
  }
  return Status::error(err, fmt::format("cannot attach in {} mode: {}", mode, errno_text(err)));
}

void XdpFlowCache::detach(int ifindex) {
  allow_tx(ifindex, false);
  std::erase_if(attached_, [&](const Attached& a) { return a.ifindex == ifindex; });  // closes its link
}

void XdpFlowCache::allow_tx(int ifindex, bool allowed) {
  const uint32_t key = uint32_t(ifindex), one = 1;
  if (allowed)
    bpf_map_update_elem(tx_fd_, &key, &one, BPF_ANY);
  else
    bpf_map_delete_elem(tx_fd_, &key);
}

std::array<uint64_t, LBD_XDP_STAT_COUNT> XdpFlowCache::stats() const {
  std::array<uint64_t, LBD_XDP_STAT_COUNT> total{};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus_));
  for (uint32_t i = 0; i < LBD_XDP_STAT_COUNT; ++i) {
    if (bpf_map_lookup_elem(stats_fd_, &i, per_cpu.data())) continue;
    for (uint64_t v : per_cpu) total[i] += v;
  }
  return total;
}

bool XdpFlowCache::put(const lbd_flow_key& key, const lbd_flow& flow) {
  return bpf_map_update_elem(flows_fd_, &key, &flow, BPF_ANY) == 0;
}

void XdpFlowCache::erase(const lbd_flow_key& key) { bpf_map_delete_elem(flows_fd_, &key); }

bool XdpFlowCache::get(const lbd_flow_key& key, lbd_flow& flow) {
  return bpf_map_lookup_elem(flows_fd_, &key, &flow) == 0;
}

bool XdpFlowCache::take(const lbd_flow_key& key, lbd_flow& flow) {
  return bpf_map_lookup_and_delete_elem(flows_fd_, &key, &flow) == 0;
}

void XdpFlowCache::for_each(const std::function<void(const lbd_flow_key&, const lbd_flow&)>& f) {
  constexpr uint32_t kBatch = 4096;
  std::vector<lbd_flow_key> keys(kBatch);
  std::vector<lbd_flow> values(kBatch);
  lbd_flow_key token{};
  bool first = true;
  for (;;) {
    uint32_t n = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    const int err = bpf_map_lookup_batch(flows_fd_, first ? nullptr : &token, &token, keys.data(),
                                         values.data(), &n, &opts);
    first = false;
    for (uint32_t i = 0; i < n; ++i) f(keys[i], values[i]);
    if (err) break;  // -ENOENT: the walk is done (n holds the last entries)
  }
}

void XdpFlowCache::set_real(uint32_t real_id, const lbd_real_hop& hop) {
  bpf_map_update_elem(reals_fd_, &real_id, &hop, BPF_ANY);
}

lbd_real_use XdpFlowCache::real_use_of(uint32_t worker, uint32_t real_id, bool reply) {
  lbd_real_use total{};
  std::vector<lbd_real_use> per_cpu(static_cast<size_t>(cpus_));
  const uint32_t key = (worker * LBD_XDP_MAX_REALS + real_id) * 2 + reply;
  if (real_id < LBD_XDP_MAX_REALS && worker < workers_ && bpf_map_lookup_elem(use_fd_, &key, per_cpu.data()) == 0)
    for (const auto& u : per_cpu) {
      total.packets += u.packets;
      total.bytes += u.bytes;
    }
  return total;
}

}  // namespace lbd

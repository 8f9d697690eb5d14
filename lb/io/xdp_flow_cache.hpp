// The fast path in the kernel: lbd's XDP program (forwarding/xdp/flow_cache.bpf.c, built
// into lbd) attached to the capture interfaces, and its maps behind the FlowCache the data
// path writes. It attaches through BPF links, which the kernel releases with lbd's last
// descriptor of them: whatever way lbd ends, even killed, nothing of it stays attached.
// Another program already on an interface is left alone (that interface has no offload).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lb/base/owned.hpp"
#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/core/flow_cache.hpp"

struct bpf_object;
extern "C" void bpf_object__close(bpf_object* object);

namespace lbd {

enum class XdpMode { kNative, kGeneric };
const char* to_string(XdpMode m);

// The interface's XDP features (NETDEV_XDP_ACT_*) from the kernel's netdev netlink family
// (Linux 6.3+); nullopt when the kernel cannot tell.
std::optional<uint64_t> xdp_features(int ifindex);
inline constexpr uint64_t kXdpActBasic = 1, kXdpActNdoXmit = 4;
// The interface's driver ("veth", "mlx5_core", ...), "" when it cannot be read.
std::string driver_name(const std::string& ifname);

class XdpFlowCache final : public FlowCache {
 public:
  // Loads the program with room for `entries` flows (allocated as they are used) and the
  // use counters of `workers` workers. Throws std::runtime_error with the reason (no BPF
  // permission, a kernel without XDP, ...).
  explicit XdpFlowCache(uint32_t entries, uint32_t workers = 1);
  ~XdpFlowCache() override;
  XdpFlowCache(const XdpFlowCache&) = delete;
  XdpFlowCache& operator=(const XdpFlowCache&) = delete;

  // Attaches to the interface, or why it could not.
  Status attach(int ifindex, const std::string& name, XdpMode mode);
  // The interface is gone: its link closed (the kernel has detached it), no transmit on it.
  void detach(int ifindex);
  // Whether the program may transmit on the interface (XDP_TX, or a redirect into it).
  void allow_tx(int ifindex, bool allowed);
  size_t attached() const { return attached_.size(); }

  // The program's counters (lbd_xdp_stat), summed over the CPUs, and their names.
  static constexpr const char* kStatNames[LBD_XDP_STAT_COUNT] = {
      "forwarded", "bytes", "miss", "state", "real_off", "too_big", "partial_csum", "no_tx"};
  std::array<uint64_t, LBD_XDP_STAT_COUNT> stats() const;
  uint32_t capacity() const { return entries_; }

  bool put(const lbd_flow_key& key, const lbd_flow& flow) override;
  void erase(const lbd_flow_key& key) override;
  bool get(const lbd_flow_key& key, lbd_flow& flow) override;
  bool take(const lbd_flow_key& key, lbd_flow& flow) override;
  void for_each(const std::function<void(const lbd_flow_key&, const lbd_flow&)>& f) override;
  void set_real(uint32_t real_id, const lbd_real_hop& hop) override;
  lbd_real_use real_use(uint32_t real_id, bool reply) override { return real_use_of(0, real_id, reply); }
  // What the program forwarded for `real_id` on connections of this worker.
  lbd_real_use real_use_of(uint32_t worker, uint32_t real_id, bool reply);
  uint32_t workers() const { return workers_; }

  // For tests: the program's fd (BPF_PROG_TEST_RUN).
  int program_fd() const { return prog_fd_; }

 private:
  struct Attached {
    int ifindex;
    UniqueFd link;  // closing it detaches the program
    std::string name;
  };
  Owned<bpf_object, bpf_object__close> obj_;
  int prog_fd_ = -1, flows_fd_ = -1, reals_fd_ = -1, use_fd_ = -1, tx_fd_ = -1, stats_fd_ = -1;
  int cpus_ = 1;
  uint32_t entries_ = 0;
  uint32_t workers_ = 1;
  std::vector<Attached> attached_;
};

}  // namespace lbd

template <>
struct fmt::formatter<lbd::XdpMode> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(lbd::XdpMode m, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(lbd::to_string(m), ctx);
  }
};

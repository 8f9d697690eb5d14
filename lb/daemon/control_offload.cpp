// The control thread's setup of the XDP flow cache and the workers' fanout groups; see
// control.hpp.
#include "lb/daemon/control.hpp"

#include <algorithm>

#include "lb/base/log.hpp"

namespace lbd {

void Control::start_offload() {
  if (cfg_.offload == "off") {
    LBD_LOG(kInfo, "offload", "off (--offload off): lbd forwards every packet itself");
    return;
  }
  // Native XDP where every interface can transmit XDP frames (XDP_TX, redirects); generic
  // (after the kernel has built the packet) elsewhere: it always can.
  std::string why_not_native;
  for (auto& c : interfaces_) {
    const auto f = xdp_features(c.ifindex);
    if (!why_not_native.empty()) continue;
    if (!f)
      why_not_native = "the kernel does not report XDP features (Linux < 6.3)";
    else if (!(*f & kXdpActBasic))
      why_not_native = c.name + "'s driver has no native XDP";
    else if (!(*f & kXdpActNdoXmit))
      why_not_native = c.name + " cannot transmit XDP frames";
    else if (driver_name(c.name) == "veth")
      // Its peer may take XDP frames by GRO alone, where they wait in its ring (measured):
      // native only when asked (--offload xdp-native, with an XDP program on the peer).
      why_not_native = c.name + " is a veth (native needs an XDP program on its peer: --offload xdp-native)";
  }
  xdp_mode_ = cfg_.offload == "xdp-native"    ? XdpMode::kNative
              : cfg_.offload == "xdp-generic" ? XdpMode::kGeneric
              : why_not_native.empty()        ? XdpMode::kNative
                                              : XdpMode::kGeneric;
  const uint32_t flows = cfg_.offload_flows ? cfg_.offload_flows
                                            : uint32_t(std::min<uint64_t>(2ull * cfg_.max_connections, 1u << 20));
  try {
    xdp_ = std::make_unique<XdpFlowCache>(flows, uint32_t(workers_.size()));
  } catch (const std::exception& e) {
    LBD_LOG(kWarn, "offload", "off: {}; lbd forwards every packet itself", e.what());
    return;
  }
  std::string names;
  for (const HopInterface& c : interfaces_) {
    if (!attach_offload(c)) continue;
    names += (names.empty() ? "" : ", ") + c.name + (xdp_tx_.back().second ? "" : " (cannot transmit: its packets go to lbd)");
  }
  if (!xdp_->attached()) {
    xdp_.reset();
    LBD_LOG(kWarn, "offload", "off: attached to no interface; lbd forwards every packet itself");
    return;
  }
  for (auto& w : workers_) w->set_flow_cache(xdp_.get());
  LBD_LOG(kInfo, "offload", "XDP flow cache on {} in {} mode, {} flows at most{}", names, xdp_mode_,
          flows, xdp_mode_ == XdpMode::kGeneric && cfg_.offload == "xdp" ? " (not native: " + why_not_native + ")" : "");
}

bool Control::attach_offload(const HopInterface& c) {
  if (const Status st = xdp_->attach(c.ifindex, c.name, xdp_mode_); !st.is_ok()) {
    LBD_LOG(kWarn, "offload", "{}: no offload on this interface: {}", c.name, st.message());
    return false;
  }
  const bool tx = xdp_mode_ == XdpMode::kGeneric || (xdp_features(c.ifindex).value_or(0) & kXdpActNdoXmit);
  xdp_->allow_tx(c.ifindex, tx);
  xdp_tx_.push_back({c.ifindex, tx});
  return true;
}

void Control::watch_offload_tx() {
  if (!xdp_ || xdp_mode_ != XdpMode::kNative) return;
  for (auto& [ifindex, tx] : xdp_tx_) {
    const auto f = xdp_features(ifindex);
    if (!f) continue;
    const bool now = *f & kXdpActNdoXmit;
    if (now == tx) continue;
    tx = now;
    xdp_->allow_tx(ifindex, now);
    if (!now) ++xdp_tx_lost_;
    LBD_LOG(kWarn, "offload", "interface {} {}", ifindex,
            now ? "takes XDP frames again: the fast path sends on it"
                : "no longer takes XDP frames (its veth peer lost its XDP program or GRO): lbd sends its packets");
  }
}

void Control::start_steering() {
  if (workers_.size() < 2) return;
  steering_ = std::make_unique<Steering>(uint32_t(workers_.size()));
  for (size_t i = 0; i < interfaces_.size(); ++i)
    for (const CaptureClass cls : kCaptureClasses) {  // a group per interface and class
      int group = -1;  // a new group (the kernel's first id is 0)
      for (auto& w : workers_)
        w->captures(cls)[i]->join_fanout(group, w->index() == 0 ? steering_->program_fd() : -1);
    }
}

}  // namespace lbd

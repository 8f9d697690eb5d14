// The fanout program's loader and maps; see steering.hpp.
#include "lb/io/steering.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "forwarding/xdp/steer_abi.h"

// Built by CMake from forwarding/xdp/steer.bpf.c.
extern "C" const unsigned char lbd_steer_object[];
extern "C" const unsigned long lbd_steer_object_size;

namespace lbd {

uint32_t steer_worker(Ipv4 client, Ipv4 mask, uint32_t workers) {
  return lbd_steer_worker(client.host() & mask.host(), workers);
}

uint32_t steer_worker(const IpAddr& client, Ipv4 mask, uint8_t prefix6, uint32_t workers) {
  if (!client.v6()) return steer_worker(client.v4(), mask, workers);
  return lbd_steer_worker(lbd_steer_fold6(client.b.data(), prefix6), workers);
}

Steering::Steering(uint32_t workers) : workers_(workers) {
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "lbd_steer");
  obj_.reset(bpf_object__open_mem(lbd_steer_object, lbd_steer_object_size, &opts));
  if (!obj_) throw std::runtime_error(fmt::format("cannot open the fanout program: {}", std::strerror(errno)));
  if (const int err = bpf_object__load(obj_.get()))
    throw std::runtime_error(fmt::format("cannot load the fanout program: {}", std::strerror(-err)));
  prog_fd_ = bpf_program__fd(bpf_object__find_program_by_name(obj_.get(), LBD_STEER_PROG_NAME));
  config_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_.get(), "lbd_steer_config"));
  vips_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_.get(), "lbd_steer_vips"));
  vips6_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_.get(), "lbd_steer_vips6"));
  gue_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_.get(), "lbd_steer_gue"));
  if (const Status st = configure({}, Ipv4{{255, 255, 255, 255}}); !st.is_ok()) throw std::runtime_error(st.message());
}

Steering::~Steering() = default;

Status Steering::configure(const std::vector<IpAddr>& vips, Ipv4 mask, uint8_t prefix6,
                           const std::vector<uint16_t>& gue_ports) {
  std::vector<IpAddr> want = vips;
  auto less = [](const IpAddr& a, const IpAddr& b) { return a < b; };
  std::sort(want.begin(), want.end(), less);
  want.erase(std::unique(want.begin(), want.end()), want.end());
  if (want.size() > LBD_STEER_MAX_VIPS)
    return Status::error(E2BIG, fmt::format("{} VIPs: the fanout program steers {} at most", want.size(),
                                            LBD_STEER_MAX_VIPS));
  // Additions first: a frame to a VIP is never steered as a reply meanwhile.
  std::vector<IpAddr> gone;
  std::set_difference(vips_.begin(), vips_.end(), want.begin(), want.end(), std::back_inserter(gone), less);
  std::vector<IpAddr> added;
  std::set_difference(want.begin(), want.end(), vips_.begin(), vips_.end(), std::back_inserter(added), less);
  const uint32_t one = 1;
  // Each family's map keys its addresses' own bytes (4 or 16).
  for (const IpAddr& a : added)
    if (bpf_map_update_elem(a.v6() ? vips6_fd_ : vips_fd_, a.bytes().data(), &one, BPF_ANY))
      return Status::error(errno, fmt::format("fanout VIP map: {}", std::strerror(errno)));
  for (const IpAddr& a : gone) bpf_map_delete_elem(a.v6() ? vips6_fd_ : vips_fd_, a.bytes().data());
  vips_ = std::move(want);
  const uint32_t key = 0;
  std::vector<uint16_t> ports = gue_ports;
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  if (ports != gue_ports_) {
    for (uint16_t p : gue_ports_) bpf_map_delete_elem(gue_fd_, &p);
    for (uint16_t p : ports)
      if (bpf_map_update_elem(gue_fd_, &p, &one, BPF_ANY))
        return Status::error(errno, fmt::format("fanout GUE port map: {}", std::strerror(errno)));
    gue_ports_ = std::move(ports);
  }
  const lbd_steer_config cfg{workers_, mask.host(), prefix6};
  if (bpf_map_update_elem(config_fd_, &key, &cfg, BPF_ANY))
    return Status::error(errno, fmt::format("fanout configuration map: {}", std::strerror(errno)));
  return Status::ok();
}

}  // namespace lbd

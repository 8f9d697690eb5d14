// The connection sync daemon's sockets (IPVS's, ip_vs_sync.c make_send_sock and
// make_receive_sock): UDP on the multicast group and port, bound to the sync interface. The
// master's socket sends with the configured TTL, loopback off; the backup's has joined
// the group on the interface and takes only that group's datagrams.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lb/base/status.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/core/sync_message.hpp"

namespace lbd {

struct SyncSocket {
  UniqueFd fd;
  sockaddr_in group{};  // where a master sends
  uint32_t maxlen = 0;  // the message size a master fills (given, or from the MTU)
};

// Opened for `role` ("master" or "backup"), non-blocking; an error names the interface
// and the call that failed.
Result<SyncSocket> open_sync_socket(const sync::DaemonSpec& spec, bool master);

// One datagram sent without blocking; false if the kernel refused it.
bool send_sync_message(int fd, const sockaddr_in& to, std::span<const uint8_t> msg);

}  // namespace lbd

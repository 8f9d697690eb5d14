// IPVS's sysctls that change what a director does (net.ipv4.vs.*, ipvs-sysctl.rst), as
// lbd's run-time settings: `lbadm --lbd-sysctl NAME=VALUE` (saved by -S, so a rules file
// carries them), `lbd --sysctl NAME=VALUE` (a systemd drop-in's LBD_OPTS). Defaults are
// IPVS's. Every table copy (the control thread's, each worker's) holds the same values,
// changed as any command is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lb/base/status.hpp"

namespace lbd {

struct Sysctls {
  // TCP: any packet but a RST may create a connection, not only a SYN (IPVS
  // tcp_conn_schedule): a director that has never seen a flow (restarted, or another one
  // behind ECMP) carries it on, with mh picking the same real.
  uint32_t sloppy_tcp = 0;
  // A packet of a connection whose real was deleted: 0 drops it; 1 ends the connection
  // there and treats the packet as a new one (a SYN is scheduled afresh).
  uint32_t expire_nodest_conn = 0;
  // A persistence template whose real has weight 0 is expired when next used (its client
  // is scheduled afresh) instead of keeping the client on the quiesced real.
  uint32_t expire_quiescent_template = 0;
  // A new SYN on an entry: 0 reuses it (the old real); bit 1: a TIME_WAIT or CLOSE entry
  // not under a template is rescheduled; bit 2: also FIN_WAIT for DR and TUN (no replies seen).
  uint32_t conn_reuse_mode = 1;
  // A NAT real's packet from its service port with no connection: 1 answers it with ICMP
  // port unreachable (not a RST) instead of dropping it silently.
  uint32_t nat_icmp_send = 0;
  // Accepted at the values lbd behaves as (see the README), other values refused: the
  // lblc and lblcr caches' expiry 24 h; secure_tcp, drop_entry and drop_packet 0 (lbd's
  // SYN-flood defence is its own), amemthresh as set (no effect while those are 0),
  // schedule_icmp 0, ignore_tunneled 1 (lbd never decapsulates).
  uint32_t lblc_expiration = 24 * 60 * 60, lblcr_expiration = 24 * 60 * 60;
  uint32_t secure_tcp = 0, drop_entry = 0, drop_packet = 0, amemthresh = 1024, schedule_icmp = 0;
  uint32_t ignore_tunneled = 1;
  // Connection sync (ipvsadm --start-daemon). backup_only: while lbd runs only a backup
  // sync daemon it forwards nothing (a standby director never carries traffic beside the
  // master). lbd's default is 1 where IPVS's is 0: a backup with the master's rules would
  // otherwise forward whatever reaches it, with connections it knows only from sync.
  // sync_persist_mode 1: a connection under a persistence template is not sent, only its
  // template. sync_version: 1 only.
  uint32_t backup_only = 1, sync_persist_mode = 0, sync_version = 1;
  // When a master sends a connection (IPVS ip_vs_sync_conn_needed): sync_threshold
  // "THRESHOLD,PERIOD" (IPVS writes it "3 50"): when its packet count modulo PERIOD is
  // THRESHOLD (PERIOD 0: once, at THRESHOLD); sync_refresh_period (seconds, 0: off): not
  // again while its expiry moved by less than this (or half its timeout, at least 10 s),
  // except sync_retries more times, each after an eighth of the period.
  uint32_t sync_threshold = 3, sync_period = 50, sync_refresh_period = 0, sync_retries = 0;
  friend bool operator==(const Sysctls&, const Sysctls&) = default;
};

struct SysctlDef {
  const char* name;
  uint32_t Sysctls::*field;
  uint32_t min, max;
  uint32_t Sysctls::*second = nullptr;  // a sysctl of two numbers (sync_threshold): "A,B"
};
// Every sysctl lbd takes, in the order --lbd-sysctl lists them.
extern const std::vector<SysctlDef> kSysctlDefs;

// A sysctl's value as lbd writes and reads it ("3,50" for two numbers).
std::string sysctl_value(const Sysctls& s, const SysctlDef& d);
// "NAME=VALUE" set in `s`; EINVAL naming what is wrong (nothing changed), also for a
// value lbd cannot behave as (a sysctl whose other values are not implemented).
Status set_sysctl(Sysctls& s, std::string_view assignment);
// "NAME=VALUE" of every sysctl that differs from IPVS's default (-S), in kSysctlDefs' order.
std::vector<std::string> changed_sysctls(const Sysctls& s);
// "NAME = VALUE" lines, every sysctl (lbadm --lbd-sysctl).
std::string sysctl_listing(const Sysctls& s);

}  // namespace lbd

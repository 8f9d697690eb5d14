/* Steering among lbd's workers, shared by the fanout program (steer.bpf.c) and lbd (C++).
 * Each worker owns the connections of the clients that hash to it, whatever direction a
 * packet goes: a client's packet (to a VIP) by its source, a NAT real's reply by its
 * destination, an ICMP error by the client its quoted packet names. The hash is of the
 * client's address alone (masked to the widest persistence netmask configured): the later
 * fragments of a datagram carry no ports, and a persistent client's connections must all
 * meet its template, so the port would send both to the wrong worker. */
#ifndef LBD_XDP_STEER_ABI_H
#define LBD_XDP_STEER_ABI_H

#include <linux/types.h>

#define LBD_STEER_PROG_NAME "lbd_steer"
#define LBD_STEER_MAX_VIPS 65536
#define LBD_STEER_MAX_WORKERS 64
/* lbd_steer_gue: the GUE reals' --tun-port (host byte order -> 1): an ICMP error quoting
 * UDP to one of them is about lbd's GUE packet, the client inside it. */
#define LBD_STEER_MAX_GUE_PORTS 1024

/* lbd_steer_config[0]. */
struct lbd_steer_config {
  __u32 workers;  /* 0 or 1: everything to worker 0 */
  __u32 mask;     /* host byte order: the client address bits that choose the worker */
};

/* The worker of a client (address in host byte order, already masked). The same function
 * in the program and in lbd, so lbd's tests and benchmarks shard as the kernel steers. */
static inline __u32 lbd_steer_worker(__u32 client, __u32 workers) {
  __u64 x = (__u64)client * 0x9e3779b97f4a7c15ULL;
  __u32 h = (__u32)(x >> 32);
  return workers > 1 ? h % workers : 0;
}

#endif

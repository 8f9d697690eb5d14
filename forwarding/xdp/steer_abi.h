/* Steering among lbd's workers, shared by the fanout program (steer.bpf.c) and lbd (C++).
 * Each worker owns the connections of the clients that hash to it, whatever direction a
 * packet goes: a client's packet (to a VIP) by its source, a NAT real's reply by its
 * destination, an ICMP error by the client its quoted packet names. The hash is of the
 * client's address alone (masked to the widest persistence netmask configured): the later
 * fragments of a datagram carry no ports, and a persistent client's connections must all
 * meet its template, so the port would send both to the wrong worker. An IPv6 client's
 * address counts by its first `prefix6` bits (the widest IPv6 persistence prefix), its four
 * words XORed into 32 (IPVS's fold of an IPv6 address), then hashed as IPv4's. */
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
  __u32 prefix6;  /* an IPv6 client's: its first prefix6 bits (0-128) */
};

/* The worker of a client (address in host byte order, already masked). The same function
 * in the program and in lbd, so lbd's tests and benchmarks shard as the kernel steers. */
static inline __u32 lbd_steer_worker(__u32 client, __u32 workers) {
  __u64 x = (__u64)client * 0x9e3779b97f4a7c15ULL;
  __u32 h = (__u32)(x >> 32);
  return workers > 1 ? h % workers : 0;
}

/* An IPv6 client's 32 bits: its first `prefix6` bits, the four words XORed. */
static inline __u32 lbd_steer_fold6(const __u8 *a, __u32 prefix6) {
  __u32 r = 0;
#ifdef __bpf__
#pragma unroll
#endif
  for (int w = 0; w < 4; ++w) {
    const __u32 word = (__u32)a[4 * w] << 24 | (__u32)a[4 * w + 1] << 16 | (__u32)a[4 * w + 2] << 8 | a[4 * w + 3];
    const int bits = (int)prefix6 - 32 * w;
    const __u32 m = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0 : ~(0xffffffffu >> bits);
    r ^= word & m;
  }
  return r;
}

#endif

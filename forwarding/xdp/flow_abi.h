/* The XDP flow cache's maps, shared by the program (flow_cache.bpf.c) and lbd (C++).
 * Only lbd writes entries; the program writes only the use fields (packets, bytes, last_ns)
 * and its per-CPU counters. Every multi-byte address and port is in network byte order. */
#ifndef LBD_XDP_FLOW_ABI_H
#define LBD_XDP_FLOW_ABI_H

#include <linux/types.h>

/* What a hit does. */
#define LBD_FLOW_DR 1      /* the real's MAC, packet untouched */
#define LBD_FLOW_NAT_IN 2  /* client -> real: destination becomes addr:port */
#define LBD_FLOW_NAT_OUT 3 /* a NAT real's reply -> client: source becomes addr:port */
#define LBD_FLOW_TUN 4     /* in the real's tunnel (lbd_real_hop.tun_type) */

/* The tunnels the program takes (IPVS's types; GUE and GRE without checksums: those, a
 * pass over the packet each, stay on lbd's path). */
#define LBD_TUN_IPIP 0
#define LBD_TUN_GUE 1
#define LBD_TUN_GRE 2

/* GUE's UDP source port of a flow (addresses and ports in host byte order), a hash in the
 * local port range 32768-60999 as the kernel's udp_flow_src_port(): the same in lbd's slow
 * path and the program, so a flow keeps one port whichever path takes its packets. */
static inline __u16 lbd_gue_sport(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 protocol) {
  __u64 h = (__u64)saddr << 32 | daddr;
  h ^= (__u64)sport << 24 ^ (__u64)dport << 8 ^ protocol;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return (__u16)(32768 + (((h & 0xffffffffULL) * (60999 - 32768)) >> 32));
}

/* A packet's key as it arrives: a client's packet has its connection's key, a NAT reply
 * its reply key. Addresses are 16 bytes, lbd's IpAddr: IPv6 as it is, IPv4 mapped
 * (::ffff:a.b.c.d), so one table holds both families. */
struct lbd_flow_key {
  __u8 saddr[16], daddr[16];
  __be16 sport, dport;
  __u8 protocol;
  __u8 pad[3];
};

struct lbd_flow {
  __u32 real_id;    /* lbd_reals index: whether the real takes fast-path packets, its next hop */
  __u8 action;      /* LBD_FLOW_* */
  __u8 worker;      /* the lbd worker that owns the connection: its lbd_real_use slots */
  __be16 port;      /* NAT: the new port */
  __u8 addr[16];    /* NAT: the new address (IPv4 mapped, as the key's) */
  /* NAT_OUT: where the client is (its L2 neighbour on this interface). */
  __u32 ifindex;
  __u16 mtu;
  __u8 eth_dst[6];
  __u8 eth_src[6];
  __u8 pad1[6];
  /* Written by the program. */
  __u64 packets;
  __u64 bytes;      /* IP lengths, as lbd counts them */
  __u64 last_ns;    /* bpf_ktime_get_ns() of the last packet (CLOCK_MONOTONIC) */
};

/* A real's next hop, as lbd resolved it. ifindex 0: the real takes no fast-path packet
 * (deleted, down with on-down=expire, next hop unresolved): they go to lbd. */
struct lbd_real_hop {
  __u32 ifindex;
  __u16 mtu;        /* the largest IP packet the hop takes (TUN: outer, path MTU included) */
  __u8 eth_dst[6];
  __u8 eth_src[6];
  __u8 tun_type;    /* TUN: LBD_TUN_* */
  __u8 pad;
  __be32 tun_src, tun_dst;
  __be16 tun_port;  /* GUE: the UDP destination port */
  __u16 pad2;
};

/* What the program forwarded for a real (lbd_real_use, per CPU, index (worker *
 * LBD_XDP_MAX_REALS + real_id) * 2, + 0 for the client's packets, + 1 for a NAT real's
 * replies): each lbd worker folds its own into its counters. */
struct lbd_real_use {
  __u64 packets;
  __u64 bytes;
};

/* The program's per-CPU counters (lbd_stats index). */
enum lbd_xdp_stat {
  LBD_XDP_FORWARDED,     /* rewritten and transmitted */
  LBD_XDP_BYTES,         /* ... their IP bytes */
  LBD_XDP_MISS,          /* TCP/UDP without an entry: to lbd (or the kernel) */
  LBD_XDP_STATE,         /* SYN, FIN or RST: lbd tracks the state */
  LBD_XDP_REAL_OFF,      /* the entry's real takes no fast-path packet now */
  LBD_XDP_TOO_BIG,       /* larger than the hop's MTU (lbd fragments or answers) */
  LBD_XDP_PARTIAL_CSUM,  /* a local sender's unfinished checksum: lbd completes it */
  LBD_XDP_NO_TX,         /* the out interface cannot take XDP frames: lbd sends it */
  LBD_XDP_STAT_COUNT
};

#define LBD_XDP_MAX_REALS 65536
#define LBD_XDP_MAX_IFACES 64
#define LBD_XDP_PROG_NAME "lbd_flow_cache"

#endif

/* lbd's fanout program (PACKET_FANOUT_EBPF): which worker's capture socket a frame goes
 * to. Both directions of a connection must reach the worker that owns it: see
 * steer_abi.h. A frame that is neither IPv4 nor IPv6 (ARP) or that the program cannot read
 * goes to worker 0; every worker answers those the same way. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "steer_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lbd_steer_config);
} lbd_steer_config SEC(".maps");

/* The VIPs (network byte order -> 1): a frame to one comes from a client. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LBD_STEER_MAX_VIPS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __be32);
  __type(value, __u32);
} lbd_steer_vips SEC(".maps");

static __always_inline int is_vip(__be32 a) { return bpf_map_lookup_elem(&lbd_steer_vips, &a) != 0; }

/* The IPv6 VIPs (16 bytes -> 1). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LBD_STEER_MAX_VIPS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct in6_addr);
  __type(value, __u32);
} lbd_steer_vips6 SEC(".maps");

static __always_inline int is_vip6(const struct in6_addr *a) { return bpf_map_lookup_elem(&lbd_steer_vips6, a) != 0; }

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LBD_STEER_MAX_GUE_PORTS);
  __type(key, __u16);
  __type(value, __u32);
} lbd_steer_gue SEC(".maps");

struct icmp_head {
  __u8 type, code;
  __u16 checksum;
  __u32 rest;
};

static __always_inline int worker4(__be32 client, const struct lbd_steer_config *cfg) {
  return (int)lbd_steer_worker(bpf_ntohl(client) & cfg->mask, cfg->workers);
}
static __always_inline int worker6(const struct in6_addr *client, const struct lbd_steer_config *cfg) {
  return (int)lbd_steer_worker(lbd_steer_fold6((const __u8 *)client, cfg->prefix6), cfg->workers);
}

/* The client of a datagram inside one of lbd's tunnel packets at `off` (its first byte
 * says IPv4 or IPv6): its source. -1 if it cannot be read. */
static __always_inline int inner_worker(struct __sk_buff *skb, __u32 off, const struct lbd_steer_config *cfg) {
  __u8 first;
  if (bpf_skb_load_bytes_relative(skb, off, &first, 1, BPF_HDR_START_NET)) return -1;
  if ((first >> 4) == 6) {
    struct ipv6hdr inner;
    if (bpf_skb_load_bytes_relative(skb, off, &inner, sizeof inner, BPF_HDR_START_NET)) return -1;
    return worker6(&inner.saddr, cfg);
  }
  struct iphdr inner;
  if (bpf_skb_load_bytes_relative(skb, off, &inner, sizeof inner, BPF_HDR_START_NET)) return -1;
  return worker4(inner.saddr, cfg);
}

/* Bytes between a quoted tunnel header (protocol `proto`, what follows it at `off`) and the
 * datagram it carries: 0 for IPIP and IPv6-in-IP, lbd's GRE header (4 bytes, or 8 with its
 * checksum: the C bit), GUE's UDP header, 4 bytes and hlen words of options to a GUE real's
 * port. -1: not one of lbd's tunnels. */
static __always_inline int tunnel_skip(struct __sk_buff *skb, __u8 proto, __u32 off) {
  if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) return 0;
  if (proto == IPPROTO_GRE) {
    __u8 gre_flags;
    if (bpf_skb_load_bytes_relative(skb, off, &gre_flags, 1, BPF_HDR_START_NET)) return -1;
    return (gre_flags & 0x80) ? 8 : 4;
  }
  if (proto == IPPROTO_UDP) {
    struct { __be16 sport, dport, len, check; __u8 gue; } udp_gue;
    if (bpf_skb_load_bytes_relative(skb, off, &udp_gue, sizeof udp_gue, BPF_HDR_START_NET)) return -1;
    const __u16 dport = bpf_ntohs(udp_gue.dport);
    if (bpf_map_lookup_elem(&lbd_steer_gue, &dport)) return 8 + 4 + (udp_gue.gue & 0x1f) * 4;
  }
  return -1;
}

/* IPv6, as IPv4 below: an ICMPv6 error right after the fixed header is about the packet it
 * quotes (a quoted header without extension headers: lbd's own). */
static __always_inline int steer6(struct __sk_buff *skb, const struct lbd_steer_config *cfg) {
  struct ipv6hdr ip;
  if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof ip, BPF_HDR_START_NET)) return 0;
  struct in6_addr client = is_vip6(&ip.daddr) ? ip.saddr : ip.daddr;
  struct icmp_head icmp;
  if (ip.nexthdr == IPPROTO_ICMPV6 &&
      !bpf_skb_load_bytes_relative(skb, sizeof ip, &icmp, sizeof icmp, BPF_HDR_START_NET) && icmp.type >= 1 &&
      icmp.type <= 4) {
    struct ipv6hdr q;
    const __u32 qoff = sizeof ip + sizeof icmp;
    if (!bpf_skb_load_bytes_relative(skb, qoff, &q, sizeof q, BPF_HDR_START_NET)) {
      const int skip = tunnel_skip(skb, q.nexthdr, qoff + sizeof q);
      if (skip >= 0) {
        const int w = inner_worker(skb, qoff + sizeof q + (__u32)skip, cfg);
        if (w >= 0) return w;
      }
      client = is_vip6(&q.saddr) ? q.daddr : q.saddr;
    }
  }
  return worker6(&client, cfg);
}

SEC("socket")
int lbd_steer(struct __sk_buff *skb) {
  __u32 zero = 0;
  const struct lbd_steer_config *cfg = bpf_map_lookup_elem(&lbd_steer_config, &zero);
  if (!cfg || cfg->workers <= 1) return 0;
  if (skb->protocol == bpf_htons(ETH_P_IPV6)) return steer6(skb, cfg);
  if (skb->protocol != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr ip;
  if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof ip, BPF_HDR_START_NET)) return 0;
  __u32 ihl = ip.ihl * 4;
  if (ihl < sizeof ip) return 0;
  __be32 client = is_vip(ip.daddr) ? ip.saddr : ip.daddr;
  /* An ICMP error (never a later fragment: its bytes are not a header) is about the packet
   * it quotes: a client's packet lbd sent to a real (the client is its source), a NAT
   * reply lbd sent to a client (from a VIP: the client is its destination), or lbd's tunnel
   * packet to a real (the client is the source of the packet inside it, IPv4 or IPv6). */
  struct icmp_head icmp;
  if (ip.protocol == IPPROTO_ICMP && !(ip.frag_off & bpf_htons(0x1fff)) &&
      !bpf_skb_load_bytes_relative(skb, ihl, &icmp, sizeof icmp, BPF_HDR_START_NET) &&
      (icmp.type == 3 || icmp.type == 4 || icmp.type == 5 || icmp.type == 11 || icmp.type == 12)) {
    struct iphdr q;
    const __u32 qoff = ihl + sizeof icmp;
    if (!bpf_skb_load_bytes_relative(skb, qoff, &q, sizeof q, BPF_HDR_START_NET)) {
      const __u32 qihl = q.ihl * 4;
      const int skip = qihl >= sizeof q ? tunnel_skip(skb, q.protocol, qoff + qihl) : -1;
      if (skip >= 0) {
        const int w = inner_worker(skb, qoff + qihl + (__u32)skip, cfg);
        if (w >= 0) return w;
      }
      client = is_vip(q.saddr) ? q.daddr : q.saddr;
    }
  }
  return worker4(client, cfg);
}

char LICENSE[] SEC("license") = "Apache-2.0";

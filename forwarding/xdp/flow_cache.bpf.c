/* lbd's XDP flow cache: the packets of connections lbd has already decided, forwarded in
 * the kernel exactly as lbd's slow path would (forwarding/dr, nat, ipip): IPv4 by DR, NAT
 * and TUN, IPv6 by DR and NAT66. Everything else goes on (XDP_PASS) to lbd's capture and the
 * kernel: a miss, SYN/FIN/RST (they change the state lbd keeps), IP options, IPv6
 * extension headers and fragments, a packet too big for the hop, a checksum a local sender
 * left unfinished, a real lbd no longer forwards to, an interface that cannot transmit XDP
 * frames. The program never creates or removes an entry. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flow_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536); /* lbd sets it before loading */
  __type(key, struct lbd_flow_key);
  __type(value, struct lbd_flow);
} lbd_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LBD_XDP_MAX_REALS);
  __type(key, __u32);
  __type(value, struct lbd_real_hop);
} lbd_reals SEC(".maps");

/* Interfaces the program may transmit on (ifindex -> 1): XDP_TX or a redirect into an
 * interface that cannot take them loses the frame, so lbd lists only those that can. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LBD_XDP_MAX_IFACES);
  __type(key, __u32);
  __type(value, __u32);
} lbd_tx_ok SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2 * LBD_XDP_MAX_REALS); /* lbd sets it: that many per worker */
  __type(key, __u32);
  __type(value, struct lbd_real_use);
} lbd_real_use SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LBD_XDP_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} lbd_stats SEC(".maps");

static __always_inline int count(__u32 stat, __u64 n, int verdict) {
  __u64 *v = bpf_map_lookup_elem(&lbd_stats, &stat);
  if (v) *v += n;
  return verdict;
}

static __always_inline __u16 fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/* RFC 1624 eqn 3: HC' = ~(~HC + ~m + m'), on host-order 16-bit words. */
static __always_inline __u16 replace16(__u16 check, __u16 old, __u16 new) {
  return (__u16)~fold((__u32)(__u16)~check + (__u16)~old + new);
}
static __always_inline __u16 replace32(__u16 check, __u32 old, __u32 new) {
  check = replace16(check, (__u16)(old >> 16), (__u16)(new >> 16));
  return replace16(check, (__u16)old, (__u16)new);
}

/* The address (at `addr`, in the IP header) and port (at `port`) become new_addr:new_port;
 * the IP checksum and the L4 checksum (`l4check`, UDP's 0 = none) follow. */
static __always_inline void rewrite_endpoint(struct iphdr *ip, __be32 *addr, __be16 *port,
                                             __sum16 *l4check, __u8 protocol, __be32 new_addr,
                                             __be16 new_port) {
  const __u32 old_a = bpf_ntohl(*addr), new_a = bpf_ntohl(new_addr);
  const __u16 old_p = bpf_ntohs(*port), new_p = bpf_ntohs(new_port);
  ip->check = bpf_htons(replace32(bpf_ntohs(ip->check), old_a, new_a));
  *addr = new_addr;
  *port = new_port;
  __u16 c = bpf_ntohs(*l4check);
  if (protocol == IPPROTO_UDP && c == 0) return;
  c = replace32(c, old_a, new_a);
  c = replace16(c, old_p, new_p);
  if (protocol == IPPROTO_UDP && c == 0) c = 0xffff;
  *l4check = bpf_htons(c);
}

/* NAT66: the 16-byte address at `addr` (in the IPv6 header) and the port become
 * new_addr:new_port; the L4 checksum follows word by word (IPv6 has no header checksum). */
static __always_inline void rewrite_endpoint6(__u8 *addr, __be16 *port, __sum16 *l4check, const __u8 *new_addr,
                                              __be16 new_port) {
  __u16 c = bpf_ntohs(*l4check);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const __u16 o = (__u16)(addr[2 * i] << 8 | addr[2 * i + 1]);
    const __u16 n = (__u16)(new_addr[2 * i] << 8 | new_addr[2 * i + 1]);
    c = replace16(c, o, n);
  }
  c = replace16(c, bpf_ntohs(*port), bpf_ntohs(new_port));
  __builtin_memcpy(addr, new_addr, 16);
  *port = new_port;
  *l4check = bpf_htons(c);
}

static __always_inline int transmit(struct xdp_md *ctx, __u32 ifindex) {
  if (ifindex == ctx->ingress_ifindex) return XDP_TX;
  return bpf_redirect(ifindex, 0);
}

/* What a hit forwarded, on the entry, its real and the program's counters; then out. */
static __always_inline int forwarded(struct xdp_md *ctx, struct lbd_flow *f, __u32 real_id, __u8 action, __u32 out,
                                     __u32 ip_len) {
  __sync_fetch_and_add(&f->packets, 1);
  __sync_fetch_and_add(&f->bytes, ip_len);
  f->last_ns = bpf_ktime_get_ns();
  __u32 use_key = ((__u32)f->worker * LBD_XDP_MAX_REALS + real_id) * 2 + (action == LBD_FLOW_NAT_OUT);
  struct lbd_real_use *use = bpf_map_lookup_elem(&lbd_real_use, &use_key);
  if (use) {
    use->packets += 1;
    use->bytes += ip_len;
  }
  count(LBD_XDP_FORWARDED, 1, 0);
  count(LBD_XDP_BYTES, ip_len, 0);
  return transmit(ctx, out);
}

/* IPv6: TCP or UDP right after the fixed header (anything else, extension headers and
 * fragments included, is lbd's to walk), by DR or NAT66 (an IPv6 tunnel stays on lbd's
 * path: lbd enters none). Its lookup and next-hop checks repeat IPv4's on purpose: shared
 * helpers handing packet pointers back through the stack are refused by the verifier under
 * the unit's capabilities (CAP_BPF without CAP_PERFMON; test_package loads it so). */
static __always_inline int flow6(struct xdp_md *ctx, struct ethhdr *eth, void *end) {
  struct ipv6hdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->version != 6) return XDP_PASS;
  const __u32 payload = bpf_ntohs(ip->payload_len);
  const __u32 ip_len = sizeof(*ip) + payload;
  if (!payload || sizeof(*eth) + ip_len > bpf_xdp_get_buff_len(ctx)) return XDP_PASS;
  struct lbd_flow_key key = {.protocol = ip->nexthdr};
  __builtin_memcpy(key.saddr, &ip->saddr, 16);
  __builtin_memcpy(key.daddr, &ip->daddr, 16);
  __sum16 *l4check;
  __be16 *sport, *dport;
  if (ip->nexthdr == IPPROTO_TCP) {
    struct tcphdr *th = (void *)(ip + 1);
    if ((void *)(th + 1) > end) return XDP_PASS;
    if (th->syn | th->fin | th->rst) return count(LBD_XDP_STATE, 1, XDP_PASS);
    sport = &th->source;
    dport = &th->dest;
    l4check = &th->check;
  } else if (ip->nexthdr == IPPROTO_UDP) {
    struct udphdr *uh = (void *)(ip + 1);
    if ((void *)(uh + 1) > end) return XDP_PASS;
    sport = &uh->source;
    dport = &uh->dest;
    l4check = &uh->check;
  } else {
    return XDP_PASS;
  }
  key.sport = *sport;
  key.dport = *dport;
  struct lbd_flow *f = bpf_map_lookup_elem(&lbd_flows, &key);
  if (!f) return count(LBD_XDP_MISS, 1, XDP_PASS);
  /* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum (RFC 8200 8.1). */
  __u32 sum = (payload >> 16) + (payload & 0xffff) + ip->nexthdr;
#pragma unroll
  for (int i = 0; i < 16; i += 2) sum += (__u32)(key.saddr[i] << 8 | key.saddr[i + 1]) + (key.daddr[i] << 8 | key.daddr[i + 1]);
  if (bpf_ntohs(*l4check) == fold(sum)) return count(LBD_XDP_PARTIAL_CSUM, 1, XDP_PASS);

  __u32 real_id = f->real_id;
  if (real_id >= LBD_XDP_MAX_REALS) return XDP_PASS;
  struct lbd_real_hop *hop = bpf_map_lookup_elem(&lbd_reals, &real_id);
  if (!hop || !hop->ifindex) return count(LBD_XDP_REAL_OFF, 1, XDP_PASS);
  const __u8 action = f->action;
  const __u32 out = action == LBD_FLOW_NAT_OUT ? f->ifindex : hop->ifindex;
  const __u32 mtu = action == LBD_FLOW_NAT_OUT ? f->mtu : hop->mtu;
  if (ip_len > mtu) return count(LBD_XDP_TOO_BIG, 1, XDP_PASS);
  __u32 *tx_ok = bpf_map_lookup_elem(&lbd_tx_ok, &out);
  if (!tx_ok || !*tx_ok) return count(LBD_XDP_NO_TX, 1, XDP_PASS);
  switch (action) {
    case LBD_FLOW_DR:
      __builtin_memcpy(eth->h_dest, hop->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, hop->eth_src, ETH_ALEN);
      break;
    case LBD_FLOW_NAT_IN:
      rewrite_endpoint6((__u8 *)&ip->daddr, dport, l4check, f->addr, f->port);
      __builtin_memcpy(eth->h_dest, hop->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, hop->eth_src, ETH_ALEN);
      break;
    case LBD_FLOW_NAT_OUT:
      rewrite_endpoint6((__u8 *)&ip->saddr, sport, l4check, f->addr, f->port);
      __builtin_memcpy(eth->h_dest, f->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, f->eth_src, ETH_ALEN);
      break;
    default:
      return XDP_PASS;
  }
  return forwarded(ctx, f, real_id, action, out, ip_len);
}

SEC("xdp")
int lbd_flow_cache(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return XDP_PASS;
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) return flow6(ctx, eth, end);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl != 5) return XDP_PASS;
  if (ip->frag_off & bpf_htons(0x3fff)) return XDP_PASS; /* MF or an offset: lbd's fragments */
  const __u32 ip_len = bpf_ntohs(ip->tot_len);
  /* Compared as lengths: variable arithmetic on a packet pointer needs CAP_PERFMON. */
  if (ip_len < sizeof(*ip) || sizeof(*eth) + ip_len > bpf_xdp_get_buff_len(ctx)) return XDP_PASS;

  /* The key's addresses as lbd's IpAddr holds IPv4: ::ffff:a.b.c.d. */
  struct lbd_flow_key key = {.protocol = ip->protocol};
  key.saddr[10] = key.saddr[11] = key.daddr[10] = key.daddr[11] = 0xff;
  __builtin_memcpy(&key.saddr[12], &ip->saddr, 4);
  __builtin_memcpy(&key.daddr[12], &ip->daddr, 4);
  __sum16 *l4check;
  __be16 *sport, *dport;
  if (ip->protocol == IPPROTO_TCP) {
    struct tcphdr *th = (void *)(ip + 1);
    if ((void *)(th + 1) > end) return XDP_PASS;
    if (th->syn | th->fin | th->rst) return count(LBD_XDP_STATE, 1, XDP_PASS);
    sport = &th->source;
    dport = &th->dest;
    l4check = &th->check;
  } else if (ip->protocol == IPPROTO_UDP) {
    struct udphdr *uh = (void *)(ip + 1);
    if ((void *)(uh + 1) > end) return XDP_PASS;
    sport = &uh->source;
    dport = &uh->dest;
    l4check = &uh->check;
  } else {
    return XDP_PASS;
  }
  key.sport = *sport;
  key.dport = *dport;
  struct lbd_flow *f = bpf_map_lookup_elem(&lbd_flows, &key);
  if (!f) return count(LBD_XDP_MISS, 1, XDP_PASS);

  /* CHECKSUM_PARTIAL from a local sender (veth TX offload): the field holds the folded
   * pseudo-header sum. lbd verifies and completes such a segment (1 in 65536 finished
   * ones look alike and take the slow path, which forwards them unchanged). */
  const __u16 field = bpf_ntohs(*l4check);
  if (!(ip->protocol == IPPROTO_UDP && field == 0)) {
    const __u32 s = bpf_ntohl(ip->saddr), d = bpf_ntohl(ip->daddr);
    const __u16 pseudo = fold((s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + ip->protocol +
                              (ip_len - sizeof(*ip)));
    if (field == pseudo) return count(LBD_XDP_PARTIAL_CSUM, 1, XDP_PASS);
  }

  __u32 real_id = f->real_id;
  if (real_id >= LBD_XDP_MAX_REALS) return XDP_PASS;
  struct lbd_real_hop *hop = bpf_map_lookup_elem(&lbd_reals, &real_id);
  if (!hop || !hop->ifindex) return count(LBD_XDP_REAL_OFF, 1, XDP_PASS);
  const __u8 action = f->action;
  __u32 out;
  __u32 mtu;
  if (action == LBD_FLOW_NAT_OUT) {
    out = f->ifindex;
    mtu = f->mtu;
  } else {
    out = hop->ifindex;
    mtu = hop->mtu;
  }
  /* The tunnel's headers (tunnel_overhead()): outer IPv4, + UDP and GUE, or + GRE. */
  const __u8 tun_type = hop->tun_type;
  const __u32 tun_len = action != LBD_FLOW_TUN ? 0
                        : sizeof(struct iphdr) + (tun_type == LBD_TUN_GUE ? sizeof(struct udphdr) + 4
                                                  : tun_type == LBD_TUN_GRE ? 4 : 0);
  if (ip_len + tun_len > mtu)
    return count(LBD_XDP_TOO_BIG, 1, XDP_PASS);
  __u32 *tx_ok = bpf_map_lookup_elem(&lbd_tx_ok, &out);
  if (!tx_ok || !*tx_ok) return count(LBD_XDP_NO_TX, 1, XDP_PASS);

  __be32 new_addr;
  __builtin_memcpy(&new_addr, &f->addr[12], 4);
  switch (action) {
    case LBD_FLOW_DR:
      __builtin_memcpy(eth->h_dest, hop->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, hop->eth_src, ETH_ALEN);
      break;
    case LBD_FLOW_NAT_IN:
      rewrite_endpoint(ip, &ip->daddr, dport, l4check, ip->protocol, new_addr, f->port);
      __builtin_memcpy(eth->h_dest, hop->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, hop->eth_src, ETH_ALEN);
      break;
    case LBD_FLOW_NAT_OUT:
      rewrite_endpoint(ip, &ip->saddr, sport, l4check, ip->protocol, new_addr, f->port);
      __builtin_memcpy(eth->h_dest, f->eth_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, f->eth_src, ETH_ALEN);
      break;
    case LBD_FLOW_TUN: {
      /* tunnel_encapsulate(): outer TOS and TTL from the inner header, DF copied; then
       * nothing (IPIP), UDP to the real's port and a GUE header, or a GRE header. */
      const __u8 tos = ip->tos, ttl = ip->ttl;
      const __be16 df = ip->frag_off & bpf_htons(0x4000);
      const __be16 id = ip->id;
      const __be32 src = hop->tun_src, dst = hop->tun_dst;
      const __be16 tun_port = hop->tun_port;
      const __u16 gue_sport = lbd_gue_sport(bpf_ntohl(ip->saddr), bpf_ntohl(ip->daddr), bpf_ntohs(*sport),
                                            bpf_ntohs(*dport), ip->protocol);
      __u8 mac_dst[ETH_ALEN], mac_src[ETH_ALEN];
      __builtin_memcpy(mac_dst, hop->eth_dst, ETH_ALEN);
      __builtin_memcpy(mac_src, hop->eth_src, ETH_ALEN);
      if (bpf_xdp_adjust_head(ctx, -(int)tun_len)) return XDP_PASS;
      data = (void *)(long)ctx->data;
      end = (void *)(long)ctx->data_end;
      eth = data;
      struct iphdr *outer = (void *)(eth + 1);
      if ((void *)(outer + 1) > end) return XDP_DROP; /* cannot happen: the frame grew */
      __builtin_memcpy(eth->h_dest, mac_dst, ETH_ALEN);
      __builtin_memcpy(eth->h_source, mac_src, ETH_ALEN);
      eth->h_proto = bpf_htons(ETH_P_IP);
      outer->version = 4;
      outer->ihl = 5;
      outer->tos = tos;
      outer->tot_len = bpf_htons(ip_len + tun_len);
      outer->id = id;
      outer->frag_off = df;
      outer->ttl = ttl;
      outer->protocol = tun_type == LBD_TUN_GUE ? IPPROTO_UDP : tun_type == LBD_TUN_GRE ? IPPROTO_GRE : IPPROTO_IPIP;
      outer->check = 0;
      outer->saddr = src;
      outer->daddr = dst;
      __u32 sum = 0;
      const __u16 *w = (const __u16 *)outer;
#pragma unroll
      for (int i = 0; i < 10; ++i) sum += bpf_ntohs(w[i]);
      outer->check = bpf_htons((__u16)~fold(sum));
      if (tun_type == LBD_TUN_GUE) {
        struct udphdr *u = (void *)(outer + 1);
        __u8 *gue = (void *)(u + 1);
        if ((void *)(gue + 4) > end) return XDP_DROP; /* cannot happen: the frame grew */
        u->source = bpf_htons(gue_sport);
        u->dest = tun_port;
        u->len = bpf_htons(ip_len + sizeof(struct udphdr) + 4);
        u->check = 0; /* --tun-nocsum */
        gue[0] = 0;   /* version 0, a data message, no options */
        gue[1] = IPPROTO_IPIP;
        gue[2] = gue[3] = 0;
      } else if (tun_type == LBD_TUN_GRE) {
        __u8 *gre = (void *)(outer + 1);
        if ((void *)(gre + 4) > end) return XDP_DROP;
        gre[0] = gre[1] = 0; /* no checksum, key or sequence number; version 0 */
        gre[2] = 0x08;       /* IPv4 */
        gre[3] = 0;
      }
      break;
    }
    default:
      return XDP_PASS;
  }
  return forwarded(ctx, f, real_id, action, out, ip_len);
}

/* No GPL-only helper is called: the project's licence. */
char LICENSE[] SEC("license") = "Apache-2.0";

/* lbd's fanout program (PACKET_FANOUT_EBPF): which worker's capture socket a frame goes
 * to. Both directions of a connection must reach the worker that owns it: see
 * steer_abi.h. A frame that is not IPv4 (ARP) or that the program cannot read goes to
 * worker 0; every worker answers those the same way. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
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

SEC("socket")
int lbd_steer(struct __sk_buff *skb) {
  __u32 zero = 0;
  const struct lbd_steer_config *cfg = bpf_map_lookup_elem(&lbd_steer_config, &zero);
  if (!cfg || cfg->workers <= 1 || skb->protocol != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr ip;
  if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof ip, BPF_HDR_START_NET)) return 0;
  __u32 ihl = ip.ihl * 4;
  if (ihl < sizeof ip) return 0;
  __be32 client = is_vip(ip.daddr) ? ip.saddr : ip.daddr;
  /* An ICMP error (never a later fragment: its bytes are not a header) is about the packet
   * it quotes: a client's packet lbd sent to a real (the client is its source), a NAT
   * reply lbd sent to a client (from a VIP: the client is its destination), or lbd's IPIP
   * or GRE packet to a real (the client is the source of the packet inside it). */
  struct icmp_head icmp;
  if (ip.protocol == IPPROTO_ICMP && !(ip.frag_off & bpf_htons(0x1fff)) &&
      !bpf_skb_load_bytes_relative(skb, ihl, &icmp, sizeof icmp, BPF_HDR_START_NET) &&
      (icmp.type == 3 || icmp.type == 4 || icmp.type == 5 || icmp.type == 11 || icmp.type == 12)) {
    struct iphdr q;
    const __u32 qoff = ihl + sizeof icmp;
    if (!bpf_skb_load_bytes_relative(skb, qoff, &q, sizeof q, BPF_HDR_START_NET)) {
      struct iphdr inner;
      const __u32 qihl = q.ihl * 4;
      /* lbd's GRE header: 4 bytes, or 8 with its checksum (the C bit); GUE: UDP to a GUE
       * real's port, its 4-byte header and hlen words of options. */
      __u8 gre_flags = 0;
      const __u32 ioff = qoff + qihl;
      __u32 skip = q.protocol == IPPROTO_GRE &&
                           !bpf_skb_load_bytes_relative(skb, ioff, &gre_flags, 1, BPF_HDR_START_NET)
                       ? ((gre_flags & 0x80) ? 8 : 4)
                       : 0;
      struct { __be16 sport, dport, len, check; __u8 gue; } udp_gue;
      if (q.protocol == IPPROTO_UDP &&
          !bpf_skb_load_bytes_relative(skb, ioff, &udp_gue, sizeof udp_gue, BPF_HDR_START_NET)) {
        const __u16 dport = bpf_ntohs(udp_gue.dport);
        if (bpf_map_lookup_elem(&lbd_steer_gue, &dport)) skip = 8 + 4 + (udp_gue.gue & 0x1f) * 4;
      }
      if ((q.protocol == IPPROTO_IPIP || skip) && qihl >= sizeof q &&
          !bpf_skb_load_bytes_relative(skb, ioff + skip, &inner, sizeof inner, BPF_HDR_START_NET))
        client = inner.saddr;
      else
        client = is_vip(q.saddr) ? q.daddr : q.saddr;
    }
  }
  return (int)lbd_steer_worker(bpf_ntohl(client) & cfg->mask, cfg->workers);
}

char LICENSE[] SEC("license") = "Apache-2.0";

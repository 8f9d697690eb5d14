/* XDP_PASS and nothing else. A veth takes frames an XDP program transmits into it (lbd's
 * fast path in native mode) only when its peer runs an XDP program too: attach this one to
 * the peer of each capture veth, e.g. `ip link set dev PEER xdp obj lbd_xdp_pass.o sec xdp`
 * (GRO on the peer is not enough: measured, the frames wait in its ring). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int lbd_xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

char LICENSE[] SEC("license") = "Apache-2.0";

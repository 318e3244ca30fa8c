// SPDX-License-Identifier: Apache-2.0
/*
 * nv_bench.bpf.c: the NEXTVAL path under BPF_PROG_TEST_RUN with repeat.
 * Every repetition gets the buffer the previous one turned into a reply,
 * so the program first puts the request back (destination port, type and
 * the 40-byte payload, from nv_bench_req), then runs nextval_handle() from
 * nextval.h as the sequencer does. nv_restore_only measures that restore.
 */
#include "nextval.h"

char LICENSE[] SEC("license") = "GPL";

/* [0]: the request payload every repetition starts from. Written by the
 * bench before the runs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xseq_nv_req);
} nv_bench_req SEC(".maps");

static __always_inline int restore_nextval(struct xdp_md *ctx)
{
	struct cursor c;

	cursor_init(&c, ctx);
	if (!cursor_pull(&c, sizeof(struct ethhdr) + sizeof(struct iphdr)))
		return 0;
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	struct xseq_hdr *h = CURSOR_PULL(&c, struct xseq_hdr);
	struct xseq_nv_req *q = CURSOR_PULL(&c, struct xseq_nv_req);
	__u32 k = 0;
	struct xseq_nv_req *want = bpf_map_lookup_elem(&nv_bench_req, &k);
	if (!udp || !h || !q || !want)
		return 0;
	udp->dest = xseq_cfg.port;
	h->type = XSEQ_MSG_NEXTVAL;
	__builtin_memcpy(q, want, sizeof(*q));
	return 1;
}

SEC("xdp")
int xseq_sequencer(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_nextval(ctx))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	return nextval_handle(ctx, &r);
}

SEC("xdp")
int xseq_nv_restore_only(struct xdp_md *ctx)
{
	return restore_nextval(ctx) ? XDP_TX : XDP_PASS;
}

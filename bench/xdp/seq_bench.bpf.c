// SPDX-License-Identifier: Apache-2.0
/*
 * seq_bench.bpf.c: the sequencer's stages under BPF_PROG_TEST_RUN with
 * repeat. The test runner hands every repetition the same buffer, which the
 * previous run already turned into a SEQUENCED packet to the group's port,
 * so each program first puts back the two fields the parser decides on (the
 * UDP destination port and the message type): two stores, counted against
 * xseq. Everything after that is the production code from sequencer.h.
 */
#include "sequencer.h"

char LICENSE[] SEC("license") = "GPL";

/* Undoes the previous repetition's rewrite; returns 0 if the frame is too
 * short, so the bench sees XDP_PASS and reports it. */
static __always_inline int restore_request(struct xdp_md *ctx)
{
	struct cursor c;

	cursor_init(&c, ctx);
	if (!cursor_pull(&c, sizeof(struct ethhdr) + sizeof(struct iphdr)))
		return 0;
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	struct xseq_hdr *h = CURSOR_PULL(&c, struct xseq_hdr);
	if (!udp || !h)
		return 0;
	udp->dest = xseq_cfg.port;
	h->type = XSEQ_MSG_REQUEST;
	return 1;
}

/* The full path: parse, stamp, readdress, checksums, XDP_TX. */
SEC("xdp")
int xseq_sequencer(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_request(ctx))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	seq_forward(&r, seq_stamp(&r));
	count(XSEQ_CTR_SEQUENCED);
	return XDP_TX;
}

/* The stamp-only path: parse and stamp, no readdressing. */
SEC("xdp")
int xseq_stamp_only(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_request(ctx))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	seq_stamp(&r);
	count(XSEQ_CTR_SEQUENCED);
	return XDP_TX;
}

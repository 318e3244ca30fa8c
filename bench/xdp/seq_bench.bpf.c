// SPDX-License-Identifier: Apache-2.0
/*
 * seq_bench.bpf.c: the sequencer's paths under BPF_PROG_TEST_RUN with
 * repeat. The test runner hands every repetition the same buffer, which the
 * previous run already rewrote (into a SEQUENCED to the group, or a REPLY
 * to the client), and the same map state. So each program first puts back
 * what the previous repetition changed, then runs the production code from
 * sequencer.h, aggregator.h and flush.h. What a restore costs is measured by the
 * restore-only programs, so the bench can report it next to each path.
 */
/* The sequence maps belong to the sequencer's map set (Sequencer.load
 * opens every one); these paths do not serve NEXTVAL (see nv_bench.bpf.c). */
#define XSEQ_NEXTVAL_MAPS_ONLY
#include "nextval.h"
#include "aggregator.h"
#include "flush.h"

char LICENSE[] SEC("license") = "GPL";

#define BENCH_FRAME_CAP 256
struct bench_frame {
	__u32 len;
	__u8 bytes[BENCH_FRAME_CAP];
};

/* Frames the bench paths start from: [0] the quorum path's ACK, [1] the
 * flush path's FLUSH_SOLICIT. Written by the bench. */
#define BENCH_FRAME_ACK 0
#define BENCH_FRAME_SOLICIT 1
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_frames SEC(".maps");

/* tools/frame.ts buildFrame's default client, 10.77.0.1:40000, and
 * sequencer, 10.77.0.2 (network order). */
#define BENCH_CLIENT_IP bpf_htonl(0x0a4d0001)
#define BENCH_SEQ_IP bpf_htonl(0x0a4d0002)
#define BENCH_CLIENT_PORT bpf_htons(40000)

/* Undoes the previous repetition's request rewrite: the parser decides on
 * the UDP destination port and the message type only. Returns 0 if the
 * frame is too short, so the bench sees XDP_PASS and reports it. */
static __always_inline int restore_request(struct xdp_md *ctx)
{
	struct cursor c;

	cursor_init(&c, ctx);
	if (!cursor_pull(&c, sizeof(struct ethhdr)))
		return 0;
	struct iphdr *ip = CURSOR_PULL(&c, struct iphdr);
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	struct xseq_hdr *h = CURSOR_PULL(&c, struct xseq_hdr);
	if (!ip || !udp || !h)
		return 0;
	/* The client's source too: a group without a key binds the client id
	 * to it (seq_client_check), and the stamp readdressed the frame. */
	ip->daddr = BENCH_SEQ_IP;
	ip->saddr = BENCH_CLIENT_IP;
	udp->source = BENCH_CLIENT_PORT;
	udp->dest = xseq_cfg.port;
	h->type = XSEQ_MSG_REQUEST;
	return 1;
}

/* The full request path, as sequencer.bpf.c runs it. */
SEC("xdp")
int xseq_sequencer(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_request(ctx))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	return seq_request(ctx, &r);
}

/* Sealed REQUESTs of a keyed group, as a client with the client key sends
 * them: [0] 64 B, [1] 1 KB of payload. Written by the bench. */
#define BENCH_REQ_CAP 1200
struct bench_req {
	__u32 len;
	__u8 bytes[BENCH_REQ_CAP];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bench_req);
} bench_reqs SEC(".maps");

/* Writes the sealed request of the frame's size class over the packet: the
 * client MAC covers the header the previous repetition stamped, so all of
 * it goes back (xseq_restore_mac measures what this costs). */
static __always_inline int restore_sealed(struct xdp_md *ctx)
{
	__u32 key = ctx->data_end - ctx->data > 256 ? 1 : 0;
	struct bench_req *f = bpf_map_lookup_elem(&bench_reqs, &key);

	if (!f)
		return 0;
	__u32 len = f->len;
	__s32 delta = (__s32)len - (__s32)(ctx->data_end - ctx->data);

	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return 0;
	barrier_var(len);
	if (len == 0 || len > BENCH_REQ_CAP || bpf_xdp_store_bytes(ctx, 0, f->bytes, len))
		return 0;
	return 1;
}

/* The full request path of a keyed group: the client's MAC checked, the
 * SEQUENCED's MAC stamped into the same trailer. */
SEC("xdp")
int xseq_sequencer_mac(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_sealed(ctx))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	return seq_request(ctx, &r);
}

/* What xseq_sequencer_mac spends on restoring, to subtract. */
SEC("xdp")
int xseq_restore_mac(struct xdp_md *ctx)
{
	return restore_sealed(ctx) ? XDP_TX : XDP_PASS;
}

/* The stamp-only path: parse and stamp, no slot copy, no readdressing. */
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

/* Writes bench_frames[key] over the packet, resizing it. */
static __always_inline int restore_frame(struct xdp_md *ctx, __u32 key)
{
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frames, &key);

	if (!f)
		return 0;
	__u32 len = f->len;
	__s32 delta = (__s32)len - (__s32)(ctx->data_end - ctx->data);

	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return 0;
	barrier_var(len);
	if (len == 0 || len > BENCH_FRAME_CAP || bpf_xdp_store_bytes(ctx, 0, f->bytes, len))
		return 0;
	return 1;
}

/* Puts the bench's ACK frame back and the slot of its seq into the state
 * "leader acked with its result, follower not yet": the ACK then completes
 * the quorum again. Returns the slot's group lookup result. */
static __always_inline int restore_ack(struct xdp_md *ctx, int with_frame)
{
	if (with_frame && !restore_frame(ctx, BENCH_FRAME_ACK))
		return 0;
	__u32 gid = 1, idx = 1; /* the bench stamps seq 1 of group 1 into window 0 */
	struct xseq_group *g = bpf_map_lookup_elem(&xseq_groups, &gid);
	struct xseq_slot *s = bpf_map_lookup_elem(&xseq_slots, &idx);
	if (!g || !s)
		return 0;
	/* view 0, generation of seq 1, replica 0 (the leader) */
	s->acks = ((__u64)ack_gen(1) << XSEQ_ACKS_GEN_SHIFT) | 1;
	s->state = 0;
	return 1;
}

static __always_inline int run_ack(struct xdp_md *ctx)
{
	struct seq_req r;
	int act = seq_parse(ctx, &r);

	if (act >= 0)
		return act;
	return ack_handle(ctx, &r);
}

/* A follower's ACK that completes the quorum: REPLY with the leader result. */
SEC("xdp")
int xseq_ack_quorum(struct xdp_md *ctx)
{
	if (!restore_ack(ctx, 1))
		return XDP_PASS;
	return run_ack(ctx);
}

/* The same ACK arriving after the REPLY: counted as late, dropped. */
SEC("xdp")
int xseq_ack_drop(struct xdp_md *ctx)
{
	return run_ack(ctx);
}

/* What xseq_ack_quorum spends on restoring, to report beside it. */
SEC("xdp")
int xseq_restore_ack(struct xdp_md *ctx)
{
	return restore_ack(ctx, 1) ? XDP_TX : XDP_PASS;
}

/* A member's FLUSH_SOLICIT turned into the FLUSH (clock, atomic read of
 * the seq, readdressing): the solicit is put back first. */
SEC("xdp")
int xseq_flush(struct xdp_md *ctx)
{
	struct seq_req r;

	if (!restore_frame(ctx, BENCH_FRAME_SOLICIT))
		return XDP_PASS;
	int act = seq_parse(ctx, &r);
	if (act >= 0)
		return act;
	return flush_handle(ctx, &r);
}

/* What xseq_flush spends on restoring, to report beside it. */
SEC("xdp")
int xseq_restore_flush(struct xdp_md *ctx)
{
	return restore_frame(ctx, BENCH_FRAME_SOLICIT) ? XDP_TX : XDP_PASS;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flush.h: the FLUSH path (Hydra). A FLUSH_SOLICIT from a configured
 * member, or the agent's own (replica_id XSEQ_REPLICA_AGENT, IPv4 source =
 * destination; the agent injects it with BPF_PROG_TEST_RUN in live-frames
 * mode on its flush timer), becomes a FLUSH in place and goes to the group
 * like a SEQUENCED (XDP_TX). A FLUSH says: this sequencer has stamped
 * exactly seqs 1..seq of this session, and every later one carries a clock
 * >= clock_ns. That needs the clock read BEFORE the seq: a request stamped
 * concurrently takes its seq (atomic add) and then its clock, so a seq the
 * flush did not count was taken after the flush read the seq, hence after
 * its clock. The read of the seq is an atomic op (fetch-add of 0), which
 * orders it after the clock read.
 *
 * A FLUSH carries no data and is idempotent, so a forged solicit costs one
 * multicast packet; still, in a keyed group a solicit counts only with a
 * valid MAC (group key: replicas and the agent seal theirs), and every
 * solicitor (a member's replica id, or the agent) is answered at most once
 * per solicit gap (XSEQ_SOLICIT_GAP_NS), so a flood of solicits, forged or not, costs a
 * group at most (members + 1) FLUSHes per gap.
 */
#ifndef XSEQ_FLUSH_H
#define XSEQ_FLUSH_H

#include "sequencer.h"

/* Whether the solicit may be answered: a member, from its ACK address and
 * port, or the agent. */
static __always_inline int solicit_allowed(const struct seq_req *r)
{
	const struct xseq_group *g = r->g;
	__u32 rid = bpf_ntohs(r->h->replica_id);

	if (rid == XSEQ_REPLICA_AGENT)
		return r->ip->saddr == r->ip->daddr;
	if (rid >= g->n_members || rid >= XSEQ_MAX_REPLICAS)
		return 0;
	const struct xseq_member *m = &g->members[rid];
	return m->addr == r->ip->saddr && m->port == r->udp->source;
}

/* Whether the solicitor's last answer is at least xseq_cfg.solicit_gap_ns old;
 * if so, takes `now` as its last. Two CPUs may both pass for one solicitor
 * in a race: the bound is per CPU then, still a bound. */
static __always_inline int solicit_due(const struct seq_req *r, __u64 now)
{
	__u32 rid = bpf_ntohs(r->h->replica_id);
	__u32 slot = rid == XSEQ_REPLICA_AGENT ? XSEQ_MAX_REPLICAS : rid;
	__u32 idx;
	__u64 *last;

	if (slot > XSEQ_MAX_REPLICAS || r->gid >= XSEQ_MAX_GROUPS)
		return 0;
	idx = r->gid * (XSEQ_MAX_REPLICAS + 1) + slot;
	last = bpf_map_lookup_elem(&xseq_solicit_last, &idx);
	if (!last)
		return 0;
	/* Refused only inside [last, last + gap): a clock stepped back answers
	 * (and restarts the gap) rather than going silent until it catches up. */
	if (*last && now >= *last && now - *last < xseq_cfg.solicit_gap_ns)
		return 0;
	*last = now;
	return 1;
}

/* Handles a parsed FLUSH_SOLICIT (r from seq_parse); returns the XDP action. */
static __always_inline int flush_handle(struct xdp_md *ctx, struct seq_req *r)
{
	struct xseq_group *g = r->g;
	struct xseq_hdr *h;

	if (r->payload_len != 0)
		return drop(XSEQ_CTR_DROP_BAD_LENGTH, r->ip, r->udp, r->frame_len);
	if (!solicit_allowed(r))
		return drop(XSEQ_CTR_DROP_SOLICIT_STRANGER, r->ip, r->udp, r->frame_len);
	if (r->key && (!r->mac_len || !mac_frame_ok(ctx, SEQ_L4_OFF, XSEQ_HDR_LEN, r->key)))
		return drop(XSEQ_CTR_DROP_BAD_MAC, r->ip, r->udp, r->frame_len);
	/* Clock first, then the seq (see the top of this file); the same
	 * reading dates the answer for the solicit gap. */
	__u64 clock = bpf_ktime_get_tai_ns();

	if (!solicit_due(r, clock))
		return drop(XSEQ_CTR_DROP_SOLICIT_RATE, r->ip, r->udp, r->frame_len);
	/* Keyed group: room for the MAC first (pointers change), sealed last. */
	if (r->key && seq_mac_room(ctx, r)) {
		count(XSEQ_CTR_DROP_MAC_ROOM); /* no sample: the packet pointers are gone */
		return XDP_DROP;
	}

	__u64 q = __sync_fetch_and_add(&r->gs->seq, 0);
	int final = (g->flags & XSEQ_GROUP_F_DRAINING) != 0;

	h = r->h;
	h->type = XSEQ_MSG_FLUSH;
	h->flags = (final ? bpf_htons(XSEQ_F_FINAL) : 0) | (r->key ? bpf_htons(XSEQ_F_MAC) : 0);
	h->sequencer_id = bpf_htons(g->sequencer_id);
	h->replica_id = 0;
	h->session = bpf_htonl(g->session);
	h->view = 0;
	h->seq = bpf_cpu_to_be64(q);
	h->clock_ns = bpf_cpu_to_be64(clock);
	h->client_id = 0;
	h->request_id = 0;
	h->reserved = 0;
	/* payload_len is 0, checked above. The header was rewritten whole, so
	 * no incremental checksum: the FLUSH goes without one (IPv4 allows it;
	 * seq_forward keeps a zero checksum zero). */
	r->udp->check = 0;
	seq_forward(r, 0);
	if (r->key)
		seq_mac_seal(ctx, r);
	count(XSEQ_CTR_FLUSH);
	if (final)
		count(XSEQ_CTR_FLUSH_FINAL);
	return XDP_TX;
}

#endif /* XSEQ_FLUSH_H */

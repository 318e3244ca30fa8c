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
 * The agent's solicit needs no secret: a FLUSH carries no data and is
 * idempotent, so a forged one costs one multicast packet, no more than a
 * forged REQUEST would.
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

/* Handles a parsed FLUSH_SOLICIT (r from seq_parse); returns the XDP action. */
static __always_inline int flush_handle(struct xdp_md *ctx, struct seq_req *r)
{
	struct xseq_group *g = r->g;
	struct xseq_hdr *h;

	if (r->payload_len != 0)
		return drop(XSEQ_CTR_DROP_BAD_LENGTH, r->ip, r->udp, r->frame_len);
	if (!solicit_allowed(r))
		return drop(XSEQ_CTR_DROP_SOLICIT_STRANGER, r->ip, r->udp, r->frame_len);
	/* Keyed group: room for the MAC first (pointers change), sealed last. */
	if (r->key && seq_mac_room(ctx, r)) {
		count(XSEQ_CTR_DROP_MAC_ROOM); /* no sample: the packet pointers are gone */
		return XDP_DROP;
	}

	/* Clock first, then the seq (see the top of this file). */
	__u64 clock = bpf_ktime_get_tai_ns();
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

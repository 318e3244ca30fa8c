/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aggregator.h: the ACK path. Counts replicas' ACKs in the request's window
 * slot and, the first time a slot reaches a quorum that includes the
 * leader of the ACK's view, turns the completing ACK into the REPLY to the
 * client, carrying the leader's result. Every other ACK ends here (DROP).
 *
 * Exactly one REPLY per (session, seq) under concurrent CPUs, duplicates
 * and late ACKs: the ack set and its view change in one 64-bit compare-and-
 * swap, and the right to reply is one atomic fetch-or on the slot state.
 *
 * The slot can be taken for seq + W between our check of its seq and the
 * CAS (overwrite policy, or a released slot, on another CPU). The CAS word
 * carries the generation of the seq its acks are for (xseq.h), and the
 * stamp path stores the new generation in one 64-bit write after the new
 * seq: a CAS expecting the old word then fails, the re-read shows a
 * foreign generation and the ACK is dropped; a CAS that read the word
 * after that store sees the foreign generation at once. So no ACK ever
 * sets a bit for a seq it was not sent for, with no undo needed.
 *
 * Nothing is lost when the REPLY cannot be built: the frame can grow
 * neither at the tail nor in front (reply_resize()). Then the leader's ACK
 * is undone as if it had been lost: its bit is cleared (same generation
 * only) and the REPLIED right given back, counted in reply_grow_failed.
 * The slot then lacks the leader, so no other ACK can reply, it does not
 * free under backpressure and the agent does not give it up or release it
 * before its retries: the agent re-sends the SEQUENCED to the leader,
 * whose duplicate ACK (tools/test-replica and replica/ re-ACK every copy
 * of a seq they hold, the leader with its result) completes the quorum
 * again. That ACK carries the result itself, so the REPLY it becomes needs
 * no growth and cannot fail the same way: a retry of the follower's ACK
 * would meet the same short frame again. The leader's stored result stays.
 * An ACK that saw REPLIED during the undo counts as late and its bit stays.
 */
#ifndef XSEQ_AGGREGATOR_H
#define XSEQ_AGGREGATOR_H

#include "sequencer.h"

/* Bounded retries of the ack-set CAS: at most XSEQ_MAX_REPLICAS writers
 * race on a slot, so this never runs out in practice; if it does the ACK
 * is dropped and the replica's retransmitted ACK counts later. */
#define ACK_CAS_TRIES 16

static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 b = 0;

#pragma unroll
	for (int shift = 32; shift > 0; shift >>= 1) {
		if (v >> shift) {
			v >>= shift;
			b += shift;
		}
	}
	return b < XSEQ_HIST_BUCKETS ? b : XSEQ_HIST_BUCKETS - 1;
}

static __always_inline void observe_quorum(__u64 stamp_ns)
{
	__u64 now = bpf_ktime_get_tai_ns();
	__u64 took = now > stamp_ns ? now - stamp_ns : 0;
	__u32 b = log2_bucket(took), sum = XSEQ_HIST_SUM;
	__u64 *v = bpf_map_lookup_elem(&xseq_quorum_hist, &b);

	if (v)
		*v += 1;
	v = bpf_map_lookup_elem(&xseq_quorum_hist, &sum);
	if (v)
		*v += took;
}

/* What the headers of an ACK and a REPLY take: seq_parse() refuses IP
 * options, so the xseq payload always starts here. */
#define REPLY_HDRS (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + XSEQ_HDR_LEN)

/*
 * Resizes the frame by delta bytes for the REPLY. Returns 0 when the tail
 * moved, 1 when (part of) a growth came from headroom, -1 when neither
 * could (the frame is then unchanged or about to be dropped).
 *
 * A follower's empty ACK that completes a quorum grows by the whole
 * result, and the tail often cannot: on veth in native mode the frame is
 * the sender's skb, whose tailroom is what its allocation left (measured:
 * most of 32..256-byte growths fail). Native XDP guarantees 256 bytes of
 * headroom, of which bpf_xdp_adjust_head leaves sizeof(struct xdp_frame)
 * to the kernel, so the growth is taken in front: the whole of it, else
 * part in front and the rest at the tail. The headers are then moved to
 * the new front; what lies between them and the result is overwritten by
 * the result.
 */
static __always_inline int reply_resize(struct xdp_md *ctx, int delta)
{
	const int parts[3] = {192, 128, 64};
	__u8 hdrs[REPLY_HDRS];

	if (!bpf_xdp_adjust_tail(ctx, delta))
		return 0;
	if (delta <= 0)
		return -1;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int head = i == 0 ? delta : parts[i - 1];

		if (i > 0 && head >= delta)
			continue;
		if (bpf_xdp_adjust_head(ctx, -head))
			continue;
		if (head == delta || !bpf_xdp_adjust_tail(ctx, delta - head)) {
			if (bpf_xdp_load_bytes(ctx, head, hdrs, sizeof(hdrs)) ||
			    bpf_xdp_store_bytes(ctx, 0, hdrs, sizeof(hdrs)))
				return -1;
			return 1;
		}
		bpf_xdp_adjust_head(ctx, head); /* give it back, try a smaller part */
	}
	return -1;
}

/*
 * Rewrites the ACK in place into the REPLY for slot s: resized to carry
 * the result, addressed from us to the client recorded at stamping time.
 * Returns XDP_TX, or XDP_DROP when the frame could not be resized or
 * written (nothing was sent: the caller undoes the ACK).
 */
static __always_inline int ack_reply(struct xdp_md *ctx, struct seq_req *r, struct xseq_slot *s,
				     __u32 view, __u32 leader)
{
	const __u32 l4 = sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr);
	__u32 answered = s->result_view == view + 1;
	__u32 stale = answered && (__sync_fetch_and_add(&s->state, 0) & XSEQ_SLOT_F_STALE);
	__u32 result_len = answered && !stale ? s->result_len : 0;
	__be32 our_addr = r->ip->daddr;
	__u8 our_mac[ETH_ALEN];
	__u64 client_id = *(__u64 *)&s->msg[40];  /* already network order */
	__u64 request_id = *(__u64 *)&s->msg[48];

	if (result_len > XSEQ_RESULT_CAP)
		result_len = 0;
	__builtin_memcpy(our_mac, r->eth->h_dest, ETH_ALEN);
	/* The ACK's MAC trailer goes too: a REPLY carries none (clients hold no key). */
	int resized = reply_resize(ctx, (int)result_len - (int)(r->payload_len + r->mac_len));
	if (resized < 0)
		return XDP_DROP;

	/* Resizing invalidated every packet pointer: parse again. */
	struct cursor c;
	cursor_init(&c, ctx);
	struct ethhdr *eth = CURSOR_PULL(&c, struct ethhdr);
	struct iphdr *ip = CURSOR_PULL(&c, struct iphdr);
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	struct xseq_hdr *h = CURSOR_PULL(&c, struct xseq_hdr);
	if (!eth || !ip || !udp || !h)
		return XDP_DROP;
	barrier_var(result_len);
	if (result_len > 0 && result_len <= XSEQ_RESULT_CAP &&
	    bpf_xdp_store_bytes(ctx, l4 + XSEQ_HDR_LEN, s->result, result_len))
		return XDP_DROP;

	h->type = XSEQ_MSG_REPLY;
	h->flags = bpf_htons(stale ? XSEQ_F_STALE : XSEQ_F_RESULT);
	h->sequencer_id = bpf_htons(r->g->sequencer_id);
	h->replica_id = bpf_htons(leader);
	h->view = bpf_htonl(view);
	h->clock_ns = bpf_cpu_to_be64(s->stamp_ns);
	h->client_id = client_id;
	h->request_id = request_id;
	h->payload_len = bpf_htonl(result_len);
	h->reserved = 0;
	/* group_id, session and seq are the ACK's, already checked equal. */

	udp->source = xseq_cfg.port;
	udp->dest = s->client_port;
	udp->len = bpf_htons(sizeof(*udp) + XSEQ_HDR_LEN + result_len);
	udp->check = 0; /* IPv4 allows none; summing the result would cost a loop */

	ip->saddr = our_addr;
	ip->daddr = s->client_addr;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*udp) + XSEQ_HDR_LEN + result_len);
	ip->ttl = 64;
	ip->check = ipv4_csum20(ip);

	__builtin_memcpy(eth->h_dest, s->client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, our_mac, ETH_ALEN);
	count(XSEQ_CTR_REPLY);
	if (resized > 0)
		count(XSEQ_CTR_REPLY_HEADROOM);
	return XDP_TX;
}

/*
 * The completing ACK could not become the REPLY: forget the leader's ACK
 * (bit), as if it had been lost (see the top of this file). The bit goes
 * first, so from here on the slot lacks the leader: no quorum, not acked
 * by every member, not freed, released or given up; then the right to
 * reply. If the slot already holds another generation nothing of this
 * seq is left in it, and its state is the new seq's, not ours to touch. A
 * view reset meanwhile cleared the bit with the rest; the right to reply
 * still goes back, for the new view's ACKs.
 */
static __always_inline void ack_undo(struct xseq_slot *s, __u32 gen, __u32 bit)
{
	for (int i = 0; i < ACK_CAS_TRIES; i++) {
		__u64 old = __sync_fetch_and_add(&s->acks, 0);

		if (ack_gen_of(old) != gen)
			return;
		if (!(old & bit) || __sync_val_compare_and_swap(&s->acks, old, old & ~(__u64)bit) == old)
			break;
	}
	__sync_fetch_and_and(&s->state, ~XSEQ_SLOT_F_REPLIED);
}

/*
 * Whether the acked set certifies the slot's request: the leader of the
 * view acked, and a quorum of the n members did. Weighted (version != 0):
 * the acked weight is more than half of the members' total, both summed
 * here from the table the slot was stamped under; version 0: a count.
 * Returns 1 yes, 0 no, -1 when that table was replaced (never mix tables).
 */
static __always_inline int ack_certifies(const struct xseq_group *g, __u32 gid, __u32 version, __u32 acked,
					 __u32 leader)
{
	if (!(acked & (1u << leader)))
		return 0;
	if (!version)
		return (__u32)__builtin_popcount(acked) >= g->quorum;
	__u32 key = 2 * gid + (version & 1);
	struct xseq_weights *w = bpf_map_lookup_elem(&xseq_weights, &key);
	if (!w || w->version != version)
		return -1;
	__u32 total = 0, got = 0, n = g->n_members;

#pragma unroll
	for (__u32 i = 0; i < XSEQ_MAX_REPLICAS; i++) {
		__u32 wi = i < n ? w->weight[i] : 0;

		total += wi;
		got += acked & (1u << i) ? wi : 0;
	}
	return 2 * got > total;
}

/* Handles a parsed ACK (r from seq_parse); returns the XDP action. */
static __always_inline int ack_handle(struct xdp_md *ctx, struct seq_req *r)
{
	struct xseq_group *g = r->g;
	struct xseq_hdr *h = r->h;
	struct iphdr *ip = r->ip;
	struct udphdr *udp = r->udp;

	count(XSEQ_CTR_ACK_RX);
	if (bpf_ntohl(h->session) != g->session)
		return drop(XSEQ_CTR_DROP_ACK_SESSION, ip, udp, r->frame_len);
	__u32 rid = bpf_ntohs(h->replica_id);
	__u32 n = g->n_members;
	if (rid >= n || rid >= XSEQ_MAX_REPLICAS)
		return drop(XSEQ_CTR_DROP_ACK_STRANGER, ip, udp, r->frame_len);
	struct xseq_member *m = &g->members[rid];
	if (m->addr != ip->saddr || m->port != udp->source)
		return drop(XSEQ_CTR_DROP_ACK_STRANGER, ip, udp, r->frame_len);
	/* Keyed group: after the cheap checks, so a stranger's flood from
	 * other addresses costs no hashing; before the slot is touched. */
	if (r->key && (!r->mac_len || !mac_frame_ok(ctx, sizeof(struct ethhdr) + sizeof(struct iphdr) +
							     sizeof(struct udphdr),
						    XSEQ_HDR_LEN + r->payload_len, r->key)))
		return drop(XSEQ_CTR_DROP_BAD_MAC, ip, udp, r->frame_len);

	__u64 seq = bpf_be64_to_cpu(h->seq);
	struct xseq_slot *s = slot_of(g, seq);
	if (!s || s->seq != seq || s->session != g->session)
		return drop(XSEQ_CTR_DROP_ACK_WINDOW, ip, udp, r->frame_len);
	__u32 gen = ack_gen(seq);

	__u32 view = bpf_ntohl(h->view);
	__u32 leader = view % n;
	__u32 bit = 1u << rid;
	/* Read before the CAS: one that succeeds for gen proves the slot was
	 * still this seq's, whose stamp wrote the version before its acks. */
	__u32 wversion = *(volatile __u32 *)&s->weights_version;

	/* The leader's result goes in before its bit, so whoever completes
	 * the quorum with the leader's bit set finds the result there. */
	if (rid == leader && (h->flags & bpf_htons(XSEQ_F_RESULT))) {
		__u32 len = r->payload_len;

		if (len > xseq_cfg.max_result || len > XSEQ_RESULT_CAP)
			return drop(XSEQ_CTR_DROP_RESULT_TOO_BIG, ip, udp, r->frame_len);
		__u64 cur = __sync_fetch_and_add(&s->acks, 0);

		/* The generation check narrows (it cannot close: the copy is
		 * not atomic) a stale duplicate's result landing on the slot's
		 * next seq; that needs the slot retaken and its new leader ACK
		 * handled inside these few instructions. */
		if (ack_gen_of(cur) != gen)
			return drop(XSEQ_CTR_DROP_ACK_WINDOW, ip, udp, r->frame_len);
		if (cur >> 32 > view)
			return drop(XSEQ_CTR_DROP_ACK_STALE_VIEW, ip, udp, r->frame_len);
		barrier_var(len);
		if (len > 0 && len <= XSEQ_RESULT_CAP &&
		    bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr) + sizeof(struct iphdr) +
						    sizeof(struct udphdr) + XSEQ_HDR_LEN,
				       s->result, len))
			return XDP_DROP;
		s->result_len = len;
		if (h->flags & bpf_htons(XSEQ_F_STALE))
			__sync_fetch_and_or(&s->state, XSEQ_SLOT_F_STALE);
		else
			__sync_fetch_and_and(&s->state, ~XSEQ_SLOT_F_STALE);
		__sync_lock_test_and_set(&s->result_view, view + 1);
	}

	__u64 old, next = 0;
	int swapped = 0;
	for (int i = 0; i < ACK_CAS_TRIES; i++) {
		old = __sync_fetch_and_add(&s->acks, 0);
		__u32 oview = old >> 32;

		if (ack_gen_of(old) != gen)
			return drop(XSEQ_CTR_DROP_ACK_WINDOW, ip, udp, r->frame_len);
		if (view < oview)
			return drop(XSEQ_CTR_DROP_ACK_STALE_VIEW, ip, udp, r->frame_len);
		if (view == oview && (old & bit)) {
			count(XSEQ_CTR_ACK_DUPLICATE);
			return XDP_DROP;
		}
		next = view > oview ? ((__u64)view << 32) | ((__u64)gen << XSEQ_ACKS_GEN_SHIFT) | bit
				    : old | bit;
		if (__sync_val_compare_and_swap(&s->acks, old, next) == old) {
			swapped = 1;
			/* A real reset discards acks; a slot's first ACK in a view
			 * above 0 finds none (the low word also holds the
			 * generation, which is no ack). */
			if (view > oview && (old & XSEQ_ACKS_BITMAP))
				count(XSEQ_CTR_ACK_VIEW_RESET);
			break;
		}
	}
	if (!swapped)
		return XDP_DROP;
	count(XSEQ_CTR_ACK_COUNTED);

	int certified = ack_certifies(g, r->gid, wversion, (__u32)next & XSEQ_ACKS_BITMAP, leader);
	if (certified < 0)
		return drop(XSEQ_CTR_DROP_ACK_WEIGHTS, ip, udp, r->frame_len);
	if (!certified)
		return XDP_DROP;
	if (__sync_fetch_and_or(&s->state, XSEQ_SLOT_F_REPLIED) & XSEQ_SLOT_F_REPLIED) {
		count(XSEQ_CTR_ACK_LATE);
		return XDP_DROP;
	}
	__u64 stamp_ns = s->stamp_ns;
	if (ack_reply(ctx, r, s, view, leader) == XDP_TX) {
		observe_quorum(stamp_ns);
		return XDP_TX;
	}
	ack_undo(s, gen, 1u << leader);
	count(XSEQ_CTR_REPLY_GROW_FAILED);
	return XDP_DROP;
}

#endif /* XSEQ_AGGREGATOR_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replica.h: the replica host's XDP program, in three stages so each can be
 * read (and measured) on its own:
 *
 *   rx_parse()   classify the frame: not for the group port, or not a
 *                well-formed SEQUENCED of a stream user space set up
 *                (PASS), a SEQUENCED or FLUSH from no configured
 *                sequencer (DROP, when the source check is on), else
 *                locate the header and the stream's maps;
 *   rx_filter()  drop what the replica would discard: an older session,
 *                or a seq it already delivered that no re-ACK needs;
 *   rx_track()   advance the highest seq seen and post a gap event when a
 *                seq skips ahead of it.
 *
 * The program never drops anything user space would have acted on
 * differently, with one deliberate exception explained at rx_filter(); a
 * malformed packet passes and user space counts it as it always did.
 */
#ifndef XSEQ_REPLICA_H
#define XSEQ_REPLICA_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xseq.h"
#include "parse.h"
#include "mac.h"

/* Set by the loader before load (BpfObjectSpec.setRodata). */
const volatile struct xseq_rx_cfg xseq_rx_cfg = {
	.port = bpf_htons(7500),
};

/* (group, sequencer) -> what the replica has: session, delivered seq,
 * retransmission margin. Written by the replica (whole values); read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSEQ_RX_STREAMS);
	__type(key, struct xseq_rx_key);
	__type(value, struct xseq_rx_ctl);
} xseq_rx_ctl SEC(".maps");

/* (group, sequencer) -> highest seq seen and per-stream counters. Created
 * zeroed by the replica beside its ctl entry; written only here (atomics). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSEQ_RX_STREAMS);
	__type(key, struct xseq_rx_key);
	__type(value, struct xseq_rx_state);
} xseq_rx_state SEC(".maps");

/* enum xseq_rx_counter -> packets, per CPU. Written here; the replica sums
 * the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSEQ_RX_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xseq_rx_counters SEC(".maps");

/* struct xseq_rx_source -> 1: the configured sequencers' address:port.
 * Written by the replica at load; read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSEQ_RX_SOURCES);
	__type(key, struct xseq_rx_source);
	__type(value, __u32);
} xseq_rx_sources SEC(".maps");

/* struct xseq_gap_event records. Written here; consumed by the replica. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XSEQ_RX_GAPS_BYTES);
} xseq_rx_gaps SEC(".maps");

/* Group id -> MAC key (struct xseq_mac_key). Written by the replica (its
 * key file, at start and on reload); read here. No entry, or no
 * XSEQ_KEY_F_SET: nothing is verified here (user space still is). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct xseq_mac_key);
} xseq_rx_mac_keys SEC(".maps");

/* A well-formed SEQUENCED of a tracked stream, located by rx_parse(). */
struct rx_pkt {
	struct xseq_hdr *h;
	struct xseq_rx_key key;
	struct xseq_rx_ctl *ctl;
	struct xseq_rx_state *st;
	__u32 session;
	__u64 seq;
	__u64 delivered;     /* ctl's, as rx_filter() read it */
};

static __always_inline void rx_count(__u32 ctr)
{
	__u64 *v = bpf_map_lookup_elem(&xseq_rx_counters, &ctr);

	if (v)
		*v += 1;
}

/* Returns -1 for a SEQUENCED of a tracked stream (p filled in), else the
 * XDP action. Checks what bpf/wire.ts decodeMessage() checks, so what
 * passes as malformed here is exactly what user space ignores. */
static __always_inline int rx_parse(struct xdp_md *ctx, struct rx_pkt *p)
{
	struct cursor c;

	cursor_init(&c, ctx);
	__u32 frame_len = cursor_remaining(&c);
	struct ethhdr *eth = CURSOR_PULL(&c, struct ethhdr);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = CURSOR_PULL(&c, struct iphdr);
	if (!ip || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return XDP_PASS;
	/* Fragments pass: a later fragment has no UDP header to look at, and
	 * the stack reassembles the datagram for user space. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	__u32 ihl_len = ip->ihl * 4;
	if (ihl_len > sizeof(*ip) && !cursor_pull(&c, ihl_len - sizeof(*ip)))
		return XDP_PASS;
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	if (!udp || udp->dest != xseq_rx_cfg.port)
		return XDP_PASS;

	rx_count(XSEQ_RX_CTR_RX);
	struct xseq_hdr *h = p->h = CURSOR_PULL(&c, struct xseq_hdr);
	/* Host order. The frame may carry Ethernet padding past the IP
	 * total, never less. */
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	__u32 udp_len = bpf_ntohs(udp->len);
	if (!h || ip_len + sizeof(struct ethhdr) > frame_len || udp_len + ihl_len != ip_len ||
	    h->magic != bpf_htonl(XSEQ_MAGIC) || h->version != XSEQ_VERSION ||
	    h->type == 0 || h->type >= XSEQ_MSG_TYPE_MAX ||
	    bpf_ntohl(h->payload_len) > XSEQ_MAX_PAYLOAD ||
	    udp_len != sizeof(*udp) + XSEQ_HDR_LEN + bpf_ntohl(h->payload_len) +
			       (h->flags & bpf_htons(XSEQ_F_MAC) ? XSEQ_MAC_LEN : 0)) {
		rx_count(XSEQ_RX_CTR_PASS_MALFORMED);
		return XDP_PASS;
	}
	/* Only a configured sequencer stamps or flushes: a stranger's
	 * SEQUENCED or FLUSH must never reach the replica (user space checks
	 * the same; this keeps a flood of them off the socket). */
	if (xseq_rx_cfg.check_sources &&
	    (h->type == XSEQ_MSG_SEQUENCED || h->type == XSEQ_MSG_FLUSH)) {
		struct xseq_rx_source src = { .addr = ip->saddr, .port = udp->source, .pad = 0 };

		if (!bpf_map_lookup_elem(&xseq_rx_sources, &src)) {
			rx_count(XSEQ_RX_CTR_DROP_STRANGER);
			return XDP_DROP;
		}
	}
	/* Keyed group: a SEQUENCED or FLUSH without a valid MAC never reaches
	 * user space (which would drop it too); everything after this sees
	 * authenticated traffic only. The source check above is cheaper and
	 * goes first; the address can be forged, the MAC cannot. */
	if (h->type == XSEQ_MSG_SEQUENCED || h->type == XSEQ_MSG_FLUSH) {
		__u32 gid = bpf_ntohl(h->group_id);
		const struct xseq_mac_key *k = bpf_map_lookup_elem(&xseq_rx_mac_keys, &gid);

		if (k && (k->flags & XSEQ_KEY_F_SET) &&
		    (!(h->flags & bpf_htons(XSEQ_F_MAC)) ||
		     !mac_frame_ok(ctx, sizeof(struct ethhdr) + ihl_len + sizeof(*udp),
				   XSEQ_HDR_LEN + bpf_ntohl(h->payload_len), k))) {
			rx_count(XSEQ_RX_CTR_DROP_BAD_MAC);
			return XDP_DROP;
		}
	}
	if (h->type != XSEQ_MSG_SEQUENCED) {
		rx_count(XSEQ_RX_CTR_PASS_OTHER_TYPE);
		return XDP_PASS;
	}
	p->seq = bpf_be64_to_cpu(h->seq);
	/* user space refuses seq 0 and seqs past 2^53 as malformed */
	if (p->seq == 0 || p->seq > (1ULL << 53) - 1) {
		rx_count(XSEQ_RX_CTR_PASS_MALFORMED);
		return XDP_PASS;
	}
	rx_count(XSEQ_RX_CTR_SEQUENCED);

	p->key.group_id = bpf_ntohl(h->group_id);
	p->key.sequencer_id = bpf_ntohs(h->sequencer_id);
	p->key.pad = 0;
	p->ctl = bpf_map_lookup_elem(&xseq_rx_ctl, &p->key);
	p->st = bpf_map_lookup_elem(&xseq_rx_state, &p->key);
	if (!p->ctl || !p->st) {
		rx_count(XSEQ_RX_CTR_PASS_UNTRACKED);
		return XDP_PASS;
	}
	p->session = bpf_ntohl(h->session);
	return -1;
}

/*
 * Returns -1 to go on, else the XDP action.
 *
 * Older session: the replica returns at once for these (replica.ts
 * onSequenced), so dropping them changes nothing. A newer session passes:
 * it is how the replica learns that the sequencer was re-created.
 *
 * Delivered seqs (seq <= delivered) are where the kernel must not simply
 * mirror user space, because of the ACK race: the replica answers a copy
 * of a delivered seq by ACKing it again, and that is how a lost ACK gets
 * replaced. The agent re-sends a stamped packet, always flagged
 * XSEQ_F_RETRANSMIT and by unicast, only to the members whose ACK its
 * window does not have (agent/retransmit.ts); dropping those copies would
 * leave the slot unacked until the agent gives up, and when the lost ACK
 * was the leader's (it carries the result) the client never gets its
 * REPLY. So:
 *   - a delivered seq NOT flagged XSEQ_F_RETRANSMIT is a network duplicate
 *     of a multicast the replica already ACKed: dropped. If that first ACK
 *     was lost, the agent's retransmission (which passes) brings the
 *     re-ACK; the duplicate only ever raced it.
 *   - a retransmission of a delivered seq passes, unless it is
 *     retransmit_keep or more below delivered: the sequencer's window
 *     holds at most window.slots seqs behind its newest, which is at least
 *     delivered, so with retransmit_keep >= the agent's window.slots the
 *     slot has been reused and an ACK for that seq would be dropped by the
 *     aggregator (DROP_ACK_WINDOW) anyway.
 * Rewriting a duplicate into the ACK here was the other way; it needs the
 * replica's view, its log entry (a no-op is not ACKed, a different request
 * in the slot neither) and, for the leader, the result: user space state.
 */
static __always_inline int rx_filter(struct rx_pkt *p)
{
	struct xseq_rx_ctl *ctl = p->ctl;
	struct xseq_rx_state *st = p->st;
	/* Session first, then delivered, each read once (xseq.h says why the
	 * order matters); x86 keeps loads in program order. */
	__u32 session = *(volatile __u32 *)&ctl->session;
	asm volatile("" ::: "memory");
	__u64 delivered = *(volatile __u64 *)&ctl->delivered;
	__u64 keep = *(volatile __u64 *)&ctl->retransmit_keep;

	p->delivered = delivered;
	/* Sessions compare as serial numbers (the one after 0xffffffff is 1);
	 * 0 is "none yet", before every other. */
	__s32 diff = session == 0 ? 1 : p->session == 0 ? -1 : (__s32)(p->session - session);

	if (p->session != session && diff < 0) {
		rx_count(XSEQ_RX_CTR_DROP_STALE_SESSION);
		__sync_fetch_and_add(&st->dropped_stale, 1);
		return XDP_DROP;
	}
	if (p->session != session) {
		rx_count(XSEQ_RX_CTR_PASS_NEWER_SESSION);
		return XDP_PASS;
	}
	if (p->seq > delivered)
		return -1;
	if (!(p->h->flags & bpf_htons(XSEQ_F_RETRANSMIT))) {
		rx_count(XSEQ_RX_CTR_DROP_DUPLICATE);
		__sync_fetch_and_add(&st->dropped_duplicate, 1);
		return XDP_DROP;
	}
	if (delivered - p->seq >= keep) {
		rx_count(XSEQ_RX_CTR_DROP_RETRANSMIT_OLD);
		__sync_fetch_and_add(&st->dropped_duplicate, 1);
		return XDP_DROP;
	}
	rx_count(XSEQ_RX_CTR_PASS_RETRANSMIT);
	__sync_fetch_and_add(&st->passed_retransmit, 1);
	return XDP_PASS;
}

/*
 * A seq of the current session past delivered: move highest_seen up to it
 * and, if it skipped seqs, post them as a gap. The CAS gives each advance
 * to exactly one CPU, so concurrent CPUs post disjoint ranges. When the
 * replica moved to a new session (ctl.session changed) the first CPU to
 * notice restarts the stream at delivered; a CPU racing that restart may
 * post one range against the old value, which the replica checks against
 * its own log like any other gap event.
 */
static __always_inline void rx_track(struct rx_pkt *p)
{
	struct xseq_rx_state *st = p->st;
	__u32 old_session = st->session;

	if (old_session != p->session &&
	    __sync_val_compare_and_swap(&st->session, old_session, p->session) == old_session)
		__sync_lock_test_and_set(&st->highest_seen, p->delivered);

	for (int i = 0; i < 8; i++) {
		__u64 seen = __sync_fetch_and_add(&st->highest_seen, 0);

		if (p->seq <= seen)
			return;
		if (__sync_val_compare_and_swap(&st->highest_seen, seen, p->seq) != seen)
			continue;
		__u64 base = seen > p->delivered ? seen : p->delivered;
		if (p->seq <= base + 1)
			return;
		struct xseq_gap_event ev = {
			.group_id = p->key.group_id,
			.sequencer_id = p->key.sequencer_id,
			.session = p->session,
			.from = base + 1,
			.to = p->seq - 1,
		};
		__sync_fetch_and_add(&st->gap_events, 1);
		__sync_fetch_and_add(&st->gap_seqs, ev.to - ev.from + 1);
		rx_count(XSEQ_RX_CTR_GAP_EVENTS);
		if (bpf_ringbuf_output(&xseq_rx_gaps, &ev, sizeof(ev), 0))
			rx_count(XSEQ_RX_CTR_EVENTS_LOST);
		return;
	}
}

#endif /* XSEQ_REPLICA_H */

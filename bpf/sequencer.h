/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sequencer.h: the sequencer's maps and its three stages, split the way
 * Katran splits its data path so each stage can be measured on its own:
 *
 *   seq_parse()   classify the frame: not ours (PASS), bad (DROP + counter
 *                 + sample), or a valid REQUEST, ACK or FLUSH_SOLICIT for an
 *                 enabled group;
 *   seq_admit()   backpressure: refuse a request whose window slot is busy
 *                 (not acked by every member, nor released by the agent);
 *   seq_stamp()   take the group's next seq (one atomic add: dense and
 *                 unique across CPUs) and stamp session, sequencer id, seq
 *                 and TAI clock into the header;
 *   seq_keep()    copy the stamped message and the client's address into
 *                 the group's window slot (aggregating groups only);
 *   seq_forward() rewrite L2-L4 to the group's multicast address and fix
 *                 the checksums, ready for XDP_TX.
 *
 * ACKs go to aggregator.h, FLUSH_SOLICITs to flush.h. sequencer.bpf.c chains the stages;
 * bench/xdp/seq_bench.bpf.c measures them.
 */
#ifndef XSEQ_SEQUENCER_H
#define XSEQ_SEQUENCER_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xseq.h"
#include "parse.h"
#include "mac.h"

/* Set by the loader before load (BpfObjectSpec.setRodata). */
const volatile struct xseq_load_cfg xseq_cfg = {
	.port = bpf_htons(XSEQ_DEFAULT_PORT),
	.solicit_gap_ns = XSEQ_SOLICIT_GAP_NS,
};

/* Group id -> multicast destination, session and sequencer id. Written by
 * the agent; read by the sequencer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct xseq_group);
} xseq_groups SEC(".maps");

/* Group id -> last assigned seq. Written by the sequencer (atomic add);
 * the agent reads it, and zeroes it only for a group that is not stamping. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct xseq_group_seq);
} xseq_group_seq SEC(".maps");

/* enum xseq_counter -> packets, per CPU. Written by the sequencer; the
 * agent sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSEQ_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xseq_counters SEC(".maps");

/* struct xseq_drop_event samples of dropped xseq packets. Written by the
 * sequencer; consumed by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XSEQ_EVENTS_BYTES);
} xseq_events SEC(".maps");

/* Window slots of every aggregating group (struct xseq_slot). Written by
 * the stamp and ack paths; the agent reads it through mmap. max_entries is
 * set at load: window_slots x number of windows. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xseq_slot);
} xseq_slots SEC(".maps");

/* Group id -> released seq (host order; see xseq.h). Written by the
 * agent's retransmitter; read by the stamp path (backpressure). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, __u64);
} xseq_released SEC(".maps");

/* 2 * group id + (version & 1) -> struct xseq_weights. Written by the
 * agent; read by the ack path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct xseq_weights);
} xseq_weights SEC(".maps");

/* Group id -> MAC key (struct xseq_mac_key; docs/authentication.md).
 * Written by the agent (at start and on SIGHUP); read by every path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSEQ_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct xseq_mac_key);
} xseq_mac_keys SEC(".maps");

/* Client id -> the source that first used it (struct xseq_client_source,
 * xseq.h): groups without a key bind client ids to their first source.
 * Written and read by the request path only; LRU, so a client's every
 * REQUEST keeps its entry and a flood of new ids evicts idle ones first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XSEQ_CLIENT_SOURCES);
	__type(key, __u64);
	__type(value, struct xseq_client_source);
} xseq_client_sources SEC(".maps");

/* group * (XSEQ_MAX_REPLICAS + 1) + solicitor -> TAI ns of the last
 * solicit answered for it (xseq.h, XSEQ_SOLICIT_GAP_NS). Solicit path only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSEQ_MAX_GROUPS * (XSEQ_MAX_REPLICAS + 1));
	__type(key, __u32);
	__type(value, __u64);
} xseq_solicit_last SEC(".maps");

/* Stamp-to-quorum latency, log2 buckets of nanoseconds, per CPU. Written
 * by the ack path when it sends a REPLY; the agent sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSEQ_HIST_BUCKETS + 1); /* + XSEQ_HIST_SUM */
	__type(key, __u32);
	__type(value, __u64);
} xseq_quorum_hist SEC(".maps");

/* Every drop reason's first XSEQ_SAMPLE_FIRST drops per CPU are sampled,
 * then one in XSEQ_SAMPLE_EVERY: a flood of bad packets must not cost a
 * ring buffer write each. */
#define XSEQ_SAMPLE_FIRST 64
#define XSEQ_SAMPLE_EVERY 64

/* A valid REQUEST, located and looked up by seq_parse(). */
struct seq_req {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct udphdr *udp;
	struct xseq_hdr *h;
	struct xseq_group *g;
	struct xseq_group_seq *gs;
	const struct xseq_mac_key *key; /* the group's, NULL: no key */
	__u32 mac_len;       /* XSEQ_MAC_LEN when the message carries a MAC, else 0 */
	__u64 seq;
	__u64 stamp_ns;
	__u32 frame_len;
	__u32 payload_len;
	__u32 gid;           /* host order: h->group_id */
};

/* Returns the counter's new per-CPU value (0 if the slot is missing). */
static __always_inline __u64 count(__u32 ctr)
{
	__u64 *v = bpf_map_lookup_elem(&xseq_counters, &ctr);

	if (!v)
		return 0;
	return ++*v;
}

/* Not inlined: it is on every drop path, and one copy keeps the program
 * small; a drop can afford the call. */
static __noinline int drop(__u32 reason, const struct iphdr *ip,
				const struct udphdr *udp, __u32 frame_len)
{
	__u64 n = count(reason);

	if (n <= XSEQ_SAMPLE_FIRST || (n % XSEQ_SAMPLE_EVERY) == 0) {
		struct xseq_drop_event ev = {
			.reason = reason,
			.saddr = ip->saddr,
			.sport = udp->source,
			.frame_len = frame_len,
		};

		if (bpf_ringbuf_output(&xseq_events, &ev, sizeof(ev), 0))
			count(XSEQ_CTR_EVENTS_LOST);
	}
	return XDP_DROP;
}

/* Returns -1 for a valid request (r filled in; a NEXTVAL has no group),
 * else the XDP action. */
static __always_inline int seq_parse(struct xdp_md *ctx, struct seq_req *r)
{
	struct cursor c;
	__u32 ihl_len, frame_len;

	cursor_init(&c, ctx);
	frame_len = cursor_remaining(&c);
	r->eth = CURSOR_PULL(&c, struct ethhdr);
	if (!r->eth || r->eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = r->ip = CURSOR_PULL(&c, struct iphdr);
	if (!ip || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return XDP_PASS;
	/* A non-first fragment carries no UDP header, so it cannot be told
	 * apart from other traffic; the stack discards it when reassembly
	 * never sees its first fragment (which is dropped below). */
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS;
	ihl_len = ip->ihl * 4;
	if (ihl_len > sizeof(*ip) && !cursor_pull(&c, ihl_len - sizeof(*ip)))
		return XDP_PASS;
	struct udphdr *udp = r->udp = CURSOR_PULL(&c, struct udphdr);
	if (!udp || udp->dest != xseq_cfg.port)
		return XDP_PASS;

	count(XSEQ_CTR_RX);
	if (ihl_len != sizeof(*ip))
		return drop(XSEQ_CTR_DROP_IP_OPTIONS, ip, udp, frame_len);
	if (ip->frag_off & bpf_htons(0x2000 /* IP_MF */))
		return drop(XSEQ_CTR_DROP_FRAGMENT, ip, udp, frame_len);

	struct xseq_hdr *h = r->h = CURSOR_PULL(&c, struct xseq_hdr);
	if (!h)
		return drop(XSEQ_CTR_DROP_TRUNCATED, ip, udp, frame_len);
	/* Host order. The IP total covers ip+udp+xseq+payload; the frame may
	 * carry Ethernet padding beyond it, never less. */
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	__u32 udp_len = bpf_ntohs(udp->len);
	if (ip_len + sizeof(struct ethhdr) > frame_len || udp_len + sizeof(*ip) > ip_len)
		return drop(XSEQ_CTR_DROP_TRUNCATED, ip, udp, frame_len);
	if (h->magic != bpf_htonl(XSEQ_MAGIC))
		return drop(XSEQ_CTR_DROP_BAD_MAGIC, ip, udp, frame_len);
	if (h->version != XSEQ_VERSION)
		return drop(XSEQ_CTR_DROP_BAD_VERSION, ip, udp, frame_len);
	if (h->type == 0 || h->type >= XSEQ_MSG_TYPE_MAX)
		return drop(XSEQ_CTR_DROP_UNKNOWN_TYPE, ip, udp, frame_len);
	__u32 payload_len = bpf_ntohl(h->payload_len);
	__u32 mac_len = h->flags & bpf_htons(XSEQ_F_MAC) ? XSEQ_MAC_LEN : 0;
	if (payload_len > XSEQ_MAX_PAYLOAD ||
	    udp_len != sizeof(*udp) + XSEQ_HDR_LEN + payload_len + mac_len ||
	    udp_len + sizeof(*ip) != ip_len)
		return drop(XSEQ_CTR_DROP_BAD_LENGTH, ip, udp, frame_len);
	r->frame_len = frame_len;
	r->payload_len = payload_len;
#ifdef XSEQ_NEXTVAL /* set by nextval.h: the caller dispatches NEXTVAL first */
	if (h->type == XSEQ_MSG_NEXTVAL)
		return -1; /* no group */
#endif
	if (h->type != XSEQ_MSG_REQUEST && h->type != XSEQ_MSG_ACK && h->type != XSEQ_MSG_FLUSH_SOLICIT)
		return drop(XSEQ_CTR_DROP_UNEXPECTED_TYPE, ip, udp, frame_len);

	__u32 gid = bpf_ntohl(h->group_id);
	r->g = bpf_map_lookup_elem(&xseq_groups, &gid);
	if (!r->g || !(r->g->flags & XSEQ_GROUP_F_ENABLED))
		return drop(XSEQ_CTR_DROP_UNKNOWN_GROUP, ip, udp, frame_len);
	r->gs = bpf_map_lookup_elem(&xseq_group_seq, &gid);
	if (!r->gs)
		return drop(XSEQ_CTR_DROP_UNKNOWN_GROUP, ip, udp, frame_len);
	r->key = bpf_map_lookup_elem(&xseq_mac_keys, &gid);
	if (r->key && !(r->key->flags & XSEQ_KEY_F_SET))
		r->key = NULL;
	/* A group without a key: nobody holds one, so a MAC means nothing.
	 * (Keyed: REQUESTs and solicits are checked on their own paths.) */
	if (mac_len && !r->key && h->type != XSEQ_MSG_ACK)
		return drop(XSEQ_CTR_DROP_BAD_MAC, ip, udp, frame_len);
	r->mac_len = mac_len;
	r->gid = gid;
	return -1;
}

/* The window slot that holds seq for the group, or NULL. */
static __always_inline struct xseq_slot *slot_of(const struct xseq_group *g, __u64 seq)
{
	__u32 idx = g->window_base + (__u32)(seq & (xseq_cfg.window_slots - 1));

	return bpf_map_lookup_elem(&xseq_slots, &idx);
}

static __always_inline __u32 members_mask(const struct xseq_group *g)
{
	return (1u << (g->n_members & (XSEQ_MAX_REPLICAS * 2 - 1))) - 1;
}

/* The generation bits of xseq_slot.acks for seq (xseq.h): which of the
 * seqs sharing a slot the acks are for. The seq's low 24 bits rather than
 * seq / W: they differ for seq and seq + k*W whenever k*W is no multiple of
 * 2^24 (k < 16 at the largest window, 2^20), far beyond the few
 * instructions the race lasts, and they cost no divide on the hot path. */
static __always_inline __u32 ack_gen(__u64 seq)
{
	return (__u32)seq & XSEQ_ACKS_GEN_MASK;
}

static __always_inline __u32 ack_gen_of(__u64 acks)
{
	return ((__u32)acks >> XSEQ_ACKS_GEN_SHIFT) & XSEQ_ACKS_GEN_MASK;
}

/* Whether every member acked the seq a slot holds (or it holds none). */
static __always_inline int slot_acked(const struct xseq_slot *s, const struct xseq_group *g)
{
	__u32 mask = members_mask(g);

	return s->seq == 0 || ((__u32)s->acks & mask) == mask;
}

/* Whether the agent released the slot's seq (xseq_released, xseq.h): it
 * gave up re-sending it after a quorum with the leader acked it. A slot of
 * an older session counts as released: nobody waits for it (the new
 * session's members never ack it, the agent never re-sends it), and a
 * group given a new session on a data path it keeps (the agent re-adding
 * a group) would otherwise stall for good under backpressure on the first
 * slot its old session left unacked. */
static __always_inline int slot_released(const struct xseq_slot *s, const struct seq_req *r)
{
	__u32 gid = r->gid;
	__u64 *rel = bpf_map_lookup_elem(&xseq_released, &gid);

	if (s->session != r->g->session)
		return 1;
	return rel && s->seq <= *rel;
}

/* Whether a new seq may take the slot without losing anything the agent
 * still waits for. */
static __always_inline int slot_free(const struct xseq_slot *s, const struct seq_req *r)
{
	return slot_acked(s, r->g) || slot_released(s, r);
}

/*
 * Turns a refused REQUEST around into an ERROR with `code` to its sender
 * (xseq.h): header kept but type, flags and payload; payload (and MAC
 * trailer) cut to struct xseq_error; addresses swapped; counted in `ctr`.
 * Returns XDP_TX, or XDP_DROP when the frame cannot be resized (a REQUEST
 * shorter than the error payload on a frame without tailroom): the client
 * then only times out. Never larger than the request: no amplification.
 */
static __always_inline int seq_refuse(struct xdp_md *ctx, struct seq_req *r, __u16 code, __u32 ctr)
{
	int delta = (int)sizeof(struct xseq_error) - (int)r->payload_len - (int)r->mac_len;

	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_DROP;
	/* Resizing invalidated every packet pointer: parse again. */
	struct cursor c;
	cursor_init(&c, ctx);
	struct ethhdr *eth = CURSOR_PULL(&c, struct ethhdr);
	struct iphdr *ip = CURSOR_PULL(&c, struct iphdr);
	struct udphdr *udp = CURSOR_PULL(&c, struct udphdr);
	struct xseq_hdr *h = CURSOR_PULL(&c, struct xseq_hdr);
	struct xseq_error *e = CURSOR_PULL(&c, struct xseq_error);
	if (!eth || !ip || !udp || !h || !e)
		return XDP_DROP;

	h->type = XSEQ_MSG_ERROR;
	h->flags = 0;
	h->sequencer_id = bpf_htons(r->g->sequencer_id);
	h->session = bpf_htonl(r->g->session);
	h->payload_len = bpf_htonl(sizeof(*e));
	e->code = bpf_htons(code);
	e->text_len = 0;

	__be16 sport = udp->source;
	udp->source = udp->dest;
	udp->dest = sport;
	udp->len = bpf_htons(sizeof(*udp) + XSEQ_HDR_LEN + sizeof(*e));
	udp->check = 0; /* IPv4 allows none */

	__be32 saddr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = saddr;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*udp) + XSEQ_HDR_LEN + sizeof(*e));
	ip->ttl = 64;
	ip->check = ipv4_csum20(ip);

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	count(ctr);
	return XDP_TX;
}

/*
 * Backpressure, before a seq is taken: a seq once taken must go out, or
 * the group sees a hole. Returns -1 to go on, else the XDP action. A
 * refused request is answered BUSY (seq_busy), so its client re-sends it
 * instead of waiting out a timeout. Two CPUs can both pass this check for
 * neighbouring seqs; seq_keep() then overwrites and counts it.
 */
static __always_inline int seq_admit(struct xdp_md *ctx, struct seq_req *r)
{
	if (!r->g->n_members || (xseq_cfg.flags & XSEQ_CFG_F_OVERWRITE))
		return -1;
	struct xseq_slot *s = slot_of(r->g, r->gs->seq + 1);
	if (!s)
		return drop(XSEQ_CTR_DROP_NO_WINDOW, r->ip, r->udp, r->frame_len);
	if (!slot_free(s, r)) {
		drop(XSEQ_CTR_DROP_BACKPRESSURE, r->ip, r->udp, r->frame_len);
		return seq_refuse(ctx, r, XSEQ_ERR_BUSY, XSEQ_CTR_BUSY);
	}
	return -1;
}

/*
 * Keeps a copy of the stamped message and who asked, for the REPLY and for
 * retransmission. seq goes in first so that late ACKs for the slot's old
 * seq stop matching before anything else changes, then the acks word with
 * the new seq's generation, which fails any ack CAS still in flight for
 * the old seq (aggregator.h). Call after seq_stamp()
 * and before seq_forward() (which overwrites the client's addresses).
 */
static __always_inline void seq_keep(struct xdp_md *ctx, struct seq_req *r)
{
	struct xseq_group *g = r->g;

	if (!g->n_members)
		return;
	struct xseq_slot *s = slot_of(g, r->seq);
	if (!s) {
		count(XSEQ_CTR_DROP_NO_WINDOW);
		return;
	}
	if (!slot_free(s, r))
		count(XSEQ_CTR_WINDOW_OVERWRITE);
	/* Volatile: the compiler keeps this order; x86 stores keep it too.
	 * The acks word is one 64-bit store: view 0, no acks, this seq's
	 * generation. */
	*(volatile __u64 *)&s->seq = r->seq;
	*(volatile __u64 *)&s->acks = (__u64)ack_gen(r->seq) << XSEQ_ACKS_GEN_SHIFT;
	s->state = 0;
	s->result_view = 0;
	s->result_len = 0;
	s->weights_version = g->weights_version;
	s->session = g->session;
	s->stamp_ns = r->stamp_ns;
	s->client_addr = r->ip->saddr;
	s->client_port = r->udp->source;
	__builtin_memcpy(s->client_mac, r->eth->h_source, ETH_ALEN);
	__u32 len = XSEQ_HDR_LEN + r->payload_len;

	barrier_var(len);
	if (len > XSEQ_MSG_CAP)
		len = XSEQ_MSG_CAP;
	s->msg_len = len;
	if (len > 0)
		bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr),
				   s->msg, len);
}

/* RFC 1624 incremental update: accumulate ~old + new for one 32-bit word
 * (two 16-bit words of the one's-complement sum). */
static __always_inline void csum_acc32(__u64 *acc, __u32 old, __u32 new)
{
	*acc += (__u32)~old;
	*acc += new;
}

static __always_inline void csum_acc64(__u64 *acc, __u64 old, __u64 new)
{
	csum_acc32(acc, (__u32)old, (__u32)new);
	csum_acc32(acc, (__u32)(old >> 32), (__u32)(new >> 32));
}

/* Stamps the header; returns the UDP checksum delta of what it changed, so
 * seq_forward() never has to sum the payload. */
static __always_inline __u64 seq_stamp(struct seq_req *r)
{
	struct xseq_hdr *h = r->h;
	__u64 acc = 0;
	__u32 w_old, w_new;

	r->seq = __sync_fetch_and_add(&r->gs->seq, 1) + 1;

	w_old = *(__u32 *)&h->version;
	h->type = XSEQ_MSG_SEQUENCED;
	csum_acc32(&acc, w_old, *(__u32 *)&h->version);
	w_old = *(__u32 *)&h->sequencer_id;
	h->sequencer_id = bpf_htons(r->g->sequencer_id);
	csum_acc32(&acc, w_old, *(__u32 *)&h->sequencer_id);
	w_new = bpf_htonl(r->g->session);
	csum_acc32(&acc, h->session, w_new);
	h->session = w_new;
	__u64 seq_be = bpf_cpu_to_be64(r->seq);
	r->stamp_ns = bpf_ktime_get_tai_ns();
	__u64 clock_be = bpf_cpu_to_be64(r->stamp_ns);
	csum_acc64(&acc, h->seq, seq_be);
	csum_acc64(&acc, h->clock_ns, clock_be);
	h->seq = seq_be;
	h->clock_ns = clock_be;
	return acc;
}

/* Readdresses the stamped frame to the group; acc is seq_stamp()'s delta. */
static __always_inline void seq_forward(struct seq_req *r, __u64 acc)
{
	struct ethhdr *eth = r->eth;
	struct iphdr *ip = r->ip;
	struct udphdr *udp = r->udp;
	struct xseq_group *g = r->g;
	__u32 w_old;

	csum_acc32(&acc, ip->saddr, ip->daddr);
	csum_acc32(&acc, ip->daddr, g->mcast_addr);
	w_old = *(__u32 *)&udp->source;
	udp->source = xseq_cfg.port;
	udp->dest = g->mcast_port;
	csum_acc32(&acc, w_old, *(__u32 *)&udp->source);
	/* Zero means the sender computed no checksum; it stays zero. A
	 * computed zero goes on the wire as 0xffff (RFC 768). */
	if (udp->check) {
		__u16 sum = (__u16)~csum_fold32(acc + (__u16)~udp->check);

		udp->check = sum ? sum : 0xffff;
	}

	/* Multicast MAC: 01:00:5e and the low 23 bits of the group address;
	 * the source is our own MAC, which the client addressed. */
	__u8 *ga = (__u8 *)&g->mcast_addr;
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	eth->h_dest[0] = 0x01;
	eth->h_dest[1] = 0x00;
	eth->h_dest[2] = 0x5e;
	eth->h_dest[3] = ga[1] & 0x7f;
	eth->h_dest[4] = ga[2];
	eth->h_dest[5] = ga[3];

	ip->saddr = ip->daddr;
	ip->daddr = g->mcast_addr;
	ip->check = ipv4_csum20(ip);
}

/*
 * Keyed group: makes the frame exactly the message plus XSEQ_MAC_LEN bytes
 * (trailing Ethernet padding goes), before a seq is taken, so a frame that
 * cannot grow costs no hole. Sets XSEQ_F_MAC and the new lengths; the UDP
 * checksum becomes zero (IPv4 allows it; the MAC covers more than it did),
 * which seq_forward() keeps. Returns 0, or -1 (frame unchanged or dropped).
 */
#define SEQ_L4_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

/* No tailroom (native XDP on veth: the frame is the sender's skb): the d
 * bytes (1..XSEQ_MAC_LEN) come from headroom, which native XDP always has,
 * and headers and message move to the new front. Headers are read before
 * the message is written: the two ranges overlap by d bytes. */
static __noinline int seq_mac_room_front(struct xdp_md *ctx, int d, __u32 msg)
{
	__u8 hdrs[SEQ_L4_OFF];
	__u32 zero = 0;
	struct mac_scratch *m = bpf_map_lookup_elem(&xseq_mac_scratch, &zero);

	if (!m || d <= 0 || d > XSEQ_MAC_LEN || bpf_xdp_adjust_head(ctx, -d))
		return -1;
	barrier_var(msg);
	if (msg == 0 || msg > XSEQ_MSG_CAP)
		return -1;
	if (bpf_xdp_load_bytes(ctx, d, hdrs, sizeof(hdrs)) || bpf_xdp_load_bytes(ctx, d + SEQ_L4_OFF, m->w, msg) ||
	    bpf_xdp_store_bytes(ctx, SEQ_L4_OFF, m->w, msg) || bpf_xdp_store_bytes(ctx, 0, hdrs, sizeof(hdrs)))
		return -1;
	return 0;
}

static __always_inline int seq_mac_room(struct xdp_md *ctx, struct seq_req *r)
{
	__u32 msg = XSEQ_HDR_LEN + r->payload_len;
	__u32 want = SEQ_L4_OFF + msg + XSEQ_MAC_LEN;
	int delta = (int)want - (int)r->frame_len;
	struct cursor c;

	if (bpf_xdp_adjust_tail(ctx, delta) && seq_mac_room_front(ctx, delta, msg))
		return -1;
	cursor_init(&c, ctx);
	r->eth = CURSOR_PULL(&c, struct ethhdr);
	r->ip = CURSOR_PULL(&c, struct iphdr);
	r->udp = CURSOR_PULL(&c, struct udphdr);
	r->h = CURSOR_PULL(&c, struct xseq_hdr);
	if (!r->eth || !r->ip || !r->udp || !r->h)
		return -1;
	r->frame_len = want;
	r->mac_len = XSEQ_MAC_LEN;
	r->h->flags |= bpf_htons(XSEQ_F_MAC);
	r->udp->len = bpf_htons(sizeof(struct udphdr) + msg + XSEQ_MAC_LEN);
	r->udp->check = 0;
	r->ip->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct udphdr) + msg + XSEQ_MAC_LEN);
	return 0; /* the IP checksum is recomputed by seq_forward() */
}

/* Writes the MAC of the finished message into the trailer seq_mac_room()
 * made. A failure leaves a bad MAC: receivers drop the copy and the agent
 * re-sends it (sealed in user space), as for a lost packet. */
static __always_inline void seq_mac_seal(struct xdp_md *ctx, const struct seq_req *r)
{
	const __u32 l4 = SEQ_L4_OFF;
	__u32 len = XSEQ_HDR_LEN + r->payload_len;
	int ok;
	__u64 mac = mac_of_frame(ctx, l4, len, r->key, &ok);

	if (ok)
		bpf_xdp_store_bytes(ctx, l4 + len, &mac, sizeof(mac));
}

/*
 * Who may speak for the REQUEST's client id (xseq.h, "Authentication" and
 * xseq_client_source). Returns -1 to go on, else the XDP action.
 *   keyed group: a valid MAC under the client key, or for a control op
 *     under the group key; a plain REQUEST without one is dropped (it may
 *     be a stranger's, whose source is unknown: no answer), a control op is
 *     answered ERROR UNAUTHORIZED so the operator hears why;
 *   no key: a control op only from a configured member's address (a
 *     replica host) or the sequencer's own (the agent); any other REQUEST
 *     only from the source address its client id was first seen from.
 * Before backpressure, so nothing unauthenticated costs a slot or a BUSY.
 */
static __always_inline int seq_client_check(struct xdp_md *ctx, struct seq_req *r)
{
	int control = (r->h->flags & bpf_htons(XSEQ_F_CONTROL)) != 0;

	if (r->key) {
		__u64 k0 = control ? r->key->k0 : r->key->c0;
		__u64 k1 = control ? r->key->k1 : r->key->c1;

		if (r->mac_len && mac_frame_ok_k(ctx, SEQ_L4_OFF, XSEQ_HDR_LEN + r->payload_len, k0, k1))
			return -1;
		if (control)
			return seq_refuse(ctx, r, XSEQ_ERR_UNAUTHORIZED, XSEQ_CTR_CONTROL_REFUSED);
		return drop(XSEQ_CTR_DROP_CLIENT_MAC, r->ip, r->udp, r->frame_len);
	}
	if (control) {
		const struct xseq_group *g = r->g;
		int allowed = 0;

		/* The sequencer's own address: the agent injecting the op through
		 * the program, as it does its own solicit (flush.h). */
		if (r->ip->saddr == r->ip->daddr)
			allowed = 1;
#pragma unroll
		for (int i = 0; i < XSEQ_MAX_REPLICAS; i++) {
			if (i < g->n_members && g->members[i].addr == r->ip->saddr)
				allowed = 1;
		}
		if (!allowed)
			return seq_refuse(ctx, r, XSEQ_ERR_UNAUTHORIZED, XSEQ_CTR_CONTROL_REFUSED);
		/* And its client id is bound like any client's: a weight change
		 * passes the client table, so one sent under an overheard id (from
		 * a forged member address) would move that client's request id. */
	}
	__u64 cid = bpf_be64_to_cpu(r->h->client_id);
	struct xseq_client_source *b = bpf_map_lookup_elem(&xseq_client_sources, &cid);

	if (!b) {
		struct xseq_client_source v = { .addr = r->ip->saddr, .port = r->udp->source };

		if (!bpf_map_update_elem(&xseq_client_sources, &cid, &v, BPF_NOEXIST))
			return -1;
		/* Another CPU bound it first: compare with that. */
		b = bpf_map_lookup_elem(&xseq_client_sources, &cid);
		if (!b)
			return -1; /* evicted meanwhile: the map is full of newer ids */
	}
	/* The address only: a client restarted with its id (another port) goes
	 * on; a host that overheard the id cannot speak for it from its own
	 * address, and one that forges the client's address could forge its
	 * port as well. */
	if (b->addr != r->ip->saddr)
		return drop(XSEQ_CTR_DROP_CLIENT_SOURCE, r->ip, r->udp, r->frame_len);
	return -1;
}

/* A parsed REQUEST, all the way: returns the XDP action. */
static __always_inline int seq_request(struct xdp_md *ctx, struct seq_req *r)
{
	int act = seq_client_check(ctx, r);

	if (act >= 0)
		return act;
	/* A draining sequencer has sent (or is sending) its FINAL flush:
	 * replicas no longer expect seqs from it. */
	if (r->g->flags & XSEQ_GROUP_F_DRAINING)
		return drop(XSEQ_CTR_DROP_DRAINING, r->ip, r->udp, r->frame_len);
	act = seq_admit(ctx, r);

	if (act >= 0)
		return act;
	if (r->key && seq_mac_room(ctx, r)) {
		count(XSEQ_CTR_DROP_MAC_ROOM); /* no sample: the packet pointers are gone */
		return XDP_DROP;
	}
	__u64 delta = seq_stamp(r);
	seq_keep(ctx, r);
	seq_forward(r, delta);
	if (r->key)
		seq_mac_seal(ctx, r);
	count(XSEQ_CTR_SEQUENCED);
	return XDP_TX;
}

#endif /* XSEQ_SEQUENCER_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nextval.h: sequences answered in the kernel. A NEXTVAL names a sequence;
 * the program looks its id up by name, takes a block of values with ONE
 * atomic add on the sequence's counter (unique and dense across CPUs) and
 * turns the frame around to the client (XDP_TX) with the block, or with a
 * typed refusal. It never hands out a value at or above the durable mark:
 * the agent raises the mark only after it is fsync'ed to its state file, so
 * a value once given is never given again, even after the host loses power.
 *
 * The frame keeps its length (struct xseq_nv_reply is the request's size);
 * addresses and ports are swapped, which leaves both checksums' sums as
 * they were, and the UDP checksum is updated for the words that change.
 */
#ifndef XSEQ_NEXTVAL_H
#define XSEQ_NEXTVAL_H

/* seq_parse() lets a NEXTVAL through (without a group) only in programs
 * that include this header first and dispatch it to nextval_handle();
 * elsewhere it is dropped as an unexpected type. A program that needs the
 * maps only (the sequencer's map set is loaded whole) defines
 * XSEQ_NEXTVAL_MAPS_ONLY before including it. */
#ifndef XSEQ_NEXTVAL_MAPS_ONLY
#define XSEQ_NEXTVAL 1
#endif
#include "sequencer.h"

/* One plain load the compiler may neither repeat nor tear: the agent
 * stores these fields while the program runs. */
#define NV_READ_ONCE(x) (*(volatile typeof(x) *)&(x))

/* Sequence id -> counter, durable mark, increment, cache (struct
 * xseq_nv_seq). The counter is the kernel's (atomic add); the agent writes
 * the mark and, with the sequence disabled, the rest, through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, XSEQ_NV_MAX_SEQS);
	__type(key, __u32);
	__type(value, struct xseq_nv_seq);
} xseq_nv_seqs SEC(".maps");

/* Sequence name (NUL-padded) -> id. Written by the agent (create, drop);
 * read by the NEXTVAL path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSEQ_NV_MAX_SEQS);
	__type(key, struct xseq_nv_name);
	__type(value, __u32);
} xseq_nv_names SEC(".maps");

/* Sequence id -> calls, values and refusals, per CPU. Written by the
 * NEXTVAL path; the agent sums the CPUs for status and metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSEQ_NV_MAX_SEQS);
	__type(key, __u32);
	__type(value, struct xseq_nv_stats);
} xseq_nv_stats SEC(".maps");

/* enum xseq_nv_counter -> packets, per CPU. Written by the NEXTVAL path;
 * the agent sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSEQ_NV_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xseq_nv_counters SEC(".maps");

static __always_inline void nv_count(__u32 ctr, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&xseq_nv_counters, &ctr);

	if (v)
		*v += n;
}

/* A malformed NEXTVAL costs nothing but its counter. */
static __always_inline int nv_drop(__u32 ctr)
{
	nv_count(ctr, 1);
	return XDP_DROP;
}

/* Writes the reply payload over the request's, accumulating the UDP
 * checksum delta word by word (both are 40 bytes, 4-byte aligned). */
static __always_inline void nv_write(__u32 *dst, const __u32 *src, __u64 *acc)
{
#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct xseq_nv_reply) / 4); i++) {
		*acc += (__u32)~dst[i];
		*acc += src[i];
		dst[i] = src[i];
	}
}

/* Keyed: the reply's MAC under the group's client key in the request's trailer (the frame keeps its
 * length). The UDP checksum is zero, as on every MAC'd message: the MAC
 * covers the message, and the incremental update would miss the trailer. */
static __always_inline void nv_seal(struct xdp_md *ctx, const struct xseq_mac_key *key)
{
	const __u32 len = XSEQ_HDR_LEN + sizeof(struct xseq_nv_reply);
	int ok;
	__u64 mac = mac_of_frame_k(ctx, SEQ_L4_OFF, len, key->c0, key->c1, &ok);

	if (ok)
		bpf_xdp_store_bytes(ctx, SEQ_L4_OFF + len, &mac, sizeof(mac));
}

/* Turns the frame around to the client with `rep` as payload, sealed
 * under `key` when there is one. */
static __always_inline int nv_reply(struct xdp_md *ctx, struct seq_req *r, struct xseq_nv_req *q,
				    struct xseq_nv_reply *rep, const struct xseq_mac_key *key)
{
	struct ethhdr *eth = r->eth;
	struct iphdr *ip = r->ip;
	struct udphdr *udp = r->udp;
	__u64 acc = 0;
	/* Volatile: clang otherwise reuses the word it loaded before the type
	 * byte changed (measured: the checksum came out 0x100 short). */
	__u32 w_old = *(volatile __u32 *)&r->h->version;
	__u8 mac[ETH_ALEN];
	__be32 a;
	__be16 p;

	r->h->type = XSEQ_MSG_NEXTVAL_REPLY;
	acc += (__u32)~w_old;
	acc += *(volatile __u32 *)&r->h->version;
	nv_write((__u32 *)q, (const __u32 *)rep, &acc);
	/* Swapping source and destination leaves every one's-complement sum
	 * unchanged: only the payload and type word enter the delta. */
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	a = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = a;
	p = udp->source;
	udp->source = udp->dest;
	udp->dest = p;
	if (key) {
		udp->check = 0;
		nv_seal(ctx, key);
	} else if (udp->check) {
		__u16 sum = (__u16)~csum_fold32(acc + (__u16)~udp->check);

		udp->check = sum ? sum : 0xffff;
	}
	return XDP_TX;
}

/* A parsed NEXTVAL (seq_parse() checked header and lengths): returns the
 * XDP action. */
static __always_inline int nextval_handle(struct xdp_md *ctx, struct seq_req *r)
{
	struct xseq_nv_reply rep = {};
	struct xseq_nv_name key;
	struct xseq_nv_req *q;
	struct xseq_nv_seq *s;
	struct xseq_nv_stats *st;
	const struct xseq_mac_key *mk;
	__u32 *id, count, gid;
	__u64 span, first, mark;

	nv_count(XSEQ_NV_CTR_RX, 1);
	if (r->payload_len != sizeof(struct xseq_nv_req))
		return nv_drop(XSEQ_NV_CTR_DROP_LENGTH);
	q = (void *)(r->h + 1);
	if ((void *)(q + 1) > (void *)(long)ctx->data_end)
		return nv_drop(XSEQ_NV_CTR_DROP_LENGTH);
	if (q->flags)
		return nv_drop(XSEQ_NV_CTR_DROP_FLAGS);
	if (!q->name[0])
		return nv_drop(XSEQ_NV_CTR_DROP_NAME);
	count = bpf_ntohl(q->count);
	if (count > XSEQ_NV_MAX_COUNT)
		return nv_drop(XSEQ_NV_CTR_DROP_COUNT);
	/* Before the name is even looked up: a request that claims a keyed
	 * group learns nothing, and moves nothing, without the key. */
	gid = bpf_ntohl(r->h->group_id);
	mk = bpf_map_lookup_elem(&xseq_mac_keys, &gid);
	if (mk && !(mk->flags & XSEQ_KEY_F_SET))
		mk = NULL;
	if (!!mk != !!(r->h->flags & bpf_htons(XSEQ_F_MAC)))
		return nv_drop(XSEQ_NV_CTR_DROP_MAC);
	/* The group's client key (c0, c1), as for a client's REQUEST: a
	 * NEXTVAL client cannot make replica traffic. */
	if (mk && !mac_frame_ok_k(ctx, SEQ_L4_OFF, XSEQ_HDR_LEN + sizeof(struct xseq_nv_req), mk->c0, mk->c1))
		return nv_drop(XSEQ_NV_CTR_DROP_MAC);

	__builtin_memcpy(&key, q->name, sizeof(key));
	id = bpf_map_lookup_elem(&xseq_nv_names, &key);
	s = id ? bpf_map_lookup_elem(&xseq_nv_seqs, id) : NULL;
	if (!s || !(NV_READ_ONCE(s->flags) & XSEQ_NV_F_ENABLED)) {
		nv_count(XSEQ_NV_CTR_UNKNOWN, 1);
		rep.status = bpf_htons(XSEQ_NV_UNKNOWN);
		return nv_reply(ctx, r, q, &rep, mk);
	}
	/* A sequence of a keyed group: only a request MAC'd under that very
	 * group's key (another group's key, or none, is a stranger here). */
	if ((NV_READ_ONCE(s->flags) & XSEQ_NV_F_KEYED) && (!mk || gid != s->group_id))
		return nv_drop(XSEQ_NV_CTR_DROP_MAC);
	if (!count)
		count = s->cache;
	span = (__u64)count * s->increment;
	mark = NV_READ_ONCE(s->mark);
	st = bpf_map_lookup_elem(&xseq_nv_stats, id);
	rep.seq_id = bpf_htonl(*id);
	rep.mark = bpf_cpu_to_be64(mark);
	/* Checked before the add, so a refusal at the mark burns no values
	 * while the agent is away; checked again after it, because another
	 * CPU may have taken the last values in between (those few are a gap,
	 * never handed out). */
	if (NV_READ_ONCE(s->next) + span > mark)
		goto refused;
	first = __sync_fetch_and_add(&s->next, span);
	if (first + span > mark)
		goto refused;
	rep.first = bpf_cpu_to_be64(first);
	rep.count = bpf_htonl(count);
	rep.increment = bpf_htonl((__u32)s->increment);
	if (st) {
		st->calls++;
		st->values += count;
	}
	nv_count(XSEQ_NV_CTR_REPLY_OK, 1);
	nv_count(XSEQ_NV_CTR_VALUES, count);
	return nv_reply(ctx, r, q, &rep, mk);
refused:
	if (st)
		st->refused++;
	nv_count(XSEQ_NV_CTR_REFUSED, 1);
	rep.status = bpf_htons(XSEQ_NV_REFUSED);
	return nv_reply(ctx, r, q, &rep, mk);
}

#endif /* XSEQ_NEXTVAL_H */

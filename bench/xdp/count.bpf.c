/* SPDX-License-Identifier: Apache-2.0 */
/*
 * count.bpf.c: a receiver-side XDP counter for benchmarks and loss tests.
 *
 * A receiver that takes every SEQUENCED packet through its socket stack
 * saturates long before the sequencer does, so a benchmark would measure
 * the receiver. This program counts the packets at the driver instead:
 * per packet one per-CPU counter update and one atomic fetch-or into a
 * bitmap of seen sequence numbers, then XDP_DROP. From the counters user
 * space reads, per receiver, how many arrived, how many distinct seqs, how
 * many duplicates and the lowest and highest seq; from the bitmap, which
 * seqs are missing.
 *
 * Everything that is not a matching SEQUENCED packet passes to the stack, so
 * the receiver stays reachable (ARP, slow-path traffic, tests' sockets).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xseq.h"
#include "count.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct count_cfg);
} count_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct count_stats);
} count_stats SEC(".maps");

/* Mmapable so the reader clears it with one memset between benchmark steps
 * instead of 64 Ki update syscalls. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNT_BITMAP_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} count_bitmap SEC(".maps");

SEC("xdp")
int xseq_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct count_stats *st = bpf_map_lookup_elem(&count_stats, &zero);
	struct count_cfg *cfg = bpf_map_lookup_elem(&count_cfg, &zero);

	if (!st || !cfg)
		return XDP_PASS;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5 ||
	    (ip->frag_off & bpf_htons(0x3fff)))
		goto pass;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		goto pass;
	if (cfg->port && udp->dest != bpf_htons(cfg->port))
		goto pass;
	struct xseq_hdr *h = (void *)(udp + 1);
	if ((void *)(h + 1) > end)
		goto pass;
	__u8 want = cfg->msg_type ? cfg->msg_type : XSEQ_MSG_SEQUENCED;
	if (h->magic != bpf_htonl(XSEQ_MAGIC) || h->version != XSEQ_VERSION || h->type != want)
		goto pass;
	if (cfg->has_group && h->group_id != bpf_htonl(cfg->group_id))
		goto pass;
	if (cfg->has_sequencer && h->sequencer_id != bpf_htons(cfg->sequencer_id))
		goto pass;

	__u64 seq = bpf_be64_to_cpu(want == XSEQ_MSG_SEQUENCED ? h->seq : h->request_id);
	st->packets++;
	st->bytes += end - data;
	if (seq == 0) {
		st->zero_seq++;
		return XDP_DROP;
	}
	if (!st->min_seq || seq < st->min_seq)
		st->min_seq = seq;
	if (seq > st->max_seq)
		st->max_seq = seq;

	__u32 word = (__u32)(seq >> 6) & (COUNT_BITMAP_WORDS - 1);
	__u64 bit = 1ull << (seq & 63);
	__u64 *w = bpf_map_lookup_elem(&count_bitmap, &word);
	if (!w)
		return XDP_DROP;
	/* Atomic, so with packets of one seq on two CPUs exactly one of them
	 * sees the bit clear: distinct stays exact without a lock. */
	if (__sync_fetch_and_or(w, bit) & bit)
		st->duplicates++;
	else
		st->distinct++;
	return XDP_DROP;

pass:
	st->passed++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * count.h: map layouts shared by count.bpf.c and its reader countctl.c.
 */
#ifndef XSEQ_BENCH_COUNT_H
#define XSEQ_BENCH_COUNT_H

#include <linux/types.h>

/* Seqs are tracked modulo this many bits (a power of two). 4 Mi bits is
 * 512 KiB: more than any one benchmark step sends, so a step that starts
 * from a cleared bitmap never wraps onto its own seqs. */
#define COUNT_BITMAP_BITS (1u << 22)
#define COUNT_BITMAP_WORDS (COUNT_BITMAP_BITS / 64)

#define COUNT_PROG_NAME "xseq_count"
#define COUNT_MAP_CFG "count_cfg"
#define COUNT_MAP_STATS "count_stats"
#define COUNT_MAP_BITMAP "count_bitmap"

/* count_cfg[0]: what to count. Zero means "any". Written by user space
 * before traffic starts; host order. */
struct count_cfg {
	__u16 port;          /* UDP destination port of the group, 0 = any */
	__u16 has_group;     /* 1: only group_id below */
	__u32 group_id;
	__u16 has_sequencer; /* 1: only sequencer_id below */
	__u16 sequencer_id;
	/* 0: count SEQUENCED packets keyed by seq (a receiver). REQUEST:
	 * count REQUESTs keyed by request_id instead, which makes the
	 * program a sink that measures what a client can offer at all. */
	__u8 msg_type;
	__u8 pad[3];
};

/* count_stats[0], per CPU; user space sums the CPUs (min of min_seq over
 * CPUs that saw any, max of max_seq). Host order. */
struct count_stats {
	__u64 packets;    /* matching SEQUENCED packets, duplicates included */
	__u64 distinct;   /* packets whose seq bit was not yet set */
	__u64 duplicates; /* packets whose seq bit was already set */
	__u64 zero_seq;   /* key 0, which a sequencer (or loadgen) never uses */
	__u64 min_seq;    /* 0 = none yet */
	__u64 max_seq;
	__u64 bytes;      /* frame bytes of matching packets */
	__u64 passed;     /* frames that were not matching SEQUENCED ones */
};

#endif /* XSEQ_BENCH_COUNT_H */

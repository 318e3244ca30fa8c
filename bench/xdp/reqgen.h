/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reqgen.h: the map layout shared by reqgen.bpf.c and its driver xdpgen.c.
 */
#ifndef XSEQ_BENCH_REQGEN_H
#define XSEQ_BENCH_REQGEN_H

#include <linux/types.h>

#define REQGEN_PROG_NAME "xseq_reqgen"
#define REQGEN_MAP_STATE "reqgen_state"

/* Room for a REQUEST with up to 150 bytes of payload: the bench sends
 * small requests, where per-packet cost (not bytes) is what is measured. */
#define REQGEN_FRAME_CAP 256

/* Where the request id and the UDP checksum sit in an Ethernet + IPv4
 * (no options) + UDP + xseq frame. */
#define REQGEN_OFF_UDP_CHECK (14 + 20 + 6)
#define REQGEN_OFF_REQUEST_ID (14 + 20 + 8 + 48)

/* A frame that would leave more than this after its due time counts as
 * late, and the schedule moves back by its lateness (no catch-up burst). */
#define REQGEN_LATE_NS 100000

/* reqgen_state[0]. The driver writes len, first_id, ps_per_frame, next_id
 * (= first_id) and frame before a run, the rest zero; the program sets the
 * times and advances next_id and the lateness counters. Host order. */
struct reqgen_state {
	__u32 len;            /* bytes of frame */
	__u32 pad;
	__u64 first_id;       /* request id of the run's first frame */
	__u64 start_ns;       /* the schedule's origin (CLOCK_MONOTONIC); 0: the
	                       * first frame sets it; moves when the generator
	                       * was late */
	__u64 first_ns;       /* when the first frame left */
	__u64 ps_per_frame;   /* pacing interval in picoseconds; 0 = no pacing */
	__u64 next_id;        /* the next frame's request id */
	__u64 late;           /* times the schedule slipped (REQGEN_LATE_NS) */
	__u64 max_late_ns;
	__u64 last_ns;        /* when the last frame so far was due or sent */
	__u8 frame[REQGEN_FRAME_CAP]; /* the REQUEST, request_id 0, valid UDP checksum (or 0) */
};

#endif /* XSEQ_BENCH_REQGEN_H */

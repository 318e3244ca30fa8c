/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reqgen.bpf.c: a kernel-speed, paced REQUEST generator (the idea of
 * xdp-trafficgen).
 *
 * Run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on a client's
 * veth, every repetition returns XDP_TX, which the test runner turns into a
 * real transmit out of that veth: `repeat` frames leave for the peer without
 * a socket, an skb or a syscall per packet. A socket sender (loadgen) tops
 * out near 190 kpps on one core here; this offers several Mpps alone and
 * 1-2 Mpps with the counter of the returning traffic on the same core,
 * so the sequencer, not the generator, is what saturates.
 *
 * Pacing happens here, not in user space: each repetition waits (bpf_loop
 * on the clock) until its frame is due, so one syscall sends a whole
 * benchmark step. Many short paced syscalls measured far worse (200-300
 * kpps): every run builds a fresh page pool and fills fresh pages, the
 * dominant cost in a profile.
 *
 * Live mode allocates the frames from a page pool initialised with the
 * input frame once; a recycled page keeps whatever the last user wrote
 * into it, and here that is the sequencer, which rewrote the REQUEST into
 * a SEQUENCED multicast frame in place before the counter dropped it. So
 * every repetition writes the whole REQUEST again from the map, then its
 * request id (the template's is 0, so the UDP checksum update is adding
 * the id's words).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "reqgen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reqgen_state);
} reqgen_state SEC(".maps");

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)((s & 0xffff) + (s >> 16));
}

static long wait_until(__u32 i, void *due)
{
	return bpf_ktime_get_ns() >= *(__u64 *)due;
}

SEC("xdp")
int xseq_reqgen(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct reqgen_state *st = bpf_map_lookup_elem(&reqgen_state, &zero);

	if (!st)
		return XDP_ABORTED;
	/* One generator thread per map (BPF_PROG_TEST_RUN runs on the
	 * caller's CPU with migration off): plain updates suffice. */
	__u64 id = st->next_id++;

	__u64 now = bpf_ktime_get_ns();

	/* The clock starts at the first frame, not at the syscall: the run
	 * first installs the program in the XDP dispatcher, which waits for
	 * RCU grace periods (~12 ms here), and a start before that would open
	 * with a catch-up burst. */
	if (!st->start_ns)
		st->start_ns = st->first_ns = now;
	if (st->ps_per_frame) {
		__u64 due = st->start_ns + (id - st->first_id) * st->ps_per_frame / 1000;

		if (now < due) {
			/* 2^23 clock reads are far more than any interval
			 * between two frames of a benchmark step. */
			bpf_loop(1 << 23, wait_until, &due, 0);
			now = due;
		} else if (now - due > REQGEN_LATE_NS) {
			/* The generator itself was held up (preempted, or the
			 * VM's CPU stolen). Catching up would send the missed
			 * frames as one burst at full speed, which overflows
			 * the receiver's 256-frame ring and blames the
			 * sequencer for the generator's stall. Shift the
			 * schedule instead: the offered rate never exceeds
			 * the target, and the achieved rate shows the stall. */
			st->late++;
			if (now - due > st->max_late_ns)
				st->max_late_ns = now - due;
			st->start_ns += now - due;
		}
	}
	st->last_ns = now;

	__u32 len = st->len;
	/* The input frame fixes the length; a template of another length
	 * is a driver bug, and XDP_ABORTED shows in the xdp tracepoint. */
	if (len != ctx->data_end - ctx->data || len < REQGEN_OFF_REQUEST_ID + 8 || len > REQGEN_FRAME_CAP)
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, st->frame, len))
		return XDP_ABORTED;

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + REQGEN_OFF_REQUEST_ID + 8 > end)
		return XDP_ABORTED;
	__u64 id_be = bpf_cpu_to_be64(id);
	*(__u64 *)(data + REQGEN_OFF_REQUEST_ID) = id_be;

	__u16 *check = data + REQGEN_OFF_UDP_CHECK;
	/* Zero means "no checksum" and must stay zero. */
	if (*check) {
		__u64 s = (__u16)~*check;
		s += (__u32)id_be;
		s += (__u32)(id_be >> 32);
		__u16 c = (__u16)~fold(s);
		*check = c ? c : 0xffff;
	}
	return XDP_TX;
}

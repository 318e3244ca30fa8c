// SPDX-License-Identifier: Apache-2.0
/*
 * counter.bpf.c: test program for the libbpf binding (test/libbpf.test.ts).
 *
 * It touches one map of every kind the binding must handle (per-CPU array,
 * array, hash, ring buffer) and has a .rodata config, so one object proves
 * the whole user-space surface against the real kernel:
 *   - every frame bumps pkt_count[0] (per-CPU: sums must equal the repeat);
 *   - byte_count[first byte] counts frames by their first byte (hash);
 *   - seq_state[0] is a global sequence; each frame takes the next value and
 *     reports it in an event, so user space can check ring buffer order;
 *   - a frame whose first byte equals cfg.drop_byte is dropped (the default,
 *     0xff, drops broadcasts such as ARP), any other passes, and cfg.stamp makes the program write the seq into the frame,
 *     so tests see both .rodata and output bytes change behaviour.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct counter_cfg {
	__u8 drop_byte; /* frames starting with this byte are dropped */
	__u8 stamp;     /* non-zero: write the low byte of the seq at offset 1 */
	__u16 pad;
	__u32 reserved;
};

/* Loader overrides it with BpfObjectSpec.setRodata before load. */
const volatile struct counter_cfg cfg = {
	.drop_byte = 0xff,
};

struct counter_event {
	__u64 seq;
	__u32 len;
	__u8 first;
	__u8 action;
	__u16 pad;
};

enum { CTR_PACKETS = 0, CTR_EVENTS_LOST = 1, CTR_MAX = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} pkt_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} byte_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seq_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline void bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&pkt_count, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no other CPU writes it */
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 zero = 0, first;
	__u64 *seqp, seq, one = 1, *cnt;
	struct counter_event *ev;
	int action;

	bump(CTR_PACKETS);
	if (data + 2 > data_end)
		return XDP_ABORTED;
	first = p[0];

	cnt = bpf_map_lookup_elem(&byte_count, &first);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&byte_count, &first, &one, BPF_NOEXIST);

	seqp = bpf_map_lookup_elem(&seq_state, &zero);
	if (!seqp)
		return XDP_ABORTED;
	seq = __sync_fetch_and_add(seqp, 1) + 1;

	action = first == cfg.drop_byte ? XDP_DROP : XDP_PASS;
	if (cfg.stamp)
		p[1] = (__u8)seq;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		bump(CTR_EVENTS_LOST);
		return action;
	}
	ev->seq = seq;
	ev->len = (__u32)(data_end - data);
	ev->first = (__u8)first;
	ev->action = (__u8)action;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, 0);
	return action;
}

/* Sends every frame back out of the interface it came in on: with
 * BPF_F_TEST_XDP_LIVE_FRAMES this turns test runs into a traffic generator. */
SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

/* Counts frames (all, and by first byte, so a test can tell its own frames
 * from IPv6 chatter) and drops them: the receiving end of a generator. */
SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 one = 1, *cnt;
	__u32 first;

	bump(CTR_PACKETS);
	if (data + 1 > data_end)
		return XDP_DROP;
	first = *(__u8 *)data;
	cnt = bpf_map_lookup_elem(&byte_count, &first);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&byte_count, &first, &one, BPF_NOEXIST);
	return XDP_DROP;
}

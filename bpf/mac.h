/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mac.h: SipHash-2-4 for XDP programs, written from the SipHash paper
 * (Aumasson and Bernstein, 2012): a 128-bit key, the message read as
 * little-endian 64-bit words, 2 compression rounds per word, the last word
 * holding the tail bytes and the length mod 256 in its top byte, 4
 * finalization rounds. bpf/siphash.ts is the same function in TypeScript,
 * checked against the paper's test vectors; test/mac.prog.test.ts proves
 * the two equal on real frames.
 *
 * The message is first copied out of the frame into a per-CPU scratch
 * buffer (bpf_xdp_load_bytes handles any frame layout), then hashed there
 * with one bounded loop over 8-byte words: the verifier walks it once per
 * word, at most XSEQ_MSG_CAP / 8 = 183 times.
 *
 * Byte order: this file assumes a little-endian host (x86, arm64 as run);
 * the static assert below makes a big-endian build fail, not miscompute.
 */
#ifndef XSEQ_MAC_H
#define XSEQ_MAC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xseq.h"
#include "parse.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mac.h reads message words as host-order u64s");

/* A message copied out of the frame. As 8-byte words: BPF has no
 * unaligned loads, so a word read from a byte array compiles to eight byte
 * loads (measured: the MAC cost twice as much). XSEQ_MAC_LEN spare bytes
 * past the largest message let the tail read use bounds the verifier can
 * prove without knowing that the tail is shorter than a word. */
struct mac_scratch {
	__u64 w[(XSEQ_MSG_CAP + XSEQ_MAC_LEN) / 8];
};

/* One scratch buffer per CPU. Written and read only inside one program
 * run (XDP runs are not preempted on a CPU), never by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mac_scratch);
} xseq_mac_scratch SEC(".maps");

static __always_inline __u64 rotl64(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

struct sip_state {
	__u64 v0, v1, v2, v3;
};

static __always_inline void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = rotl64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl64(s->v2, 32);
}

static __always_inline void sip_word(struct sip_state *s, __u64 m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/* SipHash-2-4 of the scratch buffer's first len bytes (len <=
 * XSEQ_MSG_CAP). Not inlined: one copy serves every caller and the
 * verifier walks its loop once (inlining it measured within noise). */
static __noinline __u64 siphash24(__u64 k0, __u64 k1, const struct mac_scratch *m, __u32 len)
{
	struct sip_state s = {
		.v0 = k0 ^ 0x736f6d6570736575ULL, /* "somepseudorandomlygeneratedbytes" */
		.v1 = k1 ^ 0x646f72616e646f6dULL,
		.v2 = k0 ^ 0x6c7967656e657261ULL,
		.v3 = k1 ^ 0x7465646279746573ULL,
	};
	__u32 words, off, i;
	__u64 last;

	if (!m)
		return 0;
	barrier_var(len);
	if (len > XSEQ_MSG_CAP)
		len = XSEQ_MSG_CAP;
	words = len >> 3;
	for (i = 0; i < XSEQ_MSG_CAP / 8; i++) {
		if (i >= words)
			break;
		sip_word(&s, m->w[i]);
	}
	off = words << 3;
	last = (__u64)(len & 0xff) << 56;
	/* The tail: len & 7 bytes, little-endian into the low bytes. */
#pragma unroll
	for (int j = 0; j < 7; j++) {
		if (off + j < len)
			last |= (__u64)((const __u8 *)m->w)[off + j] << (8 * j);
	}
	sip_word(&s, last);
	s.v2 ^= 0xff;
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* The MAC of frame bytes [off, off + len) under the key (k0, k1); 0 with
 * *ok = 0 when they could not be read. */
static __always_inline __u64 mac_of_frame_k(struct xdp_md *ctx, __u32 off, __u32 len,
					    __u64 k0, __u64 k1, int *ok)
{
	__u32 zero = 0;
	struct mac_scratch *m = bpf_map_lookup_elem(&xseq_mac_scratch, &zero);

	*ok = 0;
	if (!m)
		return 0;
	barrier_var(len);
	if (len == 0 || len > XSEQ_MSG_CAP)
		return 0;
	if (bpf_xdp_load_bytes(ctx, off, m->w, len))
		return 0;
	*ok = 1;
	return siphash24(k0, k1, m, len);
}

/* The MAC of frame bytes [off, off + len) under the group key k. */
static __always_inline __u64 mac_of_frame(struct xdp_md *ctx, __u32 off, __u32 len,
					  const struct xseq_mac_key *k, int *ok)
{
	return mac_of_frame_k(ctx, off, len, k->k0, k->k1, ok);
}

/* Whether frame bytes [off, off + len) are followed by their valid MAC
 * under the key (k0, k1). */
static __always_inline int mac_frame_ok_k(struct xdp_md *ctx, __u32 off, __u32 len, __u64 k0, __u64 k1)
{
	__u64 want, got;
	int ok;

	want = mac_of_frame_k(ctx, off, len, k0, k1, &ok);
	if (!ok || bpf_xdp_load_bytes(ctx, off + len, &got, sizeof(got)))
		return 0;
	return want == got;
}

/* Whether frame bytes [off, off + len) are followed by their valid MAC
 * under the group key k. */
static __always_inline int mac_frame_ok(struct xdp_md *ctx, __u32 off, __u32 len,
					const struct xseq_mac_key *k)
{
	return mac_frame_ok_k(ctx, off, len, k->k0, k->k1);
}

#endif /* XSEQ_MAC_H */

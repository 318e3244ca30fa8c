/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parse.h: cursor-style packet parsing for XDP programs.
 *
 * Every access goes through cursor_pull(), which checks the bounds against
 * data_end before handing out a pointer, so the verifier sees one check per
 * header and the program can never read past the frame.
 */
#ifndef XSEQ_PARSE_H
#define XSEQ_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct cursor {
	void *pos;
	void *end;
};

static __always_inline void cursor_init(struct cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
}

/* Returns a pointer to the next len bytes and advances, or NULL when the
 * frame is shorter. */
static __always_inline void *cursor_pull(struct cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

#define CURSOR_PULL(c, type) ((type *)cursor_pull((c), sizeof(type)))

static __always_inline __u32 cursor_remaining(const struct cursor *c)
{
	return (__u32)(c->end - c->pos);
}

/* IPv4 header checksum over a 20-byte header (no options: callers drop
 * packets with options before rewriting). */
static __always_inline __u16 ipv4_csum20(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Folds a 32-bit one's-complement sum to 16 bits. */
static __always_inline __u16 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* barrier_var(v) (bpf_helpers.h) makes clang forget what it knows about
 * v, so that a bounds check written after it lands on the very register
 * the next helper call uses; otherwise clang may test a copy and the
 * verifier sees an unbounded length. */

#endif /* XSEQ_PARSE_H */

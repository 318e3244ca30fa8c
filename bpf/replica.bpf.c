// SPDX-License-Identifier: Apache-2.0
/*
 * replica.bpf.c: the optional XDP program of a replica host (replica/xdp/
 * loads it). On the group's UDP port it drops SEQUENCED packets of an older
 * session than the replica's and copies of seqs the replica already
 * delivered that no re-ACK needs, and posts a gap event to a ring buffer
 * when a seq skips ahead, so the replica's slow path starts from the
 * kernel's range instead of a scan. Everything else passes. The stages are
 * in replica.h.
 */
#include "replica.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xseq_replica(struct xdp_md *ctx)
{
	struct rx_pkt p;
	int act = rx_parse(ctx, &p);

	if (act >= 0)
		return act;
	act = rx_filter(&p);
	if (act >= 0)
		return act;
	rx_track(&p);
	return XDP_PASS;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * sequencer.bpf.c: the XDP program of the sequencer host.
 *
 * A REQUEST to the configured UDP port for an enabled group is stamped with
 * the group's next sequence number and sent back out of the same interface
 * to the group's multicast address (XDP_TX); the switch, or a Linux bridge,
 * replicates it. For a group with members, a copy stays in the group's
 * window and the members' ACKs are counted here: the first quorum turns an
 * ACK into the client's REPLY. A member's (or the agent's) FLUSH_SOLICIT
 * becomes a FLUSH to the group (Hydra: several sequencers). Everything not
 * addressed to the xseq port passes to the stack, so the host stays
 * reachable; bad xseq traffic is dropped, counted per reason and sampled to
 * a ring buffer. The stages are in sequencer.h, aggregator.h and flush.h.
 */
#include "aggregator.h"
#include "flush.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xseq_sequencer(struct xdp_md *ctx)
{
	struct seq_req r;
	int act = seq_parse(ctx, &r);

	if (act >= 0)
		return act;
	if (r.h->type == XSEQ_MSG_ACK)
		return ack_handle(ctx, &r);
	if (r.h->type == XSEQ_MSG_FLUSH_SOLICIT)
		return flush_handle(ctx, &r);
	return seq_request(ctx, &r);
}

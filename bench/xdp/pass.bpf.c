/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pass.bpf.c: an XDP program that passes every frame.
 *
 * Native XDP_TX on a veth only works when the PEER device has an XDP program
 * too (veth hands XDP_TX frames to the peer's XDP rx path, which exists only
 * while a program is attached; without one the frames count as tx_errors or
 * stall). The topology attaches this to the bridge-side end of the
 * sequencer's veth so the sequencer can run in native mode.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xseq_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: Apache-2.0
/*
 * reject.bpf.c: a program the verifier must reject, so tests can prove a
 * failed load surfaces the verifier log (libbpf retries with log level 1 and
 * fills the buffer given with bpf_program__set_log_buf). It reads a packet
 * byte without checking it against data_end.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_reject(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;

	return data[100] ? XDP_DROP : XDP_PASS;
}

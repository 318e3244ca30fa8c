/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reqframe.h: what the two REQUEST generators (xdpgen: live test runs,
 * pktgen: AF_PACKET) share: the --frame template parse with reqgen's
 * bounds, CPU pinning and the clock. Errors are returned, so each tool
 * reports them its own way.
 */
#ifndef XSEQ_BENCH_REQFRAME_H
#define XSEQ_BENCH_REQFRAME_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "reqgen.h"

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes --frame (a whole REQUEST, Ethernet header first, request_id 0)
 * into frame[REQGEN_FRAME_CAP] and its length into *len; NULL, or what is
 * wrong with it. */
static inline const char *parse_request_frame(const char *hex, uint8_t *frame, uint32_t *len)
{
	size_t hl = strlen(hex), n = hl / 2;
	if (hl % 2 || n > REQGEN_FRAME_CAP || n < REQGEN_OFF_REQUEST_ID + 8)
		return "--frame must be the hex of a whole REQUEST frame";
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return "--frame is not hex";
		frame[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = (uint32_t)n;
	return NULL;
}

/* Pins the calling thread to `cpu` (nothing for a negative one); 0 or an errno. */
static inline int pin_to_cpu(int cpu)
{
	if (cpu < 0)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
}

#endif /* XSEQ_BENCH_REQFRAME_H */

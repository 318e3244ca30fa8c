// SPDX-License-Identifier: Apache-2.0
/*
 * cpugap: how long a CPU is taken away from a real-time thread.
 *
 *   cpugap --cpu N [--ms 300]
 *
 * Spins for --ms on CPU N as SCHED_FIFO 50 (the priority P2s gives its
 * NAPI threads), reading the clock, and prints the gaps between reads:
 * {"cpu":N,"maxGapUs":..,"over100us":..,"over300us":..,"over1ms":..}.
 * Nothing in the guest but interrupts, softirqs and higher real-time
 * priorities can delay it, nor the hypervisor stopping the virtual CPU. A
 * veth ring holds 256 frames, so a gap longer than 256/rate overflows it
 * whatever the sequencer costs: this is the noise floor of a zero-loss
 * measurement on the machine at the time.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpu", required_argument, 0, 'c' },
		{ "ms", required_argument, 0, 'm' },
		{ 0, 0, 0, 0 },
	};
	int cpu = -1, c;
	uint64_t ms = 300;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cpu = atoi(optarg); break;
		case 'm': ms = strtoull(optarg, NULL, 0); break;
		default: fprintf(stderr, "usage: cpugap --cpu N [--ms MS]\n"); return 2;
		}
	}
	/* Longer would starve normal tasks long enough for the kernel to
	 * throttle real-time ones, which is a gap of its own making. */
	if (cpu < 0 || !ms || ms > 800) {
		fprintf(stderr, "usage: cpugap --cpu N [--ms MS (1..800)]\n");
		return 2;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "cpugap: sched_setaffinity: %s\n", strerror(errno));
		return 1;
	}
	struct sched_param sp = { .sched_priority = 50 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp)) {
		fprintf(stderr, "cpugap: SCHED_FIFO: %s\n", strerror(errno));
		return 1;
	}
	uint64_t max = 0, over100 = 0, over300 = 0, over1000 = 0;
	uint64_t prev = now_ns();
	const uint64_t end = prev + ms * 1000000ull;
	for (;;) {
		uint64_t t = now_ns(), gap = t - prev;
		prev = t;
		if (gap > max)
			max = gap;
		over100 += gap > 100000;
		over300 += gap > 300000;
		over1000 += gap > 1000000;
		if (t >= end)
			break;
	}
	printf("{\"cpu\":%d,\"ms\":%llu,\"maxGapUs\":%llu,\"over100us\":%llu,\"over300us\":%llu,\"over1ms\":%llu}\n", cpu,
	       (unsigned long long)ms, (unsigned long long)(max / 1000), (unsigned long long)over100,
	       (unsigned long long)over300, (unsigned long long)over1000);
	return 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * xdpgen: send N xseq REQUESTs out of an interface at kernel speed, by
 * running reqgen.bpf.o under BPF_PROG_TEST_RUN in live-frames mode.
 *
 *   xdpgen --ifname IF --frame HEX --count N [--rate PPS] [--batch B]
 *          [--first-request-id R] [--cpu C] [--max-ms MS] [--obj PATH]
 *
 * Run it inside the namespace that owns IF (`ip netns exec NS xdpgen ...`):
 * the kernel resolves the ingress ifindex in the caller's namespace, and
 * XDP_TX leaves through it. --frame is the REQUEST as it goes on the wire
 * (Ethernet header first) with request_id 0; frames carry ids R..R+N-1.
 *
 * One syscall sends the whole run; the program paces itself (frame i is
 * due i/rate after the first), so the offered load is smooth up to the
 * live batch: frames of a batch (B, default 64, at most 256) leave in
 * bulks of 16 and at its end. --rate 0 sends as fast as it can. When the
 * generator itself was held up (more than 100 us behind), it does not
 * catch up in a burst: the schedule slips, "late" counts the slips, and
 * the achieved rate falls below the target, which tells the caller the
 * generator, not the receiver, was the limit.
 * --max-ms (default 10 s) interrupts the run with a signal.
 *
 * Prints one JSON line:
 * {"sent":..,"elapsedNs":..,"late":..,"maxLateNs":..,"achievedRate":..}.
 * "sent" is how many frames the program ran on (it counts request ids
 * itself); whether the peer accepted every one is for the receiving side
 * to count.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpftool-common.h"
#include "reqframe.h"
#include "reqgen.h"

/* Not in every uapi header this builds against. */
#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

static void usage(void)
{
	fprintf(stderr, "usage: xdpgen --ifname IF --frame HEX --count N [--rate PPS] [--batch B]\n"
			"              [--first-request-id R] [--cpu C] [--max-ms MS] [--obj PATH]\n");
	exit(2);
}

static const char *default_obj(const char *argv0)
{
	/* The object is built next to this binary (bench/build/). */
	static char path[4096];
	const char *slash = strrchr(argv0, '/');
	if (!slash)
		return "reqgen.bpf.o";
	snprintf(path, sizeof(path), "%.*s/reqgen.bpf.o", (int)(slash - argv0), argv0);
	return path;
}

static void on_alarm(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	tool_name = "xdpgen";
	static const struct option opts[] = {
		{ "ifname", required_argument, 0, 'i' },
		{ "frame", required_argument, 0, 'F' },
		{ "count", required_argument, 0, 'n' },
		{ "rate", required_argument, 0, 'r' },
		{ "batch", required_argument, 0, 'b' },
		{ "first-request-id", required_argument, 0, 'f' },
		{ "cpu", required_argument, 0, 'C' },
		{ "max-ms", required_argument, 0, 'm' },
		{ "obj", required_argument, 0, 'o' },
		{ 0, 0, 0, 0 },
	};
	const char *ifname = NULL, *hex = NULL, *obj_path = default_obj(argv[0]);
	uint64_t count = 0, rate = 0, first_id = 1, max_ms = 10000;
	unsigned batch = 64;
	int cpu = -1, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': ifname = optarg; break;
		case 'F': hex = optarg; break;
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 'r': rate = strtoull(optarg, NULL, 0); break;
		case 'b': batch = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'f': first_id = strtoull(optarg, NULL, 0); break;
		case 'C': cpu = atoi(optarg); break;
		case 'm': max_ms = strtoull(optarg, NULL, 0); break;
		case 'o': obj_path = optarg; break;
		default: usage();
		}
	}
	/* The kernel caps a live batch at 256 frames and repeat at u32. */
	if (!ifname || !hex || !count || count > 0xffffffffull || !batch || batch > 256 || !first_id || !max_ms)
		usage();

	struct reqgen_state st = { .first_id = first_id, .next_id = first_id };
	const char *bad = parse_request_frame(hex, st.frame, &st.len);
	if (bad)
		die(bad, EINVAL);
	/* Picoseconds keep the interval exact to 0.1 % up to 1 Gpps. */
	st.ps_per_frame = rate ? 1000000000000ull / rate : 0;

	int err = pin_to_cpu(cpu);
	if (err)
		die("sched_setaffinity", err);

	int ifindex = (int)if_nametoindex(ifname);
	if (!ifindex)
		die(ifname, errno);
	struct bpf_program *prog;
	struct bpf_map *map;
	struct bpf_object *obj = load_prog_and_map(obj_path, REQGEN_PROG_NAME, REQGEN_MAP_STATE, &prog, &map);
	__u32 zero = 0;
	if (bpf_map_update_elem(bpf_map__fd(map), &zero, &st, BPF_ANY))
		die("state map", errno);

	/* No SA_RESTART: the alarm has to end the syscall (EINTR). */
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { .tv_sec = (time_t)(max_ms / 1000), .tv_usec = (long)(max_ms % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);

	struct xdp_md md = { .data_end = st.len, .ingress_ifindex = (__u32)ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = st.frame,
		.data_size_in = st.len,
		.ctx_in = &md,
		.ctx_size_in = sizeof(md),
		.repeat = (__u32)count,
		.flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		.batch_size = batch,
	);
	uint64_t t0 = now_ns();
	err = bpf_prog_test_run_opts(bpf_program__fd(prog), &o);
	uint64_t t1 = now_ns();
	int interrupted = err == -EINTR;
	if (err && !interrupted)
		die("BPF_PROG_TEST_RUN", err);
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);

	if (bpf_map_lookup_elem(bpf_map__fd(map), &zero, &st))
		die("state map read", errno);
	uint64_t sent = st.next_id - first_id;
	/* First frame to last: the run's setup and teardown (RCU grace
	 * periods) are not traffic. n frames span n-1 intervals. */
	uint64_t elapsed = sent > 1 && st.last_ns > st.first_ns ? (st.last_ns - st.first_ns) * sent / (sent - 1) : t1 - t0;
	printf("{\"sent\":%llu,\"elapsedNs\":%llu,\"syscallNs\":%llu,\"late\":%llu,\"maxLateNs\":%llu,"
	       "\"interrupted\":%s,\"targetRate\":%llu,\"achievedRate\":%.0f}\n",
	       (unsigned long long)sent, (unsigned long long)elapsed, (unsigned long long)(t1 - t0),
	       (unsigned long long)st.late, (unsigned long long)st.max_late_ns, interrupted ? "true" : "false",
	       (unsigned long long)rate, elapsed ? (double)sent * 1e9 / (double)elapsed : 0.0);
	bpf_object__close(obj);
	return 0;
}

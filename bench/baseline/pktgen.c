// SPDX-License-Identifier: Apache-2.0
/*
 * pktgen: the same job, arguments and JSON line as xdpgen, for kernels that
 * refuse BPF_PROG_TEST_RUN with live frames (EPERM even to root on some
 * hardened builds). Frames leave through an AF_PACKET socket bound to the
 * interface, sendmmsg in batches, past the qdisc (PACKET_QDISC_BYPASS):
 * still no UDP stack on the sending side, but one skb per frame and one
 * syscall per batch, so it tops out lower than the live-frames generator
 * and a row says which generator ran.
 *
 *   pktgen --ifname IF --frame HEX --count N [--rate PPS] [--batch B]
 *          [--first-request-id R] [--cpu C] [--max-ms MS]
 *
 * Pacing as in reqgen.bpf.c: frame i is due i/rate after the first; a batch
 * is sent when its last frame is due (so at most B-1 frames leave early),
 * and when the sender was held up more than 100 us it does not catch up in
 * a burst: the schedule slips, "late" counts the slips. The request id is
 * written per frame (network order) and the UDP checksum updated by adding
 * its words, as the template's id is 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "reqframe.h"
#include "reqgen.h"

#define BATCH_MAX 256

static volatile sig_atomic_t stop;

static void die(const char *what, int err)
{
	fprintf(stderr, "pktgen: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: pktgen --ifname IF --frame HEX --count N [--rate PPS] [--batch B]\n"
			"              [--first-request-id R] [--cpu C] [--max-ms MS]\n");
	exit(2);
}

static uint16_t fold(uint64_t s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)((s & 0xffff) + (s >> 16));
}

/* Writes request id `id` into frame f (a copy of the template) and fixes
 * the UDP checksum; zero means "no checksum" and stays zero. */
static void stamp_id(uint8_t *f, uint64_t id)
{
	uint32_t hi = htonl((uint32_t)(id >> 32)), lo = htonl((uint32_t)id);
	memcpy(f + REQGEN_OFF_REQUEST_ID, &hi, 4);
	memcpy(f + REQGEN_OFF_REQUEST_ID + 4, &lo, 4);
	uint16_t check;
	memcpy(&check, f + REQGEN_OFF_UDP_CHECK, 2);
	if (!check)
		return;
	/* Sum of 16-bit words in memory order, as the checksum is. */
	uint64_t s = (uint16_t)~check;
	for (int i = 0; i < 8; i += 2) {
		uint16_t w;
		memcpy(&w, f + REQGEN_OFF_REQUEST_ID + i, 2);
		s += w;
	}
	uint16_t c = (uint16_t)~fold(s);
	check = c ? c : 0xffff;
	memcpy(f + REQGEN_OFF_UDP_CHECK, &check, 2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ifname", required_argument, 0, 'i' },
		{ "frame", required_argument, 0, 'F' },
		{ "count", required_argument, 0, 'n' },
		{ "rate", required_argument, 0, 'r' },
		{ "batch", required_argument, 0, 'b' },
		{ "first-request-id", required_argument, 0, 'f' },
		{ "cpu", required_argument, 0, 'C' },
		{ "max-ms", required_argument, 0, 'm' },
		{ 0, 0, 0, 0 },
	};
	const char *ifname = NULL, *hex = NULL;
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
		default: usage();
		}
	}
	if (!ifname || !hex || !count || count > 0xffffffffull || !batch || batch > BATCH_MAX || !first_id || !max_ms)
		usage();

	uint8_t tmpl[REQGEN_FRAME_CAP];
	uint32_t len;
	const char *bad = parse_request_frame(hex, tmpl, &len);
	if (bad)
		die(bad, EINVAL);
	int err = pin_to_cpu(cpu);
	if (err)
		die("sched_setaffinity", err);

	int ifindex = (int)if_nametoindex(ifname);
	if (!ifindex)
		die(ifname, errno);
	/* Protocol 0: this socket only sends, it receives nothing. */
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		die("socket(AF_PACKET)", errno);
	int one = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		die("PACKET_QDISC_BYPASS", errno);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = ETH_ALEN };
	memcpy(sll.sll_addr, tmpl, ETH_ALEN);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind", errno);

	static uint8_t frames[BATCH_MAX][REQGEN_FRAME_CAP];
	struct iovec iov[BATCH_MAX];
	struct mmsghdr msgs[BATCH_MAX];
	memset(msgs, 0, sizeof(msgs));
	for (unsigned i = 0; i < batch; i++) {
		iov[i] = (struct iovec){ .iov_base = frames[i], .iov_len = len };
		msgs[i].msg_hdr = (struct msghdr){ .msg_name = &sll, .msg_namelen = sizeof(sll), .msg_iov = &iov[i], .msg_iovlen = 1 };
	}

	/* No SA_RESTART: the alarm has to end a blocked send (EINTR). */
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { .tv_sec = (time_t)(max_ms / 1000), .tv_usec = (long)(max_ms % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);

	/* Picoseconds keep the interval exact to 0.1 % up to 1 Gpps. */
	uint64_t ps_per_frame = rate ? 1000000000000ull / rate : 0;
	uint64_t sent = 0, late = 0, max_late = 0, start = 0, first_ns = 0, last_ns = 0;
	uint64_t t0 = now_ns();
	while (sent < count && !stop) {
		unsigned n = count - sent < batch ? (unsigned)(count - sent) : batch;
		for (unsigned i = 0; i < n; i++) {
			memcpy(frames[i], tmpl, len);
			stamp_id(frames[i], first_id + sent + i);
		}
		uint64_t now = now_ns();
		if (!start)
			start = first_ns = now;
		if (ps_per_frame) {
			uint64_t due = start + (sent + n - 1) * ps_per_frame / 1000;
			while (now < due && !stop)
				now = now_ns();
			if (now - due > REQGEN_LATE_NS) {
				late++;
				if (now - due > max_late)
					max_late = now - due;
				start += now - due;
			}
		}
		unsigned done = 0;
		while (done < n && !stop) {
			int r = sendmmsg(fd, msgs + done, n - done, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* A full device queue: try again, the frame is not lost. */
				if (errno == ENOBUFS || errno == EAGAIN)
					continue;
				die("sendmmsg", errno);
			}
			done += (unsigned)r;
		}
		sent += done;
		last_ns = now_ns();
	}
	uint64_t t1 = now_ns();
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	close(fd);

	uint64_t elapsed = sent > 1 && last_ns > first_ns ? (last_ns - first_ns) * sent / (sent - 1) : t1 - t0;
	printf("{\"sent\":%llu,\"elapsedNs\":%llu,\"syscallNs\":%llu,\"late\":%llu,\"maxLateNs\":%llu,"
	       "\"interrupted\":%s,\"targetRate\":%llu,\"achievedRate\":%.0f,\"generator\":\"af-packet\"}\n",
	       (unsigned long long)sent, (unsigned long long)elapsed, (unsigned long long)(t1 - t0),
	       (unsigned long long)late, (unsigned long long)max_late, stop && sent < count ? "true" : "false",
	       (unsigned long long)rate, elapsed ? (double)sent * 1e9 / (double)elapsed : 0.0);
	return 0;
}

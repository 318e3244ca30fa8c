// SPDX-License-Identifier: Apache-2.0
/*
 * loadgen: send N xseq REQUEST packets to ip:port at a target rate.
 *
 *   loadgen --dst IP [--port 7400] --count N [--rate PPS] [--payload BYTES]
 *           [--group-id G] [--client-id C] [--first-request-id R]
 *           [--batch B] [--max-ms MS] [--src-port P] [--sndbuf BYTES] [--cpu N]
 *
 * Packets carry request ids first..first+N-1. Pacing is by batches: B
 * packets per sendmmsg, each batch released at its absolute deadline
 * (clock_nanosleep TIMER_ABSTIME on CLOCK_MONOTONIC), so sleep jitter does
 * not accumulate into a rate error. When the sender falls behind it sends
 * without sleeping, so the achieved rate tells the caller it was the limit.
 * --rate 0 sends as fast as possible. The run stops at N packets or at
 * --max-ms (default 10 s), whichever comes first, and prints one JSON line:
 * {"sent":..,"elapsedNs":..,"sendErrors":..,...}; sent counts only packets the
 * kernel accepted.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xseq.h"

#define MAX_BATCH 1024

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen --dst IP [--port P] --count N [--rate PPS] [--payload BYTES]\n"
			"               [--group-id G] [--client-id C] [--first-request-id R]\n"
			"               [--batch B] [--max-ms MS] [--src-port P] [--sndbuf BYTES] [--cpu N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dst", required_argument, 0, 'd' },
		{ "port", required_argument, 0, 'p' },
		{ "count", required_argument, 0, 'n' },
		{ "rate", required_argument, 0, 'r' },
		{ "payload", required_argument, 0, 'l' },
		{ "group-id", required_argument, 0, 'g' },
		{ "client-id", required_argument, 0, 'c' },
		{ "first-request-id", required_argument, 0, 'f' },
		{ "batch", required_argument, 0, 'b' },
		{ "max-ms", required_argument, 0, 'm' },
		{ "src-port", required_argument, 0, 's' },
		{ "sndbuf", required_argument, 0, 'S' },
		{ "cpu", required_argument, 0, 'C' },
		{ 0, 0, 0, 0 },
	};
	const char *dst = NULL;
	unsigned port = XSEQ_DEFAULT_PORT, payload = 0, batch = 32, src_port = 0;
	uint64_t count = 0, rate = 0, group = 1, client = 1, first_req = 1, max_ms = 10000;
	int sndbuf = 4 << 20;
	int cpu = -1;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dst = optarg; break;
		case 'p': port = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 'r': rate = strtoull(optarg, NULL, 0); break;
		case 'l': payload = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'g': group = strtoull(optarg, NULL, 0); break;
		case 'c': client = strtoull(optarg, NULL, 0); break;
		case 'f': first_req = strtoull(optarg, NULL, 0); break;
		case 'b': batch = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'm': max_ms = strtoull(optarg, NULL, 0); break;
		case 's': src_port = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': sndbuf = atoi(optarg); break;
		case 'C': cpu = atoi(optarg); break;
		default: usage();
		}
	}
	if (!dst || !count || port == 0 || port > 65535 || payload > XSEQ_MAX_PAYLOAD || batch == 0 ||
	    batch > MAX_BATCH)
		usage();

	if (cpu >= 0) {
		/* The softirq work of every hop this process's sends trigger
		 * runs on its CPU; pinning keeps that CPU's identity fixed so a
		 * harness can give the other CPUs to the system under test. */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("sched_setaffinity");
			return 1;
		}
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	/* SO_SNDBUFFORCE: as root, past wmem_max, so a burst never blocks on
	 * the socket before it reaches the device. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)src_port) };
	if (src_port && bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("bind");
		return 1;
	}
	struct sockaddr_in da = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, dst, &da.sin_addr) != 1)
		usage();
	/* Connected: the kernel caches the route, no per-packet lookup. */
	if (connect(fd, (struct sockaddr *)&da, sizeof(da))) {
		perror("connect");
		return 1;
	}

	size_t pkt_len = XSEQ_HDR_LEN + payload;
	uint8_t *bufs = calloc(batch, pkt_len);
	struct mmsghdr *msgs = calloc(batch, sizeof(*msgs));
	struct iovec *iov = calloc(batch, sizeof(*iov));
	if (!bufs || !msgs || !iov) {
		perror("calloc");
		return 1;
	}
	for (unsigned i = 0; i < batch; i++) {
		struct xseq_hdr *h = (struct xseq_hdr *)(bufs + i * pkt_len);
		h->magic = htonl(XSEQ_MAGIC);
		h->version = XSEQ_VERSION;
		h->type = XSEQ_MSG_REQUEST;
		h->group_id = htonl((uint32_t)group);
		h->client_id = htobe64(client);
		h->payload_len = htonl(payload);
		memset(bufs + i * pkt_len + XSEQ_HDR_LEN, 0xab, payload);
		iov[i].iov_base = h;
		iov[i].iov_len = pkt_len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	uint64_t attempted = 0, sent = 0, send_errors = 0, behind = 0;
	int last_errno = 0;
	uint64_t start = now_ns();
	uint64_t deadline_end = start + max_ms * 1000000ull;
	/* Batch k is due at start + k * batch / rate seconds. */
	double ns_per_pkt = rate ? 1e9 / (double)rate : 0;
	uint64_t batches = 0;

	while (attempted < count) {
		uint64_t t = now_ns();
		if (t >= deadline_end)
			break;
		if (rate) {
			uint64_t due = start + (uint64_t)((double)(batches * batch) * ns_per_pkt);
			if (due > t) {
				struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
						       .tv_nsec = (long)(due % 1000000000ull) };
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
					;
			} else if (t - due > (uint64_t)(ns_per_pkt * batch)) {
				behind++;
			}
		}
		unsigned n = batch;
		if (count - attempted < n)
			n = (unsigned)(count - attempted);
		for (unsigned i = 0; i < n; i++) {
			struct xseq_hdr *h = (struct xseq_hdr *)(bufs + i * pkt_len);
			h->request_id = htobe64(first_req + attempted + i);
		}
		unsigned off = 0;
		while (off < n) {
			int r = sendmmsg(fd, msgs + off, n - off, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* ENOBUFS and friends: the packet is lost, not
				 * retried, like a NIC queue overflow would be. */
				send_errors++;
				last_errno = errno;
				off++;
				continue;
			}
			off += (unsigned)r;
			sent += (unsigned)r;
		}
		attempted += n;
		batches++;
	}
	uint64_t elapsed = now_ns() - start;
	printf("{\"sent\":%llu,\"elapsedNs\":%llu,\"sendErrors\":%llu,\"lastErrno\":%d,"
	       "\"behindBatches\":%llu,\"targetRate\":%llu,\"achievedRate\":%.0f}\n",
	       (unsigned long long)sent, (unsigned long long)elapsed, (unsigned long long)send_errors,
	       last_errno, (unsigned long long)behind, (unsigned long long)rate,
	       elapsed ? (double)sent * 1e9 / (double)elapsed : 0.0);
	return 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * udp-sequencer: the userspace baseline for the XDP sequencer.
 *
 *   udp-sequencer [--port 7400] --group-addr A.B.C.D [--group-port 7500]
 *                 [--group-id 1] [--session 1] [--sequencer-id 1]
 *                 [--iface-addr IP] [--batch 64] [--rcvbuf BYTES]
 *                 [--busy-poll USEC] [--gso]
 *
 * Same job as bpf/sequencer.bpf.c, done the best way a userspace process
 * can without kernel bypass: recvmmsg a batch of REQUESTs from UDP :port,
 * validate each like the XDP program does (magic, version, type, lengths,
 * group), stamp it (type SEQUENCED, session, sequencer id, seq+1, CLOCK_TAI
 * nanoseconds) and sendmmsg the whole batch to the group's multicast
 * address. Sending from the bound socket gives the same source port the
 * XDP program writes. One thread: the sequence must be dense and ordered,
 * and a second thread would only add a lock to the critical path.
 *
 * The c-mmsg-busy variant (--busy-poll, --gso) adds what a tuned
 * userspace server would: busy polling of the receive queue
 * (SO_BUSY_POLL, SO_PREFER_BUSY_POLL) instead of sleeping for each batch,
 * and UDP GSO on the way out (UDP_SEGMENT): a run of equal-size stamped
 * datagrams leaves as one send of one large buffer, which the stack cuts
 * into datagrams after the UDP layer. Sequenced order is kept: a GSO send
 * carries consecutive seqs, and sends go out in seq order.
 *
 * Prints {"event":"ready",...} once bound, and on SIGTERM/SIGINT one JSON
 * line of counters, then exits 0.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xseq.h"

#define MAX_BATCH 1024
/* The stack's limit on segments of one UDP GSO send (UDP_MAX_SEGMENTS). */
#define GSO_MAX_SEGS 64
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif
/* Large enough for any valid datagram; longer ones are truncated and fail
 * the length check. */
#define BUF_LEN 2048

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

enum {
	C_RX, C_SEQUENCED, C_TRUNCATED, C_BAD_MAGIC, C_BAD_VERSION, C_BAD_LENGTH,
	C_UNKNOWN_TYPE, C_UNEXPECTED_TYPE, C_UNKNOWN_GROUP, C_SEND_ERRORS, C_BATCHES, C_GSO_SENDS, C_MAX
};
static const char *const names[C_MAX] = {
	"rx", "sequenced", "drop_truncated", "drop_bad_magic", "drop_bad_version", "drop_bad_length",
	"drop_unknown_type", "drop_unexpected_type", "drop_unknown_group", "send_errors", "batches", "gso_sends",
};
static uint64_t ctr[C_MAX];

static void usage(void)
{
	fprintf(stderr, "usage: udp-sequencer [--port P] --group-addr A [--group-port P] [--group-id G]\n"
			"                     [--session S] [--sequencer-id I] [--iface-addr IP]\n"
			"                     [--batch B] [--rcvbuf BYTES] [--busy-poll USEC] [--gso]\n");
	exit(2);
}

/* Same checks, in the same order, as the XDP program; returns the counter
 * of the drop reason, or -1 if the packet is a REQUEST for our group. */
static int validate(const uint8_t *p, size_t len, uint32_t group_id)
{
	const struct xseq_hdr *h = (const struct xseq_hdr *)p;
	if (len < XSEQ_HDR_LEN)
		return C_TRUNCATED;
	if (h->magic != htonl(XSEQ_MAGIC))
		return C_BAD_MAGIC;
	if (h->version != XSEQ_VERSION)
		return C_BAD_VERSION;
	if (h->type == 0 || h->type >= XSEQ_MSG_TYPE_MAX)
		return C_UNKNOWN_TYPE;
	uint32_t payload_len = ntohl(h->payload_len);
	if (payload_len > XSEQ_MAX_PAYLOAD || len != XSEQ_HDR_LEN + (size_t)payload_len)
		return C_BAD_LENGTH;
	if (h->type != XSEQ_MSG_REQUEST)
		return C_UNEXPECTED_TYPE;
	if (ntohl(h->group_id) != group_id)
		return C_UNKNOWN_GROUP;
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, 0, 'p' },
		{ "group-addr", required_argument, 0, 'a' },
		{ "group-port", required_argument, 0, 'P' },
		{ "group-id", required_argument, 0, 'g' },
		{ "session", required_argument, 0, 's' },
		{ "sequencer-id", required_argument, 0, 'i' },
		{ "iface-addr", required_argument, 0, 'I' },
		{ "batch", required_argument, 0, 'b' },
		{ "rcvbuf", required_argument, 0, 'R' },
		{ "busy-poll", required_argument, 0, 'B' },
		{ "gso", no_argument, 0, 'G' },
		{ 0, 0, 0, 0 },
	};
	unsigned port = XSEQ_DEFAULT_PORT, group_port = 7500, batch = 64;
	uint32_t group_id = 1, session = 1;
	uint16_t seq_id = 1;
	const char *group_addr = NULL, *iface_addr = NULL;
	int rcvbuf = 8 << 20;
	int busy_poll = 0, gso = 0;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'a': group_addr = optarg; break;
		case 'P': group_port = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'g': group_id = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': session = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'i': seq_id = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'I': iface_addr = optarg; break;
		case 'b': batch = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'R': rcvbuf = atoi(optarg); break;
		case 'B': busy_poll = atoi(optarg); break;
		case 'G': gso = 1; break;
		default: usage();
		}
	}
	if (!group_addr || !port || port > 65535 || !group_port || group_port > 65535 || !batch ||
	    batch > MAX_BATCH)
		usage();

	struct sockaddr_in group = { .sin_family = AF_INET, .sin_port = htons((uint16_t)group_port) };
	if (inet_pton(AF_INET, group_addr, &group.sin_addr) != 1 || !IN_MULTICAST(ntohl(group.sin_addr.s_addr)))
		usage();

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	/* SO_RCVBUFFORCE (root) past rmem_max: the socket queue is where this
	 * design drops first under a burst, so give it room. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	int sndbuf = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	struct sockaddr_in bind_sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (bind(fd, (struct sockaddr *)&bind_sa, sizeof(bind_sa))) {
		perror("bind");
		return 1;
	}
	if (busy_poll > 0) {
		/* Spin on the receive queue for up to busy_poll us before
		 * sleeping, and ask the stack to prefer it over interrupts. */
		int one = 1, budget = (int)batch;
		if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &busy_poll, sizeof(busy_poll)) ||
		    setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
		    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget))) {
			perror("SO_BUSY_POLL");
			return 1;
		}
	}
	unsigned char ttl = 1, loop = 0;
	setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
	/* The sequencer host is not a receiver: no copy back to itself. */
	setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop));
	if (iface_addr) {
		struct in_addr ifa;
		if (inet_pton(AF_INET, iface_addr, &ifa) != 1)
			usage();
		if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa))) {
			perror("IP_MULTICAST_IF");
			return 1;
		}
	}

	struct sigaction sa = { .sa_handler = on_signal };
	/* No SA_RESTART: recvmmsg must return EINTR so the loop sees stop. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	uint8_t *bufs = malloc((size_t)batch * BUF_LEN);
	struct mmsghdr *rx = calloc(batch, sizeof(*rx));
	struct mmsghdr *tx = calloc(batch, sizeof(*tx));
	struct iovec *riov = calloc(batch, sizeof(*riov));
	struct iovec *tiov = calloc(batch, sizeof(*tiov));
	if (!bufs || !rx || !tx || !riov || !tiov) {
		perror("alloc");
		return 1;
	}
	for (unsigned i = 0; i < batch; i++) {
		riov[i].iov_base = bufs + (size_t)i * BUF_LEN;
		riov[i].iov_len = BUF_LEN;
		rx[i].msg_hdr.msg_iov = &riov[i];
		rx[i].msg_hdr.msg_iovlen = 1;
		tx[i].msg_hdr.msg_iov = &tiov[i];
		tx[i].msg_hdr.msg_iovlen = 1;
		tx[i].msg_hdr.msg_name = &group;
		tx[i].msg_hdr.msg_namelen = sizeof(group);
	}

	/* GSO: one message per run of equal-size datagrams, its iovecs the
	 * datagrams, with a UDP_SEGMENT control message of their size. */
	struct msghdr gmsg = { .msg_name = &group, .msg_namelen = sizeof(group) };
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} gctl;
	memset(&gctl, 0, sizeof(gctl));

	printf("{\"event\":\"ready\",\"port\":%u,\"group\":\"%s:%u\",\"busyPoll\":%d,\"gso\":%s}\n", port, group_addr, group_port, busy_poll,
	       gso ? "true" : "false");
	fflush(stdout);

	uint64_t seq = 0;
	const uint16_t seq_id_be = htons(seq_id);
	const uint32_t session_be = htonl(session);
	while (!stop) {
		/* MSG_WAITFORONE: block for the first, then take what is queued. */
		int n = recvmmsg(fd, rx, batch, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("recvmmsg");
			return 1;
		}
		ctr[C_BATCHES]++;
		unsigned out = 0;
		for (int i = 0; i < n; i++) {
			uint8_t *p = riov[i].iov_base;
			size_t len = rx[i].msg_len;
			ctr[C_RX]++;
			if (rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
				ctr[C_BAD_LENGTH]++;
				continue;
			}
			int bad = validate(p, len, group_id);
			if (bad >= 0) {
				ctr[bad]++;
				continue;
			}
			struct xseq_hdr *h = (struct xseq_hdr *)p;
			h->type = XSEQ_MSG_SEQUENCED;
			h->sequencer_id = seq_id_be;
			h->session = session_be;
			h->seq = htobe64(++seq);
			/* Per packet like the XDP program (a vDSO read, no
			 * syscall), so the stamps mean the same thing. */
			struct timespec ts;
			clock_gettime(CLOCK_TAI, &ts);
			h->clock_ns = htobe64((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
			tiov[out].iov_base = p;
			tiov[out].iov_len = len;
			out++;
		}
		unsigned off = 0;
		while (gso && off < out) {
			unsigned run = 1;
			while (off + run < out && run < GSO_MAX_SEGS && tiov[off + run].iov_len == tiov[off].iov_len)
				run++;
			gmsg.msg_iov = &tiov[off];
			gmsg.msg_iovlen = run;
			gmsg.msg_control = run > 1 ? gctl.buf : NULL;
			gmsg.msg_controllen = run > 1 ? sizeof(gctl.buf) : 0;
			if (run > 1) {
				struct cmsghdr *cm = CMSG_FIRSTHDR(&gmsg);
				cm->cmsg_level = SOL_UDP;
				cm->cmsg_type = UDP_SEGMENT;
				cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
				uint16_t size = (uint16_t)tiov[off].iov_len;
				memcpy(CMSG_DATA(cm), &size, sizeof(size));
			}
			if (sendmsg(fd, &gmsg, 0) < 0) {
				if (errno == EINTR)
					continue;
				/* The run's seqs are spent: a gap, as on the wire. */
				ctr[C_SEND_ERRORS] += run;
			} else {
				ctr[C_SEQUENCED] += run;
				ctr[C_GSO_SENDS]++;
			}
			off += run;
		}
		while (off < out) {
			int r = sendmmsg(fd, tx + off, out - off, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* The seq is spent: receivers see a gap, as they
				 * would if the wire dropped it. */
				ctr[C_SEND_ERRORS]++;
				off++;
				continue;
			}
			off += (unsigned)r;
			ctr[C_SEQUENCED] += (unsigned)r;
		}
	}

	printf("{\"event\":\"stopped\",\"lastSeq\":%llu", (unsigned long long)seq);
	for (int i = 0; i < C_MAX; i++)
		printf(",\"%s\":%llu", names[i], (unsigned long long)ctr[i]);
	printf("}\n");
	fflush(stdout);
	return 0;
}

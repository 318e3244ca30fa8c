// SPDX-License-Identifier: Apache-2.0
/*
 * nvgen: NEXTVAL load generator (the C counterpart of pgbench for P5).
 *
 *   nvgen --dst IP [--port 7400] --name SEQ [--threads T] [--window W]
 *         [--count C] [--duration-ms MS | --calls N] [--local] [--timeout-ms MS]
 *
 * T threads, each with its own connected UDP socket, keep W NEXTVALs in
 * flight (W = 1: closed loop, one call after the other; the latency of
 * each is recorded). --count C asks C values per call (0 = the sequence's
 * cache). --local counts every value of a block as one nextval() handed
 * out by the client (what a client with a cached sequence serves without a
 * round trip). A request unanswered after --timeout-ms (default 200) is
 * lost: counted, its values never used, and a fresh request replaces it.
 * In a closed loop each thread's values must increase (real-time order);
 * one that does not is counted under "duplicates".
 * Prints one JSON line: calls, values, refused, unknown, lost, duplicates,
 * elapsedNs, callsPerSec, valuesPerSec, p50Ns, p99Ns (closed loop only).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xseq.h"

#define MSG_LEN (sizeof(struct xseq_hdr) + sizeof(struct xseq_nv_req))
#define MAX_WINDOW 256
#define MAX_LAT (1u << 22)

static struct sockaddr_in dst;
static char name[XSEQ_NV_NAME_MAX];
static unsigned window_sz = 1, count_req = 1, timeout_ms = 200;
static uint64_t duration_ns, calls_per_thread;
static int local_values;

struct thread_res {
	pthread_t tid;
	unsigned idx;
	uint64_t calls, values, refused, unknown, lost, dups;
	uint64_t last_first; /* values of one sequence increase per thread */
	uint64_t *lat;
	uint64_t nlat;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill(uint8_t *buf, uint64_t client, uint64_t rid)
{
	struct xseq_hdr *h = (struct xseq_hdr *)buf;
	struct xseq_nv_req *q = (struct xseq_nv_req *)(h + 1);

	memset(buf, 0, MSG_LEN);
	h->magic = htonl(XSEQ_MAGIC);
	h->version = XSEQ_VERSION;
	h->type = XSEQ_MSG_NEXTVAL;
	h->client_id = htobe64(client);
	h->request_id = htobe64(rid);
	h->payload_len = htonl(sizeof(*q));
	q->count = htonl(count_req);
	memcpy(q->name, name, sizeof(q->name));
}

/* The next request id that maps to `slot` (rid % window == slot): replies
 * find their slot without a search. */
static uint64_t rid_for(uint64_t *next, unsigned slot)
{
	uint64_t id = *next + (slot + window_sz - (unsigned)(*next % window_sz)) % window_sz;

	*next = id + 1;
	return id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void *run(void *arg)
{
	struct thread_res *r = arg;
	uint64_t client = ((uint64_t)getpid() << 20) ^ (r->idx + 1);
	uint64_t sent_at[MAX_WINDOW], rid_of[MAX_WINDOW];
	uint64_t next_rid = 1, issued = 0, end = now_ns() + duration_ns;
	uint8_t out[MSG_LEN], in[256];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		perror("nvgen: socket/connect");
		exit(1);
	}
	/* rid % window is the request's slot: replies are matched by slot. */
	for (unsigned i = 0; i < window_sz; i++) {
		if (calls_per_thread && issued >= calls_per_thread)
			break;
		rid_of[i] = rid_for(&next_rid, i);
		fill(out, client, rid_of[i]);
		sent_at[i] = now_ns();
		send(fd, out, MSG_LEN, 0);
		issued++;
	}
	uint64_t outstanding = issued;
	while (outstanding) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, (int)timeout_ms);
		uint64_t t = now_ns();
		int stop = calls_per_thread ? issued >= calls_per_thread : t >= end;

		if (n <= 0) {
			/* Everything outstanding timed out: lost, replaced if going on. */
			for (unsigned i = 0; i < window_sz; i++) {
				if (!rid_of[i] || t - sent_at[i] < (uint64_t)timeout_ms * 1000000ull)
					continue;
				r->lost++;
				outstanding--;
				rid_of[i] = 0;
				if (!stop) {
					rid_of[i] = rid_for(&next_rid, i);
					fill(out, client, rid_of[i]);
					sent_at[i] = now_ns();
					send(fd, out, MSG_LEN, 0);
					issued++;
					outstanding++;
				}
			}
			continue;
		}
		ssize_t len = recv(fd, in, sizeof(in), 0);
		if (len != (ssize_t)MSG_LEN)
			continue;
		struct xseq_hdr *h = (struct xseq_hdr *)in;
		struct xseq_nv_reply *rep = (struct xseq_nv_reply *)(h + 1);
		uint64_t rid = be64toh(h->request_id);
		unsigned slot = (unsigned)(rid % window_sz);
		if (h->type != XSEQ_MSG_NEXTVAL_REPLY || be64toh(h->client_id) != client || rid_of[slot] != rid)
			continue; /* late: its values stay unused */
		rid_of[slot] = 0;
		outstanding--;
		uint16_t st = ntohs(rep->status);
		if (st == XSEQ_NV_OK) {
			uint64_t first = be64toh(rep->first), cnt = ntohl(rep->count);
			/* Closed loop: each value must be above the thread's last. */
			if (window_sz == 1 && r->calls && first <= r->last_first)
				r->dups++;
			r->last_first = first;
			r->calls += local_values ? cnt : 1;
			r->values += cnt;
			if (window_sz == 1 && r->nlat < MAX_LAT)
				r->lat[r->nlat++] = t - sent_at[slot];
		} else if (st == XSEQ_NV_REFUSED) {
			r->refused++;
		} else {
			r->unknown++;
		}
		stop = calls_per_thread ? issued >= calls_per_thread : t >= end;
		if (!stop) {
			uint64_t id = rid_for(&next_rid, slot);

			rid_of[slot] = id;
			fill(out, client, id);
			sent_at[slot] = now_ns();
			send(fd, out, MSG_LEN, 0);
			issued++;
			outstanding++;
		}
	}
	close(fd);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: nvgen --dst IP [--port P] --name SEQ [--threads T] [--window W] [--count C]\n"
			"             [--duration-ms MS | --calls N] [--local] [--timeout-ms MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dst", required_argument, 0, 'd' },   { "port", required_argument, 0, 'p' },
		{ "name", required_argument, 0, 'n' },  { "threads", required_argument, 0, 't' },
		{ "window", required_argument, 0, 'w' }, { "count", required_argument, 0, 'c' },
		{ "duration-ms", required_argument, 0, 'D' }, { "calls", required_argument, 0, 'N' },
		{ "local", no_argument, 0, 'L' },        { "timeout-ms", required_argument, 0, 'T' },
		{ 0, 0, 0, 0 },
	};
	unsigned threads = 1;
	int o;

	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons(XSEQ_DEFAULT_PORT);
	duration_ns = 3000000000ull;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd': if (inet_pton(AF_INET, optarg, &dst.sin_addr) != 1) usage(); break;
		case 'p': dst.sin_port = htons((uint16_t)atoi(optarg)); break;
		case 'n': if (strlen(optarg) == 0 || strlen(optarg) > sizeof(name)) usage(); strncpy(name, optarg, sizeof(name)); break;
		case 't': threads = (unsigned)atoi(optarg); break;
		case 'w': window_sz = (unsigned)atoi(optarg); break;
		case 'c': count_req = (unsigned)atoi(optarg); break;
		case 'D': duration_ns = strtoull(optarg, NULL, 10) * 1000000ull; break;
		case 'N': calls_per_thread = strtoull(optarg, NULL, 10); break;
		case 'L': local_values = 1; break;
		case 'T': timeout_ms = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (!name[0] || !threads || threads > 1024 || !window_sz || window_sz > MAX_WINDOW)
		usage();
	struct thread_res *res = calloc(threads, sizeof(*res));
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < threads; i++) {
		res[i].idx = i;
		res[i].lat = window_sz == 1 ? malloc(sizeof(uint64_t) * MAX_LAT) : NULL;
		if (pthread_create(&res[i].tid, NULL, run, &res[i])) {
			perror("nvgen: pthread_create");
			return 1;
		}
	}
	struct thread_res sum = { 0 };
	uint64_t nlat = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(res[i].tid, NULL);
		sum.calls += res[i].calls;
		sum.values += res[i].values;
		sum.refused += res[i].refused;
		sum.unknown += res[i].unknown;
		sum.lost += res[i].lost;
		sum.dups += res[i].dups;
		nlat += res[i].nlat;
	}
	uint64_t elapsed = now_ns() - t0;
	uint64_t *all = nlat ? malloc(sizeof(uint64_t) * nlat) : NULL, k = 0;
	for (unsigned i = 0; i < threads; i++)
		for (uint64_t j = 0; j < res[i].nlat; j++)
			all[k++] = res[i].lat[j];
	if (nlat)
		qsort(all, nlat, sizeof(uint64_t), cmp_u64);
	double secs = (double)elapsed / 1e9;
	printf("{\"calls\":%lu,\"values\":%lu,\"refused\":%lu,\"unknown\":%lu,\"lost\":%lu,\"duplicates\":%lu,"
	       "\"elapsedNs\":%lu,\"callsPerSec\":%.0f,\"valuesPerSec\":%.0f,\"p50Ns\":%lu,\"p99Ns\":%lu}\n",
	       sum.calls, sum.values, sum.refused, sum.unknown, sum.lost, sum.dups, elapsed, (double)sum.calls / secs,
	       (double)sum.values / secs, nlat ? all[nlat / 2] : 0, nlat ? all[(nlat * 99) / 100] : 0);
	return 0;
}

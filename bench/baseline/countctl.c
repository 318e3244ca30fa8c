// SPDX-License-Identifier: Apache-2.0
/*
 * countctl: attach, read and reset the receiver counter (count.bpf.o).
 *
 *   countctl attach --ifname IF [--mode native|generic] [--obj PATH]
 *                   [--port P] [--group G] [--sequencer S] [--requests]
 *       Loads and attaches the program (run it inside the receiver's
 *       namespace: `ip netns exec NS countctl attach ...`) and prints
 *       {"prog":ID,"ifindex":N,"mode":"native"}. The netlink attachment
 *       keeps program and maps alive after this process exits; deleting
 *       the interface (or its namespace) frees them. --requests counts
 *       REQUESTs by request id instead of SEQUENCED by seq (a sink).
 *   countctl read [--missing N] PROG_ID...
 *       Prints one JSON line: an array with the summed counters of each
 *       program and, with --missing, up to N seqs in [min,max] never seen.
 *   countctl reset PROG_ID...
 *       Zeroes counters and bitmap, between benchmark steps.
 *
 * Maps are found from the program id (bpf_prog_info.map_ids) rather than
 * pinned: bpffs is not reliably visible under `ip netns exec`, and ids are
 * global, so reading works from any namespace.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "xseq.h"
#include "bpftool-common.h"
#include "count.h"

static const char *default_obj(const char *argv0)
{
	/* The object is built next to this binary (bench/build/). */
	static char path[4096];
	const char *slash = strrchr(argv0, '/');
	if (!slash)
		return "count.bpf.o";
	snprintf(path, sizeof(path), "%.*s/count.bpf.o", (int)(slash - argv0), argv0);
	return path;
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ifname", required_argument, 0, 'i' },
		{ "mode", required_argument, 0, 'm' },
		{ "obj", required_argument, 0, 'o' },
		{ "port", required_argument, 0, 'p' },
		{ "group", required_argument, 0, 'g' },
		{ "sequencer", required_argument, 0, 's' },
		{ "requests", no_argument, 0, 'r' },
		{ 0, 0, 0, 0 },
	};
	const char *ifname = NULL, *mode = "native", *obj_path = default_obj(argv[-1]);
	struct count_cfg cfg = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': ifname = optarg; break;
		case 'm': mode = optarg; break;
		case 'o': obj_path = optarg; break;
		case 'p': cfg.port = (__u16)atoi(optarg); break;
		case 'g': cfg.has_group = 1; cfg.group_id = (__u32)strtoul(optarg, NULL, 0); break;
		case 's': cfg.has_sequencer = 1; cfg.sequencer_id = (__u16)atoi(optarg); break;
		case 'r': cfg.msg_type = XSEQ_MSG_REQUEST; break;
		default: return 2;
		}
	}
	if (!ifname)
		die("attach needs --ifname", EINVAL);
	__u32 flags;
	if (!strcmp(mode, "native"))
		flags = XDP_FLAGS_DRV_MODE;
	else if (!strcmp(mode, "generic"))
		flags = XDP_FLAGS_SKB_MODE;
	else
		die("--mode must be native or generic", EINVAL);
	int ifindex = (int)if_nametoindex(ifname);
	if (!ifindex)
		die(ifname, errno);

	struct bpf_program *prog;
	struct bpf_map *cfg_map;
	struct bpf_object *obj = load_prog_and_map(obj_path, COUNT_PROG_NAME, COUNT_MAP_CFG, &prog, &cfg_map);
	int err;
	__u32 zero = 0;
	err = bpf_map_update_elem(bpf_map__fd(cfg_map), &zero, &cfg, BPF_ANY);
	if (err)
		die("config", errno);
	err = bpf_xdp_attach(ifindex, bpf_program__fd(prog), flags, NULL);
	if (err)
		die("xdp attach", err);
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	err = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
	if (err)
		die("prog info", errno);
	printf("{\"prog\":%u,\"ifindex\":%d,\"mode\":\"%s\"}\n", info.id, ifindex, mode);
	bpf_object__close(obj);
	return 0;
}

struct counter_maps {
	__u32 prog_id;
	int stats_fd;
	int bitmap_fd;
};

static void find_maps(__u32 prog_id, struct counter_maps *m)
{
	__u32 map_ids[16];
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	m->prog_id = prog_id;
	m->stats_fd = m->bitmap_fd = -1;
	int pfd = bpf_prog_get_fd_by_id(prog_id);
	if (pfd < 0)
		die("prog id", errno);
	info.nr_map_ids = 16;
	info.map_ids = (__u64)(unsigned long)map_ids;
	if (bpf_obj_get_info_by_fd(pfd, &info, &len))
		die("prog info", errno);
	close(pfd);
	for (__u32 i = 0; i < info.nr_map_ids && i < 16; i++) {
		int fd = bpf_map_get_fd_by_id(map_ids[i]);
		struct bpf_map_info mi = { 0 };
		__u32 mlen = sizeof(mi);
		if (fd < 0)
			die("map id", errno);
		if (bpf_obj_get_info_by_fd(fd, &mi, &mlen))
			die("map info", errno);
		if (!strcmp(mi.name, COUNT_MAP_STATS))
			m->stats_fd = fd;
		else if (!strcmp(mi.name, COUNT_MAP_BITMAP))
			m->bitmap_fd = fd;
		else
			close(fd);
	}
	if (m->stats_fd < 0 || m->bitmap_fd < 0)
		die("program has no count maps", ENOENT);
}

static __u64 *map_bitmap(int fd)
{
	void *p = mmap(NULL, COUNT_BITMAP_WORDS * sizeof(__u64), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap bitmap", errno);
	return p;
}

static int cmd_read(int argc, char **argv)
{
	long missing_max = 0;
	int i = 0;

	if (argc > 2 && !strcmp(argv[1], "--missing")) {
		missing_max = atol(argv[2]);
		i = 2;
	}
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu < 0)
		die("cpus", ncpu);
	struct count_stats *per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		die("calloc", ENOMEM);

	printf("[");
	for (int n = 0; ++i < argc; n++) {
		struct counter_maps m;
		__u32 zero = 0;
		find_maps((__u32)strtoul(argv[i], NULL, 0), &m);
		if (bpf_map_lookup_elem(m.stats_fd, &zero, per))
			die("stats lookup", errno);
		struct count_stats s = { 0 };
		for (int c = 0; c < ncpu; c++) {
			s.packets += per[c].packets;
			s.distinct += per[c].distinct;
			s.duplicates += per[c].duplicates;
			s.zero_seq += per[c].zero_seq;
			s.bytes += per[c].bytes;
			s.passed += per[c].passed;
			if (per[c].min_seq && (!s.min_seq || per[c].min_seq < s.min_seq))
				s.min_seq = per[c].min_seq;
			if (per[c].max_seq > s.max_seq)
				s.max_seq = per[c].max_seq;
		}
		printf("%s{\"prog\":%u,\"packets\":%llu,\"distinct\":%llu,\"duplicates\":%llu,"
		       "\"zeroSeq\":%llu,\"minSeq\":%llu,\"maxSeq\":%llu,\"bytes\":%llu,\"passed\":%llu",
		       n ? "," : "", m.prog_id, (unsigned long long)s.packets,
		       (unsigned long long)s.distinct, (unsigned long long)s.duplicates,
		       (unsigned long long)s.zero_seq, (unsigned long long)s.min_seq,
		       (unsigned long long)s.max_seq, (unsigned long long)s.bytes,
		       (unsigned long long)s.passed);
		if (missing_max > 0) {
			__u64 *bm = map_bitmap(m.bitmap_fd);
			long found = 0;
			printf(",\"missing\":[");
			/* Only meaningful while max - min < COUNT_BITMAP_BITS,
			 * which a step that began from a reset guarantees. */
			for (__u64 seq = s.min_seq; s.min_seq && seq <= s.max_seq && found < missing_max; seq++) {
				__u64 w = bm[(seq >> 6) & (COUNT_BITMAP_WORDS - 1)];
				if (!(w & (1ull << (seq & 63))))
					printf("%s%llu", found++ ? "," : "", (unsigned long long)seq);
			}
			printf("]");
			munmap(bm, COUNT_BITMAP_WORDS * sizeof(__u64));
		}
		printf("}");
		close(m.stats_fd);
		close(m.bitmap_fd);
	}
	printf("]\n");
	free(per);
	return 0;
}

static int cmd_reset(int argc, char **argv)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu < 0)
		die("cpus", ncpu);
	struct count_stats *per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		die("calloc", ENOMEM);
	for (int i = 1; i < argc; i++) {
		struct counter_maps m;
		__u32 zero = 0;
		find_maps((__u32)strtoul(argv[i], NULL, 0), &m);
		__u64 *bm = map_bitmap(m.bitmap_fd);
		memset(bm, 0, COUNT_BITMAP_WORDS * sizeof(__u64));
		munmap(bm, COUNT_BITMAP_WORDS * sizeof(__u64));
		if (bpf_map_update_elem(m.stats_fd, &zero, per, BPF_ANY))
			die("stats reset", errno);
		close(m.stats_fd);
		close(m.bitmap_fd);
	}
	free(per);
	return 0;
}

int main(int argc, char **argv)
{
	tool_name = "countctl";
	if (argc < 2) {
		fprintf(stderr, "usage: countctl attach|read|reset ...\n");
		return 2;
	}
	/* argv[-1] inside the subcommands is the program path. */
	if (!strcmp(argv[1], "attach"))
		return cmd_attach(argc - 1, argv + 1);
	if (!strcmp(argv[1], "read"))
		return cmd_read(argc - 1, argv + 1);
	if (!strcmp(argv[1], "reset"))
		return cmd_reset(argc - 1, argv + 1);
	fprintf(stderr, "countctl: unknown command %s\n", argv[1]);
	return 2;
}

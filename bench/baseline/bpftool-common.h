/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpftool-common.h: what the bench's libbpf command-line tools (countctl,
 * xdpgen) share: exit with the tool's name and errno text, and open + load
 * an object and find the one program and map the tool drives.
 */
#ifndef XSEQ_BENCH_TOOL_COMMON_H
#define XSEQ_BENCH_TOOL_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

/* Set by each tool's main before anything can fail. */
static const char *tool_name = "bench-tool";

static void die(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", tool_name, what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Opens and loads obj_path; dies unless it holds program prog_name and map
 * map_name. */
static struct bpf_object *load_prog_and_map(const char *obj_path, const char *prog_name, const char *map_name,
					    struct bpf_program **prog, struct bpf_map **map)
{
	struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
	if (!obj)
		die(obj_path, errno);
	int err = bpf_object__load(obj);
	if (err)
		die("load", err);
	*prog = bpf_object__find_program_by_name(obj, prog_name);
	*map = bpf_object__find_map_by_name(obj, map_name);
	if (!*prog || !*map) {
		fprintf(stderr, "%s: object %s lacks program %s or map %s\n", tool_name, obj_path, prog_name, map_name);
		exit(1);
	}
	return obj;
}

#endif

// Raw koffi declarations of the libbpf 1.1 (and few libc) functions the
// binding uses. Nothing here interprets results; the classes in this folder
// do. Loading is lazy so that importing the binding never fails on a host
// without libbpf: the first call does, with EBPF_LIBBPF_MISSING.
//
// Conventions of libbpf 1.x relied on by the callers:
//   - int-returning functions return -errno on failure (and also set errno);
//   - pointer-returning functions return NULL (koffi: null) and set errno,
//     which koffi.errno() reads right after the call.
// koffi 3 represents pointers as BigInt, size_t/u64 results as Number when
// they fit, and passes a Uint8Array argument as a pointer to its bytes
// (honouring byteOffset), so map keys/values need no copies.

import koffi from 'koffi';
import type { LibraryHandle, TypeObject } from 'koffi';
import { BpfError } from './errors.ts';

/** A native pointer as koffi 3 hands it out. NULL arrives as null. */
export type Pointer = bigint;
export type NullablePointer = bigint | null;
/** Anything koffi accepts for a `void *` parameter. */
export type Bytes = Uint8Array | Pointer | null;

export interface TestRunOpts {
  sz: number;
  data_in: Pointer | null;
  data_out: Pointer | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Pointer | null;
  ctx_out: Pointer | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}

export interface XdpQueryOpts {
  sz: number;
  prog_id: number;
  drv_prog_id: number;
  hw_prog_id: number;
  skb_prog_id: number;
  attach_mode: number;
}

export interface MapInfo {
  type: number;
  id: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  map_flags: number;
  name: string;
  ifindex: number;
}

/** The functions, typed. Names match C so grepping libbpf.h finds them. */
export interface Libbpf {
  libbpf_set_print(fn: Pointer | null): NullablePointer;
  libbpf_num_possible_cpus(): number;

  bpf_object__open_file(path: string, opts: null): NullablePointer;
  bpf_object__load(obj: Pointer): number;
  bpf_object__close(obj: Pointer): void;
  bpf_object__find_program_by_name(obj: Pointer, name: string): NullablePointer;
  bpf_object__find_map_by_name(obj: Pointer, name: string): NullablePointer;
  bpf_object__next_program(obj: Pointer, prev: Pointer | null): NullablePointer;
  bpf_object__next_map(obj: Pointer, prev: Pointer | null): NullablePointer;

  bpf_program__name(prog: Pointer): string;
  bpf_program__section_name(prog: Pointer): string;
  bpf_program__fd(prog: Pointer): number;
  bpf_program__set_log_buf(prog: Pointer, buf: Pointer | null, size: number): number;

  bpf_map__name(map: Pointer): string;
  bpf_map__fd(map: Pointer): number;
  bpf_map__type(map: Pointer): number;
  bpf_map__key_size(map: Pointer): number;
  bpf_map__value_size(map: Pointer): number;
  bpf_map__max_entries(map: Pointer): number;
  bpf_map__map_flags(map: Pointer): number;
  bpf_map__is_internal(map: Pointer): boolean;
  bpf_map__set_max_entries(map: Pointer, n: number): number;
  bpf_map__initial_value(map: Pointer, size: [number]): NullablePointer;

  bpf_map_lookup_elem(fd: number, key: Bytes, value: Bytes): number;
  bpf_map_update_elem(fd: number, key: Bytes, value: Bytes, flags: number): number;
  bpf_map_delete_elem(fd: number, key: Bytes): number;
  bpf_map_get_next_key(fd: number, key: Bytes, next: Bytes): number;

  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Uint8Array, len: [number]): number;
  bpf_prog_get_fd_by_id(id: number): number;

  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: { sz: number; flags: number }): number;
  bpf_link_detach(linkFd: number): number;

  bpf_prog_test_run_opts(progFd: number, opts: TestRunOpts): number;
  bpf_prog_load(progType: number, name: string, license: string, insns: Bytes, insnCnt: number, opts: null): number;

  bpf_xdp_attach(ifindex: number, progFd: number, flags: number, opts: null): number;
  bpf_xdp_detach(ifindex: number, flags: number, opts: null): number;
  bpf_xdp_query(ifindex: number, flags: number, opts: XdpQueryOpts): number;

  ring_buffer__new(mapFd: number, cb: Pointer, ctx: null, opts: null): NullablePointer;
  ring_buffer__free(rb: Pointer): void;
  ring_buffer__poll(rb: Pointer, timeoutMs: number): number;
  ring_buffer__consume(rb: Pointer): number;
  ring_buffer__epoll_fd(rb: Pointer): number;
}

export interface Libc {
  if_nametoindex(name: string): number;
  if_indextoname(index: number, buf: Uint8Array): NullablePointer;
  setns(fd: number, nstype: number): number;
  vsnprintf(buf: Uint8Array, size: number, fmt: Pointer, ap: Pointer): number;
}

export interface Ffi {
  bpf: Libbpf;
  c: Libc;
  /** Prototype of ring_buffer_sample_fn, for koffi.register. */
  ringBufferSampleFn: TypeObject;
  mapInfo: TypeObject;
  /** errno left by the last native call on this thread. */
  errno(): number;
}

// koffi's type registry is per process, not per module instance: a second
// import of this file (vitest isolates test files, but not the native
// addon) must reuse the names instead of redefining them, which throws.
function named(name: string, make: () => TypeObject): TypeObject {
  try {
    return koffi.type(name);
  } catch {
    return make();
  }
}

function expectSize(type: TypeObject, size: number): void {
  // Sizes measured from the C headers (sizeof) on x86-64; a mismatch means
  // koffi laid a struct out differently and every call would be corrupt.
  if (type.size !== size) {
    throw new Error(`internal: koffi sizeof(${type.name}) = ${type.size}, C says ${size}`);
  }
}

function declare(): Ffi {
  // XSEQ_LIBBPF_PATH points at another build of libbpf 1.x (and lets tests
  // prove the missing-library error without uninstalling anything).
  const path = process.env.XSEQ_LIBBPF_PATH || 'libbpf.so.1';
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (cause) {
    throw new BpfError(
      'EBPF_LIBBPF_MISSING',
      `cannot load ${path} (${(cause as Error).message}); install it with \`apt-get install libbpf1\``,
      { cause },
    );
  }
  const libc = koffi.load('libc.so.6');

  for (const name of ['bpf_object', 'bpf_program', 'bpf_map', 'ring_buffer']) {
    named(name, () => koffi.opaque(name));
  }
  named('libbpf_print_fn', () => koffi.proto('int libbpf_print_fn(int level, void *fmt, void *ap)'));
  const ringBufferSampleFn = named('ring_buffer_sample_fn', () =>
    koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)'),
  );
  const testRunOpts = named('bpf_test_run_opts', () =>
    koffi.struct('bpf_test_run_opts', {
      sz: 'size_t',
      data_in: 'void *',
      data_out: 'void *',
      data_size_in: 'uint32_t',
      data_size_out: 'uint32_t',
      ctx_in: 'void *',
      ctx_out: 'void *',
      ctx_size_in: 'uint32_t',
      ctx_size_out: 'uint32_t',
      retval: 'uint32_t',
      repeat: 'int',
      duration: 'uint32_t',
      flags: 'uint32_t',
      cpu: 'uint32_t',
      batch_size: 'uint32_t',
    }),
  );
  // Only sz and flags matter for XDP; the rest (a union for other link
  // types) must be zero, which koffi does for missing members.
  const linkCreateOpts = named('bpf_link_create_opts', () =>
    koffi.struct('bpf_link_create_opts', {
      sz: 'size_t',
      flags: 'uint32_t',
      iter_info: 'void *',
      iter_info_len: 'uint32_t',
      target_btf_id: 'uint32_t',
      link_union: koffi.array('uint64_t', 4),
    }),
  );
  const xdpQueryOpts = named('bpf_xdp_query_opts', () =>
    koffi.struct('bpf_xdp_query_opts', {
      sz: 'size_t',
      prog_id: 'uint32_t',
      drv_prog_id: 'uint32_t',
      hw_prog_id: 'uint32_t',
      skb_prog_id: 'uint32_t',
      attach_mode: 'uint8_t',
    }),
  );
  const mapInfo = named('bpf_map_info', () =>
    koffi.struct('bpf_map_info', {
      type: 'uint32_t',
      id: 'uint32_t',
      key_size: 'uint32_t',
      value_size: 'uint32_t',
      max_entries: 'uint32_t',
      map_flags: 'uint32_t',
      name: koffi.array('char', 16, 'String'),
      ifindex: 'uint32_t',
      btf_vmlinux_value_type_id: 'uint32_t',
      netns_dev: 'uint64_t',
      netns_ino: 'uint64_t',
      btf_id: 'uint32_t',
      btf_key_type_id: 'uint32_t',
      btf_value_type_id: 'uint32_t',
      pad: 'uint32_t',
      map_extra: 'uint64_t',
    }),
  );
  expectSize(testRunOpts, 80);
  expectSize(linkCreateOpts, 64);
  expectSize(xdpQueryOpts, 32);
  expectSize(mapInfo, 88);

  const f = (proto: string) => lib.func(proto);
  const bpf: Libbpf = {
    libbpf_set_print: f('void *libbpf_set_print(libbpf_print_fn *fn)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),

    bpf_object__open_file: f('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    bpf_object__load: f('int bpf_object__load(bpf_object *obj)'),
    bpf_object__close: f('void bpf_object__close(bpf_object *obj)'),
    bpf_object__find_program_by_name: f(
      'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)',
    ),
    bpf_object__find_map_by_name: f('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    bpf_object__next_program: f('bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)'),
    bpf_object__next_map: f('bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)'),

    bpf_program__name: f('const char *bpf_program__name(bpf_program *prog)'),
    bpf_program__section_name: f('const char *bpf_program__section_name(bpf_program *prog)'),
    bpf_program__fd: f('int bpf_program__fd(bpf_program *prog)'),
    bpf_program__set_log_buf: f('int bpf_program__set_log_buf(bpf_program *prog, void *buf, size_t size)'),

    bpf_map__name: f('const char *bpf_map__name(bpf_map *map)'),
    bpf_map__fd: f('int bpf_map__fd(bpf_map *map)'),
    bpf_map__type: f('int bpf_map__type(bpf_map *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(bpf_map *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(bpf_map *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(bpf_map *map)'),
    bpf_map__map_flags: f('uint32_t bpf_map__map_flags(bpf_map *map)'),
    bpf_map__is_internal: f('bool bpf_map__is_internal(bpf_map *map)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(bpf_map *map, uint32_t n)'),
    bpf_map__initial_value: f('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *size)'),

    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, void *key, void *next)'),

    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),

    bpf_link_create: f(
      'int bpf_link_create(int prog_fd, int target_fd, int attach_type, bpf_link_create_opts *opts)',
    ),
    bpf_link_detach: f('int bpf_link_detach(int link_fd)'),

    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
    bpf_prog_load: f(
      'int bpf_prog_load(int prog_type, const char *prog_name, const char *license, const void *insns, size_t insn_cnt, void *opts)',
    ),

    bpf_xdp_attach: f('int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, void *opts)'),
    bpf_xdp_detach: f('int bpf_xdp_detach(int ifindex, uint32_t flags, void *opts)'),
    bpf_xdp_query: f('int bpf_xdp_query(int ifindex, int flags, _Inout_ bpf_xdp_query_opts *opts)'),

    ring_buffer__new: f(
      'ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn *cb, void *ctx, void *opts)',
    ),
    ring_buffer__free: f('void ring_buffer__free(ring_buffer *rb)'),
    ring_buffer__poll: f('int ring_buffer__poll(ring_buffer *rb, int timeout_ms)'),
    ring_buffer__consume: f('int ring_buffer__consume(ring_buffer *rb)'),
    ring_buffer__epoll_fd: f('int ring_buffer__epoll_fd(ring_buffer *rb)'),
  };
  const c: Libc = {
    if_nametoindex: libc.func('unsigned int if_nametoindex(const char *name)'),
    if_indextoname: libc.func('void *if_indextoname(unsigned int index, _Out_ uint8_t *buf)'),
    setns: libc.func('int setns(int fd, int nstype)'),
    // va_list on x86-64 is an array type, so it reaches the print callback
    // as a pointer and can be handed to vsnprintf unchanged.
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, void *fmt, void *ap)'),
  };
  return { bpf, c, ringBufferSampleFn, mapInfo, errno: () => koffi.errno() };
}

// ---------------------------------------------------------------------------
// libbpf's log. libbpf reports the reason for most failures only through its
// print callback (the return value is a bare errno), so we keep what it says
// in a bounded ring and attach the lines printed during a failed operation
// to the BpfError.

export const LogLevel = { Warn: 0, Info: 1, Debug: 2 } as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

export interface LogLine {
  level: LogLevel;
  text: string;
}

const LOG_MAX_LINES = 256;
const LOG_LINE_BYTES = 4096;

interface State {
  ffi: Ffi;
  lines: LogLine[];
  /** Count of lines ever logged; marks index into it. */
  total: number;
  printCb: Pointer;
}

// Shared through globalThis so that a second instance of this module (see
// named()) reuses the one libbpf print hook instead of installing another.
const STATE_KEY = Symbol.for('xseq.libbpf.ffi');
type GlobalWithState = typeof globalThis & { [STATE_KEY]?: State };

function state(): State {
  const g = globalThis as GlobalWithState;
  const existing = g[STATE_KEY];
  if (existing) return existing;
  const ffi = declare();
  const debug = process.env.XSEQ_LIBBPF_DEBUG === '1';
  const buf = new Uint8Array(LOG_LINE_BYTES);
  const st: State = { ffi, lines: [], total: 0, printCb: 0n };
  const onPrint = (level: number, fmt: Pointer, ap: Pointer): number => {
    // DEBUG output is large (every relocation); formatting it costs more
    // than the load itself, so skip it unless asked for.
    if (level >= LogLevel.Debug && !debug) return 0;
    const n = ffi.c.vsnprintf(buf, buf.length, fmt, ap);
    const text = Buffer.from(buf.buffer, 0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8');
    st.lines.push({ level: level as LogLevel, text });
    if (st.lines.length > LOG_MAX_LINES) st.lines.shift();
    st.total++;
    if (debug) process.stderr.write(text);
    return 0;
  };
  st.printCb = koffi.register(onPrint, koffi.pointer(koffi.type('libbpf_print_fn')));
  ffi.bpf.libbpf_set_print(st.printCb);
  g[STATE_KEY] = st;
  return st;
}

/** The loaded bindings; throws EBPF_LIBBPF_MISSING on first use if absent. */
export function ffi(): Ffi {
  return state().ffi;
}

/** A position in libbpf's log, to collect what a later operation printed. */
export function logMark(): number {
  return state().total;
}

/** Lines (WARN and INFO) libbpf printed since `mark`, oldest first. */
export function logSince(mark: number): string[] {
  const st = state();
  const count = Math.min(st.total - mark, st.lines.length);
  return count <= 0 ? [] : st.lines.slice(st.lines.length - count).map((l) => l.text.trimEnd());
}

/** The most recent libbpf messages, for diagnostics (`xseq-agent status`). */
export function recentLibbpfLog(): LogLine[] {
  return [...state().lines];
}

// BpfObjectSpec / BpfObject: an ELF object before and after load, in the
// cilium/ebpf sense. libbpf has one struct bpf_object for both phases; the
// split here makes the phase explicit, so configuration (.rodata, map
// sizes) can only happen before load and maps/programs only after.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import koffi from 'koffi';
import { BpfError, closedError, errnoText, isPermission, permissionHint, syscallError, withLibbpfLog } from './errors.ts';
import { ffi, logMark, logSince, type Pointer } from './ffi.ts';
import { BpfMap, checkMapSizes, type MapSizes } from './map.ts';
import { BpfProgram } from './program.ts';

export interface LoadOptions {
  /**
   * Bytes of verifier log kept per program when a load fails (default
   * 4 MiB). Kernel 6.4+ keeps the tail when the log overflows, and the
   * tail is where the reason is.
   */
  logSize?: number;
}

const DEFAULT_LOG_SIZE = 4 << 20;
const MIN_LOG_SIZE = 128; // the kernel rejects smaller log buffers
const VERIFIER_TAIL_LINES = 20;

function programs(obj: Pointer): Pointer[] {
  const { bpf } = ffi();
  const out: Pointer[] = [];
  for (let p = bpf.bpf_object__next_program(obj, null); p !== null; p = bpf.bpf_object__next_program(obj, p)) {
    out.push(p);
  }
  return out;
}

/**
 * Map names as find_map_by_name accepts them: internal maps (global data)
 * are named by libbpf "<object prefix>.rodata" but found as ".rodata".
 */
function mapNames(obj: Pointer): string[] {
  const { bpf } = ffi();
  const out: string[] = [];
  for (let m = bpf.bpf_object__next_map(obj, null); m !== null; m = bpf.bpf_object__next_map(obj, m)) {
    const name = bpf.bpf_map__name(m);
    const dot = name.indexOf('.');
    out.push(bpf.bpf_map__is_internal(m) && dot >= 0 ? name.slice(dot) : name);
  }
  return out;
}

function programNames(obj: Pointer): string[] {
  const { bpf } = ffi();
  return programs(obj).map((p) => bpf.bpf_program__name(p));
}

function findMap(obj: Pointer, name: string, path: string): Pointer {
  const map = ffi().bpf.bpf_object__find_map_by_name(obj, name);
  if (map === null) {
    const names = mapNames(obj);
    const hint = name === '.rodata' ? ' (declare load-time config as a `const volatile` global)' : '';
    throw new BpfError(
      'EBPF_MAP_MISSING',
      `${path} has no map '${name}'${hint}; its maps: ${names.length ? names.join(', ') : '(none)'}`,
    );
  }
  return map;
}

function tail(log: string, lines: number): string {
  const all = log.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

export class BpfObjectSpec {
  readonly path: string;
  #obj: Pointer | null;
  #state: 'open' | 'loaded' | 'closed' = 'open';

  private constructor(path: string, obj: Pointer) {
    this.path = path;
    this.#obj = obj;
  }

  /** Parses a .bpf.o (nothing reaches the kernel until load()). */
  static open(path: string): BpfObjectSpec {
    const abs = resolve(path);
    if (!existsSync(abs)) {
      throw new BpfError('EBPF_OBJECT_MISSING', `BPF object ${abs} does not exist: build it with \`make -C bpf\``);
    }
    const f = ffi();
    const mark = logMark();
    const obj = f.bpf.bpf_object__open_file(abs, null);
    if (obj === null) {
      const errno = f.errno();
      const log = logSince(mark);
      throw new BpfError('EBPF_OPEN', withLibbpfLog(`cannot open BPF object ${abs}: ${errnoText(errno)}`, log), {
        errno,
        libbpfLog: log,
      });
    }
    return new BpfObjectSpec(abs, obj);
  }

  get programNames(): string[] {
    return programNames(this.#live());
  }

  get mapNames(): string[] {
    return mapNames(this.#live());
  }

  /** Size of the .rodata section (the struct setRodata must match). */
  get rodataSize(): number {
    return this.#rodata().size;
  }

  /**
   * Sets the initial value of .rodata (the program's `const volatile`
   * globals). The verifier sees these as constants, so branches on them
   * cost nothing at run time; they are frozen after load.
   */
  setRodata(bytes: Uint8Array): void {
    const { ptr, size } = this.#rodata();
    if (bytes.byteLength !== size) {
      throw new BpfError(
        'EBPF_MAP_SIZE',
        `map '.rodata' of ${this.path} is ${size} bytes, got ${bytes.byteLength}: the load config layout ` +
          `disagrees with the object; rebuild with \`make -C bpf\` or fix the TypeScript encoder`,
      );
    }
    new Uint8Array(koffi.view(ptr, size)).set(bytes);
  }

  setMaxEntries(mapName: string, n: number): void {
    const obj = this.#live();
    if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
      throw new BpfError('EBPF_ARGUMENT', `max entries of map '${mapName}' must be a positive u32, got ${n}`);
    }
    const ret = ffi().bpf.bpf_map__set_max_entries(findMap(obj, mapName, this.path), n);
    if (ret !== 0) throw syscallError(`setting max entries of map '${mapName}'`, -ret);
  }

  /**
   * Creates the maps and loads every program. On failure the spec is
   * closed (libbpf cannot retry a load) and the error says why: a verifier
   * rejection comes with the full log in `err.log`.
   */
  load(opts: LoadOptions = {}): BpfObject {
    const obj = this.#live();
    const logSize = opts.logSize ?? DEFAULT_LOG_SIZE;
    if (!Number.isInteger(logSize) || logSize < MIN_LOG_SIZE || logSize > 0x3fffffff) {
      throw new BpfError('EBPF_ARGUMENT', `logSize must be ${MIN_LOG_SIZE}..${0x3fffffff} bytes, got ${logSize}`);
    }
    const { bpf } = ffi();
    // Per-program buffers: with log level 0 libbpf loads without a log and,
    // only if the load fails, retries at level 1 into the buffer given here.
    // Native memory, because libbpf keeps the pointer until load returns.
    const logs: { prog: Pointer; buf: Pointer }[] = [];
    let loadCalled = false;
    try {
      for (const prog of programs(obj)) {
        const buf = koffi.alloc('char', logSize) as Pointer;
        koffi.encode(buf, 'uint8_t', 0);
        logs.push({ prog, buf });
        const ret = bpf.bpf_program__set_log_buf(prog, buf, logSize);
        if (ret !== 0) throw syscallError('bpf_program__set_log_buf', -ret);
      }
      const mark = logMark();
      loadCalled = true;
      const ret = bpf.bpf_object__load(obj);
      if (ret === 0) {
        this.#state = 'loaded';
        this.#obj = null;
        return new BpfObject(this.path, obj);
      }
      const errno = -ret;
      const libbpfLog = logSince(mark);
      let failed: { name: string; log: string } | undefined;
      for (const { prog, buf } of logs) {
        const log = koffi.decode.string(buf);
        if (log.length > 0) {
          failed = { name: bpf.bpf_program__name(prog), log };
          break;
        }
      }
      this.close();
      if (failed) {
        throw new BpfError(
          'EBPF_VERIFIER',
          `the verifier rejected program '${failed.name}' of ${this.path} (${errnoText(errno)}); ` +
            `end of the verifier log:\n${tail(failed.log, VERIFIER_TAIL_LINES)}`,
          { errno, log: failed.log, libbpfLog },
        );
      }
      if (isPermission(errno)) {
        throw new BpfError(
          'EBPF_PERMISSION',
          withLibbpfLog(`loading ${this.path}: ${errnoText(errno)}; ${permissionHint()}`, libbpfLog),
          { errno, libbpfLog },
        );
      }
      throw new BpfError('EBPF_LOAD', withLibbpfLog(`loading ${this.path}: ${errnoText(errno)}`, libbpfLog), {
        errno,
        libbpfLog,
      });
    } finally {
      // Once bpf_object__load has run, libbpf never reads the log buffers
      // again (and refuses to unset them). Before that, an aborted setup
      // must not leave it pointers to freed memory.
      if (!loadCalled && this.#obj !== null) {
        for (const { prog } of logs) bpf.bpf_program__set_log_buf(prog, null, 0);
      }
      for (const { buf } of logs) koffi.free(buf);
    }
  }

  /** Idempotent; after load() the BpfObject owns the kernel objects. */
  close(): void {
    if (this.#state === 'open' && this.#obj !== null) ffi().bpf.bpf_object__close(this.#obj);
    this.#obj = null;
    if (this.#state === 'open') this.#state = 'closed';
  }

  #live(): Pointer {
    if (this.#obj === null) {
      throw new BpfError(
        'EBPF_CLOSED',
        this.#state === 'loaded'
          ? `spec of ${this.path} was already loaded: use the BpfObject load() returned`
          : `spec of ${this.path} is closed`,
      );
    }
    return this.#obj;
  }

  #rodata(): { ptr: Pointer; size: number } {
    const map = findMap(this.#live(), '.rodata', this.path);
    const size: [number] = [0];
    const ptr = ffi().bpf.bpf_map__initial_value(map, size);
    if (ptr === null) throw new BpfError('EBPF_MAP_MISSING', `map '.rodata' of ${this.path} has no initial value`);
    return { ptr, size: size[0] };
  }
}

export class BpfObject {
  readonly path: string;
  #obj: Pointer | null;
  // Handles given out; closed with the object because they borrow its fds.
  readonly #children = new Set<BpfMap | BpfProgram>();

  /** @internal Use BpfObjectSpec.load(). */
  constructor(path: string, obj: Pointer) {
    this.path = path;
    this.#obj = obj;
  }

  get programNames(): string[] {
    return programNames(this.#live());
  }

  get mapNames(): string[] {
    return mapNames(this.#live());
  }

  program(name: string): BpfProgram {
    const obj = this.#live();
    const { bpf } = ffi();
    const prog = bpf.bpf_object__find_program_by_name(obj, name);
    if (prog === null) {
      const names = programNames(obj);
      throw new BpfError(
        'EBPF_PROG_MISSING',
        `${this.path} has no program '${name}'; its programs: ${names.length ? names.join(', ') : '(none)'}`,
      );
    }
    const fd = bpf.bpf_program__fd(prog);
    if (fd < 0) throw new BpfError('EBPF_PROG_MISSING', `program '${name}' of ${this.path} was not loaded`);
    const handle: BpfProgram = new BpfProgram(fd, name, bpf.bpf_program__section_name(prog), () =>
      this.#children.delete(handle),
    );
    this.#children.add(handle);
    return handle;
  }

  /**
   * A map by name (".rodata"/".bss" for global data). With `expect`, key and
   * value sizes are checked so a stale object fails here, by name, instead
   * of corrupting reads later.
   */
  map(name: string, expect?: MapSizes): BpfMap {
    const obj = this.#live();
    const { bpf } = ffi();
    const m = findMap(obj, name, this.path);
    const props = {
      name,
      type: bpf.bpf_map__type(m),
      keySize: bpf.bpf_map__key_size(m),
      valueSize: bpf.bpf_map__value_size(m),
      maxEntries: bpf.bpf_map__max_entries(m),
      flags: bpf.bpf_map__map_flags(m),
    };
    checkMapSizes(props, expect, this.path);
    const fd = bpf.bpf_map__fd(m);
    if (fd < 0) throw new BpfError('EBPF_MAP_MISSING', `map '${name}' of ${this.path} was not created`);
    const handle: BpfMap = new BpfMap(fd, props, false, () => this.#children.delete(handle));
    this.#children.add(handle);
    return handle;
  }

  get closed(): boolean {
    return this.#obj === null;
  }

  /**
   * Closes every map and program handle taken from this object, then frees
   * the object: maps and programs no longer referenced (by a link, a pin or
   * another process) leave the kernel. XdpLinks and pins are independent.
   */
  close(): void {
    if (this.#obj === null) return;
    for (const child of [...this.#children]) child.close();
    ffi().bpf.bpf_object__close(this.#obj);
    this.#obj = null;
  }

  #live(): Pointer {
    if (this.#obj === null) throw closedError(`BPF object ${this.path}`);
    return this.#obj;
  }
}

// BpfMap: one BPF map, reached through its fd. Maps come either from a
// loaded BpfObject (which owns the fd) or from a pin (the map owns its fd).
// BPF_F_MMAPABLE arrays can also be read and written through mmap(), with no
// syscall per access.

import { closeSync, unlinkSync } from 'node:fs';
import koffi from 'koffi';
import { BpfError, closedError, ENOENT, errnoText, isPermission, syscallError } from './errors.ts';
import { ffi, type MapInfo, type Pointer } from './ffi.ts';
import { possibleCpus } from './host.ts';
import { fdKind, objGet, pinFd } from './pin.ts';

/** enum bpf_map_type values (linux/bpf.h) the binding names. */
export const MapType = {
  Hash: 1,
  Array: 2,
  ProgArray: 3,
  PerfEventArray: 4,
  PerCpuHash: 5,
  PerCpuArray: 6,
  LruHash: 9,
  LruPerCpuHash: 10,
  LpmTrie: 11,
  DevMap: 14,
  CpuMap: 16,
  XskMap: 17,
  PerCpuCgroupStorage: 21,
  DevMapHash: 25,
  RingBuf: 27,
} as const;

const PER_CPU_TYPES: ReadonlySet<number> = new Set([
  MapType.PerCpuHash,
  MapType.PerCpuArray,
  MapType.LruPerCpuHash,
  MapType.PerCpuCgroupStorage,
]);

/** map_flags bit (linux/bpf.h): the array's values can be mmap()ed. */
export const BPF_F_MMAPABLE = 1 << 10;

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_FAILED = 0xffffffffffffffffn;
const SC_PAGESIZE = 30;

interface MmanLibc {
  mmap(addr: Pointer | null, len: number, prot: number, flags: number, fd: number, off: number): Pointer;
  munmap(addr: Pointer, len: number): number;
  pageSize: number;
  errno(): number;
}

// Declared here rather than in ffi.ts: only mmap() needs them, and libc is
// always present, so loading it lazily on first mmap() cannot fail.
let mman: MmanLibc | undefined;
function libcMman(): MmanLibc {
  if (!mman) {
    const libc = koffi.load('libc.so.6');
    const sysconf = libc.func('long sysconf(int name)') as (name: number) => number;
    mman = {
      mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
      munmap: libc.func('int munmap(void *addr, size_t len)'),
      pageSize: sysconf(SC_PAGESIZE),
      errno: () => koffi.errno(),
    };
  }
  return mman;
}

/**
 * After close() a view handed out by mmap() may still be referenced (a timer
 * that fires once more during shutdown). Unmapping it would turn that read
 * into a SIGSEGV, so close() instead maps anonymous zero pages over the
 * range, which drops the map's pages and its reference at once; the range
 * itself is unmapped when the last view of it is garbage-collected.
 */
const placeholders = new FinalizationRegistry<{ addr: Pointer; len: number }>(({ addr, len }) => {
  libcMman().munmap(addr, len);
});

export function mapTypeName(type: number): string {
  for (const [name, value] of Object.entries(MapType)) if (value === type) return name;
  return `type ${type}`;
}

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

export interface MapSizes {
  keySize?: number;
  valueSize?: number;
}

export interface MapProps {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/** Throws EBPF_MAP_SIZE if `expect` disagrees with the map's real sizes. */
export function checkMapSizes(props: MapProps, expect: MapSizes | undefined, where: string): void {
  if (!expect) return;
  const bad: string[] = [];
  if (expect.keySize !== undefined && expect.keySize !== props.keySize) {
    bad.push(`key size ${props.keySize} (expected ${expect.keySize})`);
  }
  if (expect.valueSize !== undefined && expect.valueSize !== props.valueSize) {
    bad.push(`value size ${props.valueSize} (expected ${expect.valueSize})`);
  }
  if (bad.length > 0) {
    throw new BpfError(
      'EBPF_MAP_SIZE',
      `map '${props.name}' in ${where} has ${bad.join(' and ')}: the object and the user-space ` +
        `layout disagree; rebuild with \`make -C bpf\` or update the TypeScript layout`,
    );
  }
}

export class BpfMap {
  readonly name: string;
  /** enum bpf_map_type; see MapType. */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** map_flags at creation (e.g. BPF_F_MMAPABLE). */
  readonly flags: number;
  /** Values are per possible CPU: use lookupPerCpu/updatePerCpu. */
  readonly isPerCpu: boolean;
  #fd: number;
  readonly #ownsFd: boolean;
  #onClose: (() => void) | undefined;
  #pinPath: string | undefined;
  #mapping: { addr: Pointer; len: number; view: Uint8Array } | undefined;

  /** @internal Use BpfObject.map() or BpfMap.fromPin(). */
  constructor(fd: number, props: MapProps, ownsFd: boolean, onClose?: () => void) {
    this.#fd = fd;
    this.#ownsFd = ownsFd;
    this.#onClose = onClose;
    this.name = props.name;
    this.type = props.type;
    this.keySize = props.keySize;
    this.valueSize = props.valueSize;
    this.maxEntries = props.maxEntries;
    this.flags = props.flags;
    this.isPerCpu = PER_CPU_TYPES.has(props.type);
  }

  /**
   * Opens a pinned map. `expect` sizes are checked against the kernel's view
   * of the map so a pin left by an older build cannot be misread.
   */
  static fromPin(path: string, expect?: MapSizes): BpfMap {
    const fd = objGet(path, 'map');
    try {
      const kind = fdKind(fd);
      if (kind !== 'map') {
        throw new BpfError('EBPF_WRONG_TYPE', `${path} is a pinned ${kind}, not a map`);
      }
      const info = mapInfoByFd(fd, path);
      const props: MapProps = {
        name: info.name,
        type: info.type,
        keySize: info.key_size,
        valueSize: info.value_size,
        maxEntries: info.max_entries,
        flags: info.map_flags,
      };
      checkMapSizes(props, expect, path);
      const map = new BpfMap(fd, props, true);
      map.#pinPath = path;
      return map;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get fd(): number {
    this.#check();
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The value, or undefined when the key is absent (ENOENT). */
  lookup(key: Uint8Array): Uint8Array | undefined {
    const out = new Uint8Array(this.valueSize);
    return this.lookupInto(key, out) ? out : undefined;
  }

  /**
   * Reads the value into `out` (at least valueSize bytes) without
   * allocating; returns false when the key is absent. For hot paths.
   */
  lookupInto(key: Uint8Array, out: Uint8Array): boolean {
    this.#check();
    this.#checkKey(key);
    if (this.isPerCpu) {
      // The kernel would write valueSize * CPUs bytes into `out`.
      throw new BpfError(
        'EBPF_WRONG_TYPE',
        `map '${this.name}' is per-CPU (${mapTypeName(this.type)}): use lookupPerCpu()`,
      );
    }
    if (out.byteLength < this.valueSize) {
      throw new BpfError(
        'EBPF_MAP_SIZE',
        `map '${this.name}': output buffer is ${out.byteLength} bytes, value size is ${this.valueSize}`,
      );
    }
    const ret = ffi().bpf.bpf_map_lookup_elem(this.#fd, key, out);
    if (ret === 0) return true;
    if (-ret === ENOENT) return false;
    throw syscallError(`lookup in map '${this.name}'`, -ret);
  }

  /**
   * One value per possible CPU (index = CPU id); [] when the key is absent.
   * The kernel lays values out at an 8-byte stride, so each is a view of
   * valueSize bytes at i * roundup(valueSize, 8).
   */
  lookupPerCpu(key: Uint8Array): Uint8Array[] {
    this.#check();
    this.#checkKey(key);
    this.#requirePerCpu('lookupPerCpu');
    const stride = this.#stride();
    const cpus = possibleCpus();
    const buf = new Uint8Array(stride * cpus);
    const ret = ffi().bpf.bpf_map_lookup_elem(this.#fd, key, buf);
    if (-ret === ENOENT) return [];
    if (ret !== 0) throw syscallError(`lookup in per-CPU map '${this.name}'`, -ret);
    const out: Uint8Array[] = [];
    for (let i = 0; i < cpus; i++) out.push(buf.subarray(i * stride, i * stride + this.valueSize));
    return out;
  }

  update(key: Uint8Array, value: Uint8Array, flags: UpdateFlag = 'any'): void {
    this.#check();
    this.#checkKey(key);
    if (this.isPerCpu) {
      throw new BpfError(
        'EBPF_WRONG_TYPE',
        `map '${this.name}' is per-CPU (${mapTypeName(this.type)}): use updatePerCpu()`,
      );
    }
    this.#checkValue(value);
    const ret = ffi().bpf.bpf_map_update_elem(this.#fd, key, value, UPDATE_FLAGS[flags]);
    if (ret !== 0) throw syscallError(`update of map '${this.name}' (flags ${flags})`, -ret);
  }

  /** Writes one value per possible CPU (e.g. to zero counters). */
  updatePerCpu(key: Uint8Array, values: readonly Uint8Array[], flags: UpdateFlag = 'any'): void {
    this.#check();
    this.#checkKey(key);
    this.#requirePerCpu('updatePerCpu');
    const cpus = possibleCpus();
    if (values.length !== cpus) {
      throw new BpfError(
        'EBPF_ARGUMENT',
        `updatePerCpu on map '${this.name}': got ${values.length} values, need one per possible CPU (${cpus})`,
      );
    }
    const stride = this.#stride();
    const buf = new Uint8Array(stride * cpus);
    values.forEach((v, i) => {
      this.#checkValue(v);
      buf.set(v, i * stride);
    });
    const ret = ffi().bpf.bpf_map_update_elem(this.#fd, key, buf, UPDATE_FLAGS[flags]);
    if (ret !== 0) throw syscallError(`update of per-CPU map '${this.name}' (flags ${flags})`, -ret);
  }

  /** Deletes the key; false when it was absent. */
  delete(key: Uint8Array): boolean {
    this.#check();
    this.#checkKey(key);
    const ret = ffi().bpf.bpf_map_delete_elem(this.#fd, key);
    if (ret === 0) return true;
    if (-ret === ENOENT) return false;
    throw syscallError(`delete from map '${this.name}'`, -ret);
  }

  /**
   * Every key, by bpf_map_get_next_key. A hash map changed during the walk
   * may restart from the first key (kernel behaviour), so callers that
   * delete while iterating should collect the keys first.
   */
  *keys(): IterableIterator<Uint8Array> {
    this.#check();
    const { bpf } = ffi();
    let prev: Uint8Array | null = null;
    for (;;) {
      this.#check();
      const next = new Uint8Array(this.keySize);
      const ret = bpf.bpf_map_get_next_key(this.#fd, prev, next);
      if (-ret === ENOENT) return;
      if (ret !== 0) throw syscallError(`iterating map '${this.name}'`, -ret);
      yield next;
      prev = next;
    }
  }

  /** [key, value] pairs; keys that vanish during the walk are skipped. */
  *entries(): IterableIterator<[Uint8Array, Uint8Array]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) yield [key, value];
    }
  }

  /**
   * The map's values as shared memory: value i at i * roundup(valueSize, 8).
   * Only ARRAY maps created with BPF_F_MMAPABLE. Reads and writes go straight
   * to the kernel's copy (no syscall), with no atomicity beyond what the CPU
   * gives aligned loads and stores. The same view is returned on every call;
   * after close() it reads zeros and no longer reaches the map.
   */
  mmap(): Uint8Array {
    this.#check();
    if (this.#mapping) return this.#mapping.view;
    if (this.type !== MapType.Array || (this.flags & BPF_F_MMAPABLE) === 0) {
      throw new BpfError(
        'EBPF_WRONG_TYPE',
        `map '${this.name}' (${mapTypeName(this.type)}, flags 0x${this.flags.toString(16)}) cannot be mmap()ed: only ` +
          `ARRAY maps created with BPF_F_MMAPABLE can; declare it with __uint(map_flags, BPF_F_MMAPABLE)`,
      );
    }
    const m = libcMman();
    const bytes = this.#stride() * this.maxEntries;
    const len = Math.ceil(bytes / m.pageSize) * m.pageSize;
    const addr = m.mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, this.#fd, 0);
    if (addr === MAP_FAILED || addr === null) {
      const errno = m.errno();
      if (isPermission(errno)) {
        throw new BpfError(
          'EBPF_PERMISSION',
          `mmap of map '${this.name}' read-write: ${errnoText(errno)}; a frozen map (.rodata, or one ` +
            `passed to bpf_map_freeze) can only be mapped read-only`,
          { errno },
        );
      }
      throw syscallError(`mmap of map '${this.name}' (${len} bytes)`, errno);
    }
    const view = new Uint8Array(koffi.view(addr, len), 0, bytes);
    this.#mapping = { addr, len, view };
    return view;
  }

  /** Pins the map in bpffs so it outlives this process. */
  pin(path: string): void {
    this.#check();
    pinFd(this.#fd, path, `map '${this.name}'`);
    this.#pinPath = path;
  }

  /** Removes the pin made by pin() or opened by fromPin(); no-op if none. */
  unpin(): void {
    if (this.#pinPath === undefined) return;
    try {
      unlinkSync(this.#pinPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.#pinPath = undefined;
  }

  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  /** Idempotent. A map of a BpfObject stays alive until the object closes. */
  close(): void {
    if (this.#fd < 0) return;
    this.#unmap();
    if (this.#ownsFd) closeSync(this.#fd);
    this.#fd = -1;
    const cb = this.#onClose;
    this.#onClose = undefined;
    cb?.();
  }

  #check(): void {
    if (this.#fd < 0) throw closedError(`map '${this.name}'`);
  }

  #unmap(): void {
    const mapping = this.#mapping;
    if (!mapping) return;
    this.#mapping = undefined;
    const m = libcMman();
    const { addr, len, view } = mapping;
    const anon = m.mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (anon === addr) {
      placeholders.register(view.buffer, { addr, len });
    } else {
      // Out of memory for page tables: unmap for real; a stale view would
      // now fault, but the map must not stay referenced.
      m.munmap(addr, len);
    }
  }

  #checkKey(key: Uint8Array): void {
    // The kernel copies keySize bytes from the pointer whatever the buffer
    // length; a short buffer would leak or fault on adjacent memory.
    if (key.byteLength !== this.keySize) {
      throw new BpfError(
        'EBPF_MAP_SIZE',
        `map '${this.name}': key is ${key.byteLength} bytes, the map's key size is ${this.keySize}`,
      );
    }
  }

  #checkValue(value: Uint8Array): void {
    if (value.byteLength !== this.valueSize) {
      throw new BpfError(
        'EBPF_MAP_SIZE',
        `map '${this.name}': value is ${value.byteLength} bytes, the map's value size is ${this.valueSize}`,
      );
    }
  }

  #requirePerCpu(op: string): void {
    if (!this.isPerCpu) {
      throw new BpfError('EBPF_WRONG_TYPE', `${op} on map '${this.name}', which is not per-CPU (${mapTypeName(this.type)})`);
    }
  }

  #stride(): number {
    return Math.ceil(this.valueSize / 8) * 8;
  }
}

/** bpf_obj_get_info_by_fd for a map fd. */
export function mapInfoByFd(fd: number, what: string): MapInfo {
  const f = ffi();
  const buf = new Uint8Array(f.mapInfo.size);
  const len: [number] = [buf.byteLength];
  const ret = f.bpf.bpf_obj_get_info_by_fd(fd, buf, len);
  if (ret !== 0) throw syscallError(`reading map info of ${what}`, -ret);
  return koffi.decode(buf, f.mapInfo) as MapInfo;
}

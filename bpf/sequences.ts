// The kernel's sequence table (bpf/nextval.h), typed: create, drop, raise the
// durable mark, read counters. xseq_nv_seqs is read and written through its
// mmap view, so raising a mark is one aligned 8-byte store (Atomics.store)
// that the XDP program can never see half-written, and reading every
// sequence's counter costs no syscall.
import type { BpfMap } from './libbpf/index.ts';
import { u32Key } from './maps.ts';
import {
  decodeName,
  encodeName,
  NV_COUNTER_NAMES,
  NV_SEQ,
  type NvCounterName,
  type NvStatsValue,
  sumNvStats,
  XSEQ_NV_F_ENABLED,
  XSEQ_NV_F_KEYED,
  XSEQ_NV_MAX_SEQS,
} from './nextval.ts';
import { sumPerCpu } from './maps.ts';

export interface NvMaps {
  seqs: BpfMap;
  names: BpfMap;
  stats: BpfMap;
  counters: BpfMap;
}

export interface KernelSequence {
  id: number;
  next: bigint;
  mark: bigint;
  increment: bigint;
  cache: number;
  enabled: boolean;
  /** Bound to this keyed group: only NEXTVALs MAC'd under its key are answered. */
  keyedGroup?: number | undefined;
}

const W_NEXT = NV_SEQ.next / 8;
const W_MARK = NV_SEQ.mark / 8;
const W_INC = NV_SEQ.increment / 8;
const U_CACHE = NV_SEQ.cache / 4;
const U_FLAGS = NV_SEQ.flags / 4;
const U_GROUP = NV_SEQ.groupId / 4;

export class SequenceTable {
  readonly #maps: NvMaps;
  readonly #u64: BigUint64Array;
  readonly #u32: Uint32Array;
  /** u64 words between sequences (the kernel rounds values up to 8 bytes). */
  readonly #stride: number;

  constructor(maps: NvMaps) {
    this.#maps = maps;
    const bytes = maps.seqs.mmap();
    this.#u64 = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 3);
    this.#u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
    this.#stride = Math.ceil(maps.seqs.valueSize / 8);
  }

  #at(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= XSEQ_NV_MAX_SEQS) throw new RangeError(`sequence id ${id} is not 0..${XSEQ_NV_MAX_SEQS - 1}`);
    return id * this.#stride;
  }

  read(id: number): KernelSequence {
    const w = this.#at(id);
    const flags = Atomics.load(this.#u32, w * 2 + U_FLAGS);
    return {
      id,
      next: Atomics.load(this.#u64, w + W_NEXT),
      mark: Atomics.load(this.#u64, w + W_MARK),
      increment: this.#u64[w + W_INC]!,
      cache: this.#u32[w * 2 + U_CACHE]!,
      enabled: (flags & XSEQ_NV_F_ENABLED) !== 0,
      keyedGroup: flags & XSEQ_NV_F_KEYED ? this.#u32[w * 2 + U_GROUP]! : undefined,
    };
  }

  /** The id the kernel resolves `name` to, if any. */
  idOf(name: string): number | undefined {
    const v = this.#maps.names.lookup(encodeName(name));
    return v ? new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true) : undefined;
  }

  /** Every name the kernel resolves, with its id. */
  names(): Map<string, number> {
    const out = new Map<string, number>();
    for (const k of [...this.#maps.names.keys()]) {
      const name = decodeName(k);
      const id = this.idOf(name);
      if (id !== undefined) out.set(name, id);
    }
    return out;
  }

  /**
   * Makes a sequence answerable: its fields first (disabled), then its
   * name, then the enabled flag, so the program never sees a half-made one.
   * `mark` must already be durable (the caller fsync'ed it). With
   * `keyedGroup` only NEXTVALs MAC'd under that group's key are answered.
   */
  create(id: number, name: string, v: { next: bigint; mark: bigint; increment: bigint; cache: number; keyedGroup?: number | undefined }): void {
    const w = this.#at(id);
    Atomics.store(this.#u32, w * 2 + U_FLAGS, 0);
    Atomics.store(this.#u32, w * 2 + U_GROUP, v.keyedGroup ?? 0);
    Atomics.store(this.#u64, w + W_NEXT, v.next);
    Atomics.store(this.#u64, w + W_MARK, v.mark);
    Atomics.store(this.#u64, w + W_INC, v.increment);
    Atomics.store(this.#u32, w * 2 + U_CACHE, v.cache);
    // A new sequence counts from zero (the id may have served a dropped one).
    this.#maps.stats.updatePerCpu(u32Key(id), Array.from({ length: this.#maps.stats.lookupPerCpu(u32Key(id)).length }, () => new Uint8Array(this.#maps.stats.valueSize)));
    const key = new Uint8Array(4);
    new DataView(key.buffer).setUint32(0, id, true);
    this.#maps.names.update(encodeName(name), key);
    Atomics.store(this.#u32, w * 2 + U_FLAGS, XSEQ_NV_F_ENABLED | (v.keyedGroup !== undefined ? XSEQ_NV_F_KEYED : 0));
  }

  /** Stops answering a sequence (clients get UNKNOWN). Its counter stays
   * until forget(): a NEXTVAL already past the name lookup may still add. */
  disable(id: number, name?: string): void {
    if (name !== undefined) this.#maps.names.delete(encodeName(name));
    // The key binding stays: a sequence never answers unauthenticated.
    Atomics.and(this.#u32, this.#at(id) * 2 + U_FLAGS, ~XSEQ_NV_F_ENABLED);
  }

  enable(id: number): void {
    Atomics.or(this.#u32, this.#at(id) * 2 + U_FLAGS, XSEQ_NV_F_ENABLED);
  }

  /** Only for a disabled sequence whose in-flight NEXTVALs are done. */
  setNext(id: number, next: bigint): void {
    Atomics.store(this.#u64, this.#at(id) + W_NEXT, next);
  }

  /** Zeroes a dropped sequence's slot, once nothing can be in flight. */
  forget(id: number): void {
    const w = this.#at(id);
    for (let i = 0; i < this.#stride; i++) Atomics.store(this.#u64, w + i, 0n);
  }

  /**
   * Raises (or, for setval, moves) the durable mark: one 8-byte store.
   * The caller has made `mark` durable first; that order is the whole
   * guarantee (agent/marks.ts).
   */
  setMark(id: number, mark: bigint): void {
    Atomics.store(this.#u64, this.#at(id) + W_MARK, mark);
  }

  stats(id: number): NvStatsValue {
    return sumNvStats(this.#maps.stats.lookupPerCpu(u32Key(id)));
  }

  counters(): Record<NvCounterName, bigint> {
    return Object.fromEntries(NV_COUNTER_NAMES.map((n, i) => [n, sumPerCpu(this.#maps.counters.lookupPerCpu(u32Key(i)))])) as Record<NvCounterName, bigint>;
  }
}

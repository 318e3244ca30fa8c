// The replicated log: entries by slot from firstSlot to lastSlot, contiguous
// (a replica only appends slot k+1 once slot k is settled: the request, or a
// no-op from gap agreement). Older entries are dropped after a checkpoint;
// `base` remembers where the dropped part ended so seqs still map to slots.
import type { LogEntry } from './messages.ts';

export interface LogPosition {
  readonly slot: number;
  readonly session: number;
  readonly seq: number;
}

export const ORIGIN: LogPosition = { slot: 0, session: 0, seq: 0 };

export function positionOf(e: LogPosition): LogPosition {
  return { slot: e.slot, session: e.session, seq: e.seq };
}

export function noopEntry(p: LogPosition): LogEntry {
  return { slot: p.slot, session: p.session, seq: p.seq, noop: true, clientId: 0n, requestId: 0n, op: EMPTY };
}
const EMPTY = new Uint8Array(0);

/** Same decision for a slot: both no-ops, or the same OUM message. */
export function sameEntry(a: LogEntry, b: LogEntry): boolean {
  if (a.slot !== b.slot || a.session !== b.session || a.seq !== b.seq || a.noop !== b.noop) return false;
  if (a.src !== b.src && (a.src?.sid !== b.src?.sid || a.src?.seq !== b.src?.seq || a.src?.session !== b.src?.session)) return false;
  return a.noop || (a.clientId === b.clientId && a.requestId === b.requestId);
}

export class Log {
  private items: LogEntry[];

  constructor(
    private base: LogPosition,
    entries: readonly LogEntry[] = [],
  ) {
    this.items = entries.slice();
    this.items.forEach((e, i) => {
      if (e.slot !== base.slot + 1 + i) throw new Error(`log: entry ${i} has slot ${e.slot}, want ${base.slot + 1 + i}`);
    });
  }

  get firstSlot(): number {
    return this.base.slot + 1;
  }
  get lastSlot(): number {
    return this.base.slot + this.items.length;
  }
  /** Position of the last slot, held or dropped. */
  get last(): LogPosition {
    return this.items.length ? this.items[this.items.length - 1]! : this.base;
  }

  get(slot: number): LogEntry | undefined {
    return this.items[slot - this.base.slot - 1];
  }

  append(e: LogEntry): void {
    if (e.slot !== this.lastSlot + 1) throw new Error(`log: append slot ${e.slot} after ${this.lastSlot}`);
    this.items.push(e);
  }

  /** Overwrites a held slot, or appends right after the last one. */
  put(e: LogEntry): void {
    if (e.slot === this.lastSlot + 1) return this.append(e);
    const i = e.slot - this.base.slot - 1;
    if (i < 0 || i >= this.items.length) throw new Error(`log: put slot ${e.slot} outside ${this.firstSlot}..${this.lastSlot}`);
    this.items[i] = e;
  }

  /** Entries from..to inclusive that are held. */
  slice(from: number, to: number): LogEntry[] {
    const lo = Math.max(from, this.firstSlot) - this.base.slot - 1;
    const hi = Math.min(to, this.lastSlot) - this.base.slot;
    return lo < hi ? this.items.slice(lo, hi) : [];
  }

  /** Removes every entry after `slot` (Hydra: a follower re-merges its unexecuted suffix). */
  truncateAfter(slot: number): LogEntry[] {
    const k = Math.max(0, slot - this.base.slot);
    return k >= this.items.length ? [] : this.items.splice(k);
  }

  /** Drops every entry up to and including `slot` (a checkpoint covers them). */
  dropThrough(slot: number): void {
    const k = Math.min(slot, this.lastSlot) - this.base.slot;
    if (k <= 0) return;
    this.base = positionOf(this.items[k - 1]!);
    this.items.splice(0, k);
  }

  get size(): number {
    return this.items.length;
  }
}

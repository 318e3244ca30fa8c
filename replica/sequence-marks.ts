// Sequence marks kept by a replica group (docs/sequences.md, "Replicated
// durability"): the "reserve" control op, and the table every replica
// builds from it in log order. A sequencer host hands out a sequence's
// values only below a mark it reserved through the group's total order, so
// a replacement host, whose predecessor's disk is gone, reads the highest
// mark from the group and starts above every value ever handed out.
//
//   byte 0      0x48 ('H'), the control magic (control-op.ts)
//   byte 1      4 = reserve (3 is the weight ops, control-op.ts)
//   bytes 2-3   zero
//   bytes 4-11  the proposed mark, big-endian u64 (0..2^63-1)
//   bytes 12-   the sequence name, 1..32 bytes
//
// Applying it: mark[name] = max(mark[name], proposed). Its certified result
// is the mark BEFORE it (8 bytes, big-endian; 0 for a name never seen):
// the sender owns [its start, proposed) only if nobody reserved past its
// start, i.e. that previous mark is at or below it (agent/group-marks.ts).
// A reserve of 0 changes nothing and reads the group's mark.
//
// The table is part of the checkpoint (Checkpoint.marks), so it survives
// log truncation and travels with state transfer and view changes like the
// application's state.
import { CONTROL_MAGIC } from './control-op.ts';

export const KIND_RESERVE = 4;
export const MARK_MAX = (1n << 63n) - 1n;
const NAME_MAX = 32;

export interface ReserveOp {
  readonly name: string;
  readonly mark: bigint;
}

export function encodeReserveOp(op: ReserveOp): Uint8Array {
  const name = Buffer.from(op.name, 'utf8');
  if (name.length < 1 || name.length > NAME_MAX) throw new RangeError(`sequence name "${op.name}" must be 1..${NAME_MAX} bytes`);
  if (op.mark < 0n || op.mark > MARK_MAX) throw new RangeError(`mark ${op.mark} is not 0..2^63-1`);
  const b = new Uint8Array(12 + name.length);
  b[0] = CONTROL_MAGIC;
  b[1] = KIND_RESERVE;
  new DataView(b.buffer).setBigUint64(4, op.mark, false);
  b.set(name, 12);
  return b;
}

/** The reserve op a control payload encodes, or null (another op, or malformed). */
export function decodeReserveOp(b: Uint8Array): ReserveOp | null {
  if (b.length < 13 || b.length > 12 + NAME_MAX || b[0] !== CONTROL_MAGIC || b[1] !== KIND_RESERVE || b[2] !== 0 || b[3] !== 0) return null;
  const mark = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(4, false);
  if (mark > MARK_MAX) return null;
  return { name: Buffer.from(b.subarray(12)).toString('utf8'), mark };
}

export function encodeMarkResult(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
}

/** The previous mark a reserve's certified result carries, or null when it is not one. */
export function decodeMarkResult(b: Uint8Array): bigint | null {
  return b.length === 8 ? new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, false) : null;
}

/** One replica's marks, as of its executed prefix. */
export class SequenceMarks {
  readonly #marks: Map<string, bigint>;

  constructor(entries: readonly (readonly [string, bigint])[] = []) {
    this.#marks = new Map(entries);
  }

  /** Applies a reserve; returns the mark before it. */
  reserve(op: ReserveOp): bigint {
    const prev = this.#marks.get(op.name) ?? 0n;
    if (op.mark > prev) this.#marks.set(op.name, op.mark);
    return prev;
  }

  get(name: string): bigint {
    return this.#marks.get(name) ?? 0n;
  }

  /** For the checkpoint: sorted by name, so equal tables encode equally. */
  entries(): Array<readonly [string, bigint]> {
    return [...this.#marks].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

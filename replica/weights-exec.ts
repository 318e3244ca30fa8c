// The replica side of weight reassignment: the executor hands every
// committed-order "weights" control op (control-op.ts) to the group's weight
// ledger (weights.ts) here, and the proposer's certified result says what
// was decided. The ledger is replicated state like the application's: it is
// part of every checkpoint (so a rollback, a recovery or a state transfer
// carries it) and the replica reports each newly committed table, which the
// KV replica forwards to the sequencers' agents (WEIGHTS, bpf/xseq.h).
import { defaultTolerance } from '../bpf/quorum.ts';
import { type ChangeRecord, WeightLedger, type WeightTable } from './weights.ts';

export interface WeightCounts {
  readonly applied: number;
  readonly refused: number;
}

export interface WeightOptions {
  /** The group's starting weight table, as the agent's config has it
   * (weight by replica id, and f). Default: weight 1 each, f = (n - 1) / 2. */
  weights?: { readonly weights: readonly number[]; readonly f?: number };
  /** Called with each weight table once it is committed (and once at start),
   * and when a committed change was refused (the counts moved). */
  onCommittedWeights?: (t: WeightTable, counts: WeightCounts) => void;
}

/** The starting ledger table for a group of n. */
export function initialTable(n: number, o: WeightOptions): WeightTable {
  const weights = o.weights?.weights ?? Array<number>(n).fill(1);
  if (weights.length !== n) throw new RangeError(`weights: ${weights.length} given for ${n} members`);
  return { version: 1, weights: [...weights], f: o.weights?.f ?? defaultTolerance(n) };
}

/**
 * A weights op's certified result: what the proposer is told.
 *   byte 0     1 = applied, 0 = committed as a no-op change (refused)
 *   bytes 1-4  table version after it, big-endian
 *   byte 5     n, then n weight bytes by replica id: the table after it
 *   the rest   the reason it was refused, UTF-8 (empty when applied),
 *              cut to REASON_MAX bytes: the whole result must fit the
 *              kernel's result slot (XSEQ_RESULT_CAP, 256) or the leader's
 *              ACK is dropped and the op never certifies
 */
export const REASON_MAX = 160;

export interface WeightResult {
  readonly applied: boolean;
  readonly version: number;
  readonly weights: number[];
  readonly refused?: string;
}

export function encodeWeightResult(rec: ChangeRecord, t: WeightTable): Uint8Array {
  const why = new TextEncoder().encode(rec.refused ?? '').subarray(0, REASON_MAX);
  const out = new Uint8Array(6 + t.weights.length + why.length);
  out[0] = rec.refused ? 0 : 1;
  new DataView(out.buffer).setUint32(1, t.version, false);
  out[5] = t.weights.length;
  out.set(t.weights, 6);
  out.set(why, 6 + t.weights.length);
  return out;
}

export function decodeWeightResult(b: Uint8Array): WeightResult | null {
  if (b.length < 6 || b[0]! > 1 || b.length < 6 + b[5]!) return null;
  const n = b[5]!;
  const refused = b[0] === 0 ? new TextDecoder().decode(b.subarray(6 + n)) : undefined;
  return { applied: b[0] === 1, version: new DataView(b.buffer, b.byteOffset, b.length).getUint32(1, false), weights: [...b.subarray(6, 6 + n)], ...(refused !== undefined ? { refused } : {}) };
}

/**
 * read_changes(member)'s certified result, as of the op's log position:
 *   byte 0     2 (a history, not a decision)
 *   bytes 1-4  how many changes the member has in all, big-endian
 *   then       the newest CHANGES_MAX of them, oldest first, 8 bytes each:
 *              table version after it (u32), the weight it added to the
 *              member (i16; 0 when refused), 1 applied / 0 refused, and 1
 *              reassign / 2 transfer
 */
export const CHANGES_MAX = 30;

export interface ChangeSummary {
  readonly version: number;
  readonly delta: number;
  readonly applied: boolean;
  readonly kind: 'reassign' | 'transfer';
}

export function encodeChanges(recs: readonly ChangeRecord[]): Uint8Array {
  const shown = recs.slice(-CHANGES_MAX);
  const out = new Uint8Array(5 + 8 * shown.length);
  const v = new DataView(out.buffer);
  out[0] = 2;
  v.setUint32(1, recs.length, false);
  shown.forEach((r, i) => {
    v.setUint32(5 + 8 * i, r.version, false);
    v.setInt16(9 + 8 * i, r.delta, false);
    out[11 + 8 * i] = r.refused ? 0 : 1;
    out[12 + 8 * i] = r.change.kind === 'reassign' ? 1 : 2;
  });
  return out;
}

export function decodeChanges(b: Uint8Array): { total: number; changes: ChangeSummary[] } | null {
  if (b.length < 5 || b[0] !== 2 || (b.length - 5) % 8 !== 0) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const changes: ChangeSummary[] = [];
  for (let o = 5; o < b.length; o += 8) changes.push({ version: v.getUint32(o, false), delta: v.getInt16(o + 4, false), applied: b[o + 6] === 1, kind: b[o + 7] === 1 ? 'reassign' : 'transfer' });
  return { total: v.getUint32(1, false), changes };
}

/** The ledger the executor keeps, with what it last reported as committed. */
export class WeightState {
  #ledger: WeightLedger;
  /** Changes decided in the last committed ledger reported (-1: none yet). */
  #reported = -1;
  /** snapshot() of the ledger as it is now; null after a change. Commits
   * snapshot often and the ledger rarely changes. */
  #snap: Uint8Array | null = null;
  /** Changes decided (applied + refused) in snapshots this state made, so a commit need not parse them. */
  readonly #decided = new WeakMap<Uint8Array, number>();

  constructor(
    private readonly initial: WeightTable,
    private readonly onCommitted?: (t: WeightTable, counts: WeightCounts) => void,
  ) {
    this.#ledger = new WeightLedger(initial);
  }

  get ledger(): WeightLedger {
    return this.#ledger;
  }

  /** Applies a change at log position `slot`; the result for the proposer. */
  apply(slot: number, change: Parameters<WeightLedger['apply']>[1]): Uint8Array {
    this.#snap = null;
    return encodeWeightResult(this.#ledger.apply(slot, change), this.#ledger.table);
  }

  /** read_changes(member) as of now (the op's log position). */
  read(member: number): Uint8Array {
    return encodeChanges(this.#ledger.readChanges(member));
  }

  snapshot(): Uint8Array {
    if (!this.#snap) {
      this.#snap = this.#ledger.snapshot();
      const c = this.#ledger.counts;
      this.#decided.set(this.#snap, c.applied + c.refused);
    }
    return this.#snap;
  }

  /** Back to a checkpoint's ledger (none: the starting table). */
  restore(b: Uint8Array | undefined): void {
    this.#ledger = b ? WeightLedger.fromSnapshot(b) : new WeightLedger(this.initial);
    this.#snap = null;
  }

  /** A checkpoint became the committed one: report its ledger if it decided more. */
  committed(b: Uint8Array | undefined): void {
    const known = b ? this.#decided.get(b) : 0;
    if (known !== undefined && known <= this.#reported) return;
    const l = b ? WeightLedger.fromSnapshot(b) : new WeightLedger(this.initial);
    const c = l.counts;
    if (c.applied + c.refused <= this.#reported) return;
    this.#reported = c.applied + c.refused;
    this.onCommitted?.(l.table, c);
  }
}

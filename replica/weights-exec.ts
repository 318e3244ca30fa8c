// The replica side of weight reassignment: the executor hands every
// committed-order "weights" control op (control-op.ts) to the group's weight
// ledger (weights.ts) here, and the proposer's certified result says what
// was decided. The ledger is replicated state like the application's: it is
// part of every checkpoint (so a rollback, a recovery or a state transfer
// carries it) and the replica reports each newly committed table, which the
// KV replica forwards to the sequencers' agents (WEIGHTS, bpf/xseq.h).
import { defaultTolerance } from '../bpf/quorum.ts';
import { type ChangeRecord, WeightLedger, type WeightTable } from './weights.ts';

export interface WeightOptions {
  /** The group's starting weight table, as the agent's config has it
   * (weight by replica id, and f). Default: weight 1 each, f = (n - 1) / 2. */
  weights?: { readonly weights: readonly number[]; readonly f?: number };
  /** Called with each weight table once it is committed (and once at start). */
  onCommittedWeights?: (t: WeightTable) => void;
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

/** The ledger the executor keeps, with what it last reported as committed. */
export class WeightState {
  #ledger: WeightLedger;
  #reported = 0;
  /** snapshot() of the ledger as it is now; null after a change. Commits
   * snapshot often and the ledger rarely changes. */
  #snap: Uint8Array | null = null;
  /** Table versions of snapshots this state made, so a commit need not parse them. */
  readonly #versions = new WeakMap<Uint8Array, number>();

  constructor(
    private readonly initial: WeightTable,
    private readonly onCommitted?: (t: WeightTable) => void,
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

  snapshot(): Uint8Array {
    if (!this.#snap) {
      this.#snap = this.#ledger.snapshot();
      this.#versions.set(this.#snap, this.#ledger.table.version);
    }
    return this.#snap;
  }

  /** Back to a checkpoint's ledger (none: the starting table). */
  restore(b: Uint8Array | undefined): void {
    this.#ledger = b ? WeightLedger.fromSnapshot(b) : new WeightLedger(this.initial);
    this.#snap = null;
  }

  /** A checkpoint became the committed one: report its table if newer. */
  committed(b: Uint8Array | undefined): void {
    const known = b ? this.#versions.get(b) : this.initial.version;
    if (known !== undefined && known <= this.#reported) return;
    const t = b ? WeightLedger.fromSnapshot(b).table : this.initial;
    if (t.version <= this.#reported) return;
    this.#reported = t.version;
    this.onCommitted?.(t);
  }
}

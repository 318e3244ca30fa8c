// Weight reassignment as a deterministic state machine: every replica
// applies the same changes at the same log positions (the group's total
// order decides them), so every replica holds the same table, version and
// history. A change that would break integrity (bpf/quorum.ts) or take a
// weight outside 0..255 is committed as a no-op change: it keeps its log
// position and its place in read_changes, with delta 0 and the reason, so
// the proposer is told and nobody ever sees a table that violates integrity.
//
// A change is also refused when it would let fewer than a majority of
// members certify (bpf/quorum.ts majorityIssue): the replicas' view change
// counts members, so a certifying quorum must meet every majority.
//
// Carried through the log as a "weights" control op (control-op.ts) and
// executed by weights-exec.ts; the ledger travels in checkpoints.
import { integrityIssue, majorityIssue } from '../bpf/quorum.ts';

export type WeightChange =
  | { readonly kind: 'reassign'; readonly member: number; readonly delta: number }
  | { readonly kind: 'transfer'; readonly from: number; readonly to: number; readonly amount: number };

/** One committed change as read_changes reports it: what it did to `member`. */
export interface ChangeRecord {
  /** Log position the change was committed at. */
  readonly pos: number;
  readonly change: WeightChange;
  /** Weight added to the member (negative: taken); 0 for a no-op change. */
  readonly delta: number;
  /** Table version after the change (unchanged for a no-op). */
  readonly version: number;
  /** Why it became a no-op change; absent when applied. */
  readonly refused?: string;
}

export interface WeightTable {
  readonly version: number;
  readonly weights: readonly number[];
  readonly f: number;
}

export class WeightLedger {
  #table: WeightTable;
  readonly #history: ChangeRecord[][];
  #lastPos = -Infinity;
  #applied = 0;
  #refused = 0;

  constructor(initial: WeightTable) {
    const issue = integrityIssue(initial.weights.map((weight, id) => ({ id, weight })), initial.f);
    if (issue) throw new RangeError(`initial weight table: ${issue}`);
    const unsafe = majorityIssue(initial.weights);
    if (unsafe) throw new RangeError(`initial weight table: ${unsafe}`);
    this.#table = { ...initial, weights: [...initial.weights] };
    this.#history = initial.weights.map(() => []);
  }

  get table(): WeightTable {
    return this.#table;
  }

  /**
   * Applies the change committed at log position `pos` (strictly
   * increasing). Returns its record; a refused change is a no-op change.
   */
  apply(pos: number, change: WeightChange): ChangeRecord {
    if (!(pos > this.#lastPos)) throw new RangeError(`log position ${pos} is not after ${this.#lastPos}`);
    this.#lastPos = pos;
    const n = this.#table.weights.length;
    const deltas = new Map<number, number>();
    if (change.kind === 'reassign') deltas.set(change.member, change.delta);
    else {
      deltas.set(change.from, -change.amount);
      deltas.set(change.to, (deltas.get(change.to) ?? 0) + change.amount);
    }
    const next = [...this.#table.weights];
    let refused: string | undefined;
    for (const [m, d] of deltas) {
      if (!Number.isInteger(m) || m < 0 || m >= n) refused = `member ${m} is not 0..${n - 1}`;
      else if (!Number.isInteger(d)) refused = `delta ${d} is not a whole number`;
      else next[m] = next[m]! + d;
    }
    if (change.kind === 'transfer' && !(change.amount > 0)) refused ??= `a transfer moves a positive amount, not ${change.amount}`;
    if (!refused) {
      const bad = next.findIndex((w) => w < 0 || w > 255);
      if (bad >= 0) refused = `member ${bad} would weigh ${next[bad]}, outside 0..255`;
    }
    refused ??= integrityIssue(next.map((weight, id) => ({ id, weight })), this.#table.f) ?? majorityIssue(next);
    if (!refused) this.#table = { ...this.#table, version: this.#table.version + 1, weights: next };
    if (refused) this.#refused++;
    else this.#applied++;
    let first: ChangeRecord | undefined;
    for (const m of deltas.keys()) {
      const rec: ChangeRecord = { pos, change, delta: refused ? 0 : deltas.get(m)!, version: this.#table.version, ...(refused ? { refused } : {}) };
      first ??= rec;
      this.#history[m]?.push(rec);
    }
    return first!;
  }

  /** The whole ledger as JSON bytes, for checkpoints (it travels in state transfers). */
  snapshot(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ table: this.#table, history: this.#history, lastPos: Number.isFinite(this.#lastPos) ? this.#lastPos : null, applied: this.#applied, refused: this.#refused }),
    );
  }

  /** A ledger from snapshot() bytes. */
  static fromSnapshot(b: Uint8Array): WeightLedger {
    const o = JSON.parse(new TextDecoder().decode(b)) as { table: WeightTable; history: ChangeRecord[][]; lastPos: number | null; applied: number; refused: number };
    const l = new WeightLedger(o.table);
    o.history.forEach((h, m) => l.#history[m]?.push(...h));
    l.#lastPos = o.lastPos ?? -Infinity;
    l.#applied = o.applied;
    l.#refused = o.refused;
    return l;
  }

  /** Changes applied, and committed as no-op changes, so far. */
  get counts(): { applied: number; refused: number } {
    return { applied: this.#applied, refused: this.#refused };
  }

  /** read_changes(member): every change committed for it, in log order. */
  readChanges(member: number): readonly ChangeRecord[] {
    return this.#history[member] ?? [];
  }
}

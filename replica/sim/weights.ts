// Weighted quorums in the simulation: the agent's part (learn each committed
// table the replicas report, stamp new requests under the newest) and what
// the invariants check afterwards (every certification, with its table).
import { certifies, integrityIssue, majorityIssue } from '../../bpf/quorum.ts';
import type { Replica } from '../replica.ts';
import type { WeightResult } from '../weights-exec.ts';
import type { WeightChange, WeightTable } from '../weights.ts';
import { InvariantViolation } from './invariants.ts';

export interface WeightedReply {
  readonly seq: number;
  readonly acks: number;
  readonly weights: readonly number[];
}

export class SimWeights {
  /** The table the sequencer stamps new requests under (the agent's). */
  current: WeightTable;
  /** Every table the agent switched to, in order. */
  readonly tables: WeightTable[] = [];
  readonly replies: WeightedReply[] = [];

  constructor(readonly initial: { readonly weights: readonly number[]; readonly f: number }) {
    this.current = { version: 1, weights: [...initial.weights], f: initial.f };
    this.tables.push(this.current);
  }

  /** A replica reports a committed table: the agent switches to a newer one. */
  learn(t: WeightTable): void {
    if (t.version <= this.current.version) return;
    this.current = t;
    this.tables.push(t);
  }
}

/** What the operator was told for each proposal (null: it failed). */
export type Proposal = { readonly change: WeightChange; result: WeightResult | null | undefined };

/**
 * The weight invariants, after the run converged:
 *  - every replica holds the same table and the same read_changes;
 *  - every table the agent stamped under keeps integrity (for f) and
 *    meets every majority by count, and the versions only grow;
 *  - every certification counted a quorum under its slot's one table, and
 *    that quorum is a majority by count, so any two certifying quorums
 *    intersect and each meets every view change's majority;
 *  - each proposer's answer is what the ledger recorded.
 */
export function checkWeights(w: SimWeights, replicas: readonly Replica[], n: number, proposals: readonly Proposal[]): void {
  const fail = (m: string): never => {
    throw new InvariantViolation(`weights: ${m}`);
  };
  const ledgers = replicas.map((r) => r.exec.weightLedger ?? fail(`replica ${r.id} keeps no ledger`));
  const first = ledgers[0]!;
  for (const [i, l] of ledgers.entries()) {
    if (JSON.stringify(l.table) !== JSON.stringify(first.table)) fail(`replica ${replicas[i]!.id} holds ${JSON.stringify(l.table)}, replica ${replicas[0]!.id} ${JSON.stringify(first.table)}`);
    for (let m = 0; m < n; m++) if (JSON.stringify(l.readChanges(m)) !== JSON.stringify(first.readChanges(m))) fail(`read_changes(${m}) differs between replicas ${replicas[0]!.id} and ${replicas[i]!.id}`);
  }
  if (JSON.stringify(w.current) !== JSON.stringify(first.table)) fail(`the agent stamps under ${JSON.stringify(w.current)} but the replicas committed ${JSON.stringify(first.table)}`);
  const maj = Math.floor(n / 2) + 1;
  w.tables.forEach((t, i) => {
    const issue = integrityIssue(t.weights.map((weight, id) => ({ id, weight })), t.f) ?? majorityIssue(t.weights);
    if (issue) fail(`table v${t.version} ${t.weights.join('/')}: ${issue}`);
    if (i > 0 && t.version <= w.tables[i - 1]!.version) fail(`table versions went ${w.tables[i - 1]!.version} -> ${t.version}`);
  });
  for (const r of w.replies) {
    const leader = [...Array(n).keys()].find((i) => certifies(r.acks, i, { weights: r.weights, quorum: 0 }));
    if (leader === undefined) fail(`seq ${r.seq} was certified by acks ${r.acks.toString(2)}, not a quorum under ${r.weights.join('/')}`);
    let k = 0;
    for (let a = r.acks; a; a &= a - 1) k++;
    if (k < maj) fail(`seq ${r.seq} was certified by ${k} members (acks ${r.acks.toString(2)} under ${r.weights.join('/')}), fewer than a majority of ${n}`);
  }
  for (const p of proposals) {
    if (!p.result) continue;
    const member = p.change.kind === 'reassign' ? p.change.member : p.change.from;
    if (member >= n) continue;
    const rec = first.readChanges(member).find((x) => x.version === p.result!.version && JSON.stringify(x.change) === JSON.stringify(p.change) && !x.refused === p.result!.applied);
    if (!rec) fail(`the proposer of ${JSON.stringify(p.change)} was told ${JSON.stringify(p.result)}, which read_changes(${member}) does not hold`);
  }
}

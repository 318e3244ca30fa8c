// Checks on a finished KV run, shared by the demo (demo/run.ts): what every
// acknowledged write must read back as, and whether the replicas' committed
// logs agree.
import type { CommittedLogDump, DumpedEntry } from './committed-log.ts';
import type { LoadSummary, Write } from './load.ts';
import { decodeOp } from './ops.ts';

/** The lane's issue counter inside a load value `tag/lane/n`: later writes have larger n. */
export function issueNo(value: string): number {
  return Number(value.slice(value.lastIndexOf('/') + 1));
}

export interface Expected {
  /** The key's last acknowledged write. */
  write: Write;
  /** Values of later writes to the key that timed out: they may have executed. */
  later: Set<string>;
}

/** Per key, what a read must return: its lane's last acknowledged write, or a later one that timed out. */
export function expectedValues(sums: LoadSummary[]): Map<string, Expected> {
  const out = new Map<string, Expected>();
  for (const s of sums) {
    for (const w of s.writes) {
      const e = out.get(w.key);
      if (!e || issueNo(w.value) > issueNo(e.write.value)) out.set(w.key, { write: w, later: new Set() });
    }
    for (const u of s.unacked) {
      const e = out.get(u.key);
      if (e && issueNo(u.value) > issueNo(e.write.value)) e.later.add(u.value);
    }
  }
  return out;
}

/** Keys whose value read back is neither the last acknowledged write nor a later timed-out one. */
export function unreadable(expected: Map<string, Expected>, got: Record<string, string | null>): { key: string; want: string; got: string | null }[] {
  const out: { key: string; want: string; got: string | null }[] = [];
  for (const [key, e] of expected) {
    const v = got[key];
    if (v === undefined || (v !== e.write.value && (v === null || !e.later.has(v)))) out.push({ key, want: e.write.value, got: v ?? null });
  }
  return out;
}

export interface LogComparison {
  identical: boolean;
  /** The common commit point (or the first replica's, when they differ). */
  committed: number;
  /** Slots every replica holds as an entry, and found equal. */
  slotsHeldByAll: number;
  /** Slot ranges some replica holds only as state (it caught up by state transfer). */
  gaps: { replica: number; from: number; to: number }[];
  stateDigest: string;
  problems: string[];
}

/**
 * The replicas' committed logs agree when they have the same commit point,
 * executed all of it, are in the same view and state, and wherever two hold
 * a slot they hold the same entry, with every slot held by someone.
 */
export function compareLogs(dumps: CommittedLogDump[]): LogComparison {
  const problems: string[] = [];
  const first = dumps[0]!;
  for (const d of dumps) {
    if (d.committed !== first.committed) problems.push(`replica ${d.replicaId} committed ${d.committed}, replica ${first.replicaId} ${first.committed}`);
    if (d.executed !== d.committed) problems.push(`replica ${d.replicaId} executed ${d.executed} of ${d.committed}`);
    if (d.stateDigest !== first.stateDigest) problems.push(`replica ${d.replicaId}'s state digest differs`);
    if (d.view.session !== first.view.session || d.view.leaderNum !== first.view.leaderNum) problems.push(`replica ${d.replicaId} is in view ${JSON.stringify(d.view)}, replica ${first.replicaId} in ${JSON.stringify(first.view)}`);
    if (d.conflicts) problems.push(`replica ${d.replicaId} saw ${d.conflicts} committed entries change`);
    if (d.status !== 'normal') problems.push(`replica ${d.replicaId} is ${d.status}`);
  }
  const bySlot = new Map<number, string>();
  const holders = new Map<number, number>();
  for (const d of dumps) {
    for (const e of d.entries) {
      const s = JSON.stringify(e);
      const prev = bySlot.get(e.slot);
      if (prev !== undefined && prev !== s && problems.length < 10) problems.push(`slot ${e.slot}: replica ${d.replicaId} holds ${s}, another ${prev}`);
      bySlot.set(e.slot, s);
      holders.set(e.slot, (holders.get(e.slot) ?? 0) + 1);
    }
  }
  let unheld = 0;
  let byAll = 0;
  for (let s = 1; s <= first.committed; s++) {
    const h = holders.get(s) ?? 0;
    if (h === 0) unheld++;
    if (h === dumps.length) byAll++;
  }
  if (unheld) problems.push(`${unheld} committed slots are held by no replica as an entry`);
  return {
    identical: problems.length === 0,
    committed: first.committed,
    slotsHeldByAll: byAll,
    gaps: dumps.flatMap((d) => d.gaps.map((g) => ({ replica: d.replicaId, ...g }))),
    stateDigest: first.stateDigest,
    problems,
  };
}

export interface Placement {
  /** Acknowledged writes found, as that very write, at the log position their certificate names. */
  placed: number;
  /** Writes whose position no replica holds as an entry (only as state, after a state transfer). */
  inState: number;
  /** Writes whose position holds something else. */
  misplaced: number;
  samples: string[];
}

/** Each acknowledged write must sit, not as a no-op, at the (session, seq) that certified it. */
export function placeWrites(dumps: CommittedLogDump[], writes: Write[]): Placement {
  const byPosition = new Map<string, DumpedEntry>();
  for (const d of dumps) for (const e of d.entries) byPosition.set(`${e.session}/${e.seq}`, e);
  const out: Placement = { placed: 0, inState: 0, misplaced: 0, samples: [] };
  for (const w of writes) {
    const e = byPosition.get(`${w.session}/${w.seq}`);
    if (!e) {
      out.inState++;
      continue;
    }
    const op = e.noop ? null : decodeOp(Buffer.from(e.op, 'hex'));
    if (op !== null && op.kind === w.kind && Buffer.from(op.key).toString() === w.key && Buffer.from(op.value).toString() === w.value) {
      out.placed++;
      continue;
    }
    out.misplaced++;
    if (out.samples.length < 5) out.samples.push(`${w.kind} ${w.key}=${w.value} certified at ${w.session}/${w.seq}, the log has ${e.noop ? 'a no-op' : JSON.stringify(op && { kind: op.kind, key: Buffer.from(op.key).toString() })}`);
  }
  return out;
}

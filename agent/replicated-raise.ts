// Raising a replicated sequence's kernel mark (docs/sequences.md,
// "Replicated durability"). The group keeps, per sequence name, the highest
// mark any host reserved (replica/sequence-marks.ts) and answers each
// reservation with the mark before it, in its total order. So a host owns
// the range it reserves exactly when that previous mark is at or below the
// range's start: every later reservation, by any host, starts above it.
//
// This host's kernel hands out values below its kernel mark, a range it
// owns already (it was reserved before it was stored, or it is the empty
// range of a fresh data path: mark = next). To extend it to `target`:
//
// - the group's previous mark is at or below our kernel mark: nobody else
//   reserved since; [kernel mark, target) is ours and the counter goes on
//   through it with no gap (dense);
// - it is above: another host served the sequence meanwhile (a failover:
//   a standby took over, or a replacement host started from the group).
//   Values from our kernel mark up to that previous mark may be its. We
//   reserve again from there; once that is ours, the counter jumps to its
//   start. Everything between the last value we handed out and that start
//   is a gap, never handed out by us; the other host's values are below it.
//
// The jump itself: the mark is first set to 0 (every NEXTVAL is refused
// before its add, so the counter stops moving), in-flight ones get
// QUIESCE_MS to finish, then the counter and the new mark are stored.
import type { Log } from './log.ts';
import type { SequenceRecord } from './marks.ts';
import type { SequenceKernel } from './sequences.ts';

export interface MarkReserver {
  /** Reserves `mark` for `name` in the group's total order; resolves with the mark before it and
   * the mark reserved (an earlier pending reservation's, when that one was certified meanwhile). */
  reserve(groupId: number, name: string, mark: bigint): Promise<{ prev: bigint; mark: bigint }>;
  /** Whether this host stamps the group now (a waiting standby does not: its sequences refuse, quietly). */
  serves(groupId: number): boolean;
}

/** How long a NEXTVAL already past its mark check may still run (it never sleeps: XDP under RCU). */
const QUIESCE_MS = 20;
/** Reservations one raise makes at most when other hosts keep reserving past it. */
const MAX_ROUNDS = 8;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ReplicatedRaise {
  /** The kernel mark stored (the range up to it is this host's). */
  mark: bigint;
  /** The counter jumped to this value past another host's reservations (undefined: no jump, no gap). */
  jumpedTo?: bigint;
}

/**
 * Extends replicated sequence `r` (r.mark = the target, already in the
 * marks file) through its group. `commitFile` makes a record durable before
 * its mark reaches the kernel, as for any sequence. Throws when the group
 * cannot certify (the caller retries on its next tick; the kernel keeps its
 * mark and refuses at it).
 */
export async function raiseReplicated(k: SequenceKernel, group: MarkReserver, r: SequenceRecord, commitFile: (rec: SequenceRecord) => void, cap: (m: bigint) => bigint, log?: Log): Promise<ReplicatedRaise> {
  const own = k.read(r.id).mark;
  let base = own;
  let target = r.mark;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const { prev, mark: got } = await group.reserve(r.group!, r.name, target);
    if (prev <= base && got > base) {
      if (base === own) {
        k.setMark(r.id, got);
        return { mark: got };
      }
      k.setMark(r.id, 0n);
      await sleep(QUIESCE_MS);
      const last = k.read(r.id).next;
      k.setNext(r.id, base);
      k.setMark(r.id, got);
      log?.warn(
        { event: 'mark', sequence: r.name, group: r.group, from: last.toString(), to: base.toString(), mark: got.toString() },
        `sequence ${r.name}: another host reserved up to ${base} in group ${r.group} (a failover); values continue at ${base}, ${last}..${base - 1n} are a gap`,
      );
      return { mark: got, jumpedTo: base };
    }
    // Ours but no further than we hold (an old pending one): ask again.
    if (prev <= base) continue;
    base = prev;
    target = cap(prev + r.markAhead);
    commitFile({ ...r, mark: target });
  }
  throw new Error(`sequence ${r.name}: other hosts kept reserving past this one in group ${r.group} (${MAX_ROUNDS} rounds); two hosts serve it?`);
}

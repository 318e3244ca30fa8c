// Where each sequencer's stream stands in a merged log, derived from the
// log alone (so a re-merge, a view change or a state transfer that moves
// entries moves membership and positions with them): who is a member, each
// stream's last merged position, and the merge order of two positions.
import { addedBy } from './control-op.ts';
import type { Log } from './log.ts';
import type { Checkpoint, LogEntry, SequencedMsg, StreamPos } from './messages.ts';

/**
 * Membership is a function of the log: the configured sequencers, those in
 * the checkpoint, and those added by control ops in the log; sid -> floor clock.
 */
export function membersOf(initial: Iterable<number>, cp: Checkpoint, log: Log): Map<number, number> {
  const members = new Map<number, number>();
  for (const sid of initial) members.set(sid, -Infinity);
  for (const p of cp.streams ?? []) if (!members.has(p.sid)) members.set(p.sid, -Infinity);
  for (let slot = log.firstSlot; slot <= log.lastSlot; slot++) {
    const e = log.get(slot)!;
    const sid = addedBy(e);
    if (sid !== null && !members.has(sid)) members.set(sid, e.src!.clock + 1);
    // Entries of a sequencer in the log: it is a member (its add op may be truncated away).
    if (e.src && !members.has(e.src.sid)) members.set(e.src.sid, -Infinity);
  }
  return members;
}

/** Each stream's position as of `slot` (<= the log end): for checkpoints and resync. */
export function cursorsAt(log: Log, cp: Checkpoint, slot: number): Map<number, StreamPos> {
  const out = new Map<number, StreamPos>();
  // The whole range: the log holds about two sync intervals, and an early
  // stop could take an add op's floor for a stream with entries further back.
  const adds = new Map<number, number>();
  for (let i = Math.min(slot, log.lastSlot); i > cp.slot && i >= log.firstSlot; i--) {
    const e = log.get(i)!;
    const src = e.src;
    if (src && !out.has(src.sid)) out.set(src.sid, src);
    // Scanning back, the last add seen is the first in the log: it sets the floor.
    const added = addedBy(e);
    if (added !== null) adds.set(added, src!.clock + 1);
  }
  for (const p of cp.streams ?? []) if (!out.has(p.sid)) out.set(p.sid, p);
  for (const [sid, floor] of adds) if (!out.has(sid)) out.set(sid, { sid, session: -1, seq: 0, clock: floor, raw: -Infinity });
  return out;
}

/** The entry at src sorts after (clock, sid, seq). */
export function keyAfter(src: StreamPos | undefined, clock: number, sid: number, seq: number): boolean {
  if (!src) return false;
  if (src.clock !== clock) return src.clock > clock;
  return src.sid !== sid ? src.sid > sid : src.seq > seq;
}

/** A stream position as a log entry outside the log (GAP_RECV, VIEW_CHANGE.held). */
export function streamEntry(src: StreamPos, m: SequencedMsg | null): LogEntry {
  return { slot: 0, session: src.session, seq: src.seq, noop: m === null, clientId: m?.clientId ?? 0n, requestId: m?.requestId ?? 0n, op: m?.op ?? new Uint8Array(0), src, ...(m?.control ? { control: true } : {}) };
}

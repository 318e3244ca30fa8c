// What a SYNC_PREPARE carries to one follower: the leader's entries after
// the highest sync point that follower confirmed in this view, not the
// whole retained log. A confirmed point P means the follower's log equals
// the leader's through P (it adopted a prepare through P in this view, and
// within a view neither side changes those slots except to the leader's
// entries), so re-sending them only costs an encode and a decode per entry
// per interval. A prepare that is lost leaves the follower's confirmed
// point where it was, so the next one starts there again: cumulative, like
// an ACK. A follower whose log does not reach the start of what it gets
// asks for the leader's state (onSyncPrepare's catch-up), as before.
import type { Log } from './log.ts';
import type { LogEntry } from './messages.ts';

/**
 * Entries for a follower that confirmed `confirmed` (0: nothing in this
 * view), up to `point`. While the point is uncommitted the follower gets at
 * least the entry at the point, so it answers and the leader can count it.
 */
export function syncEntriesFor(log: Log, confirmed: number, point: number, committed: number): LogEntry[] {
  const from = point > committed ? Math.min(confirmed + 1, point) : confirmed + 1;
  return log.slice(Math.max(from, log.firstSlot), point);
}

/** Follower: the highest slot through which its log is known to equal the leader's. */
export function agreedThrough(prepared: number, committed: number): number {
  return Math.max(prepared, committed);
}

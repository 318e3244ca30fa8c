// Sessions of a one-sequencer group served by two hosts: an active
// sequencer and a standby (groups[].role). Replicas follow the highest
// session they see (a higher one is a view change; a lower one is dropped),
// so the pair needs two things from its session numbers, with no message
// between the two agents:
//
// - never the same session on both hosts (two data paths stamping one
//   session would interleave two seq streams as one: a split order). The
//   active takes even sessions, the standby odd ones.
// - the standby above the active whenever the active could die, so that
//   once clients fail over, the replicas move to the standby. Both derive
//   sessions from the clock: 2 x (seconds since PAIR_EPOCH) (+1 on the
//   standby), and never below one more than the last they used. A standby
//   that has stamped nothing in its session moves it up every second
//   (`StandbyRefresher`), so it is at least the active's creation second
//   x 2 + 1, above the active's 2 x that second. The pair needs the hosts'
//   clocks within a second of each other (Hydra groups already need them
//   synchronised, README "Clocks").
//
// An old active that comes back (its link up again, its pinned data path
// still stamping) stamps a session below the one the replicas follow, and
// everything it sends is dropped: it cannot split the order, and its
// clients time out and fail over to the standby. Restarted with a fresh
// data path it takes a session from the clock, above the standby's, and
// the replicas move back to it once clients send there (a second, equally
// safe view change). The standby also takes over when a client fails over
// to it while the active is alive (a client timeout is all it sees): the
// old active is then superseded as above, and `status` shows both.
import { AgentError } from './errors.ts';

/** 2025-01-01T00:00:00Z: 2 x seconds since then fits a u32 until 2093. */
export const PAIR_EPOCH_MS = Date.UTC(2025, 0, 1);
const MAX_SESSION = 0xffffffff;

export type PairRole = 'active' | 'standby';

/** The session a data path of `role` takes at `nowMs`, above `last` (the last it or anyone we know of used). */
export function pairSession(role: PairRole, nowMs: number, last = 0): number {
  const parity = role === 'standby' ? 1 : 0;
  let s = 2 * Math.max(0, Math.floor((nowMs - PAIR_EPOCH_MS) / 1000)) + parity;
  if (s <= last) s = last + 1 + ((last + 1 - parity) & 1);
  if (s > MAX_SESSION) throw new AgentError('ESTATE', `the pair rule has no session left above ${last} (2 x seconds since 2025-01-01 no longer fits 32 bits)`);
  return s;
}

/** Which role a paired session number belongs to (by its parity). */
export function roleOfSession(session: number): PairRole {
  return session & 1 ? 'standby' : 'active';
}

/** What the refresher needs of the data path and the session store. */
export interface RefreshTarget {
  /** The group's session on the data path now (undefined: not stamping). */
  session(id: number): number | undefined;
  lastSeq(id: number): bigint;
  /** Records the new session durably, then writes it to the data path. */
  moveTo(id: number, session: number): void;
}

/**
 * Keeps each idle standby group's session at the pair rule's current value
 * (one check per `periodMs`; a move writes sessions.json once, at most
 * once a second per group). A group that has stamped anything in its
 * session is never moved: the replicas may be following it.
 */
export class StandbyRefresher {
  #timer: NodeJS.Timeout | null = null;
  moves = 0;

  constructor(
    private readonly groups: readonly number[],
    private readonly target: RefreshTarget,
    private readonly now: () => number = Date.now,
  ) {}

  /** One check; returns the groups moved, with their new session. */
  tick(): Array<{ id: number; session: number }> {
    const out: Array<{ id: number; session: number }> = [];
    for (const id of this.groups) {
      const cur = this.target.session(id);
      if (cur === undefined || this.target.lastSeq(id) !== 0n) continue;
      const next = pairSession('standby', this.now(), 0);
      if (next <= cur) continue;
      this.target.moveTo(id, next);
      this.moves++;
      out.push({ id, session: next });
    }
    return out;
  }

  start(periodMs: number, onMove: (moved: Array<{ id: number; session: number }>) => void, onError: (e: Error) => void): void {
    this.#timer = setInterval(() => {
      try {
        const moved = this.tick();
        if (moved.length) onMove(moved);
      } catch (e) {
        onError(e as Error);
      }
    }, periodMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

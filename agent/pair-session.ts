// Sessions of a one-sequencer group served by two hosts: an active
// sequencer and a standby (groups[].role). Replicas follow the highest
// session they see (a higher one is a view change; a lower one is dropped),
// so the pair needs two things from its session numbers, with no message
// between the two agents:
//
// - never the same session on both hosts (two data paths stamping one
//   session would interleave two seq streams as one: a split order). The
//   active takes even sessions, the standby odd ones.
// - the standby above the active when it takes over, so that the replicas
//   move to it. Both derive sessions from the clock: 2 x (seconds since
//   PAIR_EPOCH) (+1 on the standby), and never below one more than the last
//   they used. The standby takes its session only when it takes over
//   (agent/standby.ts: the active's heartbeat, its flushes, stopped), so it
//   is at least 2 x that second + 1, above the active's 2 x its creation
//   second. The pair needs the hosts' clocks within a second of each other
//   (Hydra groups already need them synchronised, README "Clocks").
//
// An old active that comes back (its link up again, its pinned data path
// still stamping) stamps a session below the one the replicas follow, and
// everything it sends is dropped: it cannot split the order, and its
// clients time out and fail over to the standby. Restarted with a fresh
// data path it takes a session from the clock, above the standby's, and
// the replicas move back to it once clients send there (a second, equally
// safe view change).
import { AgentError } from './errors.ts';
import { SESSION_STEP_MAX } from './session.ts';

/** 2025-01-01T00:00:00Z: 2 x seconds since then fits a u32 until 2093. */
export const PAIR_EPOCH_MS = Date.UTC(2025, 0, 1);
const MAX_SESSION = 0xffffffff;
/** The largest step from the last session this host used (below the agent's SESSION_STEP_MAX). */
export const PAIR_STEP_MAX = SESSION_STEP_MAX - 2;

export type PairRole = 'active' | 'standby';

/** The session a data path of `role` takes at `nowMs`, above `last` (the last it or anyone we know of used). */
export function pairSession(role: PairRole, nowMs: number, last = 0): number {
  const parity = role === 'standby' ? 1 : 0;
  let s = 2 * Math.max(0, Math.floor((nowMs - PAIR_EPOCH_MS) / 1000)) + parity;
  if (s <= last) s = last + 1 + ((last + 1 - parity) & 1);
  // Replicas take a session at most sessionBound past the last one they
  // heard from the same sequencer (replica/udp/sources.ts): a host back
  // after hours steps by that much, not by the clock. The standby's
  // takeover starts from the active's session it heard, so it stays above.
  else if (last > 0 && s - last > PAIR_STEP_MAX) s = last + PAIR_STEP_MAX - ((last + PAIR_STEP_MAX - parity) & 1);
  if (s > MAX_SESSION) throw new AgentError('ESTATE', `the pair rule has no session left above ${last} (2 x seconds since 2025-01-01 no longer fits 32 bits)`);
  return s;
}

/** Which role a paired session number belongs to (by its parity). */
export function roleOfSession(session: number): PairRole {
  return session & 1 ? 'standby' : 'active';
}

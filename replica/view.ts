// View ids: (leaderNum, session) as in NOPaxos. They are only partially
// ordered (a leader change and a session change can be proposed at once),
// so a replica moving on always takes the component-wise maximum (join) and
// never goes back in either component.

export interface ViewId {
  /** Increments on a leader change; the leader is leaderNum mod n. */
  readonly leaderNum: number;
  /** The OUM session this view accepts; set by the sequencer, never reused. */
  readonly session: number;
}

/**
 * Sessions are u32 on the wire and compare as serial numbers (RFC 1982):
 * b is after a when (b - a) mod 2^32 is in 1..2^31-1, so the session after
 * 0xffffffff is 1 and no session is a dead end. 0 is "none yet" (a replica
 * that has heard no sequencer) and comes before every other session; the
 * agent never hands it out. Negative when a is before b, 0 when equal.
 */
export function sessionCmp(a: number, b: number): number {
  if (a === b) return 0;
  if (b === 0) return 1;
  if (a === 0) return -1;
  return (a - b) | 0 || 1;
}

export function viewEq(a: ViewId, b: ViewId): boolean {
  return a.leaderNum === b.leaderNum && a.session === b.session;
}

/** a <= b component-wise. */
export function viewLeq(a: ViewId, b: ViewId): boolean {
  return a.leaderNum <= b.leaderNum && sessionCmp(a.session, b.session) <= 0;
}

export function viewJoin(a: ViewId, b: ViewId): ViewId {
  if (viewLeq(a, b)) return b;
  if (viewLeq(b, a)) return a;
  return { leaderNum: Math.max(a.leaderNum, b.leaderNum), session: sessionCmp(a.session, b.session) >= 0 ? a.session : b.session };
}

/**
 * A total order that agrees with viewLeq on comparable pairs. Views that
 * became normal are always comparable (a replica only votes for a view that
 * is >= its own), so picking "the latest normal view" with it is sound.
 */
export function viewCmp(a: ViewId, b: ViewId): number {
  return sessionCmp(a.session, b.session) || a.leaderNum - b.leaderNum;
}

export function leaderOf(v: ViewId, n: number): number {
  return v.leaderNum % n;
}

export function viewStr(v: ViewId): string {
  return `${v.leaderNum}/${v.session}`;
}

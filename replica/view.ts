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

export function viewEq(a: ViewId, b: ViewId): boolean {
  return a.leaderNum === b.leaderNum && a.session === b.session;
}

/** a <= b component-wise. */
export function viewLeq(a: ViewId, b: ViewId): boolean {
  return a.leaderNum <= b.leaderNum && a.session <= b.session;
}

export function viewJoin(a: ViewId, b: ViewId): ViewId {
  if (viewLeq(a, b)) return b;
  if (viewLeq(b, a)) return a;
  return { leaderNum: Math.max(a.leaderNum, b.leaderNum), session: Math.max(a.session, b.session) };
}

/**
 * A total order that agrees with viewLeq on comparable pairs. Views that
 * became normal are always comparable (a replica only votes for a view that
 * is >= its own), so picking "the latest normal view" with it is sound.
 */
export function viewCmp(a: ViewId, b: ViewId): number {
  return a.session - b.session || a.leaderNum - b.leaderNum;
}

export function leaderOf(v: ViewId, n: number): number {
  return v.leaderNum % n;
}

export function viewStr(v: ViewId): string {
  return `${v.leaderNum}/${v.session}`;
}

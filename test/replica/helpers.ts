// Shared setup for the replica scenario tests: a simulated cluster with the
// invariant checker attached (every scenario is also checked for safety
// after every event), a record of every message sent, and ways to drop or
// hold exactly the messages a scenario is about.
import { expect } from 'vitest';
import type { LogEntry } from '../../replica/messages.ts';
import { SimCluster, type ClusterOptions } from '../../replica/sim/cluster.ts';
import { InvariantChecker } from '../../replica/sim/invariants.ts';

export interface Sent {
  readonly at: number;
  readonly from: number;
  readonly to: number;
  readonly msg: Record<string, unknown> & { readonly type: string };
}

export interface Harness {
  c: SimCluster;
  checker: InvariantChecker;
  /** Every message handed to the network, dropped or not, in send order. */
  sent: Sent[];
  /** Drops messages matching pred (at most `times`, default once); returns how many it dropped so far. */
  drop(pred: (s: Sent) => boolean, times?: number): () => number;
  /** Holds matching messages and delivers them `delayUs` later than the network would. */
  hold(pred: (s: Sent) => boolean, delayUs: number, deliver: (s: Sent) => void, times?: number): void;
  count(type: string, pred?: (s: Sent) => boolean): number;
}

export function harness(o: Partial<ClusterOptions> = {}): Harness {
  const c = new SimCluster({ n: 3, seed: 1, clients: 1, net: { loss: 0, dup: 0, minDelayUs: 20, maxDelayUs: 60 }, ...o });
  const checker = new InvariantChecker(c);
  const sent: Sent[] = [];
  const rules: { pred: (s: Sent) => boolean; left: number; onMatch: (s: Sent) => void }[] = [];
  c.net.filter = (from, to, msg) => {
    const s: Sent = { at: c.q.now, from, to, msg: msg as Sent['msg'] };
    sent.push(s);
    for (const r of rules) {
      if (r.left > 0 && r.pred(s)) {
        r.left--;
        r.onMatch(s);
        return false;
      }
    }
    return true;
  };
  return {
    c,
    checker,
    sent,
    drop(pred, times = 1) {
      let dropped = 0;
      rules.push({ pred, left: times, onMatch: () => dropped++ });
      return () => dropped;
    },
    hold(pred, delayUs, deliver, times = 1) {
      rules.push({ pred, left: times, onMatch: (s) => void c.q.after(delayUs, () => deliver(s)) });
    },
    count(type, pred = () => true) {
      return sent.filter((s) => s.msg.type === type && pred(s)).length;
    },
  };
}

/** The first copy of SEQUENCED seq (in the cluster's current session) to one replica. */
export const sequenced =
  (seq: number, to: number) =>
  (s: Sent): boolean =>
    s.msg.type === 'SEQUENCED' && s.msg.seq === seq && s.to === to && s.msg.retransmit === false;

/** Runs until the clients finished everything they were given, or fails. */
export function settle(h: Harness, maxUs = 2_000_000): void {
  const ok = h.c.runUntil(() => h.c.pendingRequests === 0, maxUs);
  expect(ok, `${h.c.pendingRequests} requests still pending at t=${h.c.q.now}`).toBe(true);
}

/** Runs until every replica committed the leader's whole log, then checks convergence and liveness. */
export function quiesce(h: Harness): void {
  settle(h);
  h.c.runUntil(() => h.c.converged(), 1_000_000);
  h.checker.finalCheck();
}

/** Every slot a replica still holds, as comparable strings. */
export function logOf(h: Harness, i: number): string[] {
  const r = h.c.replicas[i]!;
  const out: string[] = [];
  for (let s = r.log.firstSlot; s <= r.log.lastSlot; s++) out.push(entryStr(r.log.get(s)!));
  return out;
}

/** Replicas i and j end at the same slot and agree on every slot both still hold. */
export function expectSameLog(h: Harness, i: number, j: number): void {
  const a = h.c.replicas[i]!.log;
  const b = h.c.replicas[j]!.log;
  expect(a.lastSlot).toBe(b.lastSlot);
  for (let s = Math.max(a.firstSlot, b.firstSlot); s <= a.lastSlot; s++) expect(entryStr(a.get(s)!)).toBe(entryStr(b.get(s)!));
}

export function entryStr(e: LogEntry): string {
  return e.noop ? `${e.slot}:${e.session}/${e.seq}:noop` : `${e.slot}:${e.session}/${e.seq}:${e.clientId}.${e.requestId}`;
}

/** The committed entry of (session, seq) (any replica committed it; all agree). */
export function committed(h: Harness, session: number, seq: number): LogEntry {
  const e = h.checker.committedAt(session, seq);
  expect(e, `(${session}, ${seq}) committed`).toBeDefined();
  return e!;
}

/** The entry of (session, seq) in replica i's log, if it still holds it. */
export function entryAt(h: Harness, i: number, session: number, seq: number): LogEntry | undefined {
  const r = h.c.replicas[i]!;
  for (let s = r.log.firstSlot; s <= r.log.lastSlot; s++) {
    const e = r.log.get(s)!;
    if (e.session === session && e.seq === seq) return e;
  }
  return undefined;
}

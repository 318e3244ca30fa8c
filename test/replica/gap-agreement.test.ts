// Rung three of the drop-recovery ladder: the agent's copy is gone (the
// window slot was overwritten), so the leader decides. A follower gets the
// request from the leader; a leader that lacks it commits a no-op in that
// slot at every replica, replacing the request where a follower had it.
import { describe, expect, it } from 'vitest';
import { committed, entryAt, harness, quiesce, sequenced, type Sent } from './helpers.ts';

/** The agent's window no longer holds seq once it reaches the replicas. */
function overwriteInWindow(h: ReturnType<typeof harness>, seq: number): void {
  const orig = h.c.sequencer.onRequest.bind(h.c.sequencer);
  h.c.sequencer.onRequest = (r, node) => {
    const verdict = orig(r, node);
    h.c.sequencer.forget(seq);
    return verdict;
  };
}

const from = (type: string, r: number) => (s: Sent) => s.msg.type === type && s.from === r;

describe('replica gap past the agent window', () => {
  it('a follower recovers the request from the leader (GAP_FIND / GAP_RECV), no no-op', () => {
    // Three clients keep later seqs coming, so the follower notices the gap
    // before the leader's next sync would hand it the entry anyway.
    const h = harness({ clients: 3 });
    h.drop(sequenced(3, 1));
    overwriteInWindow(h, 3);
    h.c.startWorkload(10);
    quiesce(h);
    expect(h.count('REPAIR_REPLY', (s) => s.to === 1 && (s.msg.missing as number[]).includes(3))).toBeGreaterThanOrEqual(1);
    expect(h.count('GAP_FIND', (s) => s.from === 1 && s.to === 0)).toBeGreaterThanOrEqual(1);
    expect(h.count('GAP_RECV', (s) => s.from === 0 && s.to === 1)).toBeGreaterThanOrEqual(1);
    expect(h.count('GAP_COMMIT')).toBe(0);
    expect(committed(h, 1, 3).noop).toBe(false);
    expect(h.checker.committedNoops).toBe(0);
  });
});

describe('leader gap', () => {
  it('the leader commits a no-op at every replica; followers that had the request replace it', () => {
    const h = harness();
    h.drop(sequenced(3, 0));
    overwriteInWindow(h, 3);
    h.c.startWorkload(10);
    quiesce(h);
    // Both followers logged seq 3 (and ACKed it), then got GAP_COMMIT and answered.
    expect(h.count('ACK', (s) => s.msg.seq === 3 && s.from !== 0 && s.msg.session === 1)).toBe(2);
    expect(h.count('GAP_COMMIT', from('GAP_COMMIT', 0))).toBeGreaterThanOrEqual(2);
    expect(h.count('GAP_COMMIT_REPLY')).toBeGreaterThanOrEqual(1);
    const e = committed(h, 1, 3);
    expect(e.noop).toBe(true);
    // The client whose request died in slot 3 retried; it ran exactly once
    // (the app throws on a second execution) and every replica agrees.
    expect(h.c.certified.length).toBe(10);
    for (const app of h.c.apps) expect(app.history.length).toBe(10);
    expect(h.checker.committedNoops).toBe(1);
  });

  it('followers replace the logged request on GAP_COMMIT itself, not only at the next sync', () => {
    const h = harness({ replica: { syncIntervalUs: 50_000, leaderTimeoutUs: 200_000 } });
    h.drop(sequenced(3, 0));
    overwriteInWindow(h, 3);
    h.c.startWorkload(10);
    h.c.runUntil(() => h.count('GAP_COMMIT_REPLY') >= 2, 100_000);
    expect(h.count('SYNC_PREPARE', (s) => (s.msg.entries as unknown[]).length > 0)).toBe(0);
    h.c.runFor(100);
    for (const i of [1, 2]) expect(entryAt(h, i, 1, 3)!.noop).toBe(true);
    quiesce(h);
  });

  it('the leader appends nothing after the no-op until a follower holds it', () => {
    const h = harness({ clients: 3 });
    h.drop(sequenced(3, 0));
    overwriteInWindow(h, 3);
    h.c.startWorkload(6);
    quiesce(h);
    const firstReply = h.sent.find((s) => s.msg.type === 'GAP_COMMIT_REPLY');
    expect(firstReply).toBeDefined();
    const leaderAcksAfterGap = h.sent.filter((s) => s.msg.type === 'ACK' && s.from === 0 && (s.msg.seq as number) > 3 && s.msg.session === 1);
    expect(leaderAcksAfterGap.length).toBeGreaterThan(0);
    for (const a of leaderAcksAfterGap) expect(a.at).toBeGreaterThanOrEqual(firstReply!.at + 20);
  });
});

describe('gap commit timeout', () => {
  it('lost GAP_COMMITs are re-sent until a quorum answers; the view stays', () => {
    // Syncs are rare here: a SYNC_PREPARE through the no-op would also complete it.
    const h = harness({ replica: { syncIntervalUs: 50_000, leaderTimeoutUs: 200_000 } });
    h.drop(sequenced(3, 0));
    overwriteInWindow(h, 3);
    const dropped = h.drop((s) => s.msg.type === 'GAP_COMMIT', 4);
    h.c.startWorkload(10);
    quiesce(h);
    expect(dropped()).toBe(4);
    expect(h.count('GAP_COMMIT')).toBeGreaterThanOrEqual(6);
    expect(committed(h, 1, 3).noop).toBe(true);
    expect(h.c.leader()!.view).toEqual({ leaderNum: 0, session: 1 });
  });

  it('a leader cut off during gap agreement is replaced; the new view keeps the request, the old leader rolls back', () => {
    const h = harness();
    h.drop(sequenced(3, 0));
    overwriteInWindow(h, 3);
    // The leader's GAP_COMMITs never arrive, and the leader is cut off as soon as it starts.
    h.drop((s) => s.msg.type === 'GAP_COMMIT', 1_000);
    let cut = false;
    h.c.net.filter = ((inner) => (f, t, m) => {
      if (!cut && m.type === 'GAP_COMMIT') {
        cut = true;
        h.c.q.after(0, () => h.c.isolate(0));
        h.c.q.after(15_000, () => h.c.rejoin(0));
      }
      return inner!(f, t, m);
    })(h.c.net.filter);
    h.c.startWorkload(10);
    h.c.runUntil(() => cut && !h.c.net.isolated.has(0), 1_000_000);
    quiesce(h);
    expect(cut).toBe(true);
    const l = h.c.leader()!;
    expect(l.id).not.toBe(0);
    expect(l.view.leaderNum).toBeGreaterThanOrEqual(1);
    // Seq 3 was never a committed no-op: followers had it, the merged log kept it.
    expect(committed(h, 1, 3).noop).toBe(false);
    expect(h.checker.committedNoops).toBe(0);
    // The old leader had executed past its uncommitted no-op; it went back to a checkpoint.
    expect(h.c.apps[0]!.restores).toBeGreaterThanOrEqual(1);
    expect(h.c.replicas[0]!.status).toBe('normal');
  });
});

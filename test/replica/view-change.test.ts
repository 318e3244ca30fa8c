// View changes: a new sequencer session (failover) and a failed leader.
// Either way the new view's log is the union of what a quorum had, nothing
// certified is lost, and normal operation resumes.
import { describe, expect, it } from 'vitest';
import { expectSameLog, harness, logOf, quiesce, settle } from './helpers.ts';

describe('session change', () => {
  it('a sequencer failover moves every replica to the new session; seqs restart at 1 after the old log', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(5);
    settle(h);
    const endOfSession1 = h.c.replicas[0]!.log.lastSlot;
    h.c.failoverSequencer();
    h.c.startWorkload(10);
    quiesce(h);
    for (const r of h.c.live()) expect(r.view).toEqual({ leaderNum: 0, session: 2 });
    expect(h.count('VIEW_CHANGE')).toBeGreaterThanOrEqual(2);
    const log = h.checker.committedLog();
    const first2 = log.findIndex((e) => e.session === 2);
    expect(first2).toBe(endOfSession1);
    expect(log[first2]!.seq).toBe(1);
    expect(log.slice(first2).map((e) => e.seq)).toEqual(log.slice(first2).map((_, i) => i + 1));
    expect(h.c.certified.length).toBe(20);
    expect(logOf(h, 1)).toEqual(logOf(h, 0));
  });

  it('the session after 0xffffffff is 1: a group at the largest session fails over and serves on (no dead end)', () => {
    const h = harness({ clients: 2, session: 0xffffffff });
    h.c.startWorkload(5);
    settle(h);
    for (const r of h.c.live()) expect(r.view.session).toBe(0xffffffff);
    const endOfLast = h.c.replicas[0]!.log.lastSlot;
    h.c.failoverSequencer();
    h.c.startWorkload(10);
    quiesce(h);
    for (const r of h.c.live()) expect(r.view).toEqual({ leaderNum: 0, session: 1 });
    const log = h.checker.committedLog();
    expect(log.findIndex((e) => e.session === 1)).toBe(endOfLast);
    expect(h.c.certified.length).toBe(20);
    expect(logOf(h, 1)).toEqual(logOf(h, 0));
  });

  it('a failover with requests in flight: the old session ends where a quorum had it, retries land in the new one', () => {
    const h = harness({ clients: 4, net: { loss: 0.02, dup: 0.02, minDelayUs: 20, maxDelayUs: 300 }, seed: 7 });
    h.c.startWorkload(40);
    h.c.runFor(3_000);
    h.c.sequencer.crash();
    h.c.q.after(1_000, () => h.c.failoverSequencer());
    quiesce(h);
    expect(h.c.leader()!.view.session).toBe(2);
    expect(h.c.certified.length).toBe(160);
    // Sessions never interleave in the committed log.
    const sessions = h.checker.committedLog().map((e) => e.session);
    expect(sessions).toEqual([...sessions].sort((a, b) => a - b));
  });

  it('new session with loss right after a recovered replica: the old leader, back by state transfer, and its peers all move to the new session (kv.netns step 3)', () => {
    // The netns KV test's order of events under 5% loss on every link: the
    // leader is killed and recovers from its peers, then the sequencer is
    // re-created (a new session) while clients keep writing. Several seeds:
    // where the loss falls decides which replica hears the session first.
    for (let seed = 1; seed <= 8; seed++) {
      const h = harness({ clients: 4, net: { loss: 0.05, dup: 0, minDelayUs: 20, maxDelayUs: 300 }, seed });
      h.c.startWorkload(Infinity);
      h.c.runFor(5_000);
      h.c.crash(0);
      h.c.runFor(2_000);
      h.c.restart(0);
      const recovered = h.c.runUntil(() => h.c.replicas[0]!.status === 'normal', 1_000_000);
      expect(recovered, `seed ${seed}: replica 0 recovered`).toBe(true);
      h.c.runFor(3_000);
      h.c.sequencer.crash();
      h.c.q.after(1_000, () => h.c.failoverSequencer());
      h.c.runFor(1_000 + 5_000);
      h.c.stopWorkload();
      quiesce(h);
      for (const r of h.c.live()) expect({ seed, id: r.id, status: r.status, session: r.view.session }).toEqual({ seed, id: r.id, status: 'normal', session: 2 });
    }
  });

  it('replicas created without knowing the session join the sequencer\'s on its first message', () => {
    const h = harness({ clients: 2, session: 5, replicaSession: 0 });
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.c.leader()!.view).toEqual({ leaderNum: 0, session: 5 });
    expect(h.checker.committedLog()[0]).toMatchObject({ slot: 1, session: 5, seq: 1 });
  });

  it('two failovers in a row: replicas join the latest session directly', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(3);
    settle(h);
    h.c.failoverSequencer();
    h.c.failoverSequencer();
    h.c.startWorkload(6);
    quiesce(h);
    expect(h.c.leader()!.view).toEqual({ leaderNum: 0, session: 3 });
  });
});

describe('leader failure', () => {
  it('followers time out on the leader, elect the next one, and nothing certified is lost', () => {
    const h = harness({ clients: 3 });
    h.c.startWorkload(5);
    settle(h);
    const before = h.c.certified.length;
    h.c.crash(0);
    h.c.startWorkload(10);
    settle(h);
    const l = h.c.leader()!;
    expect(l.id).toBe(1);
    expect(l.view).toEqual({ leaderNum: 1, session: 1 });
    expect(h.c.certified.length).toBe(30);
    expect(before).toBe(15);
    // Every certified request is in the new leader's committed order exactly once.
    h.c.restart(0);
    quiesce(h);
    const keys = h.c.apps[1]!.history;
    expect(new Set(keys).size).toBe(30);
  });

  it('an isolated leader comes back as a follower of the new view and adopts its log', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(5);
    settle(h);
    h.c.isolate(0);
    h.c.startWorkload(10);
    settle(h);
    h.c.rejoin(0);
    quiesce(h);
    const r0 = h.c.replicas[0]!;
    expect(r0.status).toBe('normal');
    expect(r0.view.leaderNum).toBe(1);
    expect(r0.amLeader()).toBe(false);
    // It may adopt the new view's log through START_VIEW or, when the
    // others' checkpoint has passed what it holds, by state transfer (then
    // its log starts at that checkpoint): the same log either way.
    expectSameLog(h, 0, 1);
    expect(r0.committed).toBe(h.c.replicas[1]!.committed);
  });

  it('if the next leader is down too the view change moves on to the one after', () => {
    const h = harness({ n: 5, clients: 2 });
    h.c.startWorkload(4);
    settle(h);
    h.c.crash(0);
    h.c.crash(1);
    h.c.startWorkload(8);
    settle(h);
    const l = h.c.leader()!;
    expect(l.id).toBe(2);
    expect(l.view.leaderNum).toBe(2);
    h.c.restart(0);
    h.c.restart(1);
    quiesce(h);
  });

  it('a leader change and a session change at once meet in the join of both views', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(4);
    settle(h);
    h.c.crash(0);
    h.c.failoverSequencer();
    h.c.startWorkload(8);
    settle(h);
    expect(h.c.leader()!.view).toEqual({ leaderNum: 1, session: 2 });
    h.c.restart(0);
    quiesce(h);
  });
});

// A replica that restarts with its memory gone rebuilds its state from its
// peers (Viewstamped Replication's recovery) before it ACKs or votes.
import { describe, expect, it } from 'vitest';
import { expectSameLog, harness, logOf, quiesce, settle } from './helpers.ts';

describe('replica crash and recovery', () => {
  it('a restarted follower takes state from f+1 peers incl. the leader, and ACKs nothing before', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(10);
    settle(h);
    h.c.crash(2);
    h.c.startWorkload(20);
    settle(h);
    const restartAt = h.c.q.now;
    h.c.restart(2);
    expect(h.c.replicas[2]!.status).toBe('recovering');
    h.c.runUntil(() => h.c.replicas[2]!.status === 'normal', 100_000);
    const recoveredAt = h.c.q.now;
    expect(h.c.replicas[2]!.status).toBe('normal');
    expect(h.count('STATE_REQUEST', (s) => s.from === 2 && s.at >= restartAt)).toBeGreaterThanOrEqual(2);
    expect(h.count('STATE_REPLY', (s) => s.to === 2 && s.msg.state !== null && s.from === 0)).toBeGreaterThanOrEqual(1);
    expect(h.count('ACK', (s) => s.from === 2 && s.at >= restartAt && s.at <= recoveredAt)).toBe(0);
    h.c.startWorkload(30);
    quiesce(h);
    // Back in business: it ACKs new requests and holds the same log and state.
    expect(h.count('ACK', (s) => s.from === 2 && s.at > recoveredAt)).toBeGreaterThan(0);
    expect(logOf(h, 2)).toEqual(logOf(h, 0));
    expect(h.c.apps[2]!.history).toEqual(h.c.apps[0]!.history);
  });

  it('a recovering replica gets nothing until f+1 peers answer (both others, with n = 3)', () => {
    const h = harness();
    h.c.startWorkload(5);
    settle(h);
    h.c.crash(2);
    h.c.isolate(1);
    h.c.restart(2);
    h.c.runFor(50_000);
    expect(h.c.replicas[2]!.status).toBe('recovering');
    h.c.rejoin(1);
    h.c.runUntil(() => h.c.replicas[2]!.status === 'normal', 100_000);
    expect(h.c.replicas[2]!.status).toBe('normal');
    quiesce(h);
  });

  it('the old leader restarting waits out the view change and recovers as a follower of the next view', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(8);
    settle(h);
    h.c.crash(0);
    h.c.restart(0);
    // Its peers still call it leader of view 0; it cannot take state from itself.
    h.c.runFor(2_000);
    expect(h.c.replicas[0]!.status).toBe('recovering');
    h.c.startWorkload(16);
    settle(h);
    quiesce(h);
    const r0 = h.c.replicas[0]!;
    expect(r0.view.leaderNum).toBe(1);
    expect(r0.amLeader()).toBe(false);
    expect(h.c.apps[0]!.history).toEqual(h.c.apps[1]!.history);
  });

  it("recovery ignores a stale leader's state and waits for the newest view among f+1 answers", () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(4);
    settle(h);
    // Leader 0 is cut off; 1 and 2 move on to view 1 and commit more.
    h.c.isolate(0);
    h.c.startWorkload(8);
    settle(h);
    expect(h.c.leader()!.id).toBe(1);
    // 2 restarts; 0 can reach it again (still leader of view 0 in its own
    // eyes) but not 1, and 1's answer comes late.
    h.c.crash(2);
    h.c.net.cut(0, 1);
    h.c.rejoin(0);
    h.hold((s) => s.msg.type === 'STATE_REPLY' && s.from === 1 && s.to === 2, 3_000, (s) => h.c.replicas[2]?.receive(s.msg as never));
    h.c.restart(2);
    h.c.runUntil(() => h.c.replicas[2]!.status === 'normal', 100_000);
    expect(h.sent.some((s) => s.msg.type === 'STATE_REPLY' && s.from === 0 && s.to === 2 && s.msg.state !== null)).toBe(true);
    const r2 = h.c.replicas[2]!;
    expect(r2.view).toEqual({ leaderNum: 1, session: 1 });
    expectSameLog(h, 2, 1);
    h.c.net.mendAll();
    quiesce(h);
    expect(h.c.certified.length).toBe(16);
  });

  it('a follower that fell behind the leader checkpoint catches up by state transfer', () => {
    // A long leader timeout keeps the cut-off follower from starting view
    // changes of its own (it would come back with a higher view instead).
    const h = harness({ clients: 3, replica: { leaderTimeoutUs: 10_000_000 } });
    h.c.startWorkload(5);
    settle(h);
    h.c.isolate(2);
    h.c.startWorkload(60);
    settle(h);
    const leader = h.c.replicas[0]!;
    expect(leader.log.firstSlot).toBeGreaterThan(h.c.replicas[2]!.log.lastSlot + 1);
    h.c.rejoin(2);
    quiesce(h);
    expect(h.count('STATE_REPLY', (s) => s.to === 2 && s.msg.nonce === 0)).toBeGreaterThanOrEqual(1);
    expect(h.c.apps[2]!.history).toEqual(h.c.apps[0]!.history);
  });
});

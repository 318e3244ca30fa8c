// Synchronization: the leader's periodic SYNC_PREPARE / SYNC_REPLY fixes a
// commit point (the next SYNC_PREPARE carries it), followers execute exactly the committed
// prefix, every replica checkpoints there and truncates its log.
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../replica/messages.ts';
import { harness, quiesce, settle, type Sent } from './helpers.ts';

describe('checkpoint and sync', () => {
  it('logs stay bounded: each replica keeps about two sync intervals of entries', () => {
    const h = harness({ clients: 4 });
    h.c.startWorkload(150);
    let maxLog = 0;
    const after = h.c.afterEvent!;
    h.c.afterEvent = () => {
      after();
      for (const r of h.c.live()) maxLog = Math.max(maxLog, r.log.size);
    };
    quiesce(h);
    const total = h.checker.committedLog().length;
    expect(total).toBe(600);
    // ~40 requests per 2 ms sync interval here; the log never holds more than a few intervals.
    expect(maxLog).toBeLessThan(200);
    for (const r of h.c.live()) {
      expect(r.log.firstSlot).toBeGreaterThan(300);
      expect(r.exec.checkpoint.slot).toBeGreaterThan(500);
      expect(r.committed).toBe(600);
    }
    for (const app of h.c.apps) expect(app.history.length).toBe(600);
  });

  it('followers execute only the committed prefix; the leader executes on arrival', () => {
    const h = harness({ clients: 3, net: { loss: 0.05, dup: 0, minDelayUs: 20, maxDelayUs: 300 }, seed: 3 });
    h.c.startWorkload(50);
    let leaderAhead = 0;
    const after = h.c.afterEvent!;
    h.c.afterEvent = () => {
      after();
      for (const r of h.c.live()) {
        if (r.status !== 'normal') continue;
        if (r.amLeader()) {
          expect(r.exec.executed).toBe(r.log.lastSlot);
          if (r.exec.executed > r.committed) leaderAhead++;
        } else {
          expect(r.exec.executed).toBeLessThanOrEqual(r.committed);
        }
      }
    };
    quiesce(h);
    expect(leaderAhead).toBeGreaterThan(0);
  });

  it('followers commit from the next SYNC_PREPARE (the leader sends no SYNC_COMMIT), even when idle', () => {
    const h = harness();
    h.c.startWorkload(5);
    settle(h);
    h.c.runUntil(() => h.c.replicas[2]!.committed === 5, 50_000);
    expect(h.c.replicas[2]!.committed).toBe(5);
    expect(h.c.apps[2]!.history.length).toBe(5);
    quiesce(h);
    expect(h.count('SYNC_COMMIT')).toBe(0);
  });

  it('the idle leader still sends heartbeats, so followers do not start a view change', () => {
    const h = harness();
    h.c.startWorkload(2);
    settle(h);
    h.c.runFor(100_000);
    expect(h.count('VIEW_CHANGE_REQUEST')).toBe(0);
    expect(h.c.leader()!.view.leaderNum).toBe(0);
  });
  it('SYNC_PREPARE ships a follower only what it has not confirmed, not the whole retained log', () => {
    const h = harness({ clients: 4 });
    h.c.startWorkload(150);
    quiesce(h);
    const total = h.checker.committedLog().length;
    expect(total).toBe(600);
    for (const r of [1, 2]) {
      const prepares = h.sent.filter((s) => s.msg.type === 'SYNC_PREPARE' && s.to === r);
      const shipped = prepares.reduce((a, s) => a + (s.msg['entries'] as LogEntry[]).length, 0);
      // Each slot once, plus at most the point again in a prepare sent
      // before the previous one was confirmed. The whole retained log
      // (about two intervals) would ship every slot about twice.
      expect(shipped).toBeLessThanOrEqual(total + prepares.length);
      expect(shipped).toBeGreaterThanOrEqual(total);
    }
  });

  it('a follower that lost a SYNC_PREPARE gets its entries again from its last confirmed point', () => {
    const h = harness({ clients: 2 });
    let seen = 0;
    const withEntries = (s: Sent) => s.msg.type === 'SYNC_PREPARE' && s.to === 2 && (s.msg['entries'] as LogEntry[]).length > 0;
    const dropped = h.drop((s) => withEntries(s) && ++seen === 2);
    h.c.startWorkload(100);
    quiesce(h);
    expect(dropped()).toBe(1);
    const [confirmed, lost, next] = h.sent.filter(withEntries);
    const slots = (s: Sent) => (s.msg['entries'] as LogEntry[]).map((e) => e.slot);
    expect(slots(lost!)[0]).toBe((confirmed!.msg['syncPoint'] as number) + 1);
    // The next one starts where the lost one did: nothing is skipped, and no state transfer is needed.
    expect(slots(next!)[0]).toBe(slots(lost!)[0]);
    expect(h.count('STATE_REQUEST')).toBe(0);
    expect(h.c.replicas[2]!.committed).toBe(200);
    expect(h.c.apps[2]!.history.length).toBe(200);
  });
});

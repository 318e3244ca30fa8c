// Rungs one and two of the drop-recovery ladder: reordering inside the
// window is not a gap, and a real gap is repaired from the agent's copy
// without bothering the leader.
import { describe, expect, it } from 'vitest';
import type { SequencedMsg } from '../../replica/messages.ts';
import { committed, harness, logOf, quiesce, sequenced } from './helpers.ts';

describe('replica gap', () => {
  it('a follower missing a message is repaired from the agent, not the leader', () => {
    const h = harness();
    const dropped = h.drop(sequenced(3, 1));
    h.c.startWorkload(10);
    quiesce(h);
    expect(dropped()).toBe(1);
    expect(h.count('REPAIR_REQUEST', (s) => s.from === 1 && s.msg.first === 3)).toBeGreaterThanOrEqual(1);
    expect(h.c.sequencer.stats.repairMissing).toBe(0);
    expect(h.count('GAP_FIND') + h.count('GAP_COMMIT')).toBe(0);
    const e = committed(h, 1, 3);
    expect(e.noop).toBe(false);
    expect(e.requestId).toBe(3n);
    expect(logOf(h, 1)).toEqual(logOf(h, 0));
    expect(logOf(h, 2)).toEqual(logOf(h, 0));
  });

  it('the leader missing a message is repaired from the agent too (no gap agreement)', () => {
    const h = harness();
    h.drop(sequenced(4, 0));
    h.c.startWorkload(10);
    quiesce(h);
    expect(h.count('REPAIR_REQUEST', (s) => s.from === 0)).toBeGreaterThanOrEqual(1);
    expect(h.count('GAP_COMMIT')).toBe(0);
    expect(committed(h, 1, 4).noop).toBe(false);
  });

  it('reordering shorter than the reorder wait is not a gap', () => {
    const h = harness({ clients: 3 });
    // Seq 3 reaches replica 1 100 us late (reorder wait is 150 us): later seqs overtake it.
    h.hold(sequenced(3, 1), 100, (s) => h.c.replicas[1]!.receive(s.msg as unknown as SequencedMsg));
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.count('REPAIR_REQUEST')).toBe(0);
    expect(committed(h, 1, 3).noop).toBe(false);
  });

  it('a message held past the reorder wait is a gap and gets repaired', () => {
    const h = harness({ clients: 3 });
    h.hold(sequenced(3, 1), 5_000, (s) => h.c.replicas[1]!.receive(s.msg as unknown as SequencedMsg));
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.count('REPAIR_REQUEST', (s) => s.from === 1 && s.msg.first === 3)).toBeGreaterThanOrEqual(1);
    expect(committed(h, 1, 3).noop).toBe(false);
  });

  it('a full reorder window declares the gap before the wait runs out', () => {
    const h = harness({ clients: 4, replica: { reorderWaitUs: 1_000_000, reorderWindowMsgs: 4 } });
    h.drop(sequenced(2, 2));
    h.c.startWorkload(6);
    quiesce(h);
    const first = h.sent.find((s) => s.msg.type === 'REPAIR_REQUEST' && s.from === 2);
    expect(first, 'replica 2 asked the agent').toBeDefined();
    expect(first!.at).toBeLessThan(1_000_000);
  });
});

// Hydra scenarios: several sequencers, one merged order. Every scenario runs
// under the invariant checker (merged order = (effective clock, sequencer
// id) merge of gap-free streams, committed prefixes equal everywhere,
// certified requests never lost or moved, at-most-once execution).
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../replica/messages.ts';
import { SEQUENCER_NODE } from '../../replica/sim/cluster.ts';
import { expectSameLog, harness, quiesce, type Harness } from './helpers.ts';

const NET = { loss: 0, dup: 0, minDelayUs: 20, maxDelayUs: 60 };

function committedOrder(h: Harness): LogEntry[] {
  return h.checker.committedLog();
}

function allSame(h: Harness): void {
  for (let i = 1; i < h.c.n; i++) expectSameLog(h, 0, i);
}

describe('hydra: several sequencers, one order', () => {
  it('clock skew and drift between sequencers, raw clocks not monotonic in seq: every replica delivers the same (eff clock, id) order', () => {
    const h = harness({ sequencers: 3, clients: 4, net: NET, hydra: { skewUs: [0, 400, -300], drift: [0, 2e-5, -2e-5], inversion: 0.3, inversionNs: 200_000, flushIntervalUs: 1_000 } });
    h.c.startWorkload(60);
    quiesce(h);
    allSame(h);
    const log = committedOrder(h);
    expect(log.length).toBeGreaterThanOrEqual(240);
    for (const sid of [0, 1, 2]) expect(log.filter((e) => e.src?.sid === sid).length, `entries of sequencer ${sid}`).toBeGreaterThan(40);
    const inversions = h.c.sequencers.reduce((a, q) => a + q.stats.inversions, 0);
    expect(inversions, 'stamps with a clock below the previous seq').toBeGreaterThan(5);
    // Raw clocks go backwards within a stream, effective clocks never do.
    let rawBack = 0;
    const last = new Map<number, LogEntry>();
    for (const e of log) {
      const p = last.get(e.src!.sid);
      if (p && e.src!.raw < p.src!.raw) rawBack++;
      if (p) expect(e.src!.clock).toBeGreaterThanOrEqual(p.src!.clock);
      last.set(e.src!.sid, e);
    }
    expect(rawBack, 'committed entries whose raw clock is below their predecessor').toBeGreaterThan(0);
  });

  it('equal clocks on two sequencers are ordered by sequencer id', () => {
    const h = harness({ sequencers: 2, clients: 4, net: NET, hydra: { tickUs: 200, flushIntervalUs: 500 } });
    h.c.startWorkload(40);
    quiesce(h);
    allSame(h);
    const log = committedOrder(h);
    let ties = 0;
    for (let i = 1; i < log.length; i++) {
      const a = log[i - 1]!.src!;
      const b = log[i]!.src!;
      if (a.clock === b.clock && a.sid !== b.sid) {
        ties++;
        expect(a.sid).toBeLessThan(b.sid);
      }
    }
    expect(ties, 'adjacent entries of two sequencers with the same clock').toBeGreaterThan(5);
  });

  for (const flushIntervalUs of [1_000, 0]) {
    it(`one idle sequencer never stalls delivery longer than ${flushIntervalUs ? 'the flush interval' : 'the solicit delay (no periodic flush)'} plus a bound`, () => {
      const skewUs = [0, 150, -150];
      const h = harness({ sequencers: 3, clients: 3, net: NET, replica: { flushSolicitUs: 400 }, hydra: { skewUs, flushIntervalUs } });
      h.c.avoid.add(2);
      const spread = 300;
      const wait = flushIntervalUs || 400;
      h.checker.stallBoundUs = wait + spread + 2 * NET.maxDelayUs + 100;
      h.c.startWorkload(80);
      quiesce(h);
      allSame(h);
      expect(committedOrder(h).some((e) => e.src!.sid === 2)).toBe(false);
      expect(h.checker.maxStallUs).toBeGreaterThan(0);
      expect(h.checker.maxStallUs).toBeLessThanOrEqual(h.checker.stallBoundUs);
      const solicits = h.c.replicas.reduce((a, r) => a + r!.hydra!.stats.solicits, 0);
      if (flushIntervalUs === 0) expect(solicits, 'flush solicits to the idle sequencer').toBeGreaterThan(10);
      // Without flushes and solicits the idle sequencer would hold everything back forever.
      expect(h.c.sequencers[2]!.stats.flushes).toBeGreaterThan(0);
    });
  }

  it("drops on one sequencer's path: repaired from that sequencer's agent, else a no-op agreed for (sequencer, seq); nothing after the gap is delivered first", () => {
    const h = harness({ sequencers: 3, clients: 3, net: NET, windowSlots: 4, hydra: { flushIntervalUs: 1_000 } });
    for (let i = 0; i < 3; i++) h.c.net.linkLoss.set((SEQUENCER_NODE + 1) * 65536 + i, i === 0 ? 0.3 : 0.15);
    h.c.startWorkload(80);
    quiesce(h);
    allSame(h);
    const repairs = h.sent.filter((s) => s.msg.type === 'REPAIR_REQUEST');
    expect(repairs.length).toBeGreaterThan(0);
    for (const s of repairs) {
      expect(s.msg.sequencerId, 'repair goes to the agent of the sequencer with the gap').toBe(1);
      expect(s.to).toBe(SEQUENCER_NODE + 1);
    }
    const commits = h.sent.filter((s) => s.msg.type === 'GAP_COMMIT');
    expect(commits.length, 'gap agreement for what the agent no longer had').toBeGreaterThan(0);
    for (const s of commits) expect((s.msg.stream as { sid: number }).sid).toBe(1);
    const noops = committedOrder(h).filter((e) => e.noop);
    expect(noops.length).toBeGreaterThan(0);
    for (const e of noops) expect(e.src!.sid).toBe(1);
    for (const r of h.c.replicas) expect(r!.hydra!.stream(1)!.next - 1).toBe(h.c.sequencers[1]!.lastStamped);
  });

  it('a sequencer added: its control op is merged first, its traffic sorts after it, every replica agrees', () => {
    const h = harness({ sequencers: 2, clients: 3, net: NET, hydra: { skewUs: [0, 0, -500], flushIntervalUs: 1_000 } });
    h.checker.stallBoundUs = 1_000 + 500 + 2 * NET.maxDelayUs + 200;
    h.c.startWorkload(30);
    h.c.runFor(10_000);
    const added = h.c.addSequencer();
    expect(added.id).toBe(2);
    h.c.startWorkload(120);
    quiesce(h);
    allSame(h);
    const log = committedOrder(h);
    const op = log.findIndex((e) => e.control);
    expect(op, 'the add op is in the committed order').toBeGreaterThan(0);
    const of2 = log.map((e, i) => ({ e, i })).filter(({ e }) => e.src!.sid === 2);
    expect(of2.length, 'requests stamped by the new sequencer').toBeGreaterThan(20);
    for (const { e, i } of of2) {
      expect(i).toBeGreaterThan(op);
      expect(e.src!.clock).toBeGreaterThan(log[op]!.src!.clock);
    }
    expect(of2.map(({ e }) => e.src!.seq)).toEqual(of2.map((_, k) => k + 1));
    for (const r of h.c.replicas) expect(r!.hydra!.stream(2)).toBeDefined();
    expect(h.c.certified.length).toBe(360);
  });

  it('a sequencer removed: its FINAL flush lets delivery pass it, nothing of it after its last seq', () => {
    const h = harness({ sequencers: 3, clients: 3, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.checker.stallBoundUs = 1_000 + 2 * NET.maxDelayUs + 100;
    h.c.startWorkload(40);
    h.c.runFor(15_000);
    const gone = h.c.sequencers[1]!;
    gone.retire();
    const last = gone.lastStamped;
    h.c.startWorkload(120);
    quiesce(h);
    allSame(h);
    expect(last).toBeGreaterThan(0);
    const of1 = committedOrder(h).filter((e) => e.src!.sid === 1);
    expect(Math.max(...of1.map((e) => e.src!.seq))).toBe(last);
    for (const r of h.c.replicas) expect(r!.hydra!.stream(1)!.frontier()).toBe(Infinity);
    expect(h.c.certified.length).toBe(360);
  });
});

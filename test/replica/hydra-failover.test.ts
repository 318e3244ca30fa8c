// A sequencer of a merged (Hydra) group dies, is removed by hand, or comes
// back with a new data path: the replicas end its session by their own
// agreement (a view change the leader starts; the end goes right after
// what the quorum's logs hold) and start the new one under the same id
// (replica/hydra-failover.ts, stream-epochs.ts). Every scenario also runs
// under the invariant checker, whose order oracle knows a sequencer's
// sessions: one at a time, an old one never merged again, nothing of an
// ended session after its end (replica/sim/invariants.ts).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../replica/config.ts';
import { hydraMetrics } from '../../replica/hydra-metrics.ts';
import type { LogEntry } from '../../replica/messages.ts';
import { SEQUENCER_NODE } from '../../replica/sim/cluster.ts';
import { tableUnder } from '../helpers/markdown.ts';
import { expectSameLog, harness, quiesce, type Harness } from './helpers.ts';

const NET = { loss: 0, dup: 0, minDelayUs: 20, maxDelayUs: 60 };
/** The replicas' default dead-sequencer timeout (50 flush intervals of 2 ms). */
const DEAD_US = DEFAULT_CONFIG.deadSequencerUs;

function allSame(h: Harness): void {
  for (let i = 1; i < h.c.n; i++) expectSameLog(h, 0, i);
}

/** Sequencer sid's entries in the committed order. */
function of(h: Harness, sid: number): LogEntry[] {
  return h.checker.committedLog().filter((e) => e.src?.sid === sid);
}

/** The first op certified through a survivor after `t`, and when (us). */
function firstCertifiedAfter(h: Harness, t: number, sid: number): number {
  const r = h.c.certified.find((x) => x.at > t && x.sequencerId !== sid && x.op.length > 0);
  expect(r, `an op certified through a survivor after t=${t}`).toBeDefined();
  return r!.at;
}

describe('hydra failover: a sequencer dies, is removed, rejoins', () => {
  it('a sequencer dies for good: the leader ends its session right after what the quorum holds, the survivors carry on, every replica agrees', () => {
    const h = harness({ sequencers: 3, clients: 3, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(30);
    h.c.runFor(8_000);
    const dead = h.c.sequencers[1]!;
    dead.crash();
    const killedAt = h.c.q.now;
    h.c.startWorkload(90);
    quiesce(h);
    allSame(h);
    const e1 = of(h, 1);
    const end = e1[e1.length - 1]!;
    expect(end.noop && end.src!.end, 'the stream ends with the replicas\' end entry').toBe(true);
    expect(end.src!.session).toBe(dead.session);
    // Everything stamped and merged before the end is still there, in order; nothing after it.
    expect(e1.slice(0, -1).every((e) => !e.noop && e.src!.seq < end.src!.seq)).toBe(true);
    for (const r of h.c.replicas) {
      expect(r!.hydra!.stream(1)!.ended).toBe(true);
      expect(r!.hydra!.failover.stats.removals).toBe(1);
    }
    const leader = h.c.leader()!;
    expect(leader.hydra!.failover.stats.reconfigViewChanges).toBeGreaterThanOrEqual(1);
    // Detection is the dead-sequencer timeout; the survivors' ops resume right after the agreement.
    const resumed = firstCertifiedAfter(h, killedAt + DEAD_US, 1);
    expect(resumed - killedAt).toBeGreaterThanOrEqual(DEAD_US);
    expect(of(h, 0).length + of(h, 2).length).toBeGreaterThan(200);
  });

  it('a sequencer restarts with a new session: the old one is ended, the new one starts under the same id, the old one is never merged again', () => {
    const h = harness({ sequencers: 2, clients: 3, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(30);
    h.c.runFor(8_000);
    const s1 = h.c.sequencers[1]!;
    const old = s1.session;
    s1.crash();
    h.c.runFor(3_000);
    s1.restart();
    h.c.startWorkload(90);
    quiesce(h);
    allSame(h);
    const e1 = of(h, 1);
    const end = e1.findIndex((e) => e.src!.end);
    const start = e1.findIndex((e) => e.src!.seq === 0);
    expect(end, 'the old session ended').toBeGreaterThanOrEqual(0);
    expect(start, 'the new session started right after').toBe(end + 1);
    expect(e1[end]!.src!.session).toBe(old);
    expect(e1[start]!.src!.session).toBe(s1.session);
    expect(e1.slice(start + 1).every((e) => e.src!.session === s1.session)).toBe(true);
    expect(e1.slice(start + 1).filter((e) => !e.noop).length, 'requests stamped in the new session merged').toBeGreaterThan(10);
    // Faster than the timeout: traffic of a newer session says the old data path is gone.
    for (const r of h.c.replicas) expect(r!.hydra!.failover.stats.rejoins).toBe(1);
    expect(h.c.certified.some((x) => x.sequencerId === 1 && x.at > h.c.q.now - 1e9 && x.cert.session === s1.session)).toBe(true);
  });

  it('a sequencer dies, is removed after the timeout, and comes back much later with a new session', () => {
    const h = harness({ sequencers: 2, clients: 2, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(20);
    h.c.runFor(5_000);
    const s1 = h.c.sequencers[1]!;
    s1.crash();
    h.c.startWorkload(60);
    h.c.runFor(3 * DEAD_US);
    for (const r of h.c.replicas) expect(r!.hydra!.stream(1)!.ended).toBe(true);
    s1.restart();
    h.c.startWorkload(120);
    quiesce(h);
    allSame(h);
    const e1 = of(h, 1);
    const ends = e1.filter((e) => e.src!.end);
    expect(ends.length).toBe(1);
    expect(e1.filter((e) => e.src!.seq === 0 && e.src!.session === s1.session).length).toBe(1);
    expect(e1.filter((e) => !e.noop && e.src!.session === s1.session).length).toBeGreaterThan(10);
  });

  it("an operator's remove op ends a dead sequencer without waiting for the timeout", () => {
    const h = harness({ sequencers: 3, clients: 3, net: NET, replica: { deadSequencerUs: 60_000_000 }, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(20);
    h.c.runFor(5_000);
    h.c.sequencers[2]!.crash();
    const at = h.c.q.now;
    h.c.removeSequencer(2);
    h.c.startWorkload(60);
    quiesce(h);
    allSame(h);
    const e2 = of(h, 2);
    expect(e2[e2.length - 1]!.src!.end).toBe(true);
    expect(firstCertifiedAfter(h, at, 2) - at).toBeLessThan(60_000_000);
    // The op itself is merged afterwards and changes nothing more.
    const ops = h.checker.committedLog().filter((e) => e.control && !e.noop);
    expect(ops.length).toBeGreaterThanOrEqual(1);
    for (const r of h.c.replicas) expect(r!.hydra!.failover.stats.removals).toBe(1);
  });

  it('a removal racing a FINAL flush: followers merged through the FINAL, the leader ended the stream earlier; the end wins everywhere', () => {
    const h = harness({ sequencers: 2, clients: 3, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(30);
    h.c.runFor(6_000);
    const s1 = h.c.sequencers[1]!;
    // The leader (replica 0) and replica 2 hear nothing more from
    // sequencer 1: not its last requests, not its FINAL flushes; replica 1
    // hears all of it and merges through the FINAL. Its VIEW_CHANGEs are
    // lost, so the leader's quorum is {0, 2} and the end goes earlier.
    const cut = h.drop((s) => s.from === SEQUENCER_NODE + 1 && s.to !== 1 && s.to < h.c.n, Infinity);
    h.drop((s) => s.msg.type === 'VIEW_CHANGE' && s.from === 1, 3);
    const before = s1.lastStamped;
    h.c.startWorkload(60);
    h.c.runUntil(() => s1.lastStamped >= before + 3, 50_000);
    s1.retire();
    h.c.removeSequencer(1);
    h.c.runUntil(() => h.c.replicas[1]!.hydra!.stream(1)!.final !== null, 50_000);
    const mergedOnFinal = h.c.replicas[1]!.hydra!.stream(1)!.next - 1;
    quiesce(h);
    allSame(h);
    expect(cut()).toBeGreaterThan(0);
    expect(mergedOnFinal).toBe(s1.lastStamped);
    const e1 = of(h, 1);
    const end = e1[e1.length - 1]!;
    expect(end.src!.end).toBe(true);
    // The race: the leader ended the stream at or before the FINAL's seq, over what the followers had merged on the FINAL's word.
    expect(end.src!.seq).toBeLessThanOrEqual(s1.lastStamped);
    expect(h.c.replicas[1]!.hydra!.stream(1)!.next - 1).toBe(end.src!.seq);
    for (const r of h.c.replicas) expect(r!.hydra!.stream(1)!.ended).toBe(true);
  });
});

describe('hydra metrics', () => {
  it("replica/README.md's Hydra metrics table lists exactly the fields hydraMetrics returns", () => {
    const h = harness({ sequencers: 2, clients: 1, net: NET, hydra: { flushIntervalUs: 1_000 } });
    h.c.startWorkload(5);
    quiesce(h);
    const m = hydraMetrics(h.c.replicas[0]!.hydra!);
    const fields = new Set([...Object.keys(m), ...Object.keys(m.sequencers[0]!)]);
    const rows = tableUnder(join(import.meta.dirname, '../../replica/README.md'), 'Hydra metrics');
    const documented = new Set(rows.map((r) => r['field']!.replace(/`/g, '')));
    expect([...documented].sort()).toEqual([...fields].sort());
    expect(m.sequencers.map((q) => q.frontierLagNs !== null)).toEqual([true, true]);
  });
});

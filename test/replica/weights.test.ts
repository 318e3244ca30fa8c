// Weight reassignment as the replicas apply it at log positions: integrity
// holds for every committed table, a change that would break it commits as
// a no-op change, and read_changes is the same on every replica.
import { describe, expect, it } from 'vitest';
import { certifies, integrityIssue } from '../../bpf/quorum.ts';
import { Prng } from '../../replica/sim/prng.ts';
import { type WeightChange, WeightLedger } from '../../replica/weights.ts';

const start = () => new WeightLedger({ version: 1, weights: [1, 1, 1, 1, 1], f: 2 });

describe('weight reassignment (deterministic, at log positions)', () => {
  it('a reassign and a transfer that keep integrity apply and bump the version', () => {
    const l = new WeightLedger({ version: 1, weights: [2, 2, 2, 2, 2], f: 1 });
    expect(l.apply(10, { kind: 'reassign', member: 4, delta: -1 })).toMatchObject({ delta: -1, version: 2 });
    expect(l.apply(11, { kind: 'transfer', from: 0, to: 4, amount: 1 })).toMatchObject({ delta: -1, version: 3 });
    expect(l.table).toEqual({ version: 3, weights: [1, 2, 2, 2, 2], f: 1 });
    expect(l.readChanges(0)).toEqual([{ pos: 11, change: { kind: 'transfer', from: 0, to: 4, amount: 1 }, delta: -1, version: 3 }]);
    expect(l.readChanges(4).map((r) => r.delta)).toEqual([-1, 1]);
  });

  it('refuses a table where fewer than a majority of members could certify (the view change counts members), even when f allows it', () => {
    // f = 1: integrity alone would take 2/2/2/1/0, but members 0 and 1
    // (4 of 7) would certify alone, and a view change among 2, 3, 4 would
    // never hear of their writes.
    const l = new WeightLedger({ version: 1, weights: [2, 2, 2, 1, 1], f: 1 });
    const rec = l.apply(1, { kind: 'reassign', member: 4, delta: -1 });
    expect(rec.refused).toMatch(/quorum intersection: the 2 heaviest members 0 \(weight 2\), 1 \(weight 2\) hold 4 of the total weight 7/);
    expect(l.table.version).toBe(1);
    // Leaving the slow member out entirely is fine: 1/1/1/1/0 needs 3 of the 4 others.
    const m = new WeightLedger({ version: 1, weights: [1, 1, 1, 1, 1], f: 1 });
    expect(m.apply(1, { kind: 'reassign', member: 4, delta: -1 })).toMatchObject({ delta: -1, version: 2 });
    expect(() => new WeightLedger({ version: 1, weights: [2, 2, 1, 1, 0], f: 1 })).toThrow(/quorum intersection/);
  });

  it('a snapshot restores the same table, history and position', () => {
    const l = start();
    l.apply(4, { kind: 'reassign', member: 1, delta: 1 });
    l.apply(9, { kind: 'transfer', from: 0, to: 2, amount: 1 });
    const r = WeightLedger.fromSnapshot(l.snapshot());
    expect(r.table).toEqual(l.table);
    for (let m = 0; m < 5; m++) expect(r.readChanges(m)).toEqual(l.readChanges(m));
    expect(() => r.apply(9, { kind: 'reassign', member: 0, delta: 0 })).toThrow(/not after 9/);
  });

  const refusals: [string, WeightChange, RegExp][] = [
    ['a weight that makes the 2 heaviest half the total', { kind: 'reassign', member: 0, delta: 2 }, /integrity: the f = 2 heaviest members 0 \(weight 3\), 1 \(weight 1\) hold 4 of the total weight 7/],
    ['a transfer that concentrates weight', { kind: 'transfer', from: 3, to: 0, amount: 1 }, /integrity: the f = 2 heaviest members 0 \(weight 2\), 1 \(weight 1\) hold 3 of the total weight 5/],
    ['a negative weight', { kind: 'reassign', member: 2, delta: -2 }, /member 2 would weigh -1, outside 0\.\.255/],
    ['a member that does not exist', { kind: 'reassign', member: 7, delta: 1 }, /member 7 is not 0\.\.4/],
    ['a transfer of nothing', { kind: 'transfer', from: 1, to: 2, amount: 0 }, /a transfer moves a positive amount/],
  ];
  it.each(refusals)('%s commits as a no-op change, reported to the proposer and in read_changes', (_name, change, why) => {
    const l = start();
    const rec = l.apply(5, change);
    expect(rec.refused).toMatch(why);
    expect(rec).toMatchObject({ pos: 5, delta: 0, version: 1 });
    expect(l.table).toEqual({ version: 1, weights: [1, 1, 1, 1, 1], f: 2 });
    const m = change.kind === 'reassign' ? change.member : change.from;
    if (m < 5) expect(l.readChanges(m)).toEqual([rec]);
  });

  it('refuses an initial table without integrity, and log positions that go back', () => {
    expect(() => new WeightLedger({ version: 1, weights: [3, 1, 1], f: 1 })).toThrow(/integrity/);
    const l = start();
    l.apply(3, { kind: 'reassign', member: 0, delta: 0 });
    expect(() => l.apply(3, { kind: 'reassign', member: 0, delta: 0 })).toThrow(/not after 3/);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: random racing reassignments on 3 replicas: same tables and histories, integrity always, quorums intersect', (seed) => {
    const rng = new Prng(seed);
    const n = rng.int(3, 8);
    const f = rng.int(0, Math.floor((n - 1) / 2));
    const replicas = [0, 1, 2].map(() => new WeightLedger({ version: 1, weights: Array(n).fill(1), f }));
    // Proposals race; the total order decides one sequence. A replica that
    // crashed and recovered replays the same log, so it ends the same.
    let refused = 0;
    for (let pos = 1; pos <= 300; pos++) {
      const change: WeightChange = rng.chance(0.5)
        ? { kind: 'reassign', member: rng.int(0, n - 1), delta: rng.int(-3, 4) }
        : { kind: 'transfer', from: rng.int(0, n - 1), to: rng.int(0, n - 1), amount: rng.int(1, 3) };
      const before = replicas[0]!.table;
      const recs = replicas.map((r) => r.apply(pos, change));
      expect(recs[1]).toEqual(recs[0]);
      expect(recs[2]).toEqual(recs[0]);
      const t = replicas[0]!.table;
      expect(integrityIssue(t.weights.map((weight, id) => ({ id, weight })), f)).toBeUndefined();
      if (recs[0]!.refused) {
        refused++;
        expect(t).toBe(before);
      }
      // Two acked sets that each certify under the same table share a member.
      const total = t.weights.reduce((a, b) => a + b, 0);
      for (let k = 0; k < 4; k++) {
        const leader = rng.int(0, n - 1);
        const a = rng.int(0, (1 << n) - 1) | (1 << leader);
        const b = rng.int(0, (1 << n) - 1) | (1 << leader);
        const qa = certifies(a, leader, { weights: t.weights, quorum: 0 });
        const qb = certifies(b, leader, { weights: t.weights, quorum: 0 });
        if (qa && qb) expect(a & b, `${a} ${b} under ${t.weights} (total ${total})`).not.toBe(0);
      }
      // A certifying set meets every majority by count (what a view change waits for).
      for (let k = 0; k < 4; k++) {
        const leader = rng.int(0, n - 1);
        const a = rng.int(0, (1 << n) - 1) | (1 << leader);
        const ids = Array.from({ length: n }, (_, i) => i).sort(() => rng.int(-1, 1));
        const maj = ids.slice(0, Math.floor(n / 2) + 1).reduce((x, i) => x | (1 << i), 0);
        if (certifies(a, leader, { weights: t.weights, quorum: 0 })) expect(a & maj, `${a} vs majority ${maj} under ${t.weights}`).not.toBe(0);
      }
      // Any n - f survivors still hold more than half.
      const lightest = [...t.weights].sort((x, y) => x - y).slice(0, n - f).reduce((a2, b2) => a2 + b2, 0);
      expect(2 * lightest).toBeGreaterThan(total);
    }
    expect(refused).toBeGreaterThan(0);
    for (let m = 0; m < n; m++) {
      expect(replicas[1]!.readChanges(m)).toEqual(replicas[0]!.readChanges(m));
      expect(replicas[2]!.readChanges(m)).toEqual(replicas[0]!.readChanges(m));
    }
  });
});

// The KV application (examples/kv): ops and results as bytes, the store's
// semantics, determinism and snapshots, that no input can make it throw,
// and the committed-log recorder behind the replicas' debug dump.
import { describe, expect, it } from 'vitest';
import { CommittedLog } from '../examples/kv/committed-log.ts';
import { LatencyHist } from '../examples/kv/latency.ts';
import { decodeOp, decodeResult, encodeOp, KvError, MAX_KEY, MAX_VALUE, type Op } from '../examples/kv/ops.ts';
import { KvStore } from '../examples/kv/store.ts';
import { SimCluster } from '../replica/sim/cluster.ts';

const b = (s: string) => new Uint8Array(Buffer.from(s));
const run = (s: KvStore, op: Op) => decodeResult(s.execute(encodeOp(op)));

describe('KV ops on the wire', () => {
  it('every op round-trips, at the largest key and values too', () => {
    const key = new Uint8Array(MAX_KEY).fill(0xff);
    const val = new Uint8Array(MAX_VALUE).fill(1);
    const ops: Op[] = [
      { kind: 'get', key: b('k') },
      { kind: 'put', key, value: val },
      { kind: 'put', key: b('k'), value: new Uint8Array(0) },
      { kind: 'cas', key, expected: val, value: val },
      { kind: 'cas', key: b('k'), expected: null, value: b('v') },
      { kind: 'cas', key: b('k'), expected: new Uint8Array(0), value: b('v') },
    ];
    for (const op of ops) expect(decodeOp(encodeOp(op))).toEqual(op);
  });

  it('refuses keys and values that would not fit a result', () => {
    expect(() => encodeOp({ kind: 'get', key: new Uint8Array(0) })).toThrow(KvError);
    expect(() => encodeOp({ kind: 'get', key: new Uint8Array(MAX_KEY + 1) })).toThrow(KvError);
    expect(() => encodeOp({ kind: 'put', key: b('k'), value: new Uint8Array(MAX_VALUE + 1) })).toThrow(KvError);
  });

  it('the largest result fits the 256 bytes the sequencer carries in a REPLY', () => {
    const s = new KvStore();
    const big = new Uint8Array(MAX_VALUE).fill(9);
    s.execute(encodeOp({ kind: 'put', key: b('k'), value: big }));
    expect(s.execute(encodeOp({ kind: 'get', key: b('k') })).length).toBeLessThanOrEqual(256);
    expect(s.execute(encodeOp({ kind: 'cas', key: b('k'), expected: b('x'), value: b('y') })).length).toBeLessThanOrEqual(256);
  });
});

describe('KV store', () => {
  it('get, put and compare-and-set', () => {
    const s = new KvStore();
    expect(run(s, { kind: 'get', key: b('a') })).toEqual({ status: 'not-found' });
    expect(run(s, { kind: 'cas', key: b('a'), expected: b('x'), value: b('1') })).toEqual({ status: 'mismatch', current: null });
    expect(run(s, { kind: 'cas', key: b('a'), expected: null, value: b('1') })).toEqual({ status: 'ok' });
    expect(run(s, { kind: 'cas', key: b('a'), expected: null, value: b('2') })).toEqual({ status: 'mismatch', current: b('1') });
    expect(run(s, { kind: 'cas', key: b('a'), expected: b('1'), value: b('2') })).toEqual({ status: 'ok' });
    expect(run(s, { kind: 'put', key: b('a'), value: b('3') })).toEqual({ status: 'ok' });
    expect(run(s, { kind: 'get', key: b('a') })).toEqual({ status: 'found', value: b('3') });
    expect(s.size).toBe(1);
  });

  it('keeps its own copy of values: the op buffer may be reused', () => {
    const s = new KvStore();
    const op = encodeOp({ kind: 'put', key: b('k'), value: b('abc') });
    s.execute(op);
    op.fill(0);
    expect(run(s, { kind: 'get', key: b('k') })).toEqual({ status: 'found', value: b('abc') });
  });

  it('never throws: malformed and random bytes get BAD_OP and change nothing', () => {
    const s = new KvStore();
    s.execute(encodeOp({ kind: 'put', key: b('k'), value: b('v') }));
    const before = s.digest();
    const bad = [new Uint8Array(0), Uint8Array.of(1), Uint8Array.of(9, 1, 65), Uint8Array.of(1, 0), Uint8Array.of(1, 2, 65), Uint8Array.of(2, 1, 65, 5, 1), Uint8Array.of(3, 1, 65, 0, 1, 66, 0)];
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      const n = (seed = (seed * 48271) % 2147483647) % 40;
      bad.push(Uint8Array.from({ length: n }, () => (seed = (seed * 48271) % 2147483647) % 8));
    }
    let refused = 0;
    for (const op of bad) {
      const r = decodeResult(s.execute(op));
      if (r.status === 'bad-op') refused++;
      else expect(decodeOp(op)).not.toBeNull();
    }
    expect(refused).toBeGreaterThan(bad.length / 2);
    // Random ops that did decode may have written: replay them on a copy to compare.
    const again = new KvStore();
    again.execute(encodeOp({ kind: 'put', key: b('k'), value: b('v') }));
    expect(again.digest()).toBe(before);
    for (const op of bad) again.execute(op);
    expect(again.digest()).toBe(s.digest());
  });

  it('is deterministic, and snapshot/restore carries the whole state', () => {
    const ops: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const key = b(`k${(i * 7919) % 97}`);
      ops.push(encodeOp(i % 3 === 0 ? { kind: 'put', key, value: b(`v${i}`) } : i % 3 === 1 ? { kind: 'cas', key, expected: b(`v${i - 1}`), value: b(`w${i}`) } : { kind: 'get', key }));
    }
    const x = new KvStore();
    const y = new KvStore();
    const rx = ops.map((o) => Buffer.from(x.execute(o)).toString('hex'));
    const ry = ops.map((o) => Buffer.from(y.execute(o)).toString('hex'));
    expect(rx).toEqual(ry);
    expect(Buffer.from(x.snapshot())).toEqual(Buffer.from(y.snapshot()));
    const z = new KvStore();
    z.restore(x.snapshot());
    expect(z.digest()).toBe(x.digest());
    expect(Buffer.from(z.snapshot())).toEqual(Buffer.from(x.snapshot()));
    // And from there it goes on exactly like the original.
    const more = encodeOp({ kind: 'cas', key: b('k1'), expected: x.get(b('k1')) ?? null, value: b('z') });
    expect(Buffer.from(z.execute(more))).toEqual(Buffer.from(x.execute(more)));
    expect(z.digest()).toBe(x.digest());
    const empty = new KvStore();
    z.restore(empty.snapshot());
    expect(z.size).toBe(0);
    expect(() => z.restore(Uint8Array.of(0, 0, 0, 1))).toThrow();
  });
});

describe('committed-log recorder', () => {
  it('records every committed entry although replicas truncate their logs, identically on every replica', () => {
    const c = new SimCluster({ n: 3, seed: 11, clients: 3 });
    const logs = c.replicas.map((r) => new CommittedLog(r!));
    c.afterEvent = () => logs.forEach((l) => l.catchUp());
    c.startWorkload(150);
    expect(c.runUntil(() => c.pendingRequests === 0 && c.certified.length === 450 && c.converged(), 5_000_000)).toBe(true);
    const dumps = logs.map((l) => l.dump('-'));
    for (const r of c.live()) expect(r.log.firstSlot).toBeGreaterThan(100);
    const committed = dumps[0]!.committed;
    expect(committed).toBeGreaterThanOrEqual(450);
    for (const d of dumps) {
      expect(d).toMatchObject({ committed, gaps: [], conflicts: 0 });
      expect(d.entries.map((e) => e.slot)).toEqual(Array.from({ length: committed }, (_, i) => i + 1));
      expect(d.entries).toEqual(dumps[0]!.entries);
    }
  });

  it('with loss, a follower that caught up by state transfer has a gap; everything else agrees', () => {
    // Whether a follower falls behind the leader's truncation point depends
    // on where the loss falls, and any protocol change moves that: runs go
    // seed by seed (each checked in full) until one has the case this test
    // is for, within a bound.
    let gapSeed = 0;
    for (let seed = 1; seed <= 60 && !gapSeed; seed++) {
      const c = new SimCluster({ n: 3, seed, clients: 3, net: { loss: 0.03 } });
      const logs = c.replicas.map((r) => new CommittedLog(r!));
      c.afterEvent = () => logs.forEach((l) => l.catchUp());
      c.startWorkload(150);
      expect(c.runUntil(() => c.pendingRequests === 0 && c.certified.length === 450 && c.converged(), 5_000_000), `seed ${seed}`).toBe(true);
      const dumps = logs.map((l) => l.dump('-'));
      const bySlot = new Map<number, string>();
      for (const d of dumps) {
        expect(d.conflicts, `seed ${seed}`).toBe(0);
        for (const e of d.entries) {
          const s = JSON.stringify(e);
          expect(bySlot.get(e.slot) ?? s, `seed ${seed}`).toBe(s);
          bySlot.set(e.slot, s);
        }
        // Recorded and skipped slots together are exactly 1..committed.
        const skipped = d.gaps.reduce((a, g) => a + g.to - g.from + 1, 0);
        expect(d.entries.length + skipped, `seed ${seed}`).toBe(d.committed);
      }
      expect(bySlot.size, `seed ${seed}`).toBe(dumps[0]!.committed);
      if (dumps.some((d) => d.gaps.length > 0)) gapSeed = seed;
    }
    // The case this test is for happened.
    expect(gapSeed, 'no seed in 1..60 left a follower with a gap').toBeGreaterThan(0);
  });

  it('a replica that came back by state transfer records the slots it skipped as a gap', () => {
    const c = new SimCluster({ n: 3, seed: 5, clients: 2 });
    const logs = c.replicas.map((r) => new CommittedLog(r!));
    c.afterEvent = () => logs.forEach((l) => l.catchUp());
    c.startWorkload(100);
    c.runUntil(() => c.certified.length >= 80, 5_000_000);
    c.crash(2);
    c.runUntil(() => c.certified.length >= 160, 5_000_000);
    c.restart(2);
    logs[2] = new CommittedLog(c.replicas[2]!);
    expect(c.runUntil(() => c.pendingRequests === 0 && c.certified.length === 200 && c.converged(), 5_000_000)).toBe(true);
    const [a, , r] = logs.map((l) => l.dump('-'));
    expect(r!.gaps.length).toBe(1);
    expect(r!.gaps[0]!.from).toBe(1);
    const skipped = r!.gaps[0]!.to;
    expect(skipped).toBeGreaterThan(100);
    expect(r!.entries).toEqual(a!.entries.slice(skipped));
  });
});

describe('latency histogram', () => {
  it('quantiles of merged histograms are within one bucket (4.4 %) of the exact ones', () => {
    const xs = Array.from({ length: 10_000 }, (_, i) => 50 + ((i * 7919) % 5000));
    const h1 = new LatencyHist();
    const h2 = new LatencyHist();
    xs.forEach((x, i) => (i % 2 ? h1 : h2).record(x));
    const sorted = [...xs].sort((p, q) => p - q);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = sorted[Math.ceil(q * xs.length) - 1]!;
      const est = LatencyHist.quantile([h1.toJSON(), h2.toJSON()], q);
      expect(est).toBeGreaterThanOrEqual(exact);
      expect(est / exact).toBeLessThan(1.045);
    }
    expect(LatencyHist.quantile([], 0.5)).toBe(0);
  });
});

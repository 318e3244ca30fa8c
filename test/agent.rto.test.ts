// The adaptive retransmission timeout (agent/rto.ts): RFC 6298's estimator
// on numbers worked by hand, its clamps, and how REPLY counts read from the
// kernel's stamp-to-quorum histogram become samples.
import { describe, expect, it } from 'vitest';
import { feedHistogram, MAX_SAMPLES_PER_READ, RtoEstimator } from '../agent/rto.ts';

const MS = 1_000_000;

describe('RtoEstimator (RFC 6298)', () => {
  it('starts at the minimum; the first sample R gives SRTT R, RTTVAR R/2, RTO R + 4 x R/2', () => {
    const e = new RtoEstimator(20 * MS, 1000 * MS);
    expect(e.rtoNs).toBe(20 * MS);
    expect(e.srttNs).toBeUndefined();
    e.sample(10 * MS);
    expect(e.srttNs).toBe(10 * MS);
    expect(e.rttvarNs).toBe(5 * MS);
    expect(e.rtoNs).toBe(30 * MS);
  });

  it('later samples: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R', () => {
    const e = new RtoEstimator(1 * MS, 1000 * MS);
    e.sample(10 * MS); // srtt 10, rttvar 5
    e.sample(18 * MS); // rttvar 0.75*5 + 0.25*8 = 5.75; srtt 8.75 + 2.25 = 11
    expect(e.rttvarNs).toBeCloseTo(5.75 * MS, 0);
    expect(e.srttNs).toBeCloseTo(11 * MS, 0);
    expect(e.rtoNs).toBe(Math.round(11 * MS + 4 * 5.75 * MS)); // 34 ms
  });

  it('never below the configured RTO nor above the maximum', () => {
    const e = new RtoEstimator(20 * MS, 200 * MS);
    for (let i = 0; i < 50; i++) e.sample(0.05 * MS);
    expect(e.rtoNs).toBe(20 * MS);
    for (let i = 0; i < 50; i++) e.sample(5000 * MS);
    expect(e.rtoNs).toBe(200 * MS);
  });

  it('steady samples converge to SRTT + the clock granularity', () => {
    const e = new RtoEstimator(1 * MS, 1000 * MS);
    for (let i = 0; i < 200; i++) e.sample(40 * MS);
    expect(e.srttNs).toBeCloseTo(40 * MS, -3);
    expect(e.rtoNs).toBeGreaterThanOrEqual(41 * MS);
    expect(e.rtoNs).toBeLessThan(41.1 * MS);
  });

  it('a loaded group whose quorums take 30..60 ms gets an RTO above them, not the 20 ms floor', () => {
    const e = new RtoEstimator(20 * MS, 1000 * MS);
    // A fixed pseudo-random walk over 30..60 ms.
    let x = 7;
    for (let i = 0; i < 500; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      e.sample((30 + (x % 31)) * MS);
    }
    expect(e.rtoNs).toBeGreaterThan(60 * MS);
    expect(e.rtoNs).toBeLessThan(120 * MS);
  });

  it('ignores samples that are not times, and refuses bounds that are not', () => {
    const e = new RtoEstimator(20 * MS, 1000 * MS);
    e.sample(Number.NaN);
    e.sample(-1);
    e.sample(Infinity);
    expect(e.srttNs).toBeUndefined();
    expect(() => new RtoEstimator(0, 10)).toThrow(RangeError);
    expect(() => new RtoEstimator(10, 5)).toThrow(RangeError);
  });
});

describe('feedHistogram: histogram deltas as samples', () => {
  const hist = (entries: Record<number, number>) => Array.from({ length: 40 }, (_, i) => BigInt(entries[i] ?? 0));

  it('feeds each REPLY since the last read at its bucket middle (1.5 x 2^i ns)', () => {
    const e = new RtoEstimator(1, 1e12, 1);
    // 3 new REPLYs, all in bucket 20: [1.05 ms, 2.1 ms).
    expect(feedHistogram(e, hist({ 20: 5 }), hist({ 20: 8 }))).toBe(3);
    expect(e.srttNs).toBe(1.5 * 2 ** 20);
  });

  it('nothing new: no sample; a counter that went back (a new map): no sample', () => {
    const e = new RtoEstimator(1, 1e12, 1);
    expect(feedHistogram(e, hist({ 20: 5 }), hist({ 20: 5 }))).toBe(0);
    expect(feedHistogram(e, hist({ 20: 5 }), hist({ 20: 1, 21: 9 }))).toBe(0);
    expect(e.srttNs).toBeUndefined();
  });

  it('spreads each bucket through the sequence, so a spread of times ends near its middle, not at one end', () => {
    const low = new RtoEstimator(1, 1e12, 1);
    feedHistogram(low, hist({}), hist({ 20: 50, 24: 50 }));
    const mid = (1.5 * 2 ** 20 + 1.5 * 2 ** 24) / 2;
    expect(low.srttNs!).toBeGreaterThan(mid / 2);
    expect(low.srttNs!).toBeLessThan(mid * 1.5);
    // And the spread shows in RTTVAR: the RTO covers the slow bucket.
    expect(low.rtoNs).toBeGreaterThan(1.5 * 2 ** 24);
  });

  it('Karn, approximately: the slowest samples are left out, as many as the needed re-sends', () => {
    const all = new RtoEstimator(1, 1e12, 1);
    const karn = new RtoEstimator(1, 1e12, 1);
    // 90 quick quorums, 10 that waited for a re-send (bucket 25: ~50 ms).
    const h = hist({ 20: 90, 25: 10 });
    expect(feedHistogram(all, hist({}), h)).toBe(100);
    expect(feedHistogram(karn, hist({}), h, 10)).toBe(100);
    // Kept, the 10 % slow ones lift the RTO near their ~50 ms; left out,
    // it stays at what the unharmed requests take.
    expect(all.rtoNs).toBeGreaterThan(30 * MS);
    expect(karn.srttNs).toBe(1.5 * 2 ** 20);
    expect(karn.rtoNs).toBeLessThan(2 ** 21);
    // Dropping everything feeds nothing.
    const none = new RtoEstimator(1, 1e12, 1);
    expect(feedHistogram(none, hist({}), h, 500)).toBe(100);
    expect(none.srttNs).toBeUndefined();
  });

  it(`a busy interval costs at most ${MAX_SAMPLES_PER_READ} samples, every non-empty bucket at least one`, () => {
    const e = new RtoEstimator(1, 1e12, 1);
    let n = 0;
    const counting = new Proxy(e, {
      get(t, p) {
        if (p === 'sample') return (v: number) => (n++, t.sample(v));
        return Reflect.get(t, p, t);
      },
    });
    expect(feedHistogram(counting, hist({}), hist({ 10: 1, 20: 100_000, 21: 100_000 }))).toBe(200_001);
    expect(n).toBeLessThanOrEqual(MAX_SAMPLES_PER_READ + 1);
    expect(n).toBeGreaterThan(MAX_SAMPLES_PER_READ - 3);
  });
});

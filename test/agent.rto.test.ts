// The adaptive retransmission timeout (agent/rto.ts): RFC 6298's estimator
// on numbers worked by hand and its clamps. Where its samples come from
// (the retransmitter's scan) is tested in agent.retransmit.test.ts.
import { describe, expect, it } from 'vitest';
import { RtoEstimator } from '../agent/rto.ts';

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

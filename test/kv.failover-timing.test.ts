// The failover arithmetic of examples/kv/failover-timing.ts on made-up
// completion times (the namespace tests and the bench feed it real ones).
import { describe, expect, it } from 'vitest';
import { failoverTiming } from '../examples/kv/failover-timing.ts';

describe('failover timing', () => {
  it('resumes at the first completion after the longest silence following the kill; the dip compares the 2 s around it with the 2 s before', () => {
    const every = (from: number, to: number, step: number) => Array.from({ length: Math.floor((to - from) / step) }, (_, i) => from + i * step);
    // 100 ops/s until 10 s; two stragglers at 10.02 and 10.05 s; nothing until 10.4 s; then 100/s again.
    const t = [...every(0, 10_000, 10), 10_020, 10_050, ...every(10_400, 14_000, 10)];
    const f = failoverTiming(t, 10_000);
    expect(f.failoverMs).toBe(400);
    expect(f.stallMs).toBe(350);
    expect(f.opsPerSecBefore).toBe(100);
    // [9 s, 11 s): 100 before the kill, 2 stragglers, 60 after 10.4 s.
    expect(f.opsPerSecAround).toBe(81);
    expect(f.dipRatio).toBe(0.81);
  });

  it('the first stall counts, not a longer one later; no stall at all is 0', () => {
    const every = (from: number, to: number, step: number) => Array.from({ length: Math.floor((to - from) / step) }, (_, i) => from + i * step);
    const t = [...every(0, 10_000, 10), ...every(10_300, 11_000, 10), ...every(12_000, 13_000, 10)];
    expect(failoverTiming(t, 10_000)).toMatchObject({ failoverMs: 300, stallMs: 310 });
    expect(failoverTiming(every(0, 20_000, 10), 10_000)).toMatchObject({ failoverMs: 0, stallMs: 0 });
  });

  it('with the survivor known to serve from some time on: the first completion from then', () => {
    const every = (from: number, to: number, step: number) => Array.from({ length: Math.floor((to - from) / step) }, (_, i) => from + i * step);
    // Stragglers through the dying host until 10.15 s; the standby took over at 10.3 s.
    const t = [...every(0, 10_000, 10), 10_150, ...every(10_420, 12_000, 10)];
    expect(failoverTiming(t, 10_000, { survivorFromMs: 10_300 })).toMatchObject({ failoverMs: 420, stallMs: 270 });
    expect(failoverTiming(every(0, 10_000, 10), 10_000, { survivorFromMs: 10_300 }).failoverMs).toBe(Infinity);
  });

  it('no completion after the kill: failover never happened', () => {
    expect(failoverTiming([1, 2, 3], 10).failoverMs).toBe(Infinity);
  });
});

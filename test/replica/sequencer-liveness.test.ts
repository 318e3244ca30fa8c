// Dead-sequencer detection and solicit back-off (replica/sequencer-liveness.ts)
// and their configuration (replica/config.ts). Driven by a virtual clock: the
// engine calls `due` at `nextAt`, so does this test.
import { describe, expect, it } from 'vitest';
import { configWith, DEAD_SEQUENCER_FLUSHES, DEFAULT_CONFIG } from '../../replica/config.ts';
import { SequencerLiveness } from '../../replica/sequencer-liveness.ts';

const cfg = configWith(undefined);

/** Runs the liveness of one stream from `from` to `to` as the engine would; returns what it said when. */
function run(l: SequencerLiveness, from: number, to: number): { solicits: number[]; suspects: number[] } {
  const out = { solicits: [] as number[], suspects: [] as number[] };
  let now = from;
  for (;;) {
    const at = l.nextAt();
    if (at > to) return out;
    now = Math.max(now, at);
    const v = l.due(now);
    if (v === 'solicit') out.solicits.push(now);
    if (v === 'suspect') out.suspects.push(now);
  }
}

describe('sequencer liveness', () => {
  it('a dead sequencer that blocks: solicits back off, one suspicion after the timeout', () => {
    const l = new SequencerLiveness(cfg, 0);
    l.heard(0);
    l.blocking(0, true);
    const { solicits, suspects } = run(l, 0, 1_000_000);
    expect(suspects).toEqual([cfg.deadSequencerUs]);
    // 1, 2, 4 ... ms apart, then every solicitBackoffMaxUs.
    expect(solicits.slice(0, 5)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
    const gaps = solicits.slice(1).map((t, i) => t - solicits[i]!);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThanOrEqual(gaps[i - 1]!);
    expect(Math.max(...gaps)).toBe(cfg.solicitBackoffMaxUs);
    // One second of a dead address: 7 doubling (1..64 ms), then one per 50 ms
    // up to 1 s (114..964 ms): 25 solicits, where a fixed 1 ms period sent 1000.
    expect(solicits.length).toBe(7 + 18);
  });

  it('a live sequencer that answers is never suspected, and its solicits start over at the short period', () => {
    const l = new SequencerLiveness(cfg, 0);
    l.blocking(0, true);
    let now = 0;
    let solicits = 0;
    while (now < 2_000_000) {
      now = l.nextAt();
      const v = l.due(now);
      expect(v).not.toBe('suspect');
      if (v === 'solicit') {
        solicits++;
        // Answered within a 300 us round trip.
        l.heard(now + 300);
        // Hearing it never puts off a solicit already due: the period stays the short one.
        expect(l.nextAt()).toBe(now + cfg.flushSolicitUs);
      }
    }
    expect(solicits).toBeGreaterThan(1000);
    expect(l.unanswered).toBe(0);
  });

  it('silence while it blocks nothing is no suspicion (an idle group decides nothing)', () => {
    const l = new SequencerLiveness(cfg, 0);
    l.heard(0);
    expect(run(l, 0, 10 * cfg.deadSequencerUs)).toEqual({ solicits: [], suspects: [] });
    // Blocking after a long silence: the silence counts, it is suspected at once.
    l.blocking(10 * cfg.deadSequencerUs, true);
    expect(l.due(10 * cfg.deadSequencerUs)).toBe('suspect');
    expect(l.suspected).toBe(true);
    // Heard again (it was alive after all): the suspicion is over.
    l.heard(10 * cfg.deadSequencerUs + 5);
    expect(l.suspected).toBe(false);
  });

  it('never heard from: silence counts from when the stream became known', () => {
    const l = new SequencerLiveness(cfg, 1_000);
    l.blocking(1_000, true);
    expect(run(l, 1_000, 1_000 + cfg.deadSequencerUs).suspects).toEqual([1_000 + cfg.deadSequencerUs]);
  });

  it('unblocking stops the solicits', () => {
    const l = new SequencerLiveness(cfg, 0);
    l.blocking(0, true);
    expect(run(l, 0, 3_000).solicits).toEqual([1_000, 2_000]);
    l.blocking(3_000, false);
    expect(l.nextAt()).toBe(Infinity);
    expect(l.due(50_000)).toBe('wait');
  });
});

describe('dead-sequencer configuration', () => {
  it('defaults to DEAD_SEQUENCER_FLUSHES flush intervals, and follows the flush interval', () => {
    expect(cfg.deadSequencerUs).toBe(DEAD_SEQUENCER_FLUSHES * DEFAULT_CONFIG.flushIntervalUs);
    expect(configWith({ flushIntervalUs: 10_000 }).deadSequencerUs).toBe(DEAD_SEQUENCER_FLUSHES * 10_000);
    expect(configWith({ flushIntervalUs: 10_000, deadSequencerUs: 300_000 }).deadSequencerUs).toBe(300_000);
  });

  it('refuses a timeout a live sequencer would trip, and a back-off below the solicit period', () => {
    expect(() => configWith({ flushIntervalUs: 2_000, deadSequencerUs: 2_000 })).toThrow(/deadSequencerUs=2000 must be more than flushIntervalUs=2000/);
    expect(() => configWith({ solicitBackoffMaxUs: 500 })).toThrow(/solicitBackoffMaxUs=500 must be at least flushSolicitUs=1000/);
    expect(() => configWith({ deadSequencerUs: 0 })).toThrow(/must be a positive number/);
  });
});

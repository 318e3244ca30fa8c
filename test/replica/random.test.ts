// The randomized simulation: many seeds, each a whole cluster under loss,
// duplication, reordering, crashes, partitions and failovers, with the
// safety invariants checked after every event and liveness at the end
// (replica/sim/random-run.ts, replica/sim/invariants.ts).
//
//   XSEQ_SIM_SEED=1234 npx vitest run test/replica/random.test.ts     one seed, with a message trace
//   XSEQ_SIM_SEEDS=100000 XSEQ_SIM_STEPS=5000 npx vitest run test/replica/random.test.ts   a long run
//   XSEQ_SIM_FIRST_SEED=5000                                           where the seed range starts
import { afterAll, describe, expect, it } from 'vitest';
import { CLIENT_DEADLINE_US, HEAL_BOUND_US, type RandomRunResult } from '../../replica/sim/random-run.ts';
import { SeedRunner } from './seed-runner.ts';

const runner = new SeedRunner('XSEQ_SIM_SEEDS', 2000, 'test/replica/random.test.ts', false);
const { steps: STEPS, seeds: SEEDS, first: FIRST, results } = runner;
const CHUNK = 100;

describe(`random simulation: ${SEEDS} seeds x ${STEPS} steps from seed ${FIRST}`, () => {
  const timeout = Math.max(60_000, CHUNK * STEPS);
  for (let from = FIRST; from < FIRST + SEEDS; from += CHUNK) {
    const count = Math.min(CHUNK, FIRST + SEEDS - from);
    it(`seeds ${from}..${from + count - 1}: invariants hold after every event, everything completes after healing`, { timeout }, () => {
      const failures = runner.run(from, count);
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  if (SEEDS >= 500) {
    it('the seeds exercise every recovery path (a simulation that never hits them proves nothing)', () => {
      const sum = (k: keyof RandomRunResult): number => runner.sum(k);
      expect(sum('noops'), 'no-ops committed by gap agreement').toBeGreaterThan(50);
      expect(sum('repairMissing'), 'repairs the agent could not serve').toBeGreaterThan(50);
      expect(sum('crashes'), 'replica crashes and recoveries').toBeGreaterThan(50);
      expect(sum('isolations'), 'isolations').toBeGreaterThan(50);
      expect(sum('cuts'), 'partial partitions').toBeGreaterThan(50);
      expect(sum('failovers'), 'sequencer failovers').toBeGreaterThan(20);
      expect(sum('viewChanges'), 'view changes').toBeGreaterThan(100);
      expect(results.filter((r) => r.n === 5).length, 'five-replica groups').toBeGreaterThan(SEEDS / 10);
    });
  }

  afterAll(() => {
    if (results.length === 0) return;
    const events = results.reduce((a, r) => a + r.events, 0);
    const certified = results.reduce((a, r) => a + r.certified, 0);
    const s = runner.elapsedMs / 1000;
    const max = (k: 'maxOpUs' | 'healToDoneUs' | 'virtualUs'): string => Math.max(...results.map((r) => r[k])).toFixed(0);
    console.log(
      `random simulation: ${results.length} seeds x ${STEPS} steps in ${s.toFixed(1)} s ` +
        `(${(results.length / s).toFixed(0)} seeds/s, ${(events / s / 1000).toFixed(0)}k steps/s), ${certified} certified replies` +
        `; longest op ${max('maxOpUs')} us (deadline ${CLIENT_DEADLINE_US}), longest heal-to-done ${max('healToDoneUs')} us (bound ${HEAL_BOUND_US}), longest run ${max('virtualUs')} us virtual`,
    );
  });
});

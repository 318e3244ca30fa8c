// The randomized simulation in Hydra mode (replica/sim/random-run.ts with
// hydra: true): 2-4 sequencers with skewed, drifting, coarse clocks whose raw
// stamps are not monotonic in seq, periodic and solicited flushes, often one
// idle sequencer, extra loss on one sequencer's path, sequencer removal
// (FINAL flush, sometimes raced by an operator's remove op), sequencer
// hosts dying for good or coming back with a new session (the replicas end
// the dead stream by agreement and start the new one under the same id),
// plus every replica fault of the single-sequencer run. The
// invariants run after every event: one committed (merged) order on every
// replica, certified requests never lost or moved, every application
// history equal to the committed order with at-most-once filtering; clean
// profiles also bound how long an idle sequencer may hold delivery back.
// Liveness: after the last fault heals every open op completes within
// HEAL_BOUND_US, or FAILOVER_HEAL_BOUND_US (plus the dead-sequencer
// timeout) when a sequencer host died.
//
//   XSEQ_SIM_SEED=1234 npx vitest run test/replica/hydra-random.test.ts     one seed, with a message trace
//   XSEQ_SIM_HYDRA_SEEDS=20000 XSEQ_SIM_STEPS=3000 npx vitest run test/replica/hydra-random.test.ts
//   XSEQ_SIM_FIRST_SEED=5000                                                 where the seed range starts
import { afterAll, describe, expect, it } from 'vitest';
import { CLIENT_DEADLINE_US, FAILOVER_HEAL_BOUND_US, HEAL_BOUND_US, runRandom, type RandomRunResult } from '../../replica/sim/random-run.ts';
import { SeedRunner } from './seed-runner.ts';

const runner = new SeedRunner('XSEQ_SIM_HYDRA_SEEDS', 1000, 'test/replica/hydra-random.test.ts', true);
const { steps: STEPS, seeds: SEEDS, first: FIRST, results } = runner;
const CHUNK = 250;

describe(`hydra random simulation: ${SEEDS} seeds x ${STEPS} steps from seed ${FIRST}`, () => {
  const timeout = Math.max(60_000, CHUNK * STEPS);
  for (let from = FIRST; from < FIRST + SEEDS; from += CHUNK) {
    const count = Math.min(CHUNK, FIRST + SEEDS - from);
    it(`seeds ${from}..${from + count - 1}: one merged order everywhere, invariants after every event, everything completes`, { timeout }, () => {
      const failures = runner.run(from, count);
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  if (SEEDS >= 500) {
    it('the seeds exercise every Hydra path (a simulation that never hits them proves nothing)', () => {
      const sum = (k: keyof RandomRunResult): number => runner.sum(k);
      for (const k of [2, 3, 4]) expect(results.filter((r) => r.sequencers === k).length, `groups with ${k} sequencers`).toBeGreaterThan(SEEDS / 10);
      expect(sum('noops'), 'no-ops committed by gap agreement keyed by (sequencer, seq)').toBeGreaterThan(50);
      expect(sum('repairMissing'), 'repairs a sequencer agent could not serve').toBeGreaterThan(50);
      expect(sum('inversions'), 'raw clocks below the previous seq (two CPUs stamping)').toBeGreaterThan(50);
      expect(sum('solicits'), 'flush solicits').toBeGreaterThan(50);
      expect(sum('remerges'), 'followers re-merging after a no-op or the leader log').toBeGreaterThan(10);
      expect(sum('removals'), 'sequencers removed (FINAL flush)').toBeGreaterThan(20);
      expect(sum('additions'), 'sequencers added (control op in the total order)').toBeGreaterThan(20);
      expect(sum('seqCrashes'), 'sequencer hosts crashed').toBeGreaterThan(20);
      expect(sum('seqRestarts'), 'sequencer hosts back with a new session (rejoin under the same id)').toBeGreaterThan(10);
      expect(sum('removeOps'), "operators' remove ops (some racing a FINAL flush)").toBeGreaterThan(10);
      expect(sum('agreedEnds'), 'streams ended by the replicas\' agreement').toBeGreaterThan(20);
      expect(sum('crashes'), 'replica crashes and recoveries').toBeGreaterThan(50);
      expect(sum('viewChanges'), 'view changes').toBeGreaterThan(100);
      expect(results.filter((r) => r.stallChecked).length, 'clean seeds with the idle-sequencer stall bound enforced').toBeGreaterThan(SEEDS / 10);
    });
  }

  afterAll(() => {
    if (results.length === 0) return;
    const events = results.reduce((a, r) => a + r.events, 0);
    const certified = results.reduce((a, r) => a + r.certified, 0);
    const stall = Math.max(...results.filter((r) => r.stallChecked).map((r) => r.maxStallUs), 0);
    const s = runner.elapsedMs / 1000;
    const max = (k: 'maxOpUs' | 'healToDoneUs' | 'virtualUs'): string => Math.max(...results.map((r) => r[k])).toFixed(0);
    const sum = (k: keyof RandomRunResult): number => runner.sum(k);
    console.log(
      `failover: ${sum('seqCrashes')} sequencer crashes, ${sum('seqRestarts')} restarts with a new session, ${sum('removeOps')} remove ops, ${sum('agreedEnds')} streams ended by agreement; ` +
      `hydra random simulation: ${results.length} seeds x ${STEPS} steps in ${s.toFixed(1)} s ` +
        `(${(results.length / s).toFixed(0)} seeds/s, ${(events / s / 1000).toFixed(0)}k steps/s), ${certified} certified replies, ` +
        `longest stall in clean seeds ${stall.toFixed(0)} us` +
        `; longest op ${max('maxOpUs')} us (deadline ${CLIENT_DEADLINE_US}), longest heal-to-done ${max('healToDoneUs')} us (bound ${HEAL_BOUND_US}, ${FAILOVER_HEAL_BOUND_US} after a sequencer died), longest run ${max('virtualUs')} us virtual`,
    );
  });
});

// Seeds that once failed, replayed at the step count they failed with
// whatever range the environment asks for.
describe('hydra random simulation: named regressions', () => {
  it('seed 1182: a no-op tying the clock of its own stream\'s previous entry keeps that clock through the next view change (merge.ts moved it 1 ns up)', () => {
    // Before the fix: step 959, slot 9 committed as no-op (sequencer 0, seq 5)
    // at raw 2759000 in view 1 and at 2759001 by view 2's merge.
    expect(() => runRandom({ seed: 1182, steps: 1000, hydra: true })).not.toThrow();
  });
});

// The randomized simulation with weighted quorums (replica/sim/random-run.ts
// with weights: true): the sequencer certifies by weight under each slot's
// own table, and an operator proposes random reassignments and transfers
// through the total order while replicas crash, recover, get cut off and
// the sequencer fails over. Every replica applies each change at its log
// position; the sequencer (the agent's part) switches to each committed
// table. Besides the usual invariants after every event (nothing a client
// saw committed is lost, one committed order), at the end
// (replica/sim/weights.ts checkWeights): integrity and majority
// intersection for every table stamped under, every certification a quorum
// under its one table and a majority by count (so any two intersect),
// read_changes the same on every replica, each proposer told what the
// ledger recorded.
//
//   XSEQ_SIM_SEED=1234 npx vitest run test/replica/weights-random.test.ts     one seed, with a message trace
//   XSEQ_SIM_WEIGHTS_SEEDS=5000 npx vitest run test/replica/weights-random.test.ts
import { describe, expect, it } from 'vitest';
import { SeedRunner } from './seed-runner.ts';

const runner = new SeedRunner('XSEQ_SIM_WEIGHTS_SEEDS', 300, 'test/replica/weights-random.test.ts', false, true);
const { steps: STEPS, seeds: SEEDS, first: FIRST, results } = runner;
const CHUNK = 100;

describe(`weights random simulation: ${SEEDS} seeds x ${STEPS} steps from seed ${FIRST}`, () => {
  const timeout = Math.max(60_000, CHUNK * STEPS);
  for (let from = FIRST; from < FIRST + SEEDS; from += CHUNK) {
    const count = Math.min(CHUNK, FIRST + SEEDS - from);
    it(`seeds ${from}..${from + count - 1}: invariants after every event, weight tables and certifications checked at the end`, { timeout }, () => {
      const failures = runner.run(from, count);
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  if (SEEDS >= 300) {
    it('the seeds exercise reassignment (applied, refused, tables switched, under crashes and failovers)', () => {
      const sum = (k: Parameters<typeof runner.sum>[0]): number => runner.sum(k);
      expect(sum('weightsApplied'), 'changes applied').toBeGreaterThan(50);
      expect(sum('weightsRefused'), 'changes committed as no-op changes').toBeGreaterThan(50);
      expect(sum('weightTables'), 'tables the sequencer switched to').toBeGreaterThan(50);
      expect(sum('crashes'), 'replica crashes').toBeGreaterThan(20);
      expect(sum('failovers'), 'sequencer failovers').toBeGreaterThan(5);
      expect(results.filter((r) => r.n === 5).length, 'five-replica groups').toBeGreaterThan(SEEDS / 10);
    });
  }
});

// Kernel against model: the compiled sequencer program (BPF_PROG_TEST_RUN)
// and the model of it that the randomized simulation runs on
// (replica/sim/sequencer.ts) get the same seeded random steps and must
// agree after every one: verdict (the counter that moved), the frame sent
// and its fields, every window slot read from the map, and the overwrite
// and view-reset counters (test/helpers/kernel-model.ts). The simulation's
// evidence is only as good as this model; this is what ties it to the
// kernel.
//
//   XSEQ_DIFF_SEED=123 npx vitest run test/kernel-model.prog.test.ts    one seed, its steps printed
//   XSEQ_DIFF_SEEDS=50000 XSEQ_DIFF_STEPS=200 npx vitest run test/kernel-model.prog.test.ts
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Sequencer } from '../bpf/sequencer.ts';
import { Disagreement, MAX_RESULT, runSeed, type Setup } from './helpers/kernel-model.ts';
import { describePrivileged } from './helpers/privileged.ts';

function envInt(k: string, d: number): number {
  const v = process.env[k];
  if (v === undefined || v === '') return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${k}=${v} is not a non-negative integer`);
  return n;
}

const single = process.env.XSEQ_DIFF_SEED ? envInt('XSEQ_DIFF_SEED', 0) : null;
const SEEDS = single === null ? envInt('XSEQ_DIFF_SEEDS', 2000) : 1;
const FIRST = single ?? envInt('XSEQ_DIFF_FIRST_SEED', 1);
const STEPS = envInt('XSEQ_DIFF_STEPS', 60);
const CHUNK = 500;
const replay = (seed: number) => `XSEQ_DIFF_SEED=${seed}${STEPS === 60 ? '' : ` XSEQ_DIFF_STEPS=${STEPS}`} npx vitest run test/kernel-model.prog.test.ts`;

describePrivileged(`kernel against model: ${SEEDS} seeds x ${STEPS} steps from seed ${FIRST}`, () => {
  let kernels: Record<Setup['policy'], Sequencer>;
  const verdicts: Record<string, number> = {};
  let elapsed = 0;

  beforeAll(() => {
    // A small window (8 slots), so sequences wrap it, overwrite and back off often.
    kernels = {
      backpressure: Sequencer.load({ port: 7400, windowSlots: 8, windows: 1, maxResult: MAX_RESULT, policy: 'backpressure' }),
      overwrite: Sequencer.load({ port: 7400, windowSlots: 8, windows: 1, maxResult: MAX_RESULT, policy: 'overwrite' }),
    };
  });
  afterAll(() => {
    kernels?.backpressure.close();
    kernels?.overwrite.close();
    if (elapsed) console.log(`[kernel-model] ${SEEDS} seeds x ${STEPS} steps in ${(elapsed / 1000).toFixed(1)} s; verdicts ${JSON.stringify(verdicts)}`);
  });

  for (let from = FIRST; from < FIRST + SEEDS; from += CHUNK) {
    const count = Math.min(CHUNK, FIRST + SEEDS - from);
    it(`seeds ${from}..${from + count - 1}: same verdict, frame, slots and counters after every step`, { timeout: 120_000 }, () => {
      const failures: string[] = [];
      const t0 = performance.now();
      for (let seed = from; seed < from + count; seed++) {
        const trace: string[] | undefined = single !== null ? [] : undefined;
        try {
          const r = runSeed(seed, kernels, STEPS, trace);
          for (const [k, v] of Object.entries(r.verdicts)) verdicts[k] = (verdicts[k] ?? 0) + v;
        } catch (e) {
          if (!(e instanceof Disagreement)) throw e;
          if (trace) console.log(trace.join('\n'));
          failures.push(`${e.message}\n  replay: ${replay(seed)}`);
          if (failures.length >= 5) break;
        }
      }
      elapsed += performance.now() - t0;
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  if (SEEDS >= 1000) {
    it('the seeds reach every verdict (a differential run that never takes a path proves nothing of it)', () => {
      for (const v of ['sequenced', 'drop_result_too_big', 'drop_backpressure', 'drop_draining', 'drop_ack_session', 'drop_ack_stranger', 'drop_ack_window', 'drop_ack_stale_view', 'ack_duplicate', 'ack_counted', 'ack_late', 'reply', 'flush', 'drop_solicit_stranger', 'release', 'new-session']) {
        expect(verdicts[v] ?? 0, v).toBeGreaterThan(50);
      }
    });
  }
});

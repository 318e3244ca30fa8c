// What the randomized simulations (random.test.ts, hydra-random.test.ts,
// weights-random.test.ts)
// share: the seed range from the environment, running a range of seeds,
// and printing a failing seed with the command that replays it exactly.
import { runRandom, SimFailure, type RandomRunResult } from '../../replica/sim/random-run.ts';

function envInt(k: string, d: number): number {
  const v = process.env[k];
  if (v === undefined || v === '') return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${k}=${v} is not a non-negative integer`);
  return n;
}

export class SeedRunner {
  /** XSEQ_SIM_SEED: replay this one seed, with a message trace. */
  readonly single: number | null;
  readonly steps: number;
  readonly seeds: number;
  readonly first: number;
  readonly results: RandomRunResult[] = [];
  elapsedMs = 0;

  /** seedsVar: the variable that sets the seed count (default defaultSeeds); file: the test file, for the replay line. */
  constructor(
    seedsVar: string,
    defaultSeeds: number,
    private readonly file: string,
    private readonly hydra: boolean,
    private readonly weights = false,
  ) {
    this.single = process.env.XSEQ_SIM_SEED !== undefined && process.env.XSEQ_SIM_SEED !== '' ? envInt('XSEQ_SIM_SEED', 0) : null;
    this.steps = envInt('XSEQ_SIM_STEPS', 1000);
    this.seeds = this.single === null ? envInt(seedsVar, defaultSeeds) : 1;
    this.first = this.single ?? envInt('XSEQ_SIM_FIRST_SEED', 1);
  }

  replay(seed: number): string {
    const steps = this.steps === 1000 ? '' : `XSEQ_SIM_STEPS=${this.steps} `;
    return `${steps}XSEQ_SIM_SEED=${seed} npx vitest run ${this.file}`;
  }

  /** Runs seeds from..from+count-1; returns one line per failing seed. */
  run(from: number, count: number): string[] {
    const failures: string[] = [];
    const t0 = performance.now();
    for (let seed = from; seed < from + count; seed++) {
      try {
        this.results.push(runRandom({ seed, steps: this.steps, trace: this.single !== null, ...(this.hydra ? { hydra: true } : {}), ...(this.weights ? { weights: true } : {}) }));
      } catch (e) {
        if (!(e instanceof SimFailure)) throw e;
        if (this.single !== null) {
          console.log(`last ${e.trace.length} messages before the failure (time us, from->to, message):\n${e.trace.join('\n')}`);
          if (e.cause instanceof Error) console.log(e.cause.stack);
        }
        const line = `${e.message}\n  replay: ${this.replay(seed)}`;
        console.error(line);
        failures.push(line);
      }
    }
    this.elapsedMs += performance.now() - t0;
    return failures;
  }

  sum(k: keyof RandomRunResult): number {
    return this.results.reduce((a, r) => a + (r[k] as number), 0);
  }
}

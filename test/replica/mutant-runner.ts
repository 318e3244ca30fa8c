// What the two mutant files (mutants.test.ts, hydra-mutants.test.ts) share:
// each mutant records the seed that catches it. CI replays that seed alone
// (it must fail with a safety or liveness violation, not a crash); if it no
// longer does (the simulation changed: any change to the protocol's messages
// moves every trace, and parallel branches move them differently), the seeds
// up to the CI seed count are scanned. A mutant some seed in that range
// catches still passes, and the log names the seed to record; one that no
// seed in the range catches fails. The guarantee is "caught within the seeds
// CI runs", not "caught at this exact seed".
//
//   XSEQ_MUTANT_SCAN=1 npx vitest run test/replica/mutants.test.ts   scan from seed 1, print the first catching seed
import { expect } from 'vitest';
import type { Replica } from '../../replica/replica.ts';
import { InvariantViolation } from '../../replica/sim/invariants.ts';
import { DuplicateExecution } from '../../replica/sim/history-app.ts';
import { runRandom, SimFailure } from '../../replica/sim/random-run.ts';

export interface Mutant {
  /** Patches one replica right after it is built (every replica, restarts too). */
  readonly tamper: (r: Replica) => void;
  /** The seed that catches it (first one from seed 1). */
  readonly seed: number;
}

function caughtBy(tamper: Mutant['tamper'], seed: number, hydra: boolean): SimFailure | null {
  try {
    runRandom({ seed, steps: 1000, tamper, hydra });
    return null;
  } catch (e) {
    if (!(e instanceof SimFailure)) throw e;
    return e;
  }
}

const byInvariant = (f: SimFailure): boolean => f.cause instanceof InvariantViolation || f.cause instanceof DuplicateExecution;

/** The first seed in 1..limit whose run fails an invariant under the mutant (an internal throw does not count), or null. */
export function scan(tamper: Mutant['tamper'], limit: number, hydra: boolean): SimFailure | null {
  for (let seed = 1; seed <= limit; seed++) {
    const f = caughtBy(tamper, seed, hydra);
    if (f && byInvariant(f)) return f;
  }
  return null;
}

/** The recorded seed catches the mutant with an invariant violation (the app's own repeat check counts: invariant 3). */
export function expectCaught(name: string, m: Mutant, limit: number, hydra: boolean): void {
  const scanning = process.env.XSEQ_MUTANT_SCAN === '1';
  let f = scanning ? null : caughtBy(m.tamper, m.seed, hydra);
  if (!f) {
    const found = scan(m.tamper, limit, hydra);
    const now = found ? `seed ${found.seed} catches it now: ${found.message}` : `not caught in seeds 1..${limit}`;
    expect(found, `mutant "${name}": recorded seed ${m.seed} no longer catches it; ${now}`).not.toBeNull();
    if (!scanning) console.log(`mutant "${name}": recorded seed ${m.seed} no longer catches it; record seed ${found!.seed}`);
    f = found!;
  }
  console.log(`${name}: caught at seed ${f.seed}: ${f.message}`);
  expect(byInvariant(f), f.message).toBe(true);
}

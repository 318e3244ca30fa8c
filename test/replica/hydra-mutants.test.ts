// The Hydra simulation must be able to fail: each mutant is a plausible
// merge bug patched into every replica's merge layer; the randomized Hydra
// run has to catch it with an invariant violation within a bounded number
// of seeds (see mutants.test.ts for the single-sequencer ones).
import { describe, expect, it } from 'vitest';
import type { Replica } from '../../replica/replica.ts';
import { InvariantViolation } from '../../replica/sim/invariants.ts';
import { runRandom, SimFailure } from '../../replica/sim/random-run.ts';

// Reaching into protected methods is the point here.
type Internals = any;

const MUTANTS: Record<string, (r: Replica) => void> = {
  // Order by the raw stamp: two CPUs can stamp seq q+1 below seq q, and a
  // merge keyed by raw clocks puts q+1 first (the effective clock keeps a
  // sequencer's own order).
  'deliver by raw clock instead of the effective clock': (r) => {
    const H: Internals = r.hydra;
    const advance = H.advance.bind(H);
    H.advance = (s: Internals) => {
      advance(s);
      const waiting = s.queue.slice(s.head).map((it: Internals) => ({ ...it, clock: it.msg ? it.raw : it.clock }));
      waiting.sort((a: Internals, b: Internals) => a.clock - b.clock);
      s.queue = waiting;
      s.head = 0;
    };
  },
  // A frontier equal to the message's clock passes even when the other
  // sequencer's id is lower, so its next message with that clock may sort first.
  'ignore ties by sequencer id': (r) => {
    const H: Internals = r.hydra;
    H.passes = (F: number, _s2: number, c: number) => F >= c;
  },
  // A missing seq with later ones waiting is skipped instead of recovered.
  'deliver past a pending gap': (r) => {
    const H: Internals = r.hydra;
    const advance = H.advance.bind(H);
    H.advance = (s: Internals) => {
      if (!s.buf.has(s.next) && !s.noops.has(s.next) && s.buf.has(s.next + 1)) s.next++;
      advance(s);
    };
  },
};

const LIMIT = 1500;

describe('the Hydra simulation catches deliberately broken merges', () => {
  for (const [name, tamper] of Object.entries(MUTANTS)) {
    it(name, { timeout: 120_000 }, () => {
      let caught: SimFailure | null = null;
      let seed = 1;
      for (; seed <= LIMIT && !caught; seed++) {
        try {
          runRandom({ seed, steps: 1000, tamper, hydra: true });
        } catch (e) {
          if (!(e instanceof SimFailure)) throw e;
          caught = e;
        }
      }
      expect(caught, `not caught in ${LIMIT} seeds`).not.toBeNull();
      expect(caught!.cause, caught!.message).toBeInstanceOf(InvariantViolation);
      console.log(`${name}: caught at seed ${caught!.seed}: ${caught!.message}`);
    });
  }
});

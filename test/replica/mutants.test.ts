// The random simulation must be able to fail. Each mutant below is a
// plausible protocol bug, patched into every replica of a run through
// private methods (the only way to break a replica from outside); the
// simulation has to catch each one with a safety invariant, not an
// internal assertion, within a bounded number of seeds. If a change to the
// simulation or the checker makes one slip through, this file says so.
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../replica/messages.ts';
import type { Replica } from '../../replica/replica.ts';
import { InvariantViolation } from '../../replica/sim/invariants.ts';
import { runRandom, SimFailure } from '../../replica/sim/random-run.ts';

// Reaching into private methods is the point here.
type Internals = any;

const MUTANTS: Record<string, (r: Replica) => void> = {
  // Followers execute entries as they arrive and never undo one that gap
  // agreement later turns into a no-op (what NOPaxos forbids).
  'followers execute speculatively': (r) => {
    const R: Internals = r;
    const appended = R.appended.bind(R);
    R.appended = (e: LogEntry, ack: boolean) => {
      if (!R.amLeader() && R.exec.executed === e.slot - 1) R.exec.execute(e);
      appended(e, ack);
    };
    R.commitThrough = (point: number) => void (R.committed = Math.max(R.committed, point));
  },
  // A follower that logged the request keeps it when GAP_COMMIT arrives.
  'followers skip the no-op replacement': (r) => {
    const S: Internals = r.intake; // single-stream.ts
    const place = S.placeNoop.bind(S);
    S.placeNoop = (slot: number, at: unknown) => (slot <= r.log.lastSlot ? true : place(slot, at));
  },
  // The leader goes on past its no-op before f followers hold it.
  'leader skips the gap-commit quorum': (r) => {
    const Q: Internals = (r.intake as Internals).quorum; // noop-quorum.ts
    const start = Q.start.bind(Q);
    Q.start = (key: unknown) => {
      start(key);
      if (Q.pending) Q.finish();
    };
  },
};

const LIMIT = 1500;

describe('the random simulation catches deliberately broken replicas', () => {
  for (const [name, tamper] of Object.entries(MUTANTS)) {
    it(`${name}`, { timeout: 120_000 }, () => {
      let caught: SimFailure | null = null;
      for (let seed = 1; seed <= LIMIT && !caught; seed++) {
        try {
          runRandom({ seed, steps: 1000, tamper });
        } catch (e) {
          if (!(e instanceof SimFailure)) throw e;
          caught = e;
        }
      }
      expect(caught, `not caught in ${LIMIT} seeds`).not.toBeNull();
      expect(caught!.cause, caught!.message).toBeInstanceOf(InvariantViolation);
    });
  }
});

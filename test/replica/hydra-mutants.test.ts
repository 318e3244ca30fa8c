// The Hydra simulation must be able to fail: each mutant is a plausible
// merge bug patched into every replica's merge layer; the randomized Hydra
// run has to catch it with an invariant violation at a seed within its CI
// seed count (hydra-random.test.ts runs seeds 1..1000), recorded below (see
// mutant-runner.ts; mutants.test.ts has the single-sequencer ones).
import { describe, it } from 'vitest';
import { expectCaught, type Mutant } from './mutant-runner.ts';

// Reaching into protected methods is the point here.
type Internals = any;

const MUTANTS: Record<string, Mutant> = {
  // Order by the raw stamp: two CPUs can stamp seq q+1 below seq q, and a
  // merge keyed by raw clocks puts q+1 first (the effective clock keeps a
  // sequencer's own order).
  'deliver by raw clock instead of the effective clock': {
    seed: 3,
    tamper: (r) => {
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
  },
  // A frontier equal to the message's clock passes even when the other
  // sequencer's id is lower, so its next message with that clock may sort first.
  'ignore ties by sequencer id': {
    seed: 57,
    tamper: (r) => {
      const H: Internals = r.hydra;
      H.passes = (F: number, _s2: number, c: number) => F >= c;
    },
  },
  // A missing seq with later ones waiting is skipped instead of recovered.
  'deliver past a pending gap': {
    seed: 49,
    tamper: (r) => {
      const H: Internals = r.hydra;
      const advance = H.advance.bind(H);
      H.advance = (s: Internals) => {
        if (!s.buf.has(s.next) && !s.noops.has(s.next) && s.buf.has(s.next + 1)) s.next++;
        advance(s);
      };
    },
  },
  // No-op clocks: the leader's no-op for (s, q) sorts at eff(s, q-1) again,
  // not at its frontier of s past everything it merged, so it can land
  // below entries a replica already merged on a flush's word.
  'a no-op takes eff(s, q-1) again': {
    seed: 35,
    tamper: (r) => {
      const H: Internals = r.hydra;
      const start = H.startGapCommit.bind(H);
      H.startGapCommit = (s: Internals, seq: number) => {
        const frontier = s.frontier;
        const last = H.lastClock;
        s.frontier = () => s.eff;
        H.lastClock = -Infinity;
        try {
          start(s, seq);
        } finally {
          s.frontier = frontier;
          H.lastClock = last;
        }
      };
    },
  },
  // View change with several sequencers: the new leader merges only its
  // own VIEW_CHANGE (mergeStreamViewChanges over one log).
  'leader merges only its own VIEW_CHANGE': {
    seed: 20,
    tamper: (r) => {
      const K: Internals = r.intake;
      const merge = K.mergeViewChanges.bind(K);
      K.mergeViewChanges = (msgs: readonly { from: number }[]) => merge(msgs.filter((m) => m.from === r.id));
    },
  },
  // A re-sent copy (agent retransmission or repair) is merged without its
  // clock (read as 0, as for a header without one): the replicas that got
  // it that way key it below its stamp. Only a check against the stamps
  // sees the log entry's raw clock is not the one stamped.
  'a re-sent message loses its clock': {
    seed: 3,
    tamper: (r) => {
      const H: Internals = r.hydra;
      const on = H.onSequenced.bind(H);
      H.onSequenced = (m: Internals) => on(m.retransmit ? { ...m, clock: 0 } : m);
    },
  },
  // Failover (hydra-failover.ts): the leader ends a removed stream one seq
  // early, over the last seq the quorum's logs hold.
  'a removal ends the stream one seq early': {
    seed: 9,
    tamper: (r) => {
      const H: Internals = r.hydra;
      H.endSeq = (last: Internals) => last.seq;
    },
  },
  // ...or skips a seq past it (what no replica resolved is not "never delivered" then).
  'a removal ends the stream one seq late': {
    seed: 9,
    tamper: (r) => {
      const H: Internals = r.hydra;
      H.endSeq = (last: Internals) => last.seq + 2;
    },
  },
  // A rejoin keeps what was held of the old session: its messages merge
  // as if the new session had stamped them at those seqs.
  'an old session is merged again after a rejoin': {
    seed: 572,
    tamper: (r) => {
      const H: Internals = r.hydra;
      const resync = H.resync.bind(H);
      H.resync = (...a: Internals[]) => {
        for (const st of H.streams) {
          if (st.restartPatched) continue;
          st.restartPatched = true;
          const restart = st.restart.bind(st);
          st.restart = (now: number) => {
            const keep = [...st.buf.values(), ...st.queue.slice(st.head).map((it: Internals) => it.msg).filter(Boolean)];
            restart(now);
            for (const m of keep) st.buf.set(m.seq, m);
          };
        }
        return resync(...a);
      };
    },
  },
};

// Not caught, so not listed: a VIEW_CHANGE that leaves out the follower's
// held entries (intake.heldEntries() returning nothing) passed seeds
// 1..1181 (README "Follower logs" says the simulation once found the need
// for them; the fault mix no longer reaches that window within CI's count).

// hydra-random.test.ts's seed count.
const LIMIT = 1000;

describe('the Hydra simulation catches deliberately broken merges', () => {
  for (const [name, m] of Object.entries(MUTANTS)) {
    it(name, { timeout: 300_000 }, () => expectCaught(name, m, LIMIT, true));
  }
});

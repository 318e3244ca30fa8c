// The random simulation must be able to fail. Each mutant below is a
// plausible protocol bug, patched into every replica of a run through
// private methods (the only way to break a replica from outside; nothing in
// replica/ changes); the simulation has to catch each one with a safety or
// liveness invariant, not a crash, at a seed within the CI seed count
// (random.test.ts runs seeds 1..2000). The seed that catches each is
// recorded; mutant-runner.ts replays it and, if the simulation changed,
// says which seed catches it now. One mutant per recovery path.
import { describe, it } from 'vitest';
import { noopEntry, positionOf } from '../../replica/log.ts';
import { latestNormalView } from '../../replica/merge.ts';
import type { GapFindMsg, LogEntry, LogState, ViewChangeMsg } from '../../replica/messages.ts';
import { viewEq } from '../../replica/view.ts';
import { expectCaught, type Mutant } from './mutant-runner.ts';

// Reaching into private methods is the point here.
type Internals = any;

/** Wraps the intake's view-change merge (single-stream.ts / hydra.ts mergeViewChanges). */
function wrapMerge(r: Internals, f: (msgs: readonly ViewChangeMsg[], merge: (m: readonly ViewChangeMsg[]) => LogState) => LogState): void {
  const K: Internals = r.intake;
  const merge = K.mergeViewChanges.bind(K);
  K.mergeViewChanges = (msgs: readonly ViewChangeMsg[]) => f(msgs, merge);
}

const MUTANTS: Record<string, Mutant> = {
  // ---- execution and gap agreement (the first three) ----
  // Followers execute entries as they arrive and never undo one that gap
  // agreement later turns into a no-op (what NOPaxos forbids).
  'followers execute speculatively': {
    seed: 26,
    tamper: (r) => {
      const R: Internals = r;
      const appended = R.appended.bind(R);
      R.appended = (e: LogEntry, ack: boolean) => {
        if (!R.amLeader() && R.exec.executed === e.slot - 1) R.exec.execute(e);
        appended(e, ack);
      };
      R.commitThrough = (point: number) => void (R.committed = Math.max(R.committed, point));
    },
  },
  // Gap agreement, "recover the request where a no-op was committed": a
  // follower that logged the request keeps it when GAP_COMMIT arrives.
  'followers skip the no-op replacement': {
    seed: 319,
    tamper: (r) => {
      const S: Internals = r.intake; // single-stream.ts
      const place = S.placeNoop.bind(S);
      S.placeNoop = (slot: number, at: unknown) => (slot <= r.log.lastSlot ? true : place(slot, at));
    },
  },
  // The leader goes on past its no-op before f followers hold it.
  'leader skips the gap-commit quorum': {
    seed: 444,
    tamper: (r) => {
      const Q: Internals = (r.intake as Internals).quorum; // noop-quorum.ts
      const start = Q.start.bind(Q);
      Q.start = (key: unknown) => {
        start(key);
        if (Q.pending) Q.finish();
      };
    },
  },
  // Gap agreement, "commit a no-op where a quorum has the request": asked
  // for a slot it holds (executed, maybe certified), the leader decides a
  // no-op there anyway.
  'leader no-ops a slot it holds': {
    seed: 142,
    tamper: (r) => {
      const R: Internals = r;
      const S: Internals = r.intake;
      const find = S.onGapFind.bind(S);
      S.onGapFind = (m: GapFindMsg) => {
        const e = r.log.get(m.slot);
        if (e && !e.noop && m.slot > r.committed && m.slot === r.log.lastSlot && r.status === 'normal' && R.amLeader() && viewEq(m.view, r.view) && !S.quorum.pending) {
          r.log.put(noopEntry(positionOf(e)));
          return S.quorum.start(m.slot);
        }
        find(m);
      };
    },
  },
  // Gap agreement, the other outcome, in the view change: the union prefers
  // a request over a no-op another log of the latest normal view holds.
  'view-change union resurrects a request under a no-op': {
    seed: 677,
    tamper: (r) =>
      wrapMerge(r, (msgs, merge) => {
        const st = merge(msgs);
        const latest = latestNormalView(msgs);
        const entries = st.entries.map((e) => {
          if (!e.noop || e.slot <= st.committed) return e;
          for (const m of msgs) {
            if (!viewEq(m.lastNormalView, latest)) continue;
            const o = m.state.entries.find((x) => x.slot === e.slot);
            if (o && !o.noop) return o;
          }
          return e;
        });
        return { ...st, entries };
      }),
  },
  // ---- view change ----
  // The new leader merges only its own VIEW_CHANGE (the quorum's logs unread).
  'leader merges only its own VIEW_CHANGE': {
    seed: 8,
    tamper: (r) => wrapMerge(r, (msgs, merge) => merge(msgs.filter((m) => m.from === r.id))),
  },
  // The log union drops an entry: the last one past the commit point.
  'view-change union drops an entry': {
    seed: 15,
    tamper: (r) =>
      wrapMerge(r, (msgs, merge) => {
        const st = merge(msgs);
        const last = st.entries[st.entries.length - 1];
        return last && last.slot > st.committed ? { ...st, entries: st.entries.slice(0, -1) } : st;
      }),
  },
  // ---- recovery and state transfer ----
  // A restarted replica (memory gone) skips recovery: it votes in view
  // changes and ACKs with an empty log as if it had never run.
  'recovering replica votes and ACKs before it has state': {
    seed: 12,
    tamper: (r) => {
      const R: Internals = r;
      if (r.status !== 'recovering') return;
      R.recovery = null;
      R.stateTimer.stop();
      r.status = 'normal';
      R.leaderTimer.start(R.cfg.leaderTimeoutUs);
    },
  },
  // State transfer (recovery or catch-up) installs the log but not the
  // checkpoint's application state and client table.
  'state transfer skips the checkpoint': {
    seed: 4,
    tamper: (r) => {
      const R: Internals = r;
      let transfer = false;
      const during = (name: string): void => {
        const f = R[name].bind(R);
        R[name] = (...a: unknown[]) => {
          transfer = true;
          try {
            return f(...a);
          } finally {
            transfer = false;
          }
        };
      };
      during('tryFinishRecovery');
      during('onStateReply');
      const E: Internals = r.exec;
      const restore = E.restore.bind(E);
      E.restore = (cp: { slot: number }) => (transfer ? void (E.executed = cp.slot) : restore(cp));
    },
  },
  // ---- at-most-once execution ----
  // The client table forgets a request id: a re-stamped retry of the
  // client's latest request is executed again.
  'client table forgets a request id': {
    seed: 1,
    tamper: (r) => {
      const E: Internals = r.exec;
      const execute = E.execute.bind(E);
      E.execute = (e: LogEntry) => {
        const t: Internals = E.clients;
        if (!t.forgets) {
          const admit = t.admit.bind(t);
          t.admit = (c: bigint, q: bigint) => {
            const a = admit(c, q);
            return a.kind === 'duplicate' ? { kind: 'new' } : a;
          };
          t.forgets = true;
        }
        return execute(e);
      };
    },
  },
  // ---- sync and checkpoints ----
  // The leader commits (and checkpoints) its log as soon as it sends
  // SYNC_PREPARE, before f followers confirmed they hold it.
  'sync commits past what a quorum confirmed': {
    seed: 61,
    tamper: (r) => {
      const R: Internals = r;
      const prepare = R.sendSyncPrepare.bind(R);
      R.sendSyncPrepare = () => {
        prepare();
        if (R.sync && r.status === 'normal' && R.amLeader()) R.leaderCommit();
      };
    },
  },
  // ---- liveness ----
  // Followers never time out a silent leader: a crashed or isolated leader
  // is never replaced, and after healing ops stay open past the bound.
  'followers never time out the leader': {
    seed: 5,
    tamper: (r) => {
      const R: Internals = r;
      R.onLeaderTimeout = () => {};
    },
  },
};

// random.test.ts's seed count: a mutant must be caught within what CI runs.
const LIMIT = 2000;

describe('the random simulation catches deliberately broken replicas', () => {
  for (const [name, m] of Object.entries(MUTANTS)) {
    it(name, { timeout: 300_000 }, () => expectCaught(name, m, LIMIT, false));
  }
});

// A sequencer of a merged group dies, is removed by hand, or comes back
// with a new data path: the replicas end its stream and, for a rejoin,
// start its new session, by their own agreement and outside the merge the
// dead stream blocks.
//
// Only the leader decides. What it wants is a Reconfig per sequencer
// (stream-epochs.ts); it gets it done by starting a view change to a view
// it leads again (leaderNum + n): the f+1 VIEW_CHANGEs it merges fix
// everything of that stream any replica may have delivered (a certified
// request is in f+1 logs, so in the merge), and the leader appends the end
// right after the last seq the merge holds, then the start of the new
// session. Every replica installs that log from START_VIEW; nothing of the
// ended session after the end is ever merged (hydra.ts drops it), and the
// stream holds nothing back any more (its frontier is +infinity, as after
// a FINAL flush). A FINAL flush racing the removal loses: an ended
// session's FINAL is ignored, and entries a follower merged past the end
// on the FINAL's word are replaced by the leader's log (never certified:
// the leader merged none of them).
//
// Reasons, all leader-side: the stream held the merge back and was silent
// for deadSequencerUs (sequencer-liveness.ts); an operator's "remove"
// control op seen in any stream; traffic of a newer session of the same
// sequencer (its old data path is gone). Messages of that newer session
// are held here until the start is in the log.
import type { ReplicaConfig } from './config.ts';
import { decodeControlOp, removalApplies } from './control-op.ts';
import type { EngineHost } from './intake.ts';
import type { FlushMsg, SequencedMsg } from './messages.ts';
import type { Reconfig } from './stream-epochs.ts';
import type { Stream } from './stream.ts';
import type { Scheduler, Timer } from './transport.ts';
import { sessionCmp } from './view.ts';

export type RemovalReason = 'silent' | 'op' | 'new-session';

export interface FailoverStats {
  /** Streams this replica saw ended by the replicas' agreement. */
  removals: number;
  /** Sessions this replica saw started for a sequencer id that had one before. */
  rejoins: number;
  /** Leader: view changes started to end or start a stream. */
  reconfigViewChanges: number;
  /** Messages held for a sequencer's newer session. */
  heldNewSession: number;
}

interface Plan extends Reconfig {
  readonly why: RemovalReason;
}

export class HydraFailover {
  readonly stats: FailoverStats = { removals: 0, rejoins: 0, reconfigViewChanges: 0, heldNewSession: 0 };
  private readonly plans = new Map<number, Plan>();
  /** Per sequencer: its newest session seen above the one the log holds, and its messages. */
  private readonly next = new Map<number, { session: number; msgs: (SequencedMsg | FlushMsg)[] }>();
  private held = 0;
  private kickedAt = -Infinity;
  /** Leader: re-tries plans a view change did not carry out (it went to another leader, or was rate-limited). */
  private readonly retry: Timer;

  constructor(
    private readonly host: EngineHost,
    private readonly cfg: ReplicaConfig,
    private readonly scheduler: Scheduler,
  ) {
    this.retry = host.timer(() => this.kick());
  }

  /** Leader: end (sid, session). A newer reason never weakens an older plan's start. */
  end(sid: number, session: number, why: RemovalReason): void {
    const p = this.plans.get(sid);
    if (p?.end === session) return this.kick();
    this.plans.set(sid, { sid, end: session, why, ...(p?.start !== undefined ? { start: p.start } : {}) });
    this.kick();
  }

  /** The sequencer was heard from in the stream's session: a silence, not a death. */
  alive(sid: number): void {
    const p = this.plans.get(sid);
    if (p && p.why === 'silent' && p.start === undefined) this.plans.delete(sid);
  }

  /**
   * A message of a session newer than the stream's: held until the log
   * starts that session (older held sessions give way to a newer one).
   * The leader ends the old session (if it has not ended) and starts this one.
   */
  hold(sid: number, current: number, ended: boolean, m: SequencedMsg | FlushMsg): void {
    let h = this.next.get(sid);
    if (h && sessionCmp(m.session, h.session) < 0) return;
    if (!h || h.session !== m.session) {
      if (h) this.held -= h.msgs.length;
      this.next.set(sid, (h = { session: m.session, msgs: [] }));
    }
    if (this.held < this.cfg.maxBufferedMsgs) {
      h.msgs.push(m);
      this.held++;
      this.stats.heldNewSession++;
    }
    if (!this.host.amLeader() || !this.host.normal()) return;
    const p = this.plans.get(sid);
    if (p?.start === m.session) return this.kick();
    this.plans.set(sid, { sid, ...(ended ? {} : { end: current }), start: m.session, why: 'new-session' });
    this.kick();
  }

  /** The held messages of `session` of sid, now that the log started it (and older ones dropped). */
  takeHeld(sid: number, session: number): (SequencedMsg | FlushMsg)[] {
    const h = this.next.get(sid);
    if (!h || sessionCmp(h.session, session) > 0) return [];
    this.next.delete(sid);
    this.held -= h.msgs.length;
    return h.session === session ? h.msgs : [];
  }

  /** A message of another session than the stream's: an older one is never merged; a newer one is a rejoin. */
  otherSession(s: Stream, m: SequencedMsg | FlushMsg, stats: { wrongSession: number }): void {
    if (sessionCmp(m.session, s.session) < 0) {
      stats.wrongSession++;
      return;
    }
    this.hold(s.sid, s.session, s.ended, m);
  }

  /** Leader: an operator's "remove" op, seen before it can merge (the stream it names may be what blocks it). */
  controlSeen(m: SequencedMsg, stream: (sid: number) => Stream | undefined): void {
    const op = decodeControlOp(m.op);
    if (op?.kind !== 'remove' || !this.host.amLeader()) return;
    const s = stream(op.sid);
    if (s && !s.ended && removalApplies(op.session, Math.max(0, s.session))) this.end(s.sid, Math.max(0, s.session), 'op');
  }

  /** What the leader appends to the log its view change merged. */
  plansFor(): Reconfig[] {
    return [...this.plans.values()].sort((a, b) => a.sid - b.sid);
  }

  /**
   * A log was installed: `done(sid, plan)` says whether it already holds
   * what a plan asked. Done plans go; a leader kicks again for the rest,
   * a follower forgets its own (the leader decides).
   */
  installed(done: (p: Reconfig) => boolean): void {
    for (const [sid, p] of this.plans) if (done(p) || !this.host.amLeader()) this.plans.delete(sid);
    if (this.plans.size) this.kick();
    else this.kickedAt = -Infinity;
  }

  /** The leader (re)starts the agreement: a view change to a view it leads again; at most one per retry period. */
  kick(): void {
    const h = this.host;
    if (!this.plans.size || !h.amLeader() || !h.normal()) return;
    const now = this.scheduler.now();
    if (now - this.kickedAt < this.cfg.viewChangeRetryUs) {
      if (!this.retry.active) this.retry.start(this.kickedAt + this.cfg.viewChangeRetryUs - now);
      return;
    }
    this.kickedAt = now;
    this.stats.reconfigViewChanges++;
    h.startViewChange({ leaderNum: h.view.leaderNum + h.n, session: h.view.session });
  }

  /** Plans of this leader not yet in the log. */
  get pending(): number {
    return this.plans.size;
  }
}

// A NOPaxos replica (Li et al., OSDI'16) adapted to xseq: OUM from the XDP
// sequencer, ACKs counted by the sequencer host, and the agent's repair
// service as the first rung of drop recovery. README.md says what each
// choice is and why; the comments here say why a step is safe.
import { ackOf, settledAck } from './acks.ts';
import { initialTable, type WeightOptions, WeightState } from './weights-exec.ts';
import type { Application } from './app.ts';
import { configWith, type ReplicaConfig } from './config.ts';
import { Executor } from './executor.ts';
import { Hydra } from './hydra.ts';
import type { EngineHost, Intake } from './intake.ts';
import { Log, ORIGIN, positionOf, sameEntry, type LogPosition } from './log.ts';
import { SingleStream } from './single-stream.ts';
import { agreedThrough, syncEntriesFor } from './sync-delta.ts';
import type {
  Checkpoint,
  LogEntry,
  LogState,
  PeerMsg,
  ReplicaInbound,
  SequencedMsg,
  StartViewMsg,
  StateReplyMsg,
  StateRequestMsg,
  SyncCommitMsg,
  SyncPrepareMsg,
  SyncReplyMsg,
  ViewChangeMsg,
} from './messages.ts';
import { Timer, type ReplicaTransport, type Scheduler } from './transport.ts';
import { leaderOf, viewCmp, viewEq, viewJoin, viewLeq, type ViewId } from './view.ts';

export type ReplicaStatus = 'normal' | 'view-change' | 'recovering';

export interface ReplicaOptions extends WeightOptions {
  id: number;
  /** Group size, 2f+1. */
  n: number;
  app: Application;
  transport: ReplicaTransport;
  scheduler: Scheduler;
  config?: Partial<ReplicaConfig>;
  /**
   * The sequencer's session when the group is created (the agent's
   * --session). Default 0: traffic of a higher session starts a (cheap,
   * empty-log) view change into it, while a guess too high would make the
   * replica ignore every message of the real, lower session.
   */
  session?: number;
  /**
   * Set when this process restarts with its memory gone: it rebuilds its
   * state from its peers before it takes part in anything (no ACK, no vote).
   * Must differ from every earlier incarnation's nonce (e.g. random 48 bits).
   */
  recoverNonce?: number;
  /**
   * Hydra: the ids of the group's sequencers. Two or more turn on the merge
   * of their streams (hydra.ts); absent or one: the single-sequencer protocol.
   */
  sequencers?: readonly number[];
  /**
   * Hydra: ids of sequencers that may join later by an "add" control op
   * (hydra.ts): not members at start (their traffic is held until the op
   * is merged), but they count toward turning the merge on, so one
   * configured sequencer plus a joining one already runs Hydra.
   */
  joiningSequencers?: readonly number[];
}

export class Replica {
  readonly id: number;
  readonly n: number;
  readonly f: number;
  private readonly cfg: ReplicaConfig;
  /** Public for the intake (EngineHost); not part of the API. */
  readonly transport: ReplicaTransport;

  status: ReplicaStatus = 'normal';
  view: ViewId;
  lastNormalView: ViewId;
  log: Log;
  readonly exec: Executor;
  /** Every slot up to here is committed: identical on every replica, forever. */
  committed = 0;

  /** Follower: my log equals the leader's up to here (SYNC_PREPARE adopted in this view). */
  private prepared = 0;
  /** Leader: results by slot, for re-ACKing a request the aggregator missed. */
  private readonly results = new Map<number, Uint8Array>();
  /** What the transport was last told this replica holds, per stream (ReplicaTransport.delivered). */
  private readonly reported = new Map<number | undefined, { session: number; seq: number }>();
  private sync: { readonly point: number; readonly acks: Set<number>; readonly cp: Checkpoint } | null = null;
  /** Leader: the highest sync point each follower confirmed in this view. */
  private readonly followerSync: number[] = [];
  private vc: { readonly msgs: Map<number, ViewChangeMsg>; retries: number } | null = null;
  private recovery: { readonly nonce: number; readonly replies: Map<number, StateReplyMsg> } | null = null;
  private stopped = false;
  /**
   * What feeds the log: one sequencer's stream, or the merge of several
   * (intake.ts). Chosen once, here; nothing below asks which.
   */
  readonly intake: Intake;

  private readonly syncTimer: Timer;
  private readonly leaderTimer: Timer;
  private readonly vcTimer: Timer;
  private readonly stateTimer: Timer;

  constructor(o: ReplicaOptions) {
    if (!Number.isInteger(o.n) || o.n < 1 || o.n % 2 === 0) throw new RangeError(`replica: n=${o.n} must be odd (2f+1)`);
    if (!Number.isInteger(o.id) || o.id < 0 || o.id >= o.n) throw new RangeError(`replica: id=${o.id} outside 0..${o.n - 1}`);
    this.id = o.id;
    this.n = o.n;
    this.f = (o.n - 1) / 2;
    this.cfg = configWith(o.config);
    this.transport = o.transport;
    this.view = { leaderNum: 0, session: o.session ?? 0 };
    this.lastNormalView = this.view;
    this.log = new Log(ORIGIN);
    this.exec = new Executor(o.app, Executor.genesis(o.app), new WeightState(initialTable(o.n, o), o.onCommittedWeights));
    // Every timer, like every message, may move the log's end: the
    // transport hears of it after each (reportDelivered).
    const timer = (fire: () => void) =>
      new Timer(o.scheduler, () => {
        fire();
        this.reportDelivered();
      });
    this.syncTimer = timer(() => this.onSyncTimer());
    this.leaderTimer = timer(() => this.onLeaderTimeout());
    this.vcTimer = timer(() => this.onViewChangeTimeout());
    this.stateTimer = timer(() => this.onStateTimeout());
    const initialSeqs = o.sequencers ?? [0];
    const host = this.engineHost(timer);
    this.intake =
      initialSeqs.length + (o.joiningSequencers?.length ?? 0) > 1 ? new Hydra(host, initialSeqs, this.cfg, o.scheduler) : new SingleStream(host, this.cfg);

    if (o.recoverNonce !== undefined) {
      this.status = 'recovering';
      this.recovery = { nonce: o.recoverNonce, replies: new Map() };
      this.sendRecoveryRequests();
      this.stateTimer.start(this.cfg.stateRetryUs);
    } else if (this.amLeader()) {
      this.syncTimer.start(this.cfg.syncIntervalUs);
    } else {
      this.leaderTimer.start(this.cfg.leaderTimeoutUs);
    }
    this.reportDelivered();
  }

  /** Stops every timer and ignores all input from now on (shutdown, or a simulated crash). */
  stop(): void {
    this.stopped = true;
    this.intake.stopWork();
    for (const t of [this.syncTimer, this.leaderTimer, this.vcTimer, this.stateTimer]) t.stop();
  }

  amLeader(): boolean {
    return leaderOf(this.view, this.n) === this.id;
  }

  /** The next seq of the view's session this replica will append. */
  nextSeq(): number {
    const last = this.log.last;
    return last.session === this.view.session ? last.seq + 1 : 1;
  }

  receive(m: ReplicaInbound): void {
    if (this.stopped) return;
    this.dispatch(m);
    this.reportDelivered();
  }

  private dispatch(m: ReplicaInbound): void {
    const k = this.intake;
    switch (m.type) {
      case 'SEQUENCED':
        return void (this.status !== 'recovering' && k.onSequenced(m));
      case 'FLUSH':
        return void (this.status !== 'recovering' && k.onFlush(m));
      case 'DROP_NOTIFICATION':
        return k.onDropNotification(m);
      case 'REPAIR_REPLY':
        return k.onRepairReply(m);
      case 'ERROR':
        return k.onRepairError(m);
      case 'STATE_REQUEST':
        return this.onStateRequest(m);
      case 'STATE_REPLY':
        return this.onStateReply(m);
    }
    if (this.status === 'recovering') return;
    switch (m.type) {
      case 'GAP_FIND':
        return k.onGapFind(m);
      case 'GAP_RECV':
        return k.onGapRecv(m);
      case 'GAP_DROP':
        return k.onGapDrop(m);
      case 'GAP_COMMIT':
        return k.onGapCommit(m);
      case 'GAP_COMMIT_REPLY':
        return k.onGapCommitReply(m);
      case 'VIEW_CHANGE_REQUEST':
        return void this.admitView(m);
      case 'VIEW_CHANGE':
        return this.onViewChange(m);
      case 'START_VIEW':
        return this.onStartView(m);
      case 'SYNC_PREPARE':
        return this.onSyncPrepare(m);
      case 'SYNC_REPLY':
        return this.onSyncReply(m);
      case 'SYNC_COMMIT':
        return this.onSyncCommit(m);
    }
  }

  /** Hydra's merge of several sequencers' streams (its stats, streams); null with one sequencer. */
  get hydra(): Hydra | null {
    return this.intake instanceof Hydra ? this.intake : null;
  }

  /** What the intake sees of this replica (intake.ts). */
  private engineHost(timer: (fire: () => void) => Timer): EngineHost {
    const self = this;
    return {
      id: this.id,
      f: this.f,
      n: this.n,
      get view() {
        return self.view;
      },
      get log() {
        return self.log;
      },
      get committed() {
        return self.committed;
      },
      get checkpoint() {
        return self.exec.checkpoint;
      },
      transport: this.transport,
      normal: () => this.status === 'normal',
      amLeader: () => this.amLeader(),
      nextSeq: () => this.nextSeq(),
      append: (e, ack) => {
        this.log.append(e);
        this.appended(e, ack);
      },
      reAck: (slot) => this.reAckSlot(slot),
      reAckSettled: (m, sid) => this.reAckSettled(m, sid),
      admit: (m) => this.admitView(m),
      heardFromLeader: () => this.heardFromLeader(),
      toLeader: (m) => this.toLeader(m),
      startViewChange: (v) => this.startViewChange(v),
      currentState: () => this.currentState(),
      timer,
    };
  }

  // ---- normal operation: log append, execute, ACK -----------------------------

  /**
   * After an entry joins the log in normal status. The leader executes at
   * once (it never replaces its own entries within its view, and a view
   * change that drops them rolls it back); a follower only logs, because
   * gap agreement may still turn the slot into a no-op.
   */
  private appended(e: LogEntry, ack: boolean): void {
    if (this.amLeader()) {
      const o = this.exec.execute(e);
      if (o.kind !== 'noop') {
        this.results.set(e.slot, o.result);
        if (ack) this.sendAck(e, o.result);
      }
    } else if (!e.noop && ack && e.session === this.view.session) {
      this.sendAck(e, null);
    }
  }

  private sendAck(e: LogEntry, result: Uint8Array | null): void {
    this.transport.sendAck(ackOf(e, this.view.leaderNum, this.id, result));
  }

  private reAckSlot(slot: number): void {
    const e = this.log.get(slot);
    if (this.status !== 'normal' || !e || e.noop) return;
    if (!this.amLeader()) return this.sendAck(e, null);
    const r = this.results.get(slot);
    if (r) this.sendAck(e, r);
  }

  /** A copy of a seq settled here without its request (acks.ts settledAck). */
  private reAckSettled(m: SequencedMsg, sid: number | undefined): void {
    if (this.status === 'normal') this.transport.sendAck(settledAck(m, this.view.leaderNum, this.id, this.amLeader(), sid));
  }

  /**
   * ACKs the log's tail after it was installed whole (START_VIEW, a view
   * change's merge, a state transfer): those entries joined without
   * passing appended(), and the sequencer's window holds each slot until
   * every member acks it in the current view (backpressure; a higher view
   * resets a slot's acks). The first messages after a cold start are such
   * entries: they arrive before or during the view change into the
   * agent's session and reach a follower inside the leader's START_VIEW.
   * Bounded by maxBufferedMsgs entries: older slots, if any still wait,
   * are re-sent by the agent and re-ACKed on arrival.
   */
  private ackInstalled(): void {
    const last = this.log.lastSlot;
    for (let s = Math.max(this.log.firstSlot, last - this.cfg.maxBufferedMsgs + 1); s <= last; s++) {
      const e = this.log.get(s);
      if (e && (e.src !== undefined || e.session === this.view.session)) this.reAckSlot(s);
    }
  }

  private snap(p: LogPosition): Checkpoint {
    const cp = this.exec.snapshot(p);
    const streams = this.intake.streamsAt(p.slot);
    return streams ? { ...cp, streams } : cp;
  }

  // ---- synchronization: commit point, checkpoint, truncation, heartbeat -----

  private onSyncTimer(): void {
    if (this.status !== 'normal' || !this.amLeader()) return;
    this.sendSyncPrepare();
    this.syncTimer.start(this.cfg.syncIntervalUs);
  }

  private sendSyncPrepare(): void {
    const point = this.log.lastSlot;
    if (point > this.committed && (!this.sync || this.sync.point !== point)) {
      // The leader has executed exactly its log, so this snapshot is the
      // state at `point`; it becomes the checkpoint once a quorum holds it.
      this.sync = { point, acks: new Set(), cp: this.snap(this.log.last) };
    }
    // Each follower gets what it has not confirmed (sync-delta.ts); when
    // idle that is nothing, a bare heartbeat. Hydra's followers re-merge
    // unexecuted slots on their own, so they get the whole retained log.
    for (let r = 0; r < this.n; r++) {
      if (r === this.id) continue;
      const confirmed = this.followerSync[r] ?? 0;
      const entries = syncEntriesFor(this.log, this.hydra && confirmed < point ? 0 : confirmed, point, this.committed);
      this.transport.sendToReplica(r, { type: 'SYNC_PREPARE', from: this.id, view: this.view, syncPoint: point, committed: this.committed, entries });
    }
    if (point > this.committed && this.f === 0) this.leaderCommit();
  }

  private onSyncPrepare(m: SyncPrepareMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || this.amLeader()) return;
    this.heardFromLeader();
    if (m.entries.length > 0) {
      if (m.syncPoint > this.committed) {
        if (m.entries[0]!.slot > agreedThrough(this.prepared, this.committed) + 1) return this.requestCatchUp();
        this.adoptLeaderLog(m.entries);
        this.prepared = Math.max(this.prepared, m.syncPoint);
      }
      this.toLeader({ type: 'SYNC_REPLY', from: this.id, view: this.view, syncPoint: m.syncPoint });
    }
    if (m.committed > this.committed && this.prepared >= m.committed) this.commitThrough(m.committed);
    this.intake.resume();
  }

  /**
   * Makes the log equal the leader's over `entries`: where they differ the
   * leader committed a no-op this replica has not heard of, or it lacks the slot.
   */
  private adoptLeaderLog(entries: readonly LogEntry[]): void {
    let changed = false;
    let grew = false;
    const displaced: LogEntry[] = [];
    for (const e of entries) {
      if (e.slot <= this.committed) continue;
      const mine = this.log.get(e.slot);
      if (!mine) {
        this.log.append(e);
        this.appended(e, true);
        grew = true;
      } else if (!sameEntry(mine, e)) {
        this.log.put(e);
        changed = true;
        displaced.push(mine);
      }
    }
    this.intake.adopted(entries[entries.length - 1]!.slot, displaced, changed, grew);
  }

  private onSyncReply(m: SyncReplyMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || !this.amLeader()) return;
    this.followerSync[m.from] = Math.max(this.followerSync[m.from] ?? 0, m.syncPoint);
    const s = this.sync;
    if (!s || m.syncPoint !== s.point || m.from === this.id) return;
    s.acks.add(m.from);
    if (s.acks.size >= this.f) this.leaderCommit();
  }

  private leaderCommit(): void {
    const s = this.sync!;
    this.sync = null;
    this.commitLocal(s.point, s.cp);
    // No SYNC_COMMIT: the next SYNC_PREPARE (or heartbeat) carries the
    // commit point one interval later. Followers only execute and
    // checkpoint on it, which no client waits for, and on the replicas'
    // loopback TCP each message is a write whose cost is per call (the
    // leader's profile: a quarter of its CPU in writes at peak).
    this.intake.committedThrough(s.point);
  }

  private onSyncCommit(m: SyncCommitMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || this.amLeader()) return;
    this.heardFromLeader();
    if (m.syncPoint > this.committed && this.prepared >= m.syncPoint) this.commitThrough(m.syncPoint);
  }

  /** Follower: the log through `point` equals the leader's and a quorum holds it. */
  private commitThrough(point: number): void {
    this.executeThrough(point);
    this.commitLocal(point, this.snap(positionOf(this.log.get(point)!)));
  }

  /** New commit point and checkpoint; keeps one checkpoint interval of log for lagging peers. */
  private commitLocal(point: number, cp: Checkpoint): void {
    const older = this.exec.checkpoint.slot;
    this.committed = Math.max(this.committed, point);
    this.exec.keep(cp);
    this.log.dropThrough(older);
    for (const s of this.results.keys()) if (s <= older) this.results.delete(s);
  }

  private executeThrough(slot: number): void {
    for (let s = this.exec.executed + 1; s <= slot; s++) {
      const o = this.exec.execute(this.log.get(s)!);
      if (o.kind !== 'noop') this.results.set(s, o.result);
    }
  }

  private requestCatchUp(): void {
    if (this.stateTimer.active) return;
    this.toLeader({ type: 'STATE_REQUEST', from: this.id, nonce: 0, view: this.view });
    this.stateTimer.start(this.cfg.stateRetryUs);
  }

  // ---- state transfer: recovery after a restart, catch-up ---------------------

  private sendRecoveryRequests(): void {
    for (let r = 0; r < this.n; r++) {
      if (r !== this.id) this.transport.sendToReplica(r, { type: 'STATE_REQUEST', from: this.id, nonce: this.recovery!.nonce, view: null });
    }
  }

  private onStateTimeout(): void {
    if (this.status !== 'recovering') return;
    this.sendRecoveryRequests();
    this.stateTimer.start(this.cfg.stateRetryUs);
  }

  private onStateRequest(m: StateRequestMsg): void {
    if (this.status !== 'normal' || m.from === this.id) return;
    if (m.view === null) {
      const state = this.amLeader() ? this.currentState() : null;
      return this.transport.sendToReplica(m.from, { type: 'STATE_REPLY', from: this.id, nonce: m.nonce, view: this.view, state });
    }
    if (this.amLeader() && viewEq(m.view, this.view)) {
      this.transport.sendToReplica(m.from, { type: 'STATE_REPLY', from: this.id, nonce: 0, view: this.view, state: this.currentState() });
    }
  }

  private onStateReply(m: StateReplyMsg): void {
    if (this.status === 'recovering') {
      if (m.nonce !== this.recovery!.nonce) return;
      this.recovery!.replies.set(m.from, m);
      return this.tryFinishRecovery();
    }
    if (m.nonce !== 0 || this.status !== 'normal' || this.amLeader() || !m.state) return;
    if (!viewEq(m.view, this.view) || m.from !== leaderOf(this.view, this.n)) return;
    // A late copy of an older answer: the leader's log has grown past it and
    // so has this replica's commit point.
    if (m.state.checkpoint.slot + m.state.entries.length < this.committed) return;
    this.stateTimer.stop();
    const old = this.log;
    this.installState(m.state, false);
    this.prepared = Math.max(this.prepared, m.state.committed);
    this.executeThrough(this.committed);
    this.ackInstalled();
    this.intake.installed(old, true);
  }

  /**
   * Viewstamped Replication's recovery: f+1 answers from other replicas in
   * normal status, one of them the leader of the latest view among them,
   * and the state comes from that leader. Any quorum that certified or
   * voted with this replica's lost memory meets those f+1 outside it.
   */
  private tryFinishRecovery(): void {
    const replies = [...this.recovery!.replies.values()];
    if (replies.length < this.f + 1) return;
    let v = replies[0]!.view;
    for (const r of replies) if (viewCmp(r.view, v) > 0) v = r.view;
    const lead = this.recovery!.replies.get(leaderOf(v, this.n));
    if (!lead || !viewEq(lead.view, v) || !lead.state) return;
    this.recovery = null;
    this.stateTimer.stop();
    this.setView(v);
    this.status = 'normal';
    this.lastNormalView = v;
    this.installState(lead.state, false);
    this.prepared = this.committed;
    this.executeThrough(this.committed);
    this.leaderTimer.start(this.cfg.leaderTimeoutUs);
    this.intake.installed(null, false);
  }

  // ---- view change -------------------------------------------------------------

  /**
   * True when m is of this replica's view. A higher (or incomparable) view
   * starts a view change to the join; a lower one gets a hint back, so a
   * replica that slept through a view change finds its way in.
   */
  private admitView(m: { readonly view: ViewId; readonly from: number }): boolean {
    if (viewEq(m.view, this.view)) return true;
    if (viewLeq(m.view, this.view)) {
      if (m.from !== this.id) this.transport.sendToReplica(m.from, { type: 'VIEW_CHANGE_REQUEST', from: this.id, view: this.view });
      return false;
    }
    this.startViewChange(m.view);
    return viewEq(m.view, this.view);
  }

  private setView(v: ViewId): void {
    if (v.session !== this.view.session) this.intake.newSession(v.session);
    this.view = v;
  }

  private startViewChange(target: ViewId): void {
    const v = viewJoin(this.view, target);
    if (viewEq(v, this.view) || this.status === 'recovering') return;
    this.setView(v);
    this.status = 'view-change';
    this.stopNormalWork();
    this.vc = { msgs: new Map(), retries: 0 };
    this.sendViewChange();
    this.vcTimer.start(this.cfg.viewChangeRetryUs);
  }

  private stopNormalWork(): void {
    for (const t of [this.syncTimer, this.leaderTimer, this.stateTimer]) t.stop();
    this.sync = null;
    this.followerSync.length = 0;
    this.intake.stopWork();
  }

  private sendViewChange(): void {
    for (let r = 0; r < this.n; r++) {
      if (r !== this.id) this.transport.sendToReplica(r, { type: 'VIEW_CHANGE_REQUEST', from: this.id, view: this.view });
    }
    // The log is frozen while the view changes, so this is the log as of
    // lastNormalView, as the merge needs.
    const held = this.intake.heldEntries();
    const m: ViewChangeMsg = { type: 'VIEW_CHANGE', from: this.id, view: this.view, lastNormalView: this.lastNormalView, state: this.currentState(), ...(held.length ? { held } : {}) };
    if (this.amLeader()) this.collectViewChange(m);
    else this.toLeader(m);
  }

  private onViewChangeTimeout(): void {
    if (this.status !== 'view-change' || !this.vc) return;
    if (++this.vc.retries >= this.cfg.viewChangeEscalateAfter) {
      // The would-be leader is not answering: try the next one.
      return this.startViewChange({ leaderNum: this.view.leaderNum + 1, session: this.view.session });
    }
    this.sendViewChange();
    this.vcTimer.start(this.cfg.viewChangeRetryUs);
  }

  private onLeaderTimeout(): void {
    if (this.status === 'normal' && !this.amLeader()) this.startViewChange({ leaderNum: this.view.leaderNum + 1, session: this.view.session });
  }

  private heardFromLeader(): void {
    this.leaderTimer.start(this.cfg.leaderTimeoutUs);
  }

  private onViewChange(m: ViewChangeMsg): void {
    if (!this.admitView(m) || !this.amLeader()) return;
    if (this.status === 'normal') {
      // It missed START_VIEW; the current log extends the one the view started with.
      return this.transport.sendToReplica(m.from, { type: 'START_VIEW', from: this.id, view: this.view, state: this.currentState() });
    }
    this.collectViewChange(m);
  }

  private collectViewChange(m: ViewChangeMsg): void {
    const vc = this.vc;
    if (!vc || this.status !== 'view-change') return;
    vc.msgs.set(m.from, m);
    if (vc.msgs.size < this.f + 1 || !vc.msgs.has(this.id)) return;
    this.enterView(this.intake.mergeViewChanges([...vc.msgs.values()]), true);
    const sv: StartViewMsg = { type: 'START_VIEW', from: this.id, view: this.view, state: this.currentState() };
    for (let r = 0; r < this.n; r++) if (r !== this.id) this.transport.sendToReplica(r, sv);
  }

  private onStartView(m: StartViewMsg): void {
    if (m.from === this.id || leaderOf(m.view, this.n) === this.id) return;
    if (viewEq(m.view, this.view)) {
      if (this.status === 'view-change') this.enterView(m.state, false);
      return;
    }
    if (viewLeq(this.view, m.view)) {
      this.setView(m.view);
      return this.enterView(m.state, false);
    }
    this.admitView(m);
  }

  private enterView(st: LogState, asLeader: boolean): void {
    const old = this.log;
    this.status = 'normal';
    this.lastNormalView = this.view;
    this.vc = null;
    this.vcTimer.stop();
    this.stopNormalWork();
    this.installState(st, asLeader);
    this.prepared = this.committed;
    if (asLeader) {
      this.executeThrough(this.log.lastSlot);
      // Commit the merged log right away: followers execute nothing of it
      // until a sync commit says a quorum holds it.
      this.sendSyncPrepare();
      this.syncTimer.start(this.cfg.syncIntervalUs);
    } else {
      this.executeThrough(this.committed);
      this.leaderTimer.start(this.cfg.leaderTimeoutUs);
    }
    this.ackInstalled();
    this.intake.installed(old, false);
  }

  // ---- installing a log from elsewhere -------------------------------------------

  /**
   * Replaces the log with st. A leader keeps its application state when
   * everything it executed past the commit point matches st; a follower
   * keeps it only if it executed nothing past the commit point (an old
   * leader demoted here did). Otherwise the state goes back to the newest
   * committed checkpoint either side has, and the caller replays.
   */
  private installState(st: LogState, asLeader: boolean): void {
    const cp = st.checkpoint;
    const keep = cp.slot > this.exec.checkpoint.slot ? cp : this.exec.checkpoint;
    const committed = Math.max(this.committed, st.committed, keep.slot);
    let rollback = !asLeader && this.exec.executed > committed;
    for (let s = this.committed + 1; !rollback && s <= this.exec.executed; s++) {
      const mine = this.log.get(s);
      const theirs = s > cp.slot ? st.entries[s - cp.slot - 1] : undefined;
      rollback = !mine || !theirs || !sameEntry(mine, theirs);
    }
    if (rollback) this.exec.restore(keep);
    else if (cp.slot > this.exec.executed) this.exec.restore(cp);
    this.exec.keep(keep);
    this.log = new Log(positionOf(cp), st.entries);
    if (this.log.lastSlot < committed) throw new Error(`replica ${this.id}: installed log ends at ${this.log.lastSlot}, before commit point ${committed}`);
    this.committed = committed;
    for (const s of this.results.keys()) if (s > this.exec.executed || s <= cp.slot) this.results.delete(s);
  }

  /** This replica's log as it travels: newest checkpoint, entries after it, commit point. */
  currentState(): LogState {
    const cp = this.exec.checkpoint;
    return { checkpoint: cp, entries: this.log.slice(cp.slot + 1, this.log.lastSlot), committed: this.committed };
  }

  /** Tells the transport which seqs of each stream the replica holds, when that changed. */
  private reportDelivered(): void {
    if (!this.transport.delivered || this.stopped) return;
    for (const p of this.intake.delivered()) {
      const last = this.reported.get(p.sid);
      if (last?.session === p.session && last.seq === p.seq) continue;
      this.reported.set(p.sid, { session: p.session, seq: p.seq });
      if (p.sid === undefined) this.transport.delivered(p.session, p.seq);
      else this.transport.delivered(p.session, p.seq, p.sid);
    }
  }

  private toLeader(m: PeerMsg): void {
    const l = leaderOf(this.view, this.n);
    if (l !== this.id) this.transport.sendToReplica(l, m);
  }
}

// A NOPaxos replica (Li et al., OSDI'16) adapted to xseq: OUM from the XDP
// sequencer, ACKs counted by the sequencer host, and the agent's repair
// service as the first rung of drop recovery. README.md says what each
// choice is and why; the comments here say why a step is safe.
import type { Application } from './app.ts';
import { configWith, type ReplicaConfig } from './config.ts';
import { Executor, STALE_MARK } from './executor.ts';
import { Log, noopEntry, ORIGIN, positionOf, sameEntry, type LogPosition } from './log.ts';
import { Hydra } from './hydra.ts';
import { mergeStreamViewChanges, mergeViewChanges } from './merge.ts';
import type {
  Checkpoint,
  DropNotificationMsg,
  GapCommitMsg,
  GapCommitReplyMsg,
  GapFindMsg,
  GapRecvMsg,
  LogEntry,
  LogState,
  PeerMsg,
  RepairErrorMsg,
  RepairReplyMsg,
  ReplicaInbound,
  SequencedMsg,
  StartViewMsg,
  StreamPos,
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

export interface ReplicaOptions {
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

const REPAIR_MAX = 128; // XSEQ_REPAIR_MAX
/** Drop notifications kept ahead of the log. */
const NOTIFIED_MAX = 64;
const NO_OP = new Uint8Array(0);

interface GapRecovery {
  readonly seq: number;
  stage: 'repair' | 'peer';
  tries: number;
}

export class Replica {
  readonly id: number;
  readonly n: number;
  readonly f: number;
  private readonly cfg: ReplicaConfig;
  private readonly transport: ReplicaTransport;

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
  /** OUM messages of the current session past the log's end (the reorder window). */
  private readonly reorder = new Map<number, SequencedMsg>();
  /** OUM messages of later sessions, kept for after the view change they trigger. */
  private future: SequencedMsg[] = [];
  /** Follower: slots the leader already committed as no-ops, ahead of my log. */
  private readonly pendingNoops = new Set<number>();
  /** Seqs of the current session the agent said it no longer has. */
  private readonly agentMissing = new Set<number>();
  /** Ranges of the current session the transport reported dropped (DROP_NOTIFICATION), ascending, bounded. */
  private notified: { from: number; to: number }[] = [];
  /** What the transport was last told this replica holds (ReplicaTransport.delivered). */
  private reported: { session: number; seq: number } | null = null;
  private gap: GapRecovery | null = null;
  private waitingFor = 0;
  private gapCommit: { readonly slot: number; readonly acks: Set<number> } | null = null;
  private sync: { readonly point: number; readonly acks: Set<number>; readonly cp: Checkpoint } | null = null;
  /** Leader: the highest sync point each follower confirmed in this view. */
  private readonly followerSync: number[] = [];
  private vc: { readonly msgs: Map<number, ViewChangeMsg>; retries: number } | null = null;
  private recovery: { readonly nonce: number; readonly replies: Map<number, StateReplyMsg> } | null = null;
  private stopped = false;
  /** Hydra: the merge of several sequencers' streams; null with one sequencer. */
  readonly hydra: Hydra | null = null;

  private readonly reorderTimer: Timer;
  private readonly gapTimer: Timer;
  private readonly gapCommitTimer: Timer;
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
    this.exec = new Executor(o.app, Executor.genesis(o.app));
    const s = o.scheduler;
    // Every timer, like every message, may move the log's end: the
    // transport hears of it after each (reportDelivered).
    const timer = (fire: () => void) =>
      new Timer(o.scheduler, () => {
        fire();
        this.reportDelivered();
      });
    this.reorderTimer = timer(() => this.onReorderTimeout());
    this.gapTimer = timer(() => this.onGapTimeout());
    this.gapCommitTimer = timer(() => this.onGapCommitTimeout());
    this.syncTimer = timer(() => this.onSyncTimer());
    this.leaderTimer = timer(() => this.onLeaderTimeout());
    this.vcTimer = timer(() => this.onViewChangeTimeout());
    this.stateTimer = timer(() => this.onStateTimeout());
    const initialSeqs = o.sequencers ?? [0];
    if (initialSeqs.length + (o.joiningSequencers?.length ?? 0) > 1) {
      const self = this;
      this.hydra = new Hydra(
        {
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
          normal: () => this.status === 'normal',
          amLeader: () => this.amLeader(),
          deliver: (src, m) => this.appendMerged(src, m),
          reAck: (slot) => this.reAckSlot(slot),
          admit: (m) => this.admitView(m),
          heardFromLeader: () => this.heardFromLeader(),
          toLeader: (m) => this.toLeader(m),
        },
        initialSeqs,
        this.cfg,
        this.transport,
        s,
      );
    }

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
    this.hydra?.stop();
    for (const t of [this.reorderTimer, this.gapTimer, this.gapCommitTimer, this.syncTimer, this.leaderTimer, this.vcTimer, this.stateTimer]) t.stop();
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
    const h = this.hydra;
    if (h) {
      switch (m.type) {
        case 'SEQUENCED':
          return void (this.status !== 'recovering' && h.onSequenced(m));
        case 'FLUSH':
          return void (this.status !== 'recovering' && h.onFlush(m));
        case 'REPAIR_REPLY':
          return h.onRepairReply(m);
        case 'ERROR':
          return h.onRepairError(m);
        case 'DROP_NOTIFICATION':
          // The kernel's gap events name one sequencer's seqs; the merge
          // layer finds its gaps per stream itself.
          return;
      }
      if (this.status !== 'recovering') {
        switch (m.type) {
          case 'GAP_FIND':
            return m.stream ? h.onGapFind(m) : undefined;
          case 'GAP_RECV':
            return m.entry.src ? h.onGapRecv(m) : undefined;
          case 'GAP_DROP':
            return m.stream ? h.onGapDrop(m) : undefined;
          case 'GAP_COMMIT':
            return m.stream ? h.onGapCommit(m) : undefined;
          case 'GAP_COMMIT_REPLY':
            return m.stream ? h.onGapCommitReply(m) : undefined;
        }
      }
    }
    switch (m.type) {
      case 'FLUSH':
        return;
      case 'SEQUENCED':
        return this.onSequenced(m);
      case 'DROP_NOTIFICATION':
        return this.onDropNotification(m);
      case 'REPAIR_REPLY':
        return this.onRepairReply(m);
      case 'ERROR':
        return this.onRepairError(m);
      case 'STATE_REQUEST':
        return this.onStateRequest(m);
      case 'STATE_REPLY':
        return this.onStateReply(m);
    }
    if (this.status === 'recovering') return;
    switch (m.type) {
      case 'GAP_FIND':
        return this.onGapFind(m);
      case 'GAP_RECV':
        return this.onGapRecv(m);
      case 'GAP_DROP':
        return void this.admitView(m);
      case 'GAP_COMMIT':
        return this.onGapCommit(m);
      case 'GAP_COMMIT_REPLY':
        return this.onGapCommitReply(m);
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

  // ---- normal operation: OUM in, log append, execute, ACK ---------------------

  private onSequenced(m: SequencedMsg): void {
    if (this.status === 'recovering') return;
    if (m.session < this.view.session) return;
    if (m.session > this.view.session) {
      // The sequencer was re-created: a new session means a view change, and
      // these messages are the first of the new view.
      if (this.future.length < this.cfg.maxBufferedMsgs) this.future.push(m);
      this.startViewChange({ leaderNum: this.view.leaderNum, session: m.session });
      return;
    }
    const next = this.nextSeq();
    if (m.seq < next) return this.reAck(m);
    if (m.seq > next || this.status !== 'normal' || this.gapCommit) {
      if (this.reorder.size < this.cfg.maxBufferedMsgs) this.reorder.set(m.seq, m);
      this.checkGap();
      return;
    }
    this.appendRequest(m);
    this.drain();
    this.checkGap();
  }

  private appendRequest(m: SequencedMsg): void {
    const e: LogEntry = { slot: this.log.lastSlot + 1, session: m.session, seq: m.seq, noop: false, clientId: m.clientId, requestId: m.requestId, op: m.op };
    this.log.append(e);
    this.agentMissing.delete(m.seq);
    this.appended(e, true);
  }

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
    const src = e.src;
    if (src) {
      // Hydra: the ACK names the stream position, for the sequencer that stamped it.
      return this.transport.sendAck({ type: 'ACK', session: src.session, seq: src.seq, leaderNum: this.view.leaderNum, replicaId: this.id, clientId: e.clientId, requestId: e.requestId, result, sequencerId: src.sid, ...(result === STALE_MARK ? { stale: true } : {}) });
    }
    this.transport.sendAck({
      type: 'ACK',
      session: e.session,
      seq: e.seq,
      leaderNum: this.view.leaderNum,
      replicaId: this.id,
      clientId: e.clientId,
      requestId: e.requestId,
      result,
      ...(result === STALE_MARK ? { stale: true } : {}),
    });
  }

  /** Hydra: the next merged entry, at the log's end (virtual seq = slot within the view's session). */
  private appendMerged(src: StreamPos, m: SequencedMsg | null): void {
    const slot = this.log.lastSlot + 1;
    const e: LogEntry = m
      ? { slot, session: this.view.session, seq: slot, noop: false, clientId: m.clientId, requestId: m.requestId, op: m.op, src, ...(m.control ? { control: true } : {}) }
      : { slot, session: this.view.session, seq: slot, noop: true, clientId: 0n, requestId: 0n, op: NO_OP, src };
    this.log.append(e);
    this.appended(e, true);
  }

  private reAckSlot(slot: number): void {
    const e = this.log.get(slot);
    if (this.status !== 'normal' || !e || e.noop) return;
    if (!this.amLeader()) return this.sendAck(e, null);
    const r = this.results.get(slot);
    if (r) this.sendAck(e, r);
  }

  private snap(p: LogPosition): Checkpoint {
    const cp = this.exec.snapshot(p);
    return this.hydra ? { ...cp, streams: this.hydra.streamsAt(p.slot) } : cp;
  }

  /** A copy of something already logged: the ACK may have been lost, send it again. */
  private reAck(m: SequencedMsg): void {
    if (this.status !== 'normal') return;
    const last = this.log.last;
    if (last.session !== m.session) return;
    const slot = last.slot - (last.seq - m.seq);
    if (slot < this.log.firstSlot) return this.reAckTruncated(m, slot);
    const e = this.log.get(slot);
    if (!e || e.noop || e.clientId !== m.clientId || e.requestId !== m.requestId) return;
    if (!this.amLeader()) return this.sendAck(e, null);
    const r = this.results.get(e.slot);
    if (r) this.sendAck(e, r);
  }

  /**
   * A copy of a seq committed and truncated here (below the checkpoint):
   * its window slot may still wait for this replica's ACK in the current
   * view (a view change resets a slot's acks), and nobody else can give
   * it. The leader answers from the client table (the cached result, or a
   * stale mark; nothing for a request never executed), a follower ACKs it
   * as committed.
   */
  private reAckTruncated(m: SequencedMsg, slot: number): void {
    const e: LogEntry = { slot, session: m.session, seq: m.seq, noop: false, clientId: m.clientId, requestId: m.requestId, op: m.op };
    if (!this.amLeader()) return this.sendAck(e, null);
    const r = this.exec.answerFor(m.clientId, m.requestId);
    if (r) this.sendAck(e, r);
  }

  /** Appends whatever became contiguous: buffered OUM messages and pending no-ops. */
  private drain(): void {
    while (this.status === 'normal' && !this.gapCommit) {
      const slot = this.log.lastSlot + 1;
      if (this.pendingNoops.has(slot)) {
        this.pendingNoops.delete(slot);
        this.appendNoop();
        this.toLeader({ type: 'GAP_COMMIT_REPLY', from: this.id, view: this.view, slot });
        continue;
      }
      const m = this.reorder.get(this.nextSeq());
      if (!m) break;
      this.reorder.delete(m.seq);
      this.appendRequest(m);
    }
    if (this.gap && this.gap.seq < this.nextSeq()) {
      this.gap = null;
      this.gapTimer.stop();
    }
  }

  private appendNoop(): LogEntry {
    const p: LogPosition = { slot: this.log.lastSlot + 1, session: this.view.session, seq: this.nextSeq() };
    const e = noopEntry(p);
    this.log.append(e);
    this.reorder.delete(p.seq);
    this.agentMissing.delete(p.seq);
    this.appended(e, false);
    return e;
  }

  // ---- drop recovery: reorder window -> agent repair -> leader ---------------

  private checkGap(): void {
    if (this.status !== 'normal' || this.gapCommit) return;
    const next = this.nextSeq();
    if (this.reorder.size === 0 && !this.notifiedAt(next)) {
      this.reorderTimer.stop();
      return;
    }
    if (this.gap?.seq === next) return;
    if (this.agentMissing.has(next)) return this.escalate(next);
    if (this.reorder.size >= this.cfg.reorderWindowMsgs) return this.startRepair(next);
    if (this.waitingFor !== next || !this.reorderTimer.active) {
      // Reordering is normal here (per-CPU backlogs after the sequencer):
      // give the missing seq a bounded time before calling it a gap.
      this.waitingFor = next;
      this.reorderTimer.start(this.cfg.reorderWaitUs);
    }
  }

  private onReorderTimeout(): void {
    const next = this.nextSeq();
    if (this.status !== 'normal' || this.gapCommit || (this.reorder.size === 0 && !this.notifiedAt(next))) return;
    if (next === this.waitingFor && this.gap?.seq !== next) this.startRepair(next);
    else this.checkGap();
  }

  private startRepair(seq: number): void {
    this.reorderTimer.stop();
    this.gap = { seq, stage: 'repair', tries: 1 };
    this.sendRepair(seq);
    this.gapTimer.start(this.cfg.repairTimeoutUs);
  }

  private sendRepair(seq: number): void {
    const count = this.notifiedRun(seq) ?? this.bufferedRun(seq);
    this.transport.sendRepairRequest({ type: 'REPAIR_REQUEST', session: this.view.session, replicaId: this.id, first: seq, count });
  }

  /** Seqs from `seq` up to the first one buffered, found by scanning the reorder window. */
  private bufferedRun(seq: number): number {
    let firstHeld = Infinity;
    for (const s of this.reorder.keys()) if (s > seq && s < firstHeld) firstHeld = s;
    return Math.max(1, Math.min(REPAIR_MAX, (Number.isFinite(firstHeld) ? firstHeld : seq + 1) - seq));
  }

  /**
   * The same run from a drop notification's range, when one covers `seq`:
   * a walk of at most REPAIR_MAX lookups instead of a scan (the range may
   * hold seqs that arrived late since, which end the run as above).
   */
  private notifiedRun(seq: number): number | undefined {
    const r = this.notifiedAt(seq);
    if (!r) return undefined;
    const last = Math.min(r.to, seq + REPAIR_MAX - 1);
    let n = 1;
    while (seq + n <= last && !this.reorder.has(seq + n)) n++;
    return n;
  }

  /** The notified range holding seq, if any; forgets ranges the log has passed. */
  private notifiedAt(seq: number): { from: number; to: number } | undefined {
    while (this.notified.length > 0 && this.notified[0]!.to < this.nextSeq()) this.notified.shift();
    return this.notified.find((r) => r.from <= seq && seq <= r.to);
  }

  private onDropNotification(m: DropNotificationMsg): void {
    if (this.status !== 'normal' || m.session !== this.view.session) return;
    const from = Math.max(m.from, this.nextSeq());
    if (m.to < from) return;
    // Ranges arrive ascending from one kernel stream; a bounded list, since
    // only the one at the head of the log is ever used before it is passed.
    if (this.notified.length >= NOTIFIED_MAX) return;
    this.notified.push({ from, to: m.to });
    this.notified.sort((a, b) => a.from - b.from);
    this.checkGap();
  }

  private onGapTimeout(): void {
    const g = this.gap;
    if (!g || this.status !== 'normal' || g.seq !== this.nextSeq()) {
      this.gap = null;
      return this.checkGap();
    }
    if (g.stage === 'repair') {
      if (g.tries >= this.cfg.repairTries) return this.escalate(g.seq);
      g.tries++;
      this.sendRepair(g.seq);
      this.gapTimer.start(this.cfg.repairTimeoutUs);
    } else {
      this.sendGapFind();
      this.gapTimer.start(this.cfg.gapFindRetryUs);
    }
  }

  private onRepairReply(m: RepairReplyMsg): void {
    if (this.status !== 'normal' || m.session !== this.view.session) return;
    const next = this.nextSeq();
    for (const s of m.missing) if (s >= next) this.agentMissing.add(s);
    if (this.gap?.stage === 'repair' && this.agentMissing.has(this.gap.seq)) this.escalate(this.gap.seq);
    else this.checkGap();
  }

  /** The agent cannot serve this session any more (failover) or refused: it cannot help. */
  private onRepairError(m: RepairErrorMsg): void {
    if (this.status !== 'normal' || m.session !== this.view.session) return;
    if (this.gap?.stage === 'repair' && m.first <= this.gap.seq) this.escalate(this.gap.seq);
  }

  /** The agent does not have it: the leader decides (NOPaxos gap agreement). */
  private escalate(seq: number): void {
    // Only the head of the log is ever decided: a stale call must not no-op a slot nobody examined.
    if (seq !== this.nextSeq()) {
      this.gap = null;
      return this.checkGap();
    }
    this.reorderTimer.stop();
    if (this.amLeader()) {
      this.gap = null;
      this.gapTimer.stop();
      return this.startGapCommit();
    }
    this.gap = { seq, stage: 'peer', tries: 0 };
    this.sendGapFind();
    this.gapTimer.start(this.cfg.gapFindRetryUs);
  }

  private sendGapFind(): void {
    this.toLeader({ type: 'GAP_FIND', from: this.id, view: this.view, slot: this.log.lastSlot + 1 });
  }

  private onGapFind(m: GapFindMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || !this.amLeader()) return;
    if (m.slot < this.log.firstSlot) {
      // Already truncated here: the follower is too far behind for one entry.
      return this.transport.sendToReplica(m.from, { type: 'STATE_REPLY', from: this.id, nonce: 0, view: this.view, state: this.currentState() });
    }
    const e = this.log.get(m.slot);
    if (e) this.transport.sendToReplica(m.from, { type: 'GAP_RECV', from: this.id, view: this.view, entry: e });
    else this.transport.sendToReplica(m.from, { type: 'GAP_DROP', from: this.id, view: this.view, slot: m.slot });
  }

  private onGapRecv(m: GapRecvMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || this.amLeader()) return;
    this.heardFromLeader();
    const e = m.entry;
    if (e.noop) {
      if (this.placeNoop(e.slot, e)) this.toLeader({ type: 'GAP_COMMIT_REPLY', from: this.id, view: this.view, slot: e.slot });
    } else if (e.slot === this.log.lastSlot + 1 && e.session === this.view.session && e.seq === this.nextSeq() && !this.pendingNoops.has(e.slot)) {
      this.log.append(e);
      this.reorder.delete(e.seq);
      this.agentMissing.delete(e.seq);
      this.appended(e, true);
    }
    this.drain();
    this.checkGap();
  }

  // ---- gap agreement ---------------------------------------------------------

  /**
   * Leader: neither it nor the agent has the request. A no-op takes the
   * slot, and the leader appends nothing after it until f followers hold the
   * no-op too: a later slot certified on top of the no-op must never meet a
   * view change that resurrects the request under it.
   */
  private startGapCommit(): void {
    const e = this.appendNoop();
    this.gapCommit = { slot: e.slot, acks: new Set() };
    this.sendGapCommits();
    if (this.f === 0) return this.finishGapCommit();
    this.gapCommitTimer.start(this.cfg.gapCommitRetryUs);
  }

  private sendGapCommits(): void {
    const g = this.gapCommit;
    if (!g) return;
    const e = this.log.get(g.slot)!;
    for (let r = 0; r < this.n; r++) {
      if (r === this.id || g.acks.has(r)) continue;
      this.transport.sendToReplica(r, { type: 'GAP_COMMIT', from: this.id, view: this.view, slot: g.slot, session: e.session, seq: e.seq });
    }
  }

  private onGapCommitTimeout(): void {
    if (!this.gapCommit || this.status !== 'normal') return;
    this.sendGapCommits();
    this.gapCommitTimer.start(this.cfg.gapCommitRetryUs);
  }

  private finishGapCommit(): void {
    this.gapCommit = null;
    this.gapCommitTimer.stop();
    this.drain();
    this.checkGap();
  }

  private onGapCommit(m: GapCommitMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || this.amLeader()) return;
    this.heardFromLeader();
    if (this.placeNoop(m.slot, m)) this.toLeader({ type: 'GAP_COMMIT_REPLY', from: this.id, view: this.view, slot: m.slot });
    this.drain();
    this.checkGap();
  }

  /**
   * Follower: the leader committed a no-op at slot. A request already logged
   * there is replaced (followers never executed it). A slot ahead of the log
   * waits in pendingNoops and is answered once reached; the leader retries.
   */
  private placeNoop(slot: number, at: { session: number; seq: number }): boolean {
    if (slot <= this.committed) return true;
    if (slot <= this.log.lastSlot) {
      const e = this.log.get(slot);
      if (e && !e.noop) this.log.put(noopEntry(positionOf(e)));
      return true;
    }
    if (slot === this.log.lastSlot + 1) {
      if (at.session !== this.view.session || at.seq !== this.nextSeq()) return false;
      this.pendingNoops.delete(slot);
      this.appendNoop();
      return true;
    }
    this.pendingNoops.add(slot);
    return false;
  }

  private onGapCommitReply(m: GapCommitReplyMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || !this.amLeader()) return;
    const g = this.gapCommit;
    if (!g || m.slot !== g.slot || m.from === this.id) return;
    g.acks.add(m.from);
    if (g.acks.size >= this.f) this.finishGapCommit();
  }

  // ---- synchronization: commit point, checkpoint, truncation, heartbeat -----

  private onSyncTimer(): void {
    if (this.status !== 'normal' || !this.amLeader()) return;
    this.sendSyncPrepare();
    this.syncTimer.start(this.cfg.syncIntervalUs);
  }

  private sendSyncPrepare(): void {
    const point = this.log.lastSlot;
    const entries = this.log.slice(this.log.firstSlot, point);
    const full: SyncPrepareMsg = { type: 'SYNC_PREPARE', from: this.id, view: this.view, syncPoint: point, committed: this.committed, entries };
    if (point > this.committed) {
      // The leader has executed exactly its log, so this snapshot is the
      // state at `point`; it becomes the checkpoint once a quorum holds it.
      if (!this.sync || this.sync.point !== point) this.sync = { point, acks: new Set(), cp: this.snap(this.log.last) };
      for (let r = 0; r < this.n; r++) if (r !== this.id) this.transport.sendToReplica(r, full);
      if (this.f === 0) this.leaderCommit();
      return;
    }
    // Idle: a bare heartbeat, except to followers not known to hold the
    // committed log (they lost a prepare), who get it again.
    const beat: SyncPrepareMsg = { ...full, entries: [] };
    for (let r = 0; r < this.n; r++) {
      if (r !== this.id) this.transport.sendToReplica(r, (this.followerSync[r] ?? 0) < point ? full : beat);
    }
  }

  private onSyncPrepare(m: SyncPrepareMsg): void {
    if (!this.admitView(m) || this.status !== 'normal' || this.amLeader()) return;
    this.heardFromLeader();
    if (m.entries.length > 0) {
      if (m.syncPoint > this.committed) {
        if (m.entries[0]!.slot > this.committed + 1) return this.requestCatchUp();
        this.adoptLeaderLog(m.entries);
        this.prepared = Math.max(this.prepared, m.syncPoint);
      }
      this.toLeader({ type: 'SYNC_REPLY', from: this.id, view: this.view, syncPoint: m.syncPoint });
    }
    if (m.committed > this.committed && this.prepared >= m.committed) this.commitThrough(m.committed);
    this.drain();
    this.checkGap();
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
        if (this.hydra) displaced.push(mine);
      }
    }
    this.afterLogGrew();
    if (this.hydra && (changed || grew)) {
      // What this follower merged after a differing entry was merged from
      // other stream positions: merge it again after the leader's log.
      const tail = changed ? this.log.truncateAfter(entries[entries.length - 1]!.slot) : [];
      if (changed) this.hydra.stats.remerges++;
      this.hydra.resync(true, [...displaced, ...tail]);
    }
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
    for (let r = 0; r < this.n; r++) {
      if (r !== this.id) this.transport.sendToReplica(r, { type: 'SYNC_COMMIT', from: this.id, view: this.view, syncPoint: s.point });
    }
    // A quorum adopting the log through the gap slot holds the no-op.
    if (this.gapCommit && s.point >= this.gapCommit.slot) this.finishGapCommit();
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
    this.rebuffer(old);
    this.afterLogGrew();
    this.ackInstalled();
    this.drain();
    this.checkGap();
    this.hydra?.resync(true, old.slice(old.firstSlot, old.lastSlot));
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
    this.hydra?.resync(false, []);
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
    if (v.session !== this.view.session) {
      this.reorder.clear();
      this.agentMissing.clear();
      this.notified = [];
      const later: SequencedMsg[] = [];
      for (const m of this.future) {
        if (m.session === v.session) this.reorder.set(m.seq, m);
        else if (m.session > v.session) later.push(m);
      }
      this.future = later;
    }
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
    for (const t of [this.reorderTimer, this.gapTimer, this.gapCommitTimer, this.syncTimer, this.leaderTimer, this.stateTimer]) t.stop();
    this.gap = null;
    this.gapCommit = null;
    this.sync = null;
    this.followerSync.length = 0;
    this.pendingNoops.clear();
    this.hydra?.stopWork();
  }

  private sendViewChange(): void {
    for (let r = 0; r < this.n; r++) {
      if (r !== this.id) this.transport.sendToReplica(r, { type: 'VIEW_CHANGE_REQUEST', from: this.id, view: this.view });
    }
    // The log is frozen while the view changes, so this is the log as of
    // lastNormalView, as the merge needs.
    const held = this.hydra?.heldEntries() ?? [];
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
    this.enterView((this.hydra ? mergeStreamViewChanges : mergeViewChanges)([...vc.msgs.values()]), true);
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
    this.rebuffer(old);
    this.afterLogGrew();
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
    this.drain();
    this.checkGap();
    this.hydra?.resync(false, old.slice(old.firstSlot, old.lastSlot));
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
   * are re-sent by the agent and re-ACKed on arrival (reAck).
   */
  private ackInstalled(): void {
    const last = this.log.lastSlot;
    for (let s = Math.max(this.log.firstSlot, last - this.cfg.maxBufferedMsgs + 1); s <= last; s++) {
      const e = this.log.get(s);
      if (e && (e.src !== undefined || e.session === this.view.session)) this.reAckSlot(s);
    }
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

  /** Requests of the current session the new log ends before: they are genuine OUM messages, keep them. */
  private rebuffer(old: Log): void {
    if (this.hydra) return; // the merge layer takes them back (hydra.resync)
    for (let s = this.log.lastSlot + 1; s <= old.lastSlot; s++) {
      const e = old.get(s);
      if (!e || e.noop || e.session !== this.view.session) continue;
      if (this.reorder.size < this.cfg.maxBufferedMsgs) {
        this.reorder.set(e.seq, { type: 'SEQUENCED', session: e.session, seq: e.seq, clientId: e.clientId, requestId: e.requestId, op: e.op, retransmit: true });
      }
    }
  }

  /** The log moved past buffered state: drop what it now covers. */
  private afterLogGrew(): void {
    const next = this.nextSeq();
    for (const s of this.reorder.keys()) if (s < next) this.reorder.delete(s);
    for (const s of this.agentMissing) if (s < next) this.agentMissing.delete(s);
    for (const s of this.pendingNoops) if (s <= this.log.lastSlot) this.pendingNoops.delete(s);
    if (this.gap && this.gap.seq < next) {
      this.gap = null;
      this.gapTimer.stop();
    }
  }

  /** This replica's log as it travels: newest checkpoint, entries after it, commit point. */
  currentState(): LogState {
    const cp = this.exec.checkpoint;
    return { checkpoint: cp, entries: this.log.slice(cp.slot + 1, this.log.lastSlot), committed: this.committed };
  }

  /** Tells the transport which seqs the log holds, when that changed. */
  private reportDelivered(): void {
    // Hydra: log slots are merged positions, not any one sequencer's seqs,
    // so the kernel filter (keyed by sequencer) is not told; it then only
    // reports gaps and drops nothing of these streams.
    if (!this.transport.delivered || this.stopped || this.hydra) return;
    const session = this.view.session;
    const seq = this.nextSeq() - 1;
    if (this.reported?.session === session && this.reported.seq === seq) return;
    this.reported = { session, seq };
    this.transport.delivered(session, seq);
  }

  private toLeader(m: PeerMsg): void {
    const l = leaderOf(this.view, this.n);
    if (l !== this.id) this.transport.sendToReplica(l, m);
  }
}

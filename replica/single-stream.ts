// One sequencer: its stream is the log. A SEQUENCED of the view's session
// takes the slot of its seq (within a session seq fixes the slot), later
// ones wait in the reorder window, a newer session is a view change, and a
// missing seq goes through the drop-recovery ladder and gap agreement keyed
// by log slot (GAP_FIND/GAP_COMMIT.slot).
import { DropRecovery } from './drop-recovery.ts';
import type { EngineHost, Intake, StreamDelivered } from './intake.ts';
import { noopEntry, positionOf, type Log, type LogPosition } from './log.ts';
import { mergeViewChanges } from './merge.ts';
import type {
  DropNotificationMsg,
  GapCommitMsg,
  GapCommitReplyMsg,
  GapDropMsg,
  GapFindMsg,
  GapRecvMsg,
  LogEntry,
  LogState,
  RepairErrorMsg,
  RepairReplyMsg,
  SequencedMsg,
  StreamPos,
  ViewChangeMsg,
} from './messages.ts';
import { NoopQuorum } from './noop-quorum.ts';
import type { ReplicaConfig } from './config.ts';
import { sessionCmp } from './view.ts';

export class SingleStream implements Intake {
  /** OUM messages of the current session past the log's end (the reorder window). */
  private readonly reorder = new Map<number, SequencedMsg>();
  /** OUM messages of later sessions, kept for after the view change they trigger. */
  private future: SequencedMsg[] = [];
  /** Follower: slots the leader already committed as no-ops, ahead of my log. */
  private readonly pendingNoops = new Set<number>();
  readonly ladder: DropRecovery;
  /** Leader: the no-op slot waiting for f followers; nothing is appended after it meanwhile. */
  readonly quorum: NoopQuorum<number>;

  constructor(
    private readonly h: EngineHost,
    private readonly cfg: ReplicaConfig,
  ) {
    this.ladder = new DropRecovery(
      {
        normal: () => h.normal(),
        deciding: () => this.quorum.pending !== null,
        next: () => h.nextSeq(),
        ahead: () => this.reorder.size > 0,
        held: () => this.reorder.size,
        has: (q) => this.reorder.has(q),
        firstHeldAfter: (q) => {
          let first = Infinity;
          for (const s of this.reorder.keys()) if (s > q && s < first) first = s;
          return Number.isFinite(first) ? first : q + 1;
        },
        repair: (first, count) => h.transport.sendRepairRequest({ type: 'REPAIR_REQUEST', session: h.view.session, replicaId: h.id, first, count }),
        amLeader: () => h.amLeader(),
        decideNoop: () => this.startGapCommit(),
        findAtLeader: () => h.toLeader({ type: 'GAP_FIND', from: h.id, view: h.view, slot: h.log.lastSlot + 1 }),
      },
      cfg,
      (fire) => h.timer(fire),
    );
    this.quorum = new NoopQuorum<number>(
      {
        id: h.id,
        n: h.n,
        f: h.f,
        normal: () => h.normal(),
        send: (to, slot) => {
          const e = h.log.get(slot)!;
          h.transport.sendToReplica(to, { type: 'GAP_COMMIT', from: h.id, view: h.view, slot, session: e.session, seq: e.seq });
        },
        decided: () => {
          this.drain();
          this.ladder.check();
        },
      },
      cfg,
      (fire) => h.timer(fire),
    );
  }

  // ---- normal operation ------------------------------------------------------------

  onSequenced(m: SequencedMsg): void {
    const h = this.h;
    // Sessions are serial numbers (view.ts sessionCmp): the one after 0xffffffff is 1.
    const newer = sessionCmp(m.session, h.view.session);
    if (newer < 0) return;
    if (newer > 0) {
      // The sequencer was re-created: a new session means a view change, and
      // these messages are the first of the new view.
      if (this.future.length < this.cfg.maxBufferedMsgs) this.future.push(m);
      h.startViewChange({ leaderNum: h.view.leaderNum, session: m.session });
      return;
    }
    const next = h.nextSeq();
    if (m.seq < next) return this.reAck(m);
    if (m.seq > next || !h.normal() || this.quorum.pending) {
      if (this.reorder.size < this.cfg.maxBufferedMsgs) this.reorder.set(m.seq, m);
      this.ladder.check();
      return;
    }
    this.appendRequest(m);
    this.drain();
    this.ladder.check();
  }

  onFlush(): void {
    // A FLUSH only matters to a merge of several streams.
  }

  private appendRequest(m: SequencedMsg): void {
    const h = this.h;
    h.append({ slot: h.log.lastSlot + 1, session: m.session, seq: m.seq, noop: false, clientId: m.clientId, requestId: m.requestId, op: m.op, ...(m.control ? { control: true } : {}) }, true);
    this.ladder.resolved(m.seq);
  }

  /**
   * A copy of a seq already settled here: the ACK may have been lost, and
   * under backpressure its window slot waits for it, so it is sent again.
   * A seq below the checkpoint or held as a no-op is ACKed as settled
   * (acks.ts): within a session seq fixes the slot, so the log's end says
   * which slot it had even once the entry is gone.
   */
  private reAck(m: SequencedMsg): void {
    const h = this.h;
    if (!h.normal()) return;
    const last = h.log.last;
    if (last.session !== m.session) return;
    const slot = last.slot - (last.seq - m.seq);
    if (slot < h.log.firstSlot) return h.reAckSettled(m, undefined);
    const e = h.log.get(slot);
    if (e?.noop) return h.reAckSettled(m, undefined);
    if (!e || e.clientId !== m.clientId || e.requestId !== m.requestId) return;
    h.reAck(e.slot);
  }

  /** Appends whatever became contiguous: buffered OUM messages and pending no-ops. */
  private drain(): void {
    const h = this.h;
    while (h.normal() && !this.quorum.pending) {
      const slot = h.log.lastSlot + 1;
      if (this.pendingNoops.has(slot)) {
        this.pendingNoops.delete(slot);
        this.appendNoop();
        h.toLeader({ type: 'GAP_COMMIT_REPLY', from: h.id, view: h.view, slot });
        continue;
      }
      const m = this.reorder.get(h.nextSeq());
      if (!m) break;
      this.reorder.delete(m.seq);
      this.appendRequest(m);
    }
    this.ladder.passed(h.nextSeq());
  }

  private appendNoop(): LogEntry {
    const h = this.h;
    const p: LogPosition = { slot: h.log.lastSlot + 1, session: h.view.session, seq: h.nextSeq() };
    const e = noopEntry(p);
    h.append(e, false);
    this.reorder.delete(p.seq);
    this.ladder.resolved(p.seq);
    return e;
  }

  resume(): void {
    this.drain();
    this.ladder.check();
  }

  // ---- drop recovery: the ladder's inputs ----------------------------------------

  onDropNotification(m: DropNotificationMsg): void {
    const h = this.h;
    if (!h.normal() || m.session !== h.view.session) return;
    if (this.ladder.notify(m.from, m.to)) this.ladder.check();
  }

  onRepairReply(m: RepairReplyMsg): void {
    if (!this.h.normal() || m.session !== this.h.view.session) return;
    this.ladder.onRepairReply(m.missing);
  }

  onRepairError(m: RepairErrorMsg): void {
    if (!this.h.normal() || m.session !== this.h.view.session) return;
    this.ladder.onRepairError(m.first);
  }

  // ---- gap agreement, keyed by log slot ------------------------------------------

  onGapFind(m: GapFindMsg): void {
    const h = this.h;
    if (!h.admit(m) || !h.normal() || !h.amLeader()) return;
    if (m.slot < h.log.firstSlot) {
      // Already truncated here: the follower is too far behind for one entry.
      return h.transport.sendToReplica(m.from, { type: 'STATE_REPLY', from: h.id, nonce: 0, view: h.view, state: h.currentState() });
    }
    const e = h.log.get(m.slot);
    if (e) h.transport.sendToReplica(m.from, { type: 'GAP_RECV', from: h.id, view: h.view, entry: e });
    else h.transport.sendToReplica(m.from, { type: 'GAP_DROP', from: h.id, view: h.view, slot: m.slot });
  }

  onGapRecv(m: GapRecvMsg): void {
    const h = this.h;
    if (!h.admit(m) || !h.normal() || h.amLeader()) return;
    h.heardFromLeader();
    const e = m.entry;
    if (e.noop) {
      if (this.placeNoop(e.slot, e)) h.toLeader({ type: 'GAP_COMMIT_REPLY', from: h.id, view: h.view, slot: e.slot });
    } else if (e.slot === h.log.lastSlot + 1 && e.session === h.view.session && e.seq === h.nextSeq() && !this.pendingNoops.has(e.slot)) {
      h.append(e, true);
      this.reorder.delete(e.seq);
      this.ladder.resolved(e.seq);
    }
    this.drain();
    this.ladder.check();
  }

  onGapDrop(m: GapDropMsg): void {
    this.h.admit(m);
  }

  /** Leader: a no-op takes the slot; nothing is appended after it until f followers hold it. */
  private startGapCommit(): void {
    const e = this.appendNoop();
    this.quorum.start(e.slot);
  }

  onGapCommit(m: GapCommitMsg): void {
    const h = this.h;
    if (!h.admit(m) || !h.normal() || h.amLeader()) return;
    h.heardFromLeader();
    if (this.placeNoop(m.slot, m)) h.toLeader({ type: 'GAP_COMMIT_REPLY', from: h.id, view: h.view, slot: m.slot });
    this.drain();
    this.ladder.check();
  }

  /**
   * Follower: the leader committed a no-op at slot. A request already logged
   * there is replaced (followers never executed it). A slot ahead of the log
   * waits in pendingNoops and is answered once reached; the leader retries.
   */
  placeNoop(slot: number, at: { session: number; seq: number }): boolean {
    const h = this.h;
    if (slot <= h.committed) return true;
    if (slot <= h.log.lastSlot) {
      const e = h.log.get(slot);
      if (e && !e.noop) h.log.put(noopEntry(positionOf(e)));
      return true;
    }
    if (slot === h.log.lastSlot + 1) {
      if (at.session !== h.view.session || at.seq !== h.nextSeq()) return false;
      this.pendingNoops.delete(slot);
      this.appendNoop();
      return true;
    }
    this.pendingNoops.add(slot);
    return false;
  }

  onGapCommitReply(m: GapCommitReplyMsg): void {
    const h = this.h;
    if (!h.admit(m) || !h.normal() || !h.amLeader()) return;
    this.quorum.ack(m.from, (slot) => slot === m.slot);
  }

  committedThrough(point: number): void {
    // A quorum adopting the log through the gap slot holds the no-op.
    const p = this.quorum.pending;
    if (p && point >= p.key) this.quorum.finish();
  }

  // ---- the log changed under the stream ------------------------------------------

  newSession(session: number): void {
    this.reorder.clear();
    this.ladder.forget();
    const later: SequencedMsg[] = [];
    for (const m of this.future) {
      if (m.session === session) this.reorder.set(m.seq, m);
      else if (sessionCmp(m.session, session) > 0) later.push(m);
    }
    this.future = later;
  }

  adopted(): void {
    this.afterLogGrew();
  }

  installed(old: Log | null): void {
    if (old) this.rebuffer(old);
    this.afterLogGrew();
    this.drain();
    this.ladder.check();
  }

  /** Requests of the current session the new log ends before: they are genuine OUM messages, keep them. */
  private rebuffer(old: Log): void {
    const h = this.h;
    for (let s = h.log.lastSlot + 1; s <= old.lastSlot; s++) {
      const e = old.get(s);
      if (!e || e.noop || e.session !== h.view.session) continue;
      if (this.reorder.size < this.cfg.maxBufferedMsgs) {
        this.reorder.set(e.seq, { type: 'SEQUENCED', session: e.session, seq: e.seq, clientId: e.clientId, requestId: e.requestId, op: e.op, retransmit: true, ...(e.control ? { control: true } : {}) });
      }
    }
  }

  /** The log moved past buffered state: drop what it now covers. */
  private afterLogGrew(): void {
    const next = this.h.nextSeq();
    for (const s of this.reorder.keys()) if (s < next) this.reorder.delete(s);
    for (const s of this.pendingNoops) if (s <= this.h.log.lastSlot) this.pendingNoops.delete(s);
    this.ladder.jumped(next);
  }

  stopWork(): void {
    this.ladder.halt();
    this.quorum.abandon();
    this.pendingNoops.clear();
  }

  streamsAt(): StreamPos[] | undefined {
    return undefined;
  }

  heldEntries(): LogEntry[] {
    return [];
  }

  mergeViewChanges(msgs: readonly ViewChangeMsg[]): LogState {
    return mergeViewChanges(msgs);
  }

  *delivered(): Iterable<StreamDelivered> {
    yield { sid: undefined, session: this.h.view.session, seq: this.h.nextSeq() - 1 };
  }
}

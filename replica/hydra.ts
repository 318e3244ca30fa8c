// Hydra: several sequencers feeding one replica group. Each sequencer's
// SEQUENCED messages form a stream (its own session and dense seqs); this
// file turns the streams into one merged order that every replica computes
// the same way, and hands it to the NOPaxos core one entry at a time.
//
// Per stream s: the resolved prefix P(s) (every seq present, or decided a
// no-op), its effective clock eff(s, P) (eff(s, q) = max(raw, eff(s, q-1),
// floor): raw clocks are not monotonic in seq when two CPUs stamp), and the
// frontier F(s) = max(eff(s, P), clock of a FLUSH whose q <= P) below which
// s will never send anything again. A message (c, s, q) is delivered once it
// is in P(s) and every other stream s2 with nothing resolved waiting has
// F(s2) > c, or F(s2) == c and s2 > s: the merged order is the (eff clock,
// sequencer id, seq) order, a function of the streams' contents only, so
// every replica that resolved the same streams has the same log.
//
// A missing seq goes through the same ladder as with one sequencer:
// reorder wait, repair from that sequencer's agent, then gap agreement
// keyed by (sequencer, session, seq) through the leader. The leader resolves
// its no-op only once f followers hold it, so nothing merged after it can be
// certified while a view change could still bring the request back.
// A follower told of a no-op for something it already merged re-merges its
// unexecuted suffix (followers execute only the committed prefix).
import type { ReplicaConfig } from './config.ts';
import { decodeControlOp } from './control-op.ts';
import { HydraFailover } from './hydra-failover.ts';
import * as gaps from './hydra-gaps.ts';
import type { EngineHost, Intake, StreamDelivered } from './intake.ts';
import type { Log } from './log.ts';
import { mergeStreamViewChanges } from './merge.ts';
import type {
  DropNotificationMsg,
  FlushMsg,
  GapCommitMsg,
  GapCommitReplyMsg,
  GapDropMsg,
  GapFindMsg,
  GapRecvMsg,
  LogEntry,
  LogState,
  PeerMsg,
  RepairErrorMsg,
  RepairReplyMsg,
  SequencedMsg,
  StreamKey,
  StreamPos,
  ViewChangeMsg,
} from './messages.ts';
import { cursorsAt, keyAfter, membersOf, streamEntry } from './stream-positions.ts';
import { appendReconfig, type Reconfig } from './stream-epochs.ts';
import { Stream, type Item } from './stream.ts';
import type { Scheduler } from './transport.ts';
import { sessionCmp } from './view.ts';

export { decodeControlOp, encodeControlOp, type ControlOp } from './control-op.ts';
export { Stream } from './stream.ts';

const NO_OP = new Uint8Array(0);

export interface HydraStats {
  delivered: number;
  noops: number;
  solicits: number;
  flushes: number;
  remerges: number;
  unknownSequencer: number;
  wrongSession: number;
  /** Messages of an ended session, past its end: never merged. */
  afterEnd: number;
}

export class Hydra implements Intake {
  readonly streams: Stream[] = [];
  private readonly byId = new Map<number, Stream>();
  readonly stats: HydraStats = { delivered: 0, noops: 0, solicits: 0, flushes: 0, remerges: 0, unknownSequencer: 0, wrongSession: 0, afterEnd: 0 };
  /** Removal and rejoin (hydra-failover.ts). */
  readonly failover: HydraFailover;
  /** When delivery last became blocked with messages waiting (NaN: not blocked). */
  blockedSince = NaN;
  /** The sequencer whose frontier blocks delivery now (-1: none). */
  blockedOn = -1;
  private pumping = false;
  /** Clock of the last merged entry (the log may be empty past a checkpoint). */
  private lastClock = -Infinity;
  /**
   * Requests taken out of the log to merge again (after a no-op or the
   * leader's log changed what came before them): this replica ACKed them,
   * so a view change must count them until they are back in the log.
   */
  private readonly held = new Map<string, LogEntry>();

  /**
   * What a VIEW_CHANGE must count besides the log: the requests above, and
   * every no-op decision this replica knows but has not merged yet (it
   * answered GAP_COMMIT_REPLY for them, so the leader may have gone past).
   */
  heldEntries(): LogEntry[] {
    const out = [...this.held.values()];
    for (const s of this.streams) {
      for (const [seq, clock] of s.noops) out.push(streamEntry({ sid: s.sid, session: s.session, seq, clock, raw: clock }, null));
    }
    return out;
  }
  /** Messages of sequencers not (yet) in the group, by id, oldest first. */
  private readonly unknown = new Map<number, (SequencedMsg | FlushMsg)[]>();
  private unknownCount = 0;
  private readonly initial: ReadonlySet<number>;

  constructor(
    readonly host: EngineHost,
    sequencerIds: readonly number[],
    private readonly cfg: ReplicaConfig,
    private readonly scheduler: Scheduler,
  ) {
    this.initial = new Set(sequencerIds);
    this.failover = new HydraFailover(host, cfg, scheduler);
    for (const sid of sequencerIds) this.addStream(sid, -Infinity);
  }

  private holdUnknown(sid: number, m: SequencedMsg | FlushMsg): void {
    this.stats.unknownSequencer++;
    let l = this.unknown.get(sid);
    // A joining sequencer flushes on its timer until it is added: a newer
    // flush says all an older one did, so it takes its place rather than
    // filling the buffer and crowding out the sequencer's requests.
    const last = l?.[l.length - 1];
    if (m.type === 'FLUSH' && last?.type === 'FLUSH' && !last.final && last.session === m.session && m.seq >= last.seq && m.clock >= last.clock) {
      l![l!.length - 1] = m;
      return;
    }
    if (this.unknownCount >= this.cfg.maxBufferedMsgs) return;
    if (!l) this.unknown.set(sid, (l = []));
    l.push(m);
    this.unknownCount++;
  }

  /** An "add" op was merged at clock c: the sequencer joins with floor c + 1. */
  private applyControl(e: SequencedMsg, clock: number): void {
    const op = decodeControlOp(e.op);
    // A merged "remove" changes nothing here: removal is decided outside the merge.
    if (!op || op.kind !== 'add' || this.byId.has(op.sid)) return;
    this.addStream(op.sid, clock + 1);
    this.replayUnknown(op.sid);
  }

  private replayUnknown(sid: number): void {
    const held = this.unknown.get(sid);
    if (!held) return;
    this.unknown.delete(sid);
    this.unknownCount -= held.length;
    for (const m of held) {
      if (m.type === 'FLUSH') this.onFlush(m);
      else this.onSequenced(m);
    }
  }

  private dropStream(s: Stream): void {
    s.ladder.halt();
    s.quorum.abandon();
    s.solicitTimer.stop();
    this.streams.splice(this.streams.indexOf(s), 1);
    this.byId.delete(s.sid);
    for (let i = s.head; i < s.queue.length; i++) {
      const m = s.queue[i]!.msg;
      if (m) s.buf.set(m.seq, m);
    }
    for (const m of s.buf.values()) this.holdUnknown(s.sid, m);
  }

  private addStream(sid: number, floor: number): Stream {
    const s = new Stream(sid, floor, this.host, this.cfg, this.scheduler.now(), {
      decideNoop: (seq) => this.startGapCommit(s, seq),
      decided: (p) => {
        s.noops.set(p.seq, p.clock);
        this.advance(s);
        this.pump();
        s.ladder.check();
      },
      solicit: () => this.onSolicitTimer(s),
    });
    this.streams.push(s);
    this.streams.sort((a, b) => a.sid - b.sid);
    this.byId.set(sid, s);
    return s;
  }

  stream(sid: number): Stream | undefined {
    return this.byId.get(sid);
  }

  // ---- input --------------------------------------------------------------------

  onSequenced(m: SequencedMsg): void {
    const s = this.byId.get(m.sequencerId ?? 0);
    if (!s) return this.holdUnknown(m.sequencerId ?? 0, m);
    if (s.session < 0) s.session = m.session;
    if (m.session !== s.session) return this.failover.otherSession(s, m, this.stats);
    if (m.control) this.failover.controlSeen(m, (sid) => this.byId.get(sid));
    if (s.final !== null && m.seq > s.final) {
      this.stats.afterEnd++;
      return;
    }
    this.heard(s);
    if (m.seq < s.next) {
      // A copy of a settled seq (its ACK may have been lost), or one waiting (ACKed when merged).
      // Below the checkpoint or a no-op: ACKed as settled (acks.ts), or its window slot waits for good.
      const at = s.placeOf(m.seq, this.host.log.firstSlot);
      const e = typeof at === 'number' ? this.host.log.get(at) : undefined;
      return at === 'truncated' || e?.noop ? this.host.reAckSettled(m, s.sid) : e && this.host.reAck(at as number);
    }
    if (m.seq === s.next && s.buf.size === 0 && s.noops.size === 0 && s.pendingNoop === null) {
      // The common case: the next seq, nothing buffered. Resolve it without the map.
      const raw = m.clock ?? 0;
      const clock = this.effOf(raw, s.eff, s.floor);
      s.queue.push({ seq: m.seq, msg: m, raw, clock });
      s.eff = clock;
      s.next = m.seq + 1;
      if (m.seq > s.known) s.known = m.seq;
      if (s.pendingFlushes.length || s.ladder.gap || s.ladder.agentMissing.size) this.advance(s);
      this.pump();
      if (s.known >= s.next) s.ladder.check();
      else s.ladder.caughtUp();
      return;
    }
    if (s.noops.has(m.seq) || s.pendingNoop?.seq === m.seq) return;
    if (s.buf.size >= this.cfg.maxBufferedMsgs && !s.buf.has(m.seq)) return;
    s.buf.set(m.seq, m);
    if (m.seq > s.known) s.known = m.seq;
    if (m.seq === s.next) {
      this.advance(s);
      this.pump();
    }
    this.checkGap(s);
  }

  onFlush(m: FlushMsg): void {
    const s = this.byId.get(m.sequencerId);
    if (!s) return this.holdUnknown(m.sequencerId, m);
    if (s.session < 0) s.session = m.session;
    if (m.session !== s.session) return this.failover.otherSession(s, m, this.stats);
    this.heard(s);
    this.stats.flushes++;
    // An ended session's own FINAL comes too late: the replicas' end stands.
    if (s.ended) return;
    if (m.final) s.final = s.final === null ? m.seq : Math.min(s.final, m.seq);
    if (m.seq > s.known) s.known = m.seq;
    if (m.seq < s.next) {
      if (m.clock > s.flushClock) {
        s.flushClock = m.clock;
        s.flushQ = m.seq;
      }
    } else if (s.pendingFlushes.length < 64) {
      s.pendingFlushes.push({ q: m.seq, clock: m.clock });
    }
    this.pump();
    this.checkGap(s);
  }

  // ---- resolving a stream's prefix --------------------------------------------

  /** The key clock of a resolved message: its effective clock. */
  protected effOf(raw: number, prevEff: number, floor: number): number {
    const e = raw > prevEff ? raw : prevEff;
    return e > floor ? e : floor;
  }

  /** Extends P(s) over everything now contiguous. */
  advance(s: Stream): void {
    for (;;) {
      const q = s.next;
      if (s.pendingNoop?.seq === q || (s.final !== null && q > s.final)) break;
      let item: Item;
      const nc = s.noops.get(q);
      if (nc !== undefined) {
        item = { seq: q, msg: null, raw: nc, clock: this.effOf(nc, s.eff, s.floor) };
      } else {
        const m = s.buf.get(q);
        if (!m) break;
        const raw = m.clock ?? 0;
        item = { seq: q, msg: m, raw, clock: this.effOf(raw, s.eff, s.floor) };
      }
      s.queue.push(item);
      s.eff = item.clock;
      s.next = q + 1;
      s.ladder.resolved(q);
    }
    if (s.pendingFlushes.length) {
      const keep: { q: number; clock: number }[] = [];
      for (const f of s.pendingFlushes) {
        if (f.q < s.next) {
          if (f.clock > s.flushClock) {
            s.flushClock = f.clock;
            s.flushQ = f.q;
          }
        } else keep.push(f);
      }
      s.pendingFlushes = keep;
    }
    s.ladder.passed(s.next);
    s.recap();
  }

  // ---- the merge ----------------------------------------------------------------

  /** (F, s2) is past (c, s): nothing s2 sends later can sort before (c, s). */
  protected passes(F: number, s2: number, c: number, s: number): boolean {
    return F > c || (F === c && s2 > s);
  }

  /** Delivers everything the frontiers allow, in (eff clock, sequencer id) order. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const streams = this.streams;
      let progress = false;
      while (this.host.normal()) {
        let best: Stream | null = null;
        let bc = 0;
        for (const s of streams) {
          if (s.head >= s.queue.length) continue;
          const c = s.queue[s.head]!.clock;
          if (best === null || c < bc) {
            best = s;
            bc = c;
          }
        }
        if (best === null) {
          this.unblocked();
          break;
        }
        let blocker: Stream | null = null;
        for (const s2 of streams) {
          if (s2 === best || s2.head < s2.queue.length) continue;
          if (!this.passes(s2.frontier(), s2.sid, bc, best.sid)) {
            blocker = s2;
            break;
          }
        }
        if (blocker) {
          this.blocked(blocker, progress);
          break;
        }
        progress = true;
        const it = best.queue[best.head++]!;
        if (best.head > 1024 && best.head * 2 > best.queue.length) {
          best.queue = best.queue.slice(best.head);
          best.head = 0;
        }
        this.merge(best, it);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The next merged entry, at the log's end (virtual seq = slot within the view's session). */
  private deliver(src: StreamPos, m: SequencedMsg | null): void {
    const h = this.host;
    const slot = h.log.lastSlot + 1;
    const session = h.view.session;
    const e: LogEntry = m
      ? { slot, session, seq: slot, noop: false, clientId: m.clientId, requestId: m.requestId, op: m.op, src, ...(m.control ? { control: true } : {}) }
      : { slot, session, seq: slot, noop: true, clientId: 0n, requestId: 0n, op: NO_OP, src };
    h.append(e, true);
  }

  private merge(s: Stream, it: Item): void {
    if (!it.msg) {
      s.noops.delete(it.seq);
      s.recap();
    } else if (s.buf.size) s.buf.delete(it.seq);
    this.stats.delivered++;
    if (!it.msg) this.stats.noops++;
    this.deliver({ sid: s.sid, session: s.session, seq: it.seq, clock: it.clock, raw: it.raw }, it.msg);
    this.lastClock = it.clock;
    if (this.held.size) this.held.delete(`${s.sid}:${it.seq}`);
    if (s.merged.length - s.mergedHead === 0) {
      s.merged = [];
      s.mergedHead = 0;
      s.mergedBase = it.seq;
    }
    s.merged.push(this.host.log.lastSlot);
    if ((s.merged.length & 1023) === 0) s.prune(this.host.log.firstSlot);
    if (it.msg?.control) this.applyControl(it.msg, it.clock);
  }

  // The solicit timer is left running when delivery unblocks: it checks
  // blockedOn when it fires, and not restarting it per message keeps the
  // hot path free of timer churn.
  private unblocked(): void {
    if (this.blockedOn >= 0) this.byId.get(this.blockedOn)?.live.blocking(this.scheduler.now(), false);
    this.blockedSince = NaN;
    this.blockedOn = -1;
  }

  private blocked(s: Stream, progress: boolean): void {
    const now = this.scheduler.now();
    if (this.blockedOn !== s.sid || progress) {
      if (this.blockedOn !== s.sid) this.unblocked();
      this.blockedOn = s.sid;
      this.blockedSince = now;
    }
    s.live.blocking(now, true);
    if (!s.solicitTimer.active) this.armSolicit(s, now);
  }

  private armSolicit(s: Stream, now: number): void {
    const at = s.live.nextAt();
    if (at < Infinity) s.solicitTimer.start(Math.max(0, at - now));
  }

  /** A message of the stream's session: it is alive (liveness starts over; a silence plan is dropped). */
  private heard(s: Stream): void {
    if (s.live.suspected) this.failover.alive(s.sid);
    s.live.heard(this.scheduler.now());
  }

  /**
   * Still blocked by s: ask it for a FLUSH, backing off while it does not
   * answer (sequencer-liveness.ts); silent past deadSequencerUs, the
   * leader has the replicas end its stream (hydra-failover.ts).
   */
  private onSolicitTimer(s: Stream): void {
    if (this.blockedOn !== s.sid || !this.host.normal()) return;
    const now = this.scheduler.now();
    const v = s.live.due(now);
    if (v === 'solicit') {
      this.stats.solicits++;
      s.solicits++;
      this.host.transport.sendFlushSolicit?.({ type: 'FLUSH_SOLICIT', sequencerId: s.sid, replicaId: this.host.id, session: Math.max(0, s.session) });
    } else if (v === 'suspect' && this.host.amLeader() && !s.ended) {
      // Never heard at all (its first message lost, or it died first): session 0, "none yet", ends it.
      this.failover.end(s.sid, Math.max(0, s.session), 'silent');
    }
    this.armSolicit(s, now);
  }

  // ---- drop recovery: the ladder's inputs (drop-recovery.ts) ------------------------

  checkGap(s: Stream): void {
    s.ladder.check();
  }

  onRepairReply(m: RepairReplyMsg): void {
    const s = this.byId.get(m.sequencerId ?? 0);
    if (!s || !this.host.normal() || m.session !== s.session) return;
    s.ladder.onRepairReply(m.missing);
  }

  onRepairError(m: RepairErrorMsg): void {
    const s = this.byId.get(m.sequencerId ?? 0);
    if (!s || !this.host.normal() || m.session !== s.session) return;
    s.ladder.onRepairError(m.first);
  }

  /** The kernel saw a run of one sequencer's seqs skipped (replica-side XDP). */
  onDropNotification(m: DropNotificationMsg): void {
    const s = m.sequencerId === undefined ? undefined : this.byId.get(m.sequencerId);
    if (!s || !this.host.normal() || m.session !== s.session || m.to < s.next) return;
    // A later seq reached the host, so the run exists.
    if (m.to > s.known) s.known = m.to;
    s.ladder.notify(m.from, m.to);
    s.ladder.check();
  }

  // ---- gap agreement keyed by (sequencer, session, seq) --------------------------
  // Messages keyed by log slot (a one-sequencer replica's) are not ours: ignored unseen.

  /** Leader: neither it nor the agent has it. Resolved as a no-op once f followers hold the decision. */
  private startGapCommit(s: Stream, seq: number): void {
    s.buf.delete(seq);
    // It sorts after everything in this leader's log (a view change may have
    // merged entries past this stream's frontier from a peer's log).
    let clock = s.frontier();
    if (this.lastClock >= clock) clock = this.lastClock + 1;
    s.quorum.start({ seq, clock });
    s.recap();
  }

  onGapCommitReply(m: GapCommitReplyMsg): void {
    gaps.onGapCommitReply(this, m);
  }

  onGapFind(m: GapFindMsg): void {
    gaps.onGapFind(this, m);
  }

  onGapDrop(m: GapDropMsg): void {
    if (m.stream) this.host.admit(m);
  }

  onGapRecv(m: GapRecvMsg): void {
    gaps.onGapRecv(this, m);
  }

  onGapCommit(m: GapCommitMsg): void {
    gaps.onGapCommit(this, m);
  }

  // ---- the log changed under the merge (view change, sync, state transfer) ----------

  /**
   * Recomputes every stream's position from the log end (or the checkpoint),
   * puts the requests of `old` (entries no longer in the log) back into the
   * streams, and resolves again. keepNoops: the same view, the leader's
   * no-op decisions stand; otherwise a new view dropped the ones it does not hold.
   */
  resync(keepNoops: boolean, old: readonly LogEntry[], noop?: StreamKey, noopClock = -Infinity): void {
    const log0 = this.host.log;
    const members = membersOf(this.initial, this.host.checkpoint, log0);
    for (const s of [...this.streams]) if (!members.has(s.sid)) this.dropStream(s);
    const joined: number[] = [];
    for (const [sid, floor] of members) {
      if (this.byId.has(sid)) continue;
      this.addStream(sid, floor);
      joined.push(sid);
    }
    const cur = this.cursorsAt(this.host.log.lastSlot);
    const end = log0.get(log0.lastSlot)?.src;
    this.lastClock = end ? end.clock : -Infinity;
    if (!end) for (const p of cur.values()) if (p.seq > 0 && p.clock > this.lastClock) this.lastClock = p.clock;
    for (const s of this.streams) {
      const c = cur.get(s.sid);
      if (c && c.session >= 0 && s.session >= 0 && c.session !== s.session) {
        // The log moved the sequencer to another session (a rejoin, or a
        // view change that undid one): nothing held of the other is ours.
        if (sessionCmp(c.session, s.session) > 0) this.failover.stats.rejoins++;
        s.restart(this.scheduler.now());
      } else {
        // Resolved but unmerged messages go back to the buffer (the fast path never put them there).
        for (let i = s.head; i < s.queue.length; i++) {
          const it = s.queue[i]!;
          if (it.msg) s.buf.set(it.seq, it.msg);
          else s.noops.set(it.seq, it.raw);
        }
      }
      const ended = !!c?.end;
      if (ended && !s.ended) this.failover.stats.removals++;
      if (ended) s.final = c.seq;
      else if (s.ended) s.final = null;
      s.ended = ended;
      s.next = (c?.seq ?? 0) + 1;
      s.eff = c ? c.clock : s.floor;
      if (c && c.session >= 0) s.session = c.session;
      s.queue = [];
      s.head = 0;
      if (s.flushQ >= s.next) {
        s.flushClock = -Infinity;
        s.flushQ = 0;
      }
      if (!keepNoops) {
        s.noops.clear();
        s.quorum.abandon();
        s.ladder.forget();
      }
      s.ladder.halt();
    }
    if (!keepNoops) this.held.clear();
    for (const e of old) {
      const src = e.src;
      if (keepNoops && src && !e.noop) this.held.set(`${src.sid}:${src.seq}`, { ...e, slot: 0 });
      const s = src && this.byId.get(src.sid);
      if (!s || src.seq < s.next || src.session !== s.session || (s.final !== null && src.seq > s.final)) continue;
      if (e.noop) {
        if (keepNoops) s.noops.set(src.seq, src.raw);
      } else if (!s.noops.has(src.seq)) {
        s.buf.set(src.seq, { type: 'SEQUENCED', session: src.session, seq: src.seq, clientId: e.clientId, requestId: e.requestId, op: e.op, retransmit: true, sequencerId: src.sid, clock: src.raw, ...(e.control ? { control: true } : {}) });
      }
      if (src.seq > s.known) s.known = src.seq;
    }
    if (noop) {
      const s = this.byId.get(noop.sid);
      if (s && noop.seq >= s.next) {
        s.buf.delete(noop.seq);
        s.noops.set(noop.seq, noopClock);
      }
    }
    for (const s of this.streams) {
      s.merged = [];
      s.mergedHead = 0;
      s.mergedBase = 1;
    }
    const log = this.host.log;
    for (let slot = log.firstSlot; slot <= log.lastSlot; slot++) {
      const src = log.get(slot)!.src;
      const s = src && this.byId.get(src.sid);
      // Only the session the stream is in (seqs start over in a new one).
      if (!s || src.session !== s.session) continue;
      if (s.merged.length === 0) s.mergedBase = src.seq;
      // Within one stream the log holds consecutive seqs in order.
      if (src.seq === s.mergedBase + s.merged.length) s.merged.push(slot);
    }
    for (const s of this.streams) {
      for (const q of s.buf.keys()) if (q < s.next) s.buf.delete(q);
      for (const q of s.noops.keys()) if (q < s.next) s.noops.delete(q);
      this.advance(s);
    }
    for (const [k, e] of this.held) if (e.src!.seq <= (cur.get(e.src!.sid)?.seq ?? 0)) this.held.delete(k);
    for (const sid of joined) this.replayUnknown(sid);
    for (const s of this.streams) {
      for (const m of s.session >= 0 ? this.failover.takeHeld(s.sid, s.session) : []) {
        if (m.type === 'FLUSH') this.onFlush(m);
        else this.onSequenced(m);
      }
    }
    this.pump();
    for (const s of this.streams) this.checkGap(s);
  }

  /** Each stream's position as of `slot` (<= the log end): for checkpoints and resync. */
  cursorsAt(slot: number): Map<number, StreamPos> {
    return cursorsAt(this.host.log, this.host.checkpoint, slot);
  }

  streamsAt(slot: number): StreamPos[] {
    return [...this.cursorsAt(slot).values()].sort((a, b) => a.sid - b.sid);
  }

  /** Normal work stops (view change): timers off, no-op quorums abandoned. */
  stopWork(): void {
    for (const s of this.streams) {
      s.ladder.halt();
      s.quorum.abandon();
      s.solicitTimer.stop();
      s.recap();
    }
    this.blockedOn = -1;
    this.blockedSince = NaN;
  }

  // ---- the core's calls (intake.ts) ----------------------------------------------

  newSession(): void {
    // Each stream has its own session; the view's is only the log's label.
  }

  adopted(lastSlot: number, displaced: readonly LogEntry[], changed: boolean, grew: boolean): void {
    if (!changed && !grew) return;
    // What this follower merged after a differing entry was merged from
    // other stream positions: merge it again after the leader's log.
    const tail = changed ? this.host.log.truncateAfter(lastSlot) : [];
    if (changed) this.stats.remerges++;
    this.resync(true, [...displaced, ...tail]);
  }

  installed(old: Log | null, sameView: boolean): void {
    this.resync(sameView, old ? old.slice(old.firstSlot, old.lastSlot) : []);
    this.failover.installed((p) => this.reconfigDone(p));
  }

  /** The log holds what a plan asked: its session ended, and the new one started. */
  private reconfigDone(p: Reconfig): boolean {
    const s = this.byId.get(p.sid);
    if (!s) return true;
    if (p.start !== undefined) return sessionCmp(s.session, p.start) >= 0;
    return s.ended || s.session < 0 || (p.end !== undefined && sessionCmp(s.session, p.end) > 0);
  }

  resume(): void {
    // The merge moves on every input itself.
  }

  committedThrough(): void {
    // A stream's no-op is held by its GAP_COMMIT_REPLY quorum only.
  }

  mergeViewChanges(msgs: readonly ViewChangeMsg[]): LogState {
    const st = mergeStreamViewChanges(msgs);
    // This leader's removals and rejoins go right after what the quorum holds.
    return this.failover.pending ? appendReconfig(st, this.failover.plansFor(), (last) => this.endSeq(last)).state : st;
  }

  /** The seq a removed stream's end takes: right after the last one the quorum's logs hold. */
  protected endSeq(last: StreamPos): number {
    return last.seq + 1;
  }

  /** Each stream's resolved prefix: the replica drops further copies of it (only a merged one is re-ACKed). */
  *delivered(): Iterable<StreamDelivered> {
    for (const s of this.streams) if (s.session >= 0) yield { sid: s.sid, session: s.session, seq: s.next - 1 };
  }

  /** Messages resolved and waiting for the frontier, over all streams. */
  get waiting(): number {
    let w = 0;
    for (const s of this.streams) w += s.waiting;
    return w;
  }
}

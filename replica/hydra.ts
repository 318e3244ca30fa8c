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
import type { Log } from './log.ts';
import type {
  Checkpoint,
  FlushMsg,
  GapCommitMsg,
  GapCommitReplyMsg,
  GapDropMsg,
  GapFindMsg,
  GapRecvMsg,
  LogEntry,
  PeerMsg,
  RepairErrorMsg,
  RepairReplyMsg,
  SequencedMsg,
  StreamKey,
  StreamPos,
} from './messages.ts';
import { Timer, type ReplicaTransport, type Scheduler } from './transport.ts';
import type { ViewId } from './view.ts';

const REPAIR_MAX = 128;

/**
 * Group control ops (REQUEST with XSEQ_F_CONTROL, payload below; the
 * application never sees them). "add s": delivered at merge key k, every
 * replica adds sequencer s with floor clock k.clock + 1, so everything s
 * stamps sorts after the op; until then s's messages wait (bounded).
 */
export type ControlOp = { readonly kind: 'add'; readonly sid: number };
const CONTROL_MAGIC = 0x48; // 'H'

export function encodeControlOp(op: ControlOp): Uint8Array {
  return new Uint8Array([CONTROL_MAGIC, 1, op.sid >> 8, op.sid & 0xff]);
}

export function decodeControlOp(b: Uint8Array): ControlOp | null {
  if (b.length !== 4 || b[0] !== CONTROL_MAGIC || b[1] !== 1) return null;
  return { kind: 'add', sid: (b[2]! << 8) | b[3]! };
}

/** The sequencer an entry adds, if it is an "add" control op. */
function addedBy(e: LogEntry): number | null {
  return e.control && !e.noop ? (decodeControlOp(e.op)?.sid ?? null) : null;
}

/** What the merge layer needs from the replica it feeds. */
export interface MergeHost {
  readonly id: number;
  readonly f: number;
  readonly n: number;
  readonly view: ViewId;
  readonly log: Log;
  readonly committed: number;
  readonly checkpoint: Checkpoint;
  normal(): boolean;
  amLeader(): boolean;
  /** Appends the merged entry at the log's end (and executes/ACKs as the core does). */
  deliver(src: StreamPos, m: SequencedMsg | null): void;
  /** The ACK of an entry already logged, again (a retransmitted copy arrived). */
  reAck(slot: number): void;
  /** Same-view check of a peer message (and view change on a newer one). */
  admit(m: { readonly view: ViewId; readonly from: number }): boolean;
  heardFromLeader(): void;
  toLeader(m: PeerMsg): void;
}

export interface HydraStats {
  delivered: number;
  noops: number;
  solicits: number;
  flushes: number;
  remerges: number;
  unknownSequencer: number;
  wrongSession: number;
}

interface Item {
  readonly seq: number;
  readonly msg: SequencedMsg | null;
  readonly raw: number;
  readonly clock: number;
}

interface Gap {
  readonly seq: number;
  stage: 'repair' | 'peer';
  tries: number;
}

export class Stream {
  /** The sequencer's session; -1 until the first message or cursor says. */
  session = -1;
  /** Next seq to resolve: P(s) + 1. */
  next = 1;
  /** eff(s, P). */
  eff: number;
  /** Resolved, not yet merged, in seq order (queue[head..]). */
  queue: Item[] = [];
  head = 0;
  /** Received and not yet merged (resolved or not). */
  readonly buf = new Map<number, SequencedMsg>();
  /**
   * Decided no-ops not yet merged, with the clock the leader gave each: its
   * frontier of s when it decided. A lost request's clock is unknown, but a
   * replica may already have merged past eff(q-1) on a flush's word, so the
   * no-op sorts where the deciding leader's frontier stood (design deviation:
   * "a no-op has no clock" would let it sort below merged entries).
   */
  readonly noops = new Map<number, number>();
  /** Leader: a no-op of ours waiting for f followers, not resolved before. */
  pendingNoop: { readonly seq: number; readonly clock: number; readonly acks: Set<number> } | null = null;
  /** Lowest clock of a known, unresolved no-op (it caps the frontier). */
  noopCap = Infinity;
  /** Best flush clock with q <= P, and its q. */
  flushClock = -Infinity;
  flushQ = 0;
  /** Flushes with q beyond P. */
  pendingFlushes: { q: number; clock: number }[] = [];
  /** Highest seq known to exist (a later message, a flush, a peer's gap). */
  known = 0;
  /** FINAL flush: the sequencer stopped for good after this seq. */
  final: number | null = null;
  readonly agentMissing = new Set<number>();
  gap: Gap | null = null;
  waitingFor = 0;
  reorderTimer: Timer | null = null;
  gapTimer: Timer | null = null;
  commitTimer: Timer | null = null;
  solicitTimer: Timer | null = null;
  /** Log slots of merged seqs mergedBase, mergedBase+1, ... (pruned as the log is truncated). */
  merged: number[] = [];
  mergedHead = 0;
  mergedBase = 1;

  slotOf(seq: number): number | undefined {
    const i = seq - this.mergedBase;
    return i >= this.mergedHead && i < this.merged.length ? this.merged[i] : undefined;
  }

  /** Forgets positions at or below the log's start (a checkpoint covers them). */
  prune(firstSlot: number): void {
    while (this.mergedHead < this.merged.length && this.merged[this.mergedHead]! < firstSlot) this.mergedHead++;
    if (this.mergedHead > 1024 && this.mergedHead * 2 > this.merged.length) {
      this.merged = this.merged.slice(this.mergedHead);
      this.mergedBase += this.mergedHead;
      this.mergedHead = 0;
    }
  }

  constructor(
    readonly sid: number,
    /** Effective clocks never go below this (a sequencer added at merge key k has floor k.clock). */
    readonly floor: number,
  ) {
    this.eff = floor;
  }

  /** F(s): no later message of s has an effective clock below it. */
  frontier(): number {
    if (this.final !== null && this.next > this.final) return Infinity;
    const f = this.eff > this.flushClock ? this.eff : this.flushClock;
    // A decided no-op ahead sorts at max(its clock, eff): nothing may pass that.
    if (f > this.noopCap) return this.eff > this.noopCap ? this.eff : this.noopCap;
    return f;
  }

  recap(): void {
    let c = this.pendingNoop ? this.pendingNoop.clock : Infinity;
    for (const v of this.noops.values()) if (v < c) c = v;
    this.noopCap = c;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }
}

export class Hydra {
  readonly streams: Stream[] = [];
  private readonly byId = new Map<number, Stream>();
  readonly stats: HydraStats = { delivered: 0, noops: 0, solicits: 0, flushes: 0, remerges: 0, unknownSequencer: 0, wrongSession: 0 };
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
    private readonly host: MergeHost,
    sequencerIds: readonly number[],
    private readonly cfg: ReplicaConfig,
    private readonly transport: ReplicaTransport,
    private readonly scheduler: Scheduler,
  ) {
    this.initial = new Set(sequencerIds);
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
    if (!op || this.byId.has(op.sid)) return;
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
    for (const t of [s.reorderTimer, s.gapTimer, s.commitTimer, s.solicitTimer]) t!.stop();
    this.streams.splice(this.streams.indexOf(s), 1);
    this.byId.delete(s.sid);
    for (let i = s.head; i < s.queue.length; i++) {
      const m = s.queue[i]!.msg;
      if (m) s.buf.set(m.seq, m);
    }
    for (const m of s.buf.values()) this.holdUnknown(s.sid, m);
  }

  private addStream(sid: number, floor: number): Stream {
    const s = new Stream(sid, floor);
    const sch = this.scheduler;
    s.reorderTimer = new Timer(sch, () => this.onReorderTimeout(s));
    s.gapTimer = new Timer(sch, () => this.onGapTimeout(s));
    s.commitTimer = new Timer(sch, () => this.sendGapCommits(s));
    s.solicitTimer = new Timer(sch, () => this.onSolicitTimer(s));
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
    if (m.session !== s.session) {
      this.stats.wrongSession++;
      return;
    }
    if (m.seq < s.next) {
      // Merged already (a retransmission: the ACK may have been lost) or resolved and waiting.
      const slot = s.slotOf(m.seq);
      if (slot !== undefined) this.host.reAck(slot);
      return;
    }
    if (m.seq === s.next && s.buf.size === 0 && s.noops.size === 0 && s.pendingNoop === null) {
      // The common case: the next seq, nothing buffered. Resolve it without the map.
      const raw = m.clock ?? 0;
      const clock = this.effOf(raw, s.eff, s.floor);
      s.queue.push({ seq: m.seq, msg: m, raw, clock });
      s.eff = clock;
      s.next = m.seq + 1;
      if (m.seq > s.known) s.known = m.seq;
      if (s.pendingFlushes.length || s.gap || s.agentMissing.size) this.advance(s);
      this.pump();
      if (s.known >= s.next) this.checkGap(s);
      else if (s.reorderTimer!.active) s.reorderTimer!.stop();
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
    if (m.session !== s.session) {
      this.stats.wrongSession++;
      return;
    }
    this.stats.flushes++;
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
  protected advance(s: Stream): void {
    for (;;) {
      const q = s.next;
      if (s.pendingNoop?.seq === q) break;
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
      s.agentMissing.delete(q);
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
    if (s.gap && s.gap.seq < s.next) {
      s.gap = null;
      s.gapTimer!.stop();
    }
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

  private merge(s: Stream, it: Item): void {
    if (!it.msg) {
      s.noops.delete(it.seq);
      s.recap();
    } else if (s.buf.size) s.buf.delete(it.seq);
    this.stats.delivered++;
    if (!it.msg) this.stats.noops++;
    this.host.deliver({ sid: s.sid, session: s.session, seq: it.seq, clock: it.clock, raw: it.raw }, it.msg);
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
    this.blockedSince = NaN;
    this.blockedOn = -1;
  }

  private blocked(s: Stream, progress: boolean): void {
    if (this.blockedOn !== s.sid || progress) {
      this.blockedOn = s.sid;
      this.blockedSince = this.scheduler.now();
    }
    if (!s.solicitTimer!.active) s.solicitTimer!.start(this.cfg.flushSolicitUs);
  }

  /** Still blocked by s after the delay: ask it for a FLUSH, and again every delay while it lasts. */
  private onSolicitTimer(s: Stream): void {
    if (this.blockedOn !== s.sid || !this.host.normal()) return;
    this.stats.solicits++;
    this.transport.sendFlushSolicit?.({ type: 'FLUSH_SOLICIT', sequencerId: s.sid, replicaId: this.host.id, session: Math.max(0, s.session) });
    s.solicitTimer!.start(this.cfg.flushSolicitUs);
  }

  // ---- drop recovery: reorder wait -> the sequencer's agent -> the leader --------

  private checkGap(s: Stream): void {
    if (!this.host.normal() || s.pendingNoop) return;
    if (s.known < s.next && s.buf.size === 0) {
      s.reorderTimer!.stop();
      return;
    }
    const next = s.next;
    if (s.known < next) return;
    if (s.gap?.seq === next) return;
    if (s.agentMissing.has(next)) return this.escalate(s, next);
    if (s.buf.size >= this.cfg.reorderWindowMsgs) return this.startRepair(s, next);
    if (s.waitingFor !== next || !s.reorderTimer!.active) {
      s.waitingFor = next;
      s.reorderTimer!.start(this.cfg.reorderWaitUs);
    }
  }

  private onReorderTimeout(s: Stream): void {
    if (!this.host.normal() || s.pendingNoop || s.known < s.next) return;
    if (s.next === s.waitingFor && s.gap?.seq !== s.next) this.startRepair(s, s.next);
    else this.checkGap(s);
  }

  private startRepair(s: Stream, seq: number): void {
    s.reorderTimer!.stop();
    s.gap = { seq, stage: 'repair', tries: 1 };
    this.sendRepair(s, seq);
    s.gapTimer!.start(this.cfg.repairTimeoutUs);
  }

  private sendRepair(s: Stream, seq: number): void {
    let firstHeld = s.known + 1;
    for (const q of s.buf.keys()) if (q > seq && q < firstHeld) firstHeld = q;
    const count = Math.max(1, Math.min(REPAIR_MAX, firstHeld - seq));
    this.transport.sendRepairRequest({ type: 'REPAIR_REQUEST', sequencerId: s.sid, session: Math.max(0, s.session), replicaId: this.host.id, first: seq, count });
  }

  private onGapTimeout(s: Stream): void {
    const g = s.gap;
    if (!g || !this.host.normal() || g.seq !== s.next) {
      s.gap = null;
      return this.checkGap(s);
    }
    if (g.stage === 'repair') {
      if (g.tries >= this.cfg.repairTries) return this.escalate(s, g.seq);
      g.tries++;
      this.sendRepair(s, g.seq);
      s.gapTimer!.start(this.cfg.repairTimeoutUs);
    } else {
      this.sendGapFind(s, g.seq);
      s.gapTimer!.start(this.cfg.gapFindRetryUs);
    }
  }

  onRepairReply(m: RepairReplyMsg): void {
    const s = this.byId.get(m.sequencerId ?? 0);
    if (!s || !this.host.normal() || m.session !== s.session) return;
    for (const q of m.missing) if (q >= s.next) s.agentMissing.add(q);
    if (s.gap?.stage === 'repair' && s.agentMissing.has(s.gap.seq)) this.escalate(s, s.gap.seq);
    else this.checkGap(s);
  }

  onRepairError(m: RepairErrorMsg): void {
    const s = this.byId.get(m.sequencerId ?? 0);
    if (!s || !this.host.normal() || m.session !== s.session) return;
    if (s.gap?.stage === 'repair' && m.first <= s.gap.seq) this.escalate(s, s.gap.seq);
  }

  private escalate(s: Stream, seq: number): void {
    if (seq !== s.next) {
      s.gap = null;
      return this.checkGap(s);
    }
    s.reorderTimer!.stop();
    if (this.host.amLeader()) {
      s.gap = null;
      s.gapTimer!.stop();
      return this.startGapCommit(s, seq);
    }
    s.gap = { seq, stage: 'peer', tries: 0 };
    this.sendGapFind(s, seq);
    s.gapTimer!.start(this.cfg.gapFindRetryUs);
  }

  private streamKey(s: Stream, seq: number): StreamKey {
    return { sid: s.sid, session: s.session, seq };
  }

  private sendGapFind(s: Stream, seq: number): void {
    this.host.toLeader({ type: 'GAP_FIND', from: this.host.id, view: this.host.view, slot: 0, stream: this.streamKey(s, seq) });
  }

  // ---- gap agreement keyed by (sequencer, session, seq) --------------------------

  /** Leader: neither it nor the agent has it. Resolved as a no-op once f followers hold the decision. */
  private startGapCommit(s: Stream, seq: number): void {
    s.buf.delete(seq);
    // It sorts after everything in this leader's log (a view change may have
    // merged entries past this stream's frontier from a peer's log).
    let clock = s.frontier();
    if (this.lastClock >= clock) clock = this.lastClock + 1;
    s.pendingNoop = { seq, clock, acks: new Set() };
    s.recap();
    if (this.host.f === 0) return this.finishGapCommit(s);
    this.sendGapCommits(s);
  }

  private sendGapCommits(s: Stream): void {
    const p = s.pendingNoop;
    if (!p || !this.host.normal()) return;
    const h = this.host;
    const stream = this.streamKey(s, p.seq);
    for (let r = 0; r < h.n; r++) {
      if (r === h.id || p.acks.has(r)) continue;
      this.transportPeer(r, { type: 'GAP_COMMIT', from: h.id, view: h.view, slot: 0, session: s.session, seq: p.seq, stream, clock: p.clock });
    }
    s.commitTimer!.start(this.cfg.gapCommitRetryUs);
  }

  private finishGapCommit(s: Stream): void {
    const p = s.pendingNoop!;
    s.pendingNoop = null;
    s.commitTimer!.stop();
    s.noops.set(p.seq, p.clock);
    this.advance(s);
    this.pump();
    this.checkGap(s);
  }

  onGapCommitReply(m: GapCommitReplyMsg): void {
    const h = this.host;
    if (!h.admit(m) || !h.normal() || !h.amLeader() || !m.stream) return;
    const s = this.byId.get(m.stream.sid);
    const p = s?.pendingNoop;
    if (!s || !p || p.seq !== m.stream.seq || m.stream.session !== s.session || m.from === h.id) return;
    p.acks.add(m.from);
    if (p.acks.size >= h.f) this.finishGapCommit(s);
  }

  onGapFind(m: GapFindMsg): void {
    const h = this.host;
    if (!h.admit(m) || !h.normal() || !h.amLeader() || !m.stream) return;
    const k = m.stream;
    const s = this.byId.get(k.sid);
    if (!s || k.session !== s.session) return;
    const reply = (entry: LogEntry): void => this.transportPeer(m.from, { type: 'GAP_RECV', from: h.id, view: h.view, entry });
    const slot = s.slotOf(k.seq);
    const logged = slot !== undefined ? h.log.get(slot) : undefined;
    if (logged?.src && logged.src.sid === k.sid && logged.src.seq === k.seq) return reply(logged);
    const pos = (raw: number): StreamPos => ({ sid: s.sid, session: s.session, seq: k.seq, clock: raw, raw });
    const nc = s.noops.get(k.seq) ?? (s.pendingNoop?.seq === k.seq ? s.pendingNoop.clock : undefined);
    if (nc !== undefined) return reply(streamEntry(pos(nc), null));
    const m2 = s.buf.get(k.seq);
    if (m2) return reply(streamEntry(pos(m2.clock ?? 0), m2));
    if (k.seq < s.next) return; // merged and already truncated here: the follower catches up by sync
    this.transportPeer(m.from, { type: 'GAP_DROP', from: h.id, view: h.view, slot: 0, stream: k });
    // A drop notification from a peer: the leader runs the ladder for it too.
    if (k.seq > s.known) s.known = k.seq;
    this.checkGap(s);
  }

  onGapDrop(m: GapDropMsg): void {
    this.host.admit(m);
  }

  onGapRecv(m: GapRecvMsg): void {
    const h = this.host;
    if (!h.admit(m) || !h.normal() || h.amLeader()) return;
    h.heardFromLeader();
    const src = m.entry.src!;
    if (m.entry.noop) return this.followerNoop(src, src.raw);
    const e = m.entry;
    this.onSequenced({ type: 'SEQUENCED', session: src.session, seq: src.seq, clientId: e.clientId, requestId: e.requestId, op: e.op, retransmit: true, sequencerId: src.sid, clock: src.raw, ...(e.control ? { control: true } : {}) });
  }

  onGapCommit(m: GapCommitMsg): void {
    const h = this.host;
    if (!h.admit(m) || !h.normal() || h.amLeader() || !m.stream) return;
    h.heardFromLeader();
    this.followerNoop(m.stream, m.clock ?? -Infinity);
  }

  /** Follower: the leader decided (sid, seq) is a no-op sorting at `clock`. */
  private followerNoop(k: StreamKey, clock: number): void {
    const h = this.host;
    const s = this.byId.get(k.sid);
    if (!s || k.session !== s.session) return;
    const ack = (): void => h.toLeader({ type: 'GAP_COMMIT_REPLY', from: h.id, view: h.view, slot: 0, stream: k });
    if (k.seq >= s.next) {
      s.buf.delete(k.seq);
      const had = s.noops.has(k.seq);
      s.noops.set(k.seq, clock);
      s.recap();
      // Merged on a frontier the no-op now lowers: merge that suffix again.
      const bound = clock > s.eff ? clock : s.eff;
      let cut = h.log.lastSlot;
      while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, bound, k.sid, k.seq)) cut--;
      if (!had && cut < h.log.lastSlot) {
        const tail = h.log.truncateAfter(cut);
        this.stats.remerges++;
        this.resync(true, tail);
        return ack();
      }
      if (k.seq === s.next) {
        this.advance(s);
        this.pump();
      }
      this.checkGap(s);
      return ack();
    }
    // Resolved already. Waiting in the queue, or merged into the unexecuted suffix: re-merge.
    const slot = s.slotOf(k.seq);
    const e = slot !== undefined ? h.log.get(slot) : undefined;
    if (e?.src && e.src.sid === k.sid && e.src.seq === k.seq) {
      if (e.noop) return ack();
      if (slot! <= h.committed) return; // cannot happen while the leader lacks it; never touch the committed prefix
      let cut = slot! - 1;
      while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, clock, k.sid, k.seq)) cut--;
      const tail = h.log.truncateAfter(cut);
      this.stats.remerges++;
      this.resync(true, tail, k, clock);
      return ack();
    }
    if (slot === undefined || slot < h.log.firstSlot) {
      // In the queue: un-resolve from that seq on and resolve again with the no-op.
      let cut = h.log.lastSlot;
      while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, clock, k.sid, k.seq)) cut--;
      this.resync(true, h.log.truncateAfter(cut), k, clock);
      return ack();
    }
  }

  private transportPeer(to: number, m: PeerMsg): void {
    this.transport.sendToReplica(to, m);
  }

  // ---- the log changed under the merge (view change, sync, state transfer) ----------

  /**
   * Recomputes every stream's position from the log end (or the checkpoint),
   * puts the requests of `old` (entries no longer in the log) back into the
   * streams, and resolves again. keepNoops: the same view, the leader's
   * no-op decisions stand; otherwise a new view dropped the ones it does not hold.
   */
  resync(keepNoops: boolean, old: readonly LogEntry[], noop?: StreamKey, noopClock = -Infinity): void {
    // Membership is a function of the log: the configured sequencers, those
    // in the checkpoint, and those added by control ops in the log.
    const log0 = this.host.log;
    const members = new Map<number, number>();
    for (const sid of this.initial) members.set(sid, -Infinity);
    for (const p of this.host.checkpoint.streams ?? []) if (!members.has(p.sid)) members.set(p.sid, -Infinity);
    for (let slot = log0.firstSlot; slot <= log0.lastSlot; slot++) {
      const e = log0.get(slot)!;
      const sid = addedBy(e);
      if (sid !== null && !members.has(sid)) members.set(sid, e.src!.clock + 1);
      // Entries of a sequencer in the log: it is a member (its add op may be truncated away).
      if (e.src && !members.has(e.src.sid)) members.set(e.src.sid, -Infinity);
    }
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
      // Resolved but unmerged messages go back to the buffer (the fast path never put them there).
      for (let i = s.head; i < s.queue.length; i++) {
        const it = s.queue[i]!;
        if (it.msg) s.buf.set(it.seq, it.msg);
        else s.noops.set(it.seq, it.raw);
      }
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
        s.pendingNoop = null;
        s.commitTimer!.stop();
        s.agentMissing.clear();
      }
      s.gap = null;
      s.gapTimer!.stop();
      s.reorderTimer!.stop();
    }
    if (!keepNoops) this.held.clear();
    for (const e of old) {
      const src = e.src;
      if (keepNoops && src && !e.noop) this.held.set(`${src.sid}:${src.seq}`, { ...e, slot: 0 });
      const s = src && this.byId.get(src.sid);
      if (!s || src.seq < s.next || src.session !== s.session) continue;
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
      if (!s) continue;
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
    this.pump();
    for (const s of this.streams) this.checkGap(s);
  }

  /** Each stream's position as of `slot` (<= the log end): for checkpoints and resync. */
  cursorsAt(slot: number): Map<number, StreamPos> {
    const out = new Map<number, StreamPos>();
    const log = this.host.log;
    const cp = this.host.checkpoint;
    // The whole range: the log holds about two sync intervals, and an early
    // stop could take an add op's floor for a stream with entries further back.
    const adds = new Map<number, number>();
    for (let i = Math.min(slot, log.lastSlot); i > cp.slot && i >= log.firstSlot; i--) {
      const e = log.get(i)!;
      const src = e.src;
      if (src && !out.has(src.sid)) out.set(src.sid, src);
      // Scanning back, the last add seen is the first in the log: it sets the floor.
      const added = addedBy(e);
      if (added !== null) adds.set(added, src!.clock + 1);
    }
    for (const p of cp.streams ?? []) if (!out.has(p.sid)) out.set(p.sid, p);
    for (const [sid, floor] of adds) if (!out.has(sid)) out.set(sid, { sid, session: -1, seq: 0, clock: floor, raw: -Infinity });
    return out;
  }

  streamsAt(slot: number): StreamPos[] {
    return [...this.cursorsAt(slot).values()].sort((a, b) => a.sid - b.sid);
  }

  /** Normal work stops (view change): timers off, no-op quorums abandoned. */
  stopWork(): void {
    for (const s of this.streams) {
      for (const t of [s.reorderTimer, s.gapTimer, s.commitTimer, s.solicitTimer]) t!.stop();
      s.gap = null;
      s.pendingNoop = null;
      s.recap();
    }
    this.blockedOn = -1;
    this.blockedSince = NaN;
  }

  stop(): void {
    this.stopWork();
  }

  /** Messages resolved and waiting for the frontier, over all streams. */
  get waiting(): number {
    let w = 0;
    for (const s of this.streams) w += s.waiting;
    return w;
  }
}

/** The entry at src sorts after (clock, sid, seq). */
function keyAfter(src: StreamPos | undefined, clock: number, sid: number, seq: number): boolean {
  if (!src) return false;
  if (src.clock !== clock) return src.clock > clock;
  return src.sid !== sid ? src.sid > sid : src.seq > seq;
}

function streamEntry(src: StreamPos, m: SequencedMsg | null): LogEntry {
  return { slot: 0, session: src.session, seq: src.seq, noop: m === null, clientId: m?.clientId ?? 0n, requestId: m?.requestId ?? 0n, op: m?.op ?? new Uint8Array(0), src, ...(m?.control ? { control: true } : {}) };
}

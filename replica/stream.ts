// One sequencer's stream in a merged (Hydra) group: its resolved prefix,
// effective clock and frontier (hydra.ts says what they mean), the messages
// held ahead of the prefix, its no-op decisions, and its drop-recovery
// ladder and gap-agreement quorum (the same components a one-sequencer
// group runs on its log).
import type { ReplicaConfig } from './config.ts';
import { DropRecovery } from './drop-recovery.ts';
import type { EngineHost } from './intake.ts';
import type { SequencedMsg, StreamKey } from './messages.ts';
import { NoopQuorum } from './noop-quorum.ts';
import { SequencerLiveness } from './sequencer-liveness.ts';
import type { Timer } from './transport.ts';

export interface Item {
  readonly seq: number;
  readonly msg: SequencedMsg | null;
  readonly raw: number;
  readonly clock: number;
}

/** A leader's no-op decision: which seq, and the clock it sorts at. */
export interface NoopKey {
  readonly seq: number;
  readonly clock: number;
}

/** What the merge decides for a stream; the ladder and the quorum do the rest. */
export interface StreamHooks {
  /** Leader: neither it nor the agent has seq (the ladder's last rung). */
  decideNoop(seq: number): void;
  /** f followers hold the leader's no-op. */
  decided(p: NoopKey): void;
  /** The solicit timer fired. */
  solicit(): void;
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
  /** Lowest clock of a known, unresolved no-op (it caps the frontier). */
  noopCap = Infinity;
  /** Best flush clock with q <= P, and its q. */
  flushClock = -Infinity;
  flushQ = 0;
  /** Flushes with q beyond P. */
  pendingFlushes: { q: number; clock: number }[] = [];
  /** Highest seq known to exist (a later message, a flush, a peer's gap). */
  known = 0;
  /** FINAL flush (or the replicas' end): nothing of this session after this seq. */
  final: number | null = null;
  /** The replicas ended this session (the log holds its end entry): `final` is theirs, not the sequencer's. */
  ended = false;
  /** Is the sequencer alive: solicits and the dead-sequencer timeout. */
  live: SequencerLiveness;
  /** FLUSH_SOLICITs sent to it. */
  solicits = 0;
  readonly ladder: DropRecovery;
  /** Leader: a no-op of ours waiting for f followers, not resolved before. */
  readonly quorum: NoopQuorum<NoopKey>;
  readonly solicitTimer: Timer;
  /** Log slots of merged seqs mergedBase, mergedBase+1, ... (pruned as the log is truncated). */
  merged: number[] = [];
  mergedHead = 0;
  mergedBase = 1;

  constructor(
    readonly sid: number,
    /** Effective clocks never go below this (a sequencer added at merge key k has floor k.clock). */
    readonly floor: number,
    h: EngineHost,
    private readonly cfg: ReplicaConfig,
    now: number,
    hooks: StreamHooks,
  ) {
    this.eff = floor;
    this.live = new SequencerLiveness(cfg, now);
    const timer = (fire: () => void): Timer => h.timer(fire);
    this.ladder = new DropRecovery(
      {
        normal: () => h.normal(),
        deciding: () => this.pendingNoop !== null,
        next: () => this.next,
        ahead: () => this.known >= this.next,
        held: () => this.buf.size,
        has: (q) => this.buf.has(q),
        firstHeldAfter: (q) => {
          let first = this.known + 1;
          for (const k of this.buf.keys()) if (k > q && k < first) first = k;
          return first;
        },
        repair: (first, count) =>
          h.transport.sendRepairRequest({ type: 'REPAIR_REQUEST', sequencerId: sid, session: Math.max(0, this.session), replicaId: h.id, first, count }),
        amLeader: () => h.amLeader(),
        decideNoop: (seq) => hooks.decideNoop(seq),
        findAtLeader: (seq) => h.toLeader({ type: 'GAP_FIND', from: h.id, view: h.view, slot: 0, stream: this.key(seq) }),
      },
      cfg,
      timer,
    );
    this.quorum = new NoopQuorum<NoopKey>(
      {
        id: h.id,
        n: h.n,
        f: h.f,
        normal: () => h.normal(),
        send: (to, p) =>
          h.transport.sendToReplica(to, { type: 'GAP_COMMIT', from: h.id, view: h.view, slot: 0, session: this.session, seq: p.seq, stream: this.key(p.seq), clock: p.clock }),
        decided: (p) => hooks.decided(p),
      },
      cfg,
      timer,
    );
    this.solicitTimer = timer(() => hooks.solicit());
  }

  /** A new session of the sequencer: everything held of the old one goes (the caller sets the position). */
  restart(now: number): void {
    this.buf.clear();
    this.noops.clear();
    this.queue = [];
    this.head = 0;
    this.final = null;
    this.ended = false;
    this.flushClock = -Infinity;
    this.flushQ = 0;
    this.pendingFlushes = [];
    this.known = 0;
    this.quorum.abandon();
    this.ladder.forget();
    this.ladder.halt();
    this.live = new SequencerLiveness(this.cfg, now);
    this.recap();
  }

  /** (sequencer, session, seq): how gap agreement names a seq of this stream on the wire. */
  key(seq: number): StreamKey {
    return { sid: this.sid, session: this.session, seq };
  }

  /** Leader: the no-op of ours waiting for its quorum (it holds the stream still). */
  get pendingNoop(): NoopKey | null {
    return this.quorum.pending?.key ?? null;
  }

  slotOf(seq: number): number | undefined {
    const i = seq - this.mergedBase;
    return i >= this.mergedHead && i < this.merged.length ? this.merged[i] : undefined;
  }

  /**
   * Where a resolved seq (below next) stands: its log slot; 'waiting' while
   * it waits in the queue for the merge; 'truncated' once merged below the
   * log's first slot (a checkpoint covers it: committed). The log holds a
   * stream's merged seqs consecutively, so a seq before the first one it
   * holds was merged before firstSlot.
   */
  placeOf(seq: number, firstSlot: number): number | 'waiting' | 'truncated' {
    if (this.head < this.queue.length && seq >= this.queue[this.head]!.seq) return 'waiting';
    const slot = this.slotOf(seq);
    return slot === undefined || slot < firstSlot ? 'truncated' : slot;
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

  /** F(s): no later message of s has an effective clock below it. */
  frontier(): number {
    if (this.final !== null && this.next > this.final) return Infinity;
    const f = this.eff > this.flushClock ? this.eff : this.flushClock;
    // A decided no-op ahead sorts at max(its clock, eff): nothing may pass that.
    if (f > this.noopCap) return this.eff > this.noopCap ? this.eff : this.noopCap;
    return f;
  }

  recap(): void {
    const p = this.pendingNoop;
    let c = p ? p.clock : Infinity;
    for (const v of this.noops.values()) if (v < c) c = v;
    this.noopCap = c;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }
}

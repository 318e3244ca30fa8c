// The drop-recovery ladder of one sequencer stream, the same for a group
// with one sequencer (the stream is the log) and for each stream Hydra
// merges: (1) reordering is normal after the sequencer (per-CPU backlogs),
// so a missing seq becomes a gap only after reorderWaitUs or once the
// reorder window holds reorderWindowMsgs; (2) the stamping sequencer's
// agent is asked for the run (REPAIR_REQUEST), up to repairTries times;
// (3) what the agent lacks, or an agent that refuses or stays silent, goes
// to the leader: a follower asks it (GAP_FIND), the leader decides a no-op
// (gap agreement, noop-quorum.ts). Only the head of the stream (its next
// seq) is ever worked on: a stale step must not no-op a seq nobody examined.
import { XSEQ_REPAIR_MAX } from '../bpf/repair.ts';
import type { ReplicaConfig } from './config.ts';
import type { Timer } from './transport.ts';

/** Drop notifications kept ahead of the stream's head. */
const NOTIFIED_MAX = 64;

/** What the ladder needs from the stream it recovers. */
export interface LadderStream {
  /** Normal status (no view change, no recovery). */
  normal(): boolean;
  /** The leader's no-op for this stream waits for its quorum: nothing moves until it is held. */
  deciding(): boolean;
  /** The next seq to resolve. */
  next(): number;
  /** A seq after next() is known to exist (held, or named by a flush or a peer). */
  ahead(): boolean;
  /** Messages held past the head (the reorder window's fill). */
  held(): number;
  /** Whether seq is held. */
  has(seq: number): boolean;
  /** The first seq after `seq` that is held (or known to come): where a repair run ends. */
  firstHeldAfter(seq: number): number;
  /** Asks the stamping sequencer's agent for seqs first..first+count-1. */
  repair(first: number, count: number): void;
  amLeader(): boolean;
  /** Leader: neither it nor the agent has seq; decide a no-op. */
  decideNoop(seq: number): void;
  /** Follower: ask the leader for seq (GAP_FIND). */
  findAtLeader(seq: number): void;
}

export interface LadderGap {
  readonly seq: number;
  stage: 'repair' | 'peer';
  tries: number;
}

export class DropRecovery {
  /** Seqs the agent said it no longer has. */
  readonly agentMissing = new Set<number>();
  gap: LadderGap | null = null;
  private waitingFor = 0;
  /** Ranges the kernel reported dropped (DROP_NOTIFICATION), ascending, bounded. */
  private notified: { from: number; to: number }[] = [];
  private readonly reorderTimer: Timer;
  private readonly gapTimer: Timer;

  constructor(
    private readonly s: LadderStream,
    private readonly cfg: ReplicaConfig,
    timer: (fire: () => void) => Timer,
  ) {
    this.reorderTimer = timer(() => this.onReorderTimeout());
    this.gapTimer = timer(() => this.onGapTimeout());
  }

  /** Looks at the head: starts the reorder wait, a repair or escalation as due. */
  check(): void {
    const s = this.s;
    if (!s.normal() || s.deciding()) return;
    const next = s.next();
    if (!s.ahead() && !this.notifiedAt(next)) {
      // Nothing missing. A wait left running while messages are held finds
      // nothing when it fires; stopping it only when none are keeps runs
      // event-for-event what they were before the ladder was shared.
      if (s.held() === 0) this.reorderTimer.stop();
      return;
    }
    if (this.gap?.seq === next) return;
    if (this.agentMissing.has(next)) return this.escalate(next);
    if (s.held() >= this.cfg.reorderWindowMsgs) return this.startRepair(next);
    if (this.waitingFor !== next || !this.reorderTimer.active) {
      this.waitingFor = next;
      this.reorderTimer.start(this.cfg.reorderWaitUs);
    }
  }

  /** Nothing is known past the head: no reorder wait is due. */
  caughtUp(): void {
    this.reorderTimer.stop();
  }

  /** seq is resolved (the common case: one at a time at the head). */
  resolved(seq: number): void {
    if (this.agentMissing.size) this.agentMissing.delete(seq);
  }

  /** The head moved to `next`: a gap before it is closed. */
  passed(next: number): void {
    if (this.gap && this.gap.seq < next) {
      this.gap = null;
      this.gapTimer.stop();
    }
  }

  /** The log jumped to `next` (a state or view installed): what the agent said of earlier seqs is moot. */
  jumped(next: number): void {
    for (const q of this.agentMissing) if (q < next) this.agentMissing.delete(q);
    this.passed(next);
  }

  /** The kernel saw from..to skipped. Returns false when it changes nothing (passed, or the list is full). */
  notify(from: number, to: number): boolean {
    const lo = Math.max(from, this.s.next());
    if (to < lo) return false;
    // Ranges arrive ascending from one kernel stream; a bounded list, since
    // only the one at the head is ever used before it is passed.
    if (this.notified.length >= NOTIFIED_MAX) return false;
    this.notified.push({ from: lo, to });
    this.notified.sort((a, b) => a.from - b.from);
    return true;
  }

  /** The agent's answer: these seqs it no longer has. */
  onRepairReply(missing: readonly number[]): void {
    const next = this.s.next();
    for (const q of missing) if (q >= next) this.agentMissing.add(q);
    if (this.gap?.stage === 'repair' && this.agentMissing.has(this.gap.seq)) this.escalate(this.gap.seq);
    else this.check();
  }

  /** The agent cannot serve this session any more (failover) or refused: it cannot help. */
  onRepairError(first: number): void {
    if (this.gap?.stage === 'repair' && first <= this.gap.seq) this.escalate(this.gap.seq);
  }

  /** Normal work stops (view change, resync): timers off, the gap abandoned. */
  halt(): void {
    this.reorderTimer.stop();
    this.gapTimer.stop();
    this.gap = null;
  }

  /** What the agent and the kernel said no longer applies (a new session, a new view). */
  forget(): void {
    this.agentMissing.clear();
    this.notified = [];
  }

  private onReorderTimeout(): void {
    const s = this.s;
    const next = s.next();
    if (!s.normal() || s.deciding() || (!s.ahead() && !this.notifiedAt(next))) return;
    if (next === this.waitingFor && this.gap?.seq !== next) this.startRepair(next);
    else this.check();
  }

  private startRepair(seq: number): void {
    this.reorderTimer.stop();
    this.gap = { seq, stage: 'repair', tries: 1 };
    this.sendRepair(seq);
    this.gapTimer.start(this.cfg.repairTimeoutUs);
  }

  private sendRepair(seq: number): void {
    const count = this.notifiedRun(seq) ?? Math.max(1, Math.min(XSEQ_REPAIR_MAX, this.s.firstHeldAfter(seq) - seq));
    this.s.repair(seq, count);
  }

  /**
   * The run from a drop notification's range, when one covers `seq`: a walk
   * of at most XSEQ_REPAIR_MAX lookups instead of a scan (the range may hold
   * seqs that arrived late since, which end the run).
   */
  private notifiedRun(seq: number): number | undefined {
    const r = this.notifiedAt(seq);
    if (!r) return undefined;
    const last = Math.min(r.to, seq + XSEQ_REPAIR_MAX - 1);
    let n = 1;
    while (seq + n <= last && !this.s.has(seq + n)) n++;
    return n;
  }

  /** The notified range holding seq, if any; forgets ranges the head has passed. */
  private notifiedAt(seq: number): { from: number; to: number } | undefined {
    if (this.notified.length === 0) return undefined;
    const next = this.s.next();
    while (this.notified.length > 0 && this.notified[0]!.to < next) this.notified.shift();
    return this.notified.find((r) => r.from <= seq && seq <= r.to);
  }

  private onGapTimeout(): void {
    const g = this.gap;
    if (!g || !this.s.normal() || g.seq !== this.s.next()) {
      this.gap = null;
      return this.check();
    }
    if (g.stage === 'repair') {
      if (g.tries >= this.cfg.repairTries) return this.escalate(g.seq);
      g.tries++;
      this.sendRepair(g.seq);
      this.gapTimer.start(this.cfg.repairTimeoutUs);
    } else {
      this.s.findAtLeader(g.seq);
      this.gapTimer.start(this.cfg.gapFindRetryUs);
    }
  }

  /** The agent does not have it: the leader decides (gap agreement). */
  escalate(seq: number): void {
    if (seq !== this.s.next()) {
      this.gap = null;
      return this.check();
    }
    this.reorderTimer.stop();
    if (this.s.amLeader()) {
      this.gap = null;
      this.gapTimer.stop();
      return this.s.decideNoop(seq);
    }
    this.gap = { seq, stage: 'peer', tries: 0 };
    this.s.findAtLeader(seq);
    this.gapTimer.start(this.cfg.gapFindRetryUs);
  }
}

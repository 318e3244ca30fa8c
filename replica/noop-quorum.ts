// Gap agreement, the leader's side, for one stream: neither the leader nor
// the agent has a seq, so the leader decides a no-op and holds the stream
// still until f followers hold the decision too. A later entry certified on
// top of the no-op must never meet a view change that resurrects the
// request under it; with f followers plus the leader, every view-change
// quorum includes one replica that holds the no-op. The key says which
// decision on the wire: a log slot with one sequencer, a (sequencer,
// session, seq) stream position with several.
import type { ReplicaConfig } from './config.ts';
import type { Timer } from './transport.ts';

export interface QuorumHost<K> {
  readonly id: number;
  readonly n: number;
  readonly f: number;
  normal(): boolean;
  /** GAP_COMMIT for `key` to replica `to`. */
  send(to: number, key: K): void;
  /** f followers hold it: the no-op is decided for good. */
  decided(key: K): void;
}

export class NoopQuorum<K> {
  /** The decision waiting for its quorum, and who holds it so far. */
  pending: { readonly key: K; readonly acks: Set<number> } | null = null;
  private readonly timer: Timer;

  constructor(
    private readonly h: QuorumHost<K>,
    private readonly cfg: ReplicaConfig,
    timer: (fire: () => void) => Timer,
  ) {
    this.timer = timer(() => this.resend());
  }

  start(key: K): void {
    this.pending = { key, acks: new Set() };
    if (this.h.f === 0) return this.finish();
    this.resend();
  }

  /** GAP_COMMIT again to every follower that has not answered (lost either way). */
  resend(): void {
    const p = this.pending;
    if (!p || !this.h.normal()) return;
    for (let r = 0; r < this.h.n; r++) if (r !== this.h.id && !p.acks.has(r)) this.h.send(r, p.key);
    this.timer.start(this.cfg.gapCommitRetryUs);
  }

  /** A follower's GAP_COMMIT_REPLY; `same` says whether it answers the pending decision. */
  ack(from: number, same: (key: K) => boolean): void {
    const p = this.pending;
    if (!p || from === this.h.id || !same(p.key)) return;
    p.acks.add(from);
    if (p.acks.size >= this.h.f) this.finish();
  }

  /** Held by a quorum (the replies, or a sync a quorum adopted through it). */
  finish(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.timer.stop();
    this.h.decided(p.key);
  }

  /** The view changes: the decision is the new view's business now. */
  abandon(): void {
    this.pending = null;
    this.timer.stop();
  }
}

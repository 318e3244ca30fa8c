// A lossy datagram network between numbered nodes: per-message loss,
// duplication and a random delay (random delays are what reorder), plus
// isolation of nodes (partitions) and a filter scenario tests use to drop
// exactly the message they mean to.
import type { EventQueue } from './event-queue.ts';
import type { Prng } from './prng.ts';

export interface NetParams {
  loss: number;
  dup: number;
  minDelayUs: number;
  maxDelayUs: number;
}

/** Returns false to drop the message. */
export type NetFilter = (from: number, to: number, msg: { readonly type: string }) => boolean;

export class SimNetwork {
  readonly isolated = new Set<number>();
  /** Cut links between two nodes, both directions (a partial partition). */
  private readonly cuts = new Set<number>();
  /** Sees every message handed to the network (the random nemesis reacts to some). */
  onSend: ((from: number, to: number, msg: { readonly type: string }) => void) | null = null;
  /** Extra loss on everything to or from a node (a flaky link). */
  readonly nodeLoss = new Map<number, number>();
  /** Extra loss on one direction of one link (from * 65536 + to), e.g. the multicast to one receiver. */
  readonly linkLoss = new Map<number, number>();
  filter: NetFilter | null = null;
  trace: ((line: string) => void) | null = null;
  sent = 0;
  dropped = 0;

  constructor(
    private readonly q: EventQueue,
    private readonly rng: Prng,
    public params: NetParams,
  ) {}

  cut(a: number, b: number): void {
    this.cuts.add(a * 65536 + b).add(b * 65536 + a);
  }

  mend(a: number, b: number): void {
    this.cuts.delete(a * 65536 + b);
    this.cuts.delete(b * 65536 + a);
  }

  mendAll(): void {
    this.cuts.clear();
  }

  get cutLinks(): number {
    return this.cuts.size / 2;
  }

  private blocked(from: number, to: number): boolean {
    return this.isolated.has(from) || this.isolated.has(to) || (this.cuts.size > 0 && this.cuts.has(from * 65536 + to));
  }

  send(from: number, to: number, msg: { readonly type: string }, deliver: () => void): void {
    this.sent++;
    this.onSend?.(from, to, msg);
    if (this.blocked(from, to) || (this.filter && !this.filter(from, to, msg))) return this.drop(from, to, msg, 'cut');
    const p = this.params;
    let extra = Math.max(this.nodeLoss.get(from) ?? 0, this.nodeLoss.get(to) ?? 0);
    if (this.linkLoss.size > 0) extra = Math.max(extra, this.linkLoss.get(from * 65536 + to) ?? 0);
    if (this.rng.chance(p.loss) || this.rng.chance(extra)) return this.drop(from, to, msg, 'lost');
    const copies = this.rng.chance(p.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = p.minDelayUs + this.rng.next() * (p.maxDelayUs - p.minDelayUs);
      this.q.after(delay, () => {
        // A partition that starts while the message is in flight cuts it too.
        if (this.blocked(from, to)) return;
        this.trace?.(`${this.q.now.toFixed(0)} ${from}->${to} ${describe(msg)}`);
        deliver();
      });
    }
  }

  private drop(from: number, to: number, msg: { readonly type: string }, why: string): void {
    this.dropped++;
    this.trace?.(`${this.q.now.toFixed(0)} ${from}->${to} ${describe(msg)} DROPPED (${why})`);
  }
}

/** One line for a trace: the type and the fields that identify the message. */
export function describe(msg: { readonly type: string }): string {
  const m = msg as Record<string, unknown>;
  const parts = [m.type as string];
  for (const k of ['session', 'seq', 'slot', 'syncPoint', 'first', 'count', 'leaderNum', 'replicaId', 'clientId', 'requestId', 'nonce']) {
    if (m[k] !== undefined && m[k] !== null) parts.push(`${k}=${String(m[k])}`);
  }
  const v = m.view as { leaderNum: number; session: number } | undefined | null;
  if (v) parts.push(`view=${v.leaderNum}/${v.session}`);
  if (Array.isArray(m.missing)) parts.push(`missing=[${(m.missing as number[]).join(',')}]`);
  const e = m.entry as { slot: number; noop: boolean } | undefined;
  if (e) parts.push(`entry=${e.slot}${e.noop ? ':noop' : ''}`);
  return parts.join(' ');
}

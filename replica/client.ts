// The client library core, transport-independent. One request outstanding
// at a time per client (the replicas' at-most-once table remembers one
// request id per client), retried with the same request id until a
// certified reply arrives or the deadline passes.
//
// Certified means: the aggregator's single REPLY (it counted a quorum that
// includes the leader), or, with aggregation off, f+1 ACKs for the same
// (session, seq, view) from distinct replicas, the leader's with its result.
import type { AckMsg, ClientInbound } from './messages.ts';
import { Timer, type ClientTransport, type Scheduler } from './transport.ts';

export interface ClientOptions {
  clientId: bigint;
  /** Group size, 2f+1. */
  n: number;
  transport: ClientTransport;
  scheduler: Scheduler;
  /** true: wait for the aggregator's REPLY; false: count replicas' ACKs. */
  aggregated: boolean;
  /** Re-send the request after this long without a certified reply. */
  retryUs?: number;
  /** Give up after this long (ClientError ETIMEDOUT). */
  deadlineUs?: number;
  /** The first request id (a restarted client must not reuse ids). Default 1. */
  firstRequestId?: bigint;
}

export type ClientErrorCode = 'ETIMEDOUT' | 'ECLOSED';

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Which log position certified a reply: the request's place in the total order. */
export interface Certificate {
  readonly requestId: bigint;
  readonly session: number;
  readonly seq: number;
  readonly leaderNum: number;
}

export type Completion = (err: ClientError | null, result: Uint8Array | null, cert: Certificate | null) => void;

interface Pending {
  readonly requestId: bigint;
  readonly op: Uint8Array;
  readonly done: Completion;
  readonly started: number;
  sends: number;
  /** Non-aggregated: replicas per (session, seq, leaderNum), and the leader's result. */
  readonly votes: Map<string, { replicas: Set<number>; result: Uint8Array | null }>;
}

export class Client {
  readonly clientId: bigint;
  private readonly n: number;
  private readonly quorum: number;
  private readonly retryUs: number;
  private readonly deadlineUs: number;
  private nextRequestId: bigint;
  private current: Pending | null = null;
  private readonly queue: { op: Uint8Array; done: Completion }[] = [];
  private readonly retryTimer: Timer;
  private readonly deadlineTimer: Timer;
  private closed = false;

  constructor(private readonly o: ClientOptions) {
    this.clientId = o.clientId;
    this.n = o.n;
    this.quorum = (o.n - 1) / 2 + 1;
    this.retryUs = o.retryUs ?? 50_000;
    this.deadlineUs = o.deadlineUs ?? 5_000_000;
    this.nextRequestId = o.firstRequestId ?? 1n;
    this.retryTimer = new Timer(o.scheduler, () => this.onRetry());
    this.deadlineTimer = new Timer(o.scheduler, () => this.onDeadline());
  }

  /** Requests waiting or in flight. */
  get pending(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  /** The request id in flight, if any. */
  get inFlight(): bigint | null {
    return this.current?.requestId ?? null;
  }

  /** Callback form: no promise machinery, so a simulation stays synchronous. */
  submit(op: Uint8Array, done: Completion): void {
    if (this.closed) return done(new ClientError('ECLOSED', 'client is closed'), null, null);
    this.queue.push({ op, done });
    if (!this.current) this.startNext();
  }

  invoke(op: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.submit(op, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  receive(m: ClientInbound): void {
    const p = this.current;
    if (!p || m.clientId !== this.clientId || m.requestId !== p.requestId) return;
    if (m.type === 'REPLY') return this.finish(null, m.result, m);
    this.countAck(p, m);
  }

  /** Fails everything pending with ECLOSED and stops the timers. */
  close(): void {
    this.closed = true;
    this.retryTimer.stop();
    this.deadlineTimer.stop();
    const err = new ClientError('ECLOSED', 'client closed with the request in flight');
    const all = [...(this.current ? [this.current.done] : []), ...this.queue.map((q) => q.done)];
    this.current = null;
    this.queue.length = 0;
    for (const d of all) d(err, null, null);
  }

  private countAck(p: Pending, m: AckMsg): void {
    const key = `${m.session}/${m.seq}/${m.leaderNum}`;
    let v = p.votes.get(key);
    if (!v) p.votes.set(key, (v = { replicas: new Set(), result: null }));
    v.replicas.add(m.replicaId);
    if (m.replicaId === m.leaderNum % this.n && m.result) v.result = m.result;
    if (v.result && v.replicas.size >= this.quorum) this.finish(null, v.result, m);
  }

  private startNext(): void {
    const q = this.queue.shift();
    if (!q) return;
    const requestId = this.nextRequestId++;
    this.current = { requestId, op: q.op, done: q.done, started: this.o.scheduler.now(), sends: 0, votes: new Map() };
    this.deadlineTimer.start(this.deadlineUs);
    this.send();
  }

  private send(): void {
    const p = this.current!;
    p.sends++;
    this.o.transport.sendRequest({ type: 'REQUEST', clientId: this.clientId, requestId: p.requestId, op: p.op });
    this.retryTimer.start(this.retryUs);
  }

  private onRetry(): void {
    if (this.current) this.send();
  }

  private onDeadline(): void {
    const p = this.current;
    if (!p) return;
    this.finish(new ClientError('ETIMEDOUT', `request ${p.requestId} of client ${this.clientId} not certified within ${this.deadlineUs} us (${p.sends} sends)`), null, null);
  }

  private finish(err: ClientError | null, result: Uint8Array | null, at: { session: number; seq: number; leaderNum: number } | null): void {
    const p = this.current!;
    this.current = null;
    this.retryTimer.stop();
    this.deadlineTimer.stop();
    p.done(err, result, at && { requestId: p.requestId, session: at.session, seq: at.seq, leaderNum: at.leaderNum });
    if (!this.current) this.startNext();
  }
}

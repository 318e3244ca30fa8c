// The client library core, transport-independent. One request outstanding
// at a time per client (the replicas' at-most-once table remembers one
// request id per client), retried with the same request id until a
// certified reply arrives or the deadline passes.
//
// Certified means: the aggregator's single REPLY (it counted a quorum that
// includes the leader), or, with aggregation off, f+1 ACKs for the same
// (sequencer, session, seq, view) from distinct replicas, the leader's with
// its result.
//
// Several sequencers (Hydra, issue 5): each request's first attempt goes to
// a sequencer chosen by the policy; an attempt that times out marks its
// sequencer failed (avoided for a back-off period that doubles with every
// consecutive timeout) and the retry, with the same request id, goes to the
// next sequencer in ring order that is not avoided. The replicas' client
// table keeps the request at-most-once even if two sequencers stamped it.
// Once its back-off ends a sequencer is chosen again by the policy: that
// request is the probe, and a certified answer to it clears the failure.
import { sequencerForKey } from './key-hash.ts';
import type { AckMsg, ClientInbound } from './messages.ts';
import { Timer, type ClientTransport, type Scheduler } from './transport.ts';

// Policy 'failover' (a one-sequencer group with a standby): every request
// goes to the sequencer that certified the client's last one (at first the
// first listed), and moves on only when an attempt times out. Spreading a
// pair's requests would hand the group to the standby at once (its session
// is the higher one) and leave every request sent to the active waiting
// for a retry; sticking to whoever answered keeps the whole client on the
// host the replicas follow.
export type SequencerPolicy = 'round-robin' | 'key' | 'failover';

export interface ClientOptions {
  clientId: bigint;
  /** Group size, 2f+1. */
  n: number;
  transport: ClientTransport;
  scheduler: Scheduler;
  /** true: wait for the aggregator's REPLY; false: count replicas' ACKs. */
  aggregated: boolean;
  /** Ids of the sequencers requests may go to, in ring order (default [0]). */
  sequencers?: readonly number[];
  /** How a request's first attempt picks a sequencer (default round-robin). */
  policy?: SequencerPolicy;
  /** Per-attempt timeout: re-send after this long without a certified reply. */
  retryUs?: number;
  /** Give up after this long (ClientError ETIMEDOUT). */
  deadlineUs?: number;
  /** A sequencer whose attempt timed out is avoided this long (default 1 s)... */
  backoffUs?: number;
  /** ...doubling per consecutive timeout up to this (default 16 x backoffUs). */
  maxBackoffUs?: number;
  /** The first request id (a restarted client must not reuse ids). Default 1. */
  firstRequestId?: bigint;
}

export type ClientErrorCode = 'ETIMEDOUT' | 'ECLOSED' | 'EUNAUTHORIZED';

/** How many attempts of a request went to one sequencer. */
export interface AttemptCount {
  readonly sequencerId: number;
  readonly attempts: number;
}

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** ETIMEDOUT: attempts per sequencer, in the order each was first tried. */
    readonly attempts: readonly AttemptCount[] = [],
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

/** submit()/invoke() options. */
export interface SubmitOptions {
  /**
   * With policy 'key': what the first sequencer is picked by (its stable
   * hash, key-hash.ts). Without a key a request goes round-robin.
   */
  key?: string | Uint8Array;
  /**
   * Hydra: op is a group control op (replica/control-op.ts),
   * sent with XSEQ_F_CONTROL; the replicas execute it themselves, the
   * application never sees it, and the certified result is empty.
   */
  control?: boolean;
}

/** What the client knows about one sequencer's health. */
export interface SequencerHealth {
  readonly id: number;
  /** Consecutive attempts that timed out (0: healthy). */
  readonly failures: number;
  /** Avoided until this scheduler time (us); <= now: usable. */
  readonly avoidUntil: number;
  /** When its last attempt timed out (-Infinity: never). */
  readonly lastFailedAt: number;
  /** Attempts sent to it, over the client's life. */
  readonly attempts: number;
}

interface SeqState {
  id: number;
  failures: number;
  avoidUntil: number;
  lastFailedAt: number;
  attempts: number;
}

interface Pending {
  readonly requestId: bigint;
  readonly op: Uint8Array;
  readonly control: boolean;
  readonly done: Completion;
  readonly started: number;
  /** Index (into the client's sequencers) of the latest attempt's target. */
  target: number;
  readonly tries: Map<number, number>;
  /** Non-aggregated: replicas per (sequencer, session, seq, leaderNum), and the leader's result. */
  readonly votes: Map<string, { replicas: Set<number>; result: Uint8Array | null }>;
  /** ERROR BUSY answers to this request so far (see busy()). */
  busy: number;
  /** STALE REPLYs for this request id so far (see settledElsewhere()). */
  staleReplies: number;
}

export class Client {
  readonly clientId: bigint;
  readonly policy: SequencerPolicy;
  private readonly n: number;
  private readonly quorum: number;
  private readonly retryUs: number;
  private readonly deadlineUs: number;
  private readonly backoffUs: number;
  private readonly maxBackoffUs: number;
  private readonly seqs: SeqState[];
  private rr = 0;
  /** Policy failover: the index of the sequencer that certified the last request. */
  private sticky = 0;
  private nextRequestId: bigint;
  private current: Pending | null = null;
  private readonly queue: { op: Uint8Array; done: Completion; key: string | Uint8Array | undefined; control: boolean }[] = [];
  private readonly retryTimer: Timer;
  /** Re-send after an ERROR BUSY (busy()) or a STALE REPLY (settledElsewhere()). */
  private readonly busyTimer: Timer;
  private readonly deadlineTimer: Timer;
  private closed = false;

  constructor(private readonly o: ClientOptions) {
    this.clientId = o.clientId;
    this.n = o.n;
    this.quorum = (o.n - 1) / 2 + 1;
    this.retryUs = o.retryUs ?? 50_000;
    this.deadlineUs = o.deadlineUs ?? 5_000_000;
    this.backoffUs = o.backoffUs ?? 1_000_000;
    this.maxBackoffUs = o.maxBackoffUs ?? 16 * this.backoffUs;
    this.policy = o.policy ?? 'round-robin';
    const ids = o.sequencers ?? [0];
    if (ids.length === 0) throw new RangeError('sequencers: at least one');
    if (new Set(ids).size !== ids.length) throw new RangeError(`sequencers: ids must be unique, got ${ids.join(',')}`);
    this.seqs = ids.map((id) => ({ id, failures: 0, avoidUntil: -Infinity, lastFailedAt: -Infinity, attempts: 0 }));
    this.nextRequestId = o.firstRequestId ?? 1n;
    this.retryTimer = new Timer(o.scheduler, () => this.onRetry());
    this.busyTimer = new Timer(o.scheduler, () => this.current && this.send());
    this.deadlineTimer = new Timer(o.scheduler, () => this.onDeadline());
  }

  /** Requests waiting or in flight. */
  get pending(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  /** The last request id this client handed out (0 before the first). */
  get lastRequestId(): bigint {
    return this.nextRequestId - 1n;
  }

  /** The request id in flight, if any. */
  get inFlight(): bigint | null {
    return this.current?.requestId ?? null;
  }

  /** Each sequencer's health, in configured order. */
  health(): SequencerHealth[] {
    return this.seqs.map((s) => ({ ...s }));
  }

  /** Callback form: no promise machinery, so a simulation stays synchronous. */
  submit(op: Uint8Array, done: Completion, opts: SubmitOptions = {}): void {
    if (this.closed) return done(new ClientError('ECLOSED', 'client is closed'), null, null);
    this.queue.push({ op, done, key: opts.key, control: opts.control === true });
    if (!this.current) this.startNext();
  }

  invoke(op: Uint8Array, opts: SubmitOptions = {}): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.submit(op, (err, r) => (err ? reject(err) : resolve(r!)), opts));
  }

  /**
   * An answer from the network. `fromSequencer` is the sequencer id the
   * transport saw it come from (a REPLY's source), if it knows one: that
   * sequencer is then credited as healthy; otherwise the latest attempt's.
   */
  receive(m: ClientInbound, fromSequencer?: number): void {
    const p = this.current;
    if (!p || m.clientId !== this.clientId || m.requestId !== p.requestId) return;
    // A stale mark is never the answer: for an older id (a replay, ids only
    // grow) or for a seq settled without executing this request there (a
    // no-op, or one the leader truncated: replica/acks.ts). For the request
    // in flight that seq is lost to it: re-send now, as for BUSY.
    if (m.stale) return void (m.type === 'REPLY' && this.settledElsewhere(p));
    if (m.type === 'REPLY') return this.certified(p, m.result, m, fromSequencer);
    this.countAck(p, m);
  }

  /**
   * The sequencer refused the request under backpressure (ERROR BUSY from
   * its XDP program): it was not stamped, the sequencer is healthy and its
   * window full. Re-send it (same request id, same sequencer) after a pause
   * of 1 ms doubling up to the retry interval, without counting a failure.
   */
  busy(requestId: bigint): void {
    const p = this.current;
    if (!p || requestId !== p.requestId) return;
    p.busy++;
    this.retryTimer.stop();
    this.busyTimer.start(Math.min(this.retryUs, 1000 * 2 ** Math.min(6, p.busy - 1)));
  }

  /**
   * The sequencer refused a control op as not authenticated (ERROR
   * UNAUTHORIZED from its XDP program: keyed group, no valid group-key MAC;
   * no key, not sent from a member's address). Re-sending cannot help, so
   * the op fails with EUNAUTHORIZED. Only a control op in flight: the
   * kernel never answers a plain request so, and a forged ERROR must not
   * fail one.
   */
  unauthorized(requestId: bigint): void {
    const p = this.current;
    if (!p || requestId !== p.requestId || !p.control) return;
    this.finish(
      new ClientError('EUNAUTHORIZED', `control op ${p.requestId} of client ${this.clientId} refused: not authenticated (a keyed group needs the group key, --group-key-file; without a key, send it from a replica host)`),
      null,
      null,
    );
  }

  /**
   * A STALE REPLY for the request in flight: the seq it names settled
   * without this request (the answer, if it executed at another seq, comes
   * from the client table). Re-sent after a pause of 1 ms doubling up to the
   * retry interval, like BUSY, rather than a whole retry interval later.
   */
  private settledElsewhere(p: Pending): void {
    p.staleReplies++;
    this.retryTimer.stop();
    this.busyTimer.start(Math.min(this.retryUs, 1000 * 2 ** Math.min(6, p.staleReplies - 1)));
  }

  /** Fails everything pending with ECLOSED and stops the timers. */
  close(): void {
    this.closed = true;
    this.retryTimer.stop();
    this.busyTimer.stop();
    this.deadlineTimer.stop();
    const err = new ClientError('ECLOSED', 'client closed with the request in flight');
    const all = [...(this.current ? [this.current.done] : []), ...this.queue.map((q) => q.done)];
    this.current = null;
    this.queue.length = 0;
    for (const d of all) d(err, null, null);
  }

  private countAck(p: Pending, m: AckMsg): void {
    // A retry through another sequencer is logged again under that
    // sequencer's own (session, seq): votes for different stamps of the same
    // request must not add up, so the sequencer id is part of the key.
    const key = `${m.sequencerId ?? 0}/${m.session}/${m.seq}/${m.leaderNum}`;
    let v = p.votes.get(key);
    if (!v) p.votes.set(key, (v = { replicas: new Set(), result: null }));
    v.replicas.add(m.replicaId);
    if (m.replicaId === m.leaderNum % this.n && m.result) v.result = m.result;
    if (v.result && v.replicas.size >= this.quorum) this.certified(p, v.result, m, undefined);
  }

  private certified(p: Pending, result: Uint8Array, at: Omit<Certificate, 'requestId'>, from: number | undefined): void {
    const i = from === undefined ? p.target : this.seqs.findIndex((s) => s.id === from);
    const s = this.seqs[i];
    if (s) {
      s.failures = 0;
      s.avoidUntil = -Infinity;
      this.sticky = i;
    }
    this.finish(null, result, at);
  }

  private startNext(): void {
    const q = this.queue.shift();
    if (!q) return;
    const requestId = this.nextRequestId++;
    const first = this.policy === 'failover' ? this.sticky : this.policy === 'key' && q.key !== undefined ? sequencerForKey(q.key, this.seqs.length) : this.rr++ % this.seqs.length;
    const target = this.policy === 'failover' ? first : this.pick(first);
    this.current = { requestId, op: q.op, control: q.control, done: q.done, started: this.o.scheduler.now(), target, tries: new Map(), votes: new Map(), busy: 0, staleReplies: 0 };
    this.deadlineTimer.start(this.deadlineUs);
    this.send();
  }

  /**
   * The first sequencer from index `from` on, in ring order, that is not
   * avoided; if all are, the least recently failed one (an answer through a
   * shaky sequencer beats failing early).
   */
  private pick(from: number): number {
    const now = this.o.scheduler.now();
    const k = this.seqs.length;
    let oldest = -1;
    for (let j = 0; j < k; j++) {
      const i = (from + j) % k;
      const s = this.seqs[i]!;
      if (s.avoidUntil <= now) return i;
      if (oldest < 0 || s.lastFailedAt < this.seqs[oldest]!.lastFailedAt) oldest = i;
    }
    return oldest;
  }

  /**
   * Policy failover ignores the back-off: a waiting standby refuses every
   * request while its active lives, so its failures would pile up to the
   * longest back-off and make it unusable exactly when it takes over. A
   * request leaves the sequencer that answered last (the sticky one) after
   * one timeout and gets two tries at the next one (the first may be the
   * request it refuses and takes over on, agent/standby.ts) before going
   * back: sticky, next, next, sticky, next, next, ...
   */
  private failoverNext(p: Pending): number {
    const cur = p.target;
    if (cur !== this.sticky && (p.tries.get(this.seqs[cur]!.id) ?? 0) % 2 === 1) return cur;
    return cur === this.sticky ? (cur + 1) % this.seqs.length : this.sticky;
  }

  private send(): void {
    const p = this.current!;
    const s = this.seqs[p.target]!;
    s.attempts++;
    p.tries.set(s.id, (p.tries.get(s.id) ?? 0) + 1);
    this.o.transport.sendRequest({ type: 'REQUEST', clientId: this.clientId, requestId: p.requestId, op: p.op, ...(p.control ? { control: true } : {}) }, s.id);
    this.retryTimer.start(this.retryUs);
  }

  private onRetry(): void {
    const p = this.current;
    if (!p) return;
    const now = this.o.scheduler.now();
    const s = this.seqs[p.target]!;
    s.failures++;
    s.lastFailedAt = now;
    s.avoidUntil = now + Math.min(this.backoffUs * 2 ** (s.failures - 1), this.maxBackoffUs);
    if (this.policy === 'failover') p.target = this.failoverNext(p);
    else p.target = this.pick((p.target + 1) % this.seqs.length);
    this.send();
  }

  private onDeadline(): void {
    const p = this.current;
    if (!p) return;
    const attempts = [...p.tries].map(([sequencerId, n]) => ({ sequencerId, attempts: n }));
    const total = attempts.reduce((a, t) => a + t.attempts, 0);
    const where = attempts.map((t) => `sequencer ${t.sequencerId}: ${t.attempts}`).join(', ');
    this.finish(new ClientError('ETIMEDOUT', `request ${p.requestId} of client ${this.clientId} not certified within ${this.deadlineUs} us (${total} attempts; ${where})`, attempts), null, null);
  }

  private finish(err: ClientError | null, result: Uint8Array | null, at: Omit<Certificate, 'requestId'> | null): void {
    const p = this.current!;
    this.current = null;
    this.retryTimer.stop();
    this.busyTimer.stop();
    this.deadlineTimer.stop();
    p.done(err, result, at && { requestId: p.requestId, session: at.session, seq: at.seq, leaderNum: at.leaderNum });
    if (!this.current) this.startNext();
  }
}

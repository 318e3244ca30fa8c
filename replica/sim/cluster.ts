// A whole group in virtual time: n replicas running the real protocol code,
// the simulated sequencer host, clients using the real client core, all
// wired through the simulated network. Scenario tests drive it by hand; the
// random simulation drives it with a PRNG.
import { Client, type Certificate, type ClientError } from '../client.ts';
import type { ReplicaConfig } from '../config.ts';
import type { ClientInbound, PeerMsg, RequestMsg } from '../messages.ts';
import { Replica } from '../replica.ts';
import type { ReplicaTransport } from '../transport.ts';
import { leaderOf, viewCmp, viewEq } from '../view.ts';
import { EventQueue } from './event-queue.ts';
import { HistoryApp } from './history-app.ts';
import { SimNetwork, type NetParams } from './network.ts';
import { Prng } from './prng.ts';
import { SimSequencer } from './sequencer.ts';
import { ANY_SESSION, encodeControlOp } from '../control-op.ts';
import type { WeightChange } from '../weights.ts';
import { decodeWeightResult, type WeightResult } from '../weights-exec.ts';
import { SimWeights } from './weights.ts';

export const SEQUENCER_NODE = 1000;
export const CLIENT_NODE_BASE = 2000;
/** Hydra: where control ops come from (an operator, not a client core). */
export const CONTROL_NODE = 1999;
const CONTROL_CLIENT = 0xc0n;

/** Timeouts scaled to the simulated network (20-300 us one way). */
export const SIM_REPLICA_CONFIG: Partial<ReplicaConfig> = {
  reorderWaitUs: 150,
  reorderWindowMsgs: 16,
  repairTimeoutUs: 600,
  repairTries: 2,
  gapFindRetryUs: 600,
  gapCommitRetryUs: 600,
  syncIntervalUs: 2_000,
  leaderTimeoutUs: 8_000,
  viewChangeRetryUs: 2_500,
  viewChangeEscalateAfter: 3,
  stateRetryUs: 2_500,
  maxBufferedMsgs: 4_096,
};

export interface ClusterOptions {
  n: number;
  seed: number;
  clients: number;
  aggregated?: boolean;
  net?: Partial<NetParams>;
  windowSlots?: number;
  /** The sequencer's window policy (default overwrite; SequencerParams.policy). */
  policy?: 'overwrite' | 'backpressure';
  retransmitUs?: number;
  replica?: Partial<ReplicaConfig>;
  clientRetryUs?: number;
  clientDeadlineUs?: number;
  /** The sequencer's first session (default 1). */
  session?: number;
  /** The session replicas are created with (default: the sequencer's). */
  replicaSession?: number;
  /** Hydra: how many sequencers serve the group (default 1: the single-sequencer protocol). */
  sequencers?: number;
  /** Weighted quorums: the starting table; the sequencer certifies by weight and follows committed reassignments. */
  weights?: { weights: number[]; f: number };
  hydra?: Partial<HydraSimParams>;
}

/** Hydra: the sequencers' clocks and flushes (per-sequencer arrays are indexed by id). */
export interface HydraSimParams {
  skewUs: readonly number[];
  drift: readonly number[];
  tickUs: number;
  inversion: number;
  inversionNs: number;
  flushIntervalUs: number;
}

export interface CertifiedReply {
  readonly clientId: bigint;
  readonly cert: Certificate;
  readonly result: Uint8Array;
  readonly op: Uint8Array;
  readonly at: number;
  /** Hydra: the sequencer that stamped and certified it. */
  readonly sequencerId?: number;
}

export class SimCluster {
  readonly q = new EventQueue();
  readonly rng: Prng;
  readonly net: SimNetwork;
  readonly sequencer: SimSequencer;
  /** Every sequencer by id (one without Hydra). */
  readonly sequencers: SimSequencer[] = [];
  readonly hydraParams: HydraSimParams | null;
  private readonly nextSeqr: number[] = [];
  private readonly replySid: (number | undefined)[] = [];
  /** Hydra: sequencers clients do not send to (an idle sequencer in a scenario). */
  readonly avoid = new Set<number>();
  /** Hydra: the sequencers replicas are configured with (added ones join by a control op). */
  private initialSequencers: number[] = [];
  private controlIds = 0n;
  /** Per client: the request id it sent last (a second send of it is a retry). */
  private readonly lastRequest: bigint[] = [];
  /** Weighted quorums (ClusterOptions.weights), else null. */
  readonly weights: SimWeights | null;
  /** The operator proposing weight changes (a client core of its own). */
  private operator: Client | null = null;
  readonly n: number;
  readonly f: number;
  readonly replicas: (Replica | null)[] = [];
  readonly apps: HistoryApp[] = [];
  readonly incarnation: number[] = [];
  readonly clients: Client[] = [];
  readonly certified: CertifiedReply[] = [];
  readonly failures: ClientError[] = [];
  /** The longest any op took from submit to its outcome, virtual us. */
  maxOpUs = 0;
  /** Called after every client completion (the invariant checker listens). */
  onCertified: ((r: CertifiedReply) => void) | null = null;
  /** Called after every event run by step(). */
  afterEvent: (() => void) | null = null;
  readonly aggregated: boolean;
  private readonly replicaConfig: Partial<ReplicaConfig>;
  private readonly replicaSession: number;
  private workloadLimit = 0;
  private readonly opIndex: number[] = [];

  constructor(o: ClusterOptions) {
    this.n = o.n;
    this.f = (o.n - 1) / 2;
    this.aggregated = o.aggregated ?? true;
    this.replicaSession = o.replicaSession ?? o.session ?? 1;
    this.replicaConfig = { ...SIM_REPLICA_CONFIG, ...o.replica };
    this.rng = new Prng(o.seed);
    this.weights = o.weights ? new SimWeights(o.weights) : null;
    const w = this.weights;
    this.net = new SimNetwork(this.q, this.rng.fork(), { loss: 0, dup: 0, minDelayUs: 20, maxDelayUs: 300, ...o.net });
    const k = o.sequencers ?? 1;
    this.hydraParams = k > 1 ? { skewUs: [], drift: [], tickUs: 1, inversion: 0, inversionNs: 0, flushIntervalUs: 1_000, ...o.hydra } : null;
    for (let sid = 0; sid < k; sid++) {
      const node = SEQUENCER_NODE + sid;
      const hp = this.hydraParams;
      this.sequencers.push(
        new SimSequencer(
          this.q,
          {
            n: o.n,
            quorum: this.f + 1,
            windowSlots: o.windowSlots ?? 64,
            retransmitUs: o.retransmitUs ?? 0,
            ...(o.policy ? { policy: o.policy } : {}),
            aggregated: this.aggregated,
            session: o.session ?? 1,
            ...(w ? { weights: () => w.current.weights, onWeightedReply: (seq: number, acks: number, weights: readonly number[]) => w.replies.push({ seq, acks, weights }) } : {}),
            ...(hp
              ? {
                  hydra: {
                    id: sid,
                    rng: this.rng.fork(),
                    skewUs: hp.skewUs[sid] ?? 0,
                    drift: hp.drift[sid] ?? 0,
                    tickUs: hp.tickUs,
                    inversion: hp.inversion,
                    inversionNs: hp.inversionNs,
                    flushIntervalUs: hp.flushIntervalUs,
                  },
                }
              : {}),
          },
          {
            toReplica: (r, m) => this.net.send(node, r, m, () => this.replicas[r]?.receive(m)),
            toClient: (cn, m) =>
              this.net.send(node, cn, m, () => {
                if (cn === CONTROL_NODE) return this.operator?.receive(m);
                this.replySid[cn - CLIENT_NODE_BASE] = m.sequencerId;
                this.clients[cn - CLIENT_NODE_BASE]?.receive(m);
              }),
          },
        ),
      );
    }
    this.sequencer = this.sequencers[0]!;
    this.initialSequencers = this.sequencers.map((q) => q.id);
    for (let i = 0; i < o.n; i++) {
      this.incarnation.push(0);
      this.replicas.push(this.makeReplica(i, false));
    }
    for (let j = 0; j < o.clients; j++) {
      const node = CLIENT_NODE_BASE + j;
      this.opIndex.push(0);
      this.clients.push(
        new Client({
          clientId: BigInt(j + 1),
          n: o.n,
          aggregated: this.aggregated,
          scheduler: this.q.scheduler(),
          retryUs: o.clientRetryUs ?? 3_000,
          deadlineUs: o.clientDeadlineUs ?? 1e12,
          transport: { sendRequest: (m) => this.sendRequest(j, node, m) },
        }),
      );
    }
  }

  /** Round-robin over the sequencers not removed; a retry goes to the next one (fail over). */
  private sendRequest(j: number, node: number, m: RequestMsg): void {
    let sid = 0;
    const k = this.sequencers.length;
    if (k > 1) {
      const ok = (q: number, strict: boolean): boolean => !this.sequencers[q]!.retired && !(strict && this.avoid.has(q));
      // A retry fails over to any sequencer: an avoided (idle) one too,
      // when the ones clients prefer are dead (as real clients do on a timeout).
      const retry = this.lastRequest[j] === m.requestId;
      this.lastRequest[j] = m.requestId;
      const strict = !retry && this.sequencers.some((_, q) => ok(q, true));
      sid = ((this.nextSeqr[j] ?? j) + 1) % k;
      for (let tries = 0; tries < k && !ok(sid, strict); tries++) sid = (sid + 1) % k;
      this.nextSeqr[j] = sid;
    }
    const seqr = this.sequencers[sid]!;
    this.net.send(node, SEQUENCER_NODE + sid, m, () => seqr.onRequest(m, node));
  }

  private makeReplica(i: number, recover: boolean): Replica {
    const inc = ++this.incarnation[i]!;
    const alive = (): boolean => this.incarnation[i] === inc;
    const app = new HistoryApp();
    this.apps[i] = app;
    const transport: ReplicaTransport = {
      sendToReplica: (to: number, m: PeerMsg) => {
        if (alive()) this.net.send(i, to, m, () => this.replicas[to]?.receive(m));
      },
      sendAck: (a) => {
        if (!alive()) return;
        if (this.aggregated) {
          const sid = a.sequencerId ?? 0;
          return this.net.send(i, SEQUENCER_NODE + sid, a, () => this.sequencers[sid]?.onAck(a, i));
        }
        const j = Number(a.clientId) - 1;
        this.net.send(i, CLIENT_NODE_BASE + j, a, () => this.clients[j]?.receive(a as ClientInbound));
      },
      sendRepairRequest: (r) => {
        const sid = r.sequencerId ?? 0;
        if (alive()) this.net.send(i, SEQUENCER_NODE + sid, r, () => this.sequencers[sid]?.onRepair(r, i));
      },
      sendFlushSolicit: (m) => {
        if (alive()) this.net.send(i, SEQUENCER_NODE + m.sequencerId, m, () => this.sequencers[m.sequencerId]?.onSolicit(m, i));
      },
    };
    return new Replica({
      id: i,
      n: this.n,
      app,
      transport,
      scheduler: this.q.scheduler(alive),
      config: this.replicaConfig,
      session: this.replicaSession,
      ...(this.initialSequencers.length > 1 ? { sequencers: this.initialSequencers } : {}),
      ...(recover ? { recoverNonce: inc } : {}),
      ...(this.weights ? { weights: this.weights.initial, onCommittedWeights: (t) => this.weights!.learn(t) } : {}),
    });
  }

  /** The operator proposes a weight change (a control op through the order); done gets the decision, or null if it failed. */
  proposeWeights(change: WeightChange, done: (r: WeightResult | null) => void): void {
    this.operator ??= new Client({
      clientId: 0xc1n,
      n: this.n,
      aggregated: this.aggregated,
      scheduler: this.q.scheduler(),
      retryUs: 3_000,
      deadlineUs: 1e12,
      transport: { sendRequest: (m) => this.sendRequest(0, CONTROL_NODE, m) },
    });
    this.operator.submit(encodeControlOp({ kind: 'weights', change }), (err, result) => done(err || !result ? null : decodeWeightResult(result)), { control: true });
  }

  // ---- faults ------------------------------------------------------------------

  /** The process dies: memory, timers and in-flight work gone. */
  crash(i: number): void {
    this.replicas[i]?.stop();
    this.replicas[i] = null;
    this.incarnation[i]!++;
  }

  /** A new process with empty memory; it recovers from its peers. */
  restart(i: number): void {
    if (this.replicas[i]) return;
    this.replicas[i] = this.makeReplica(i, true);
  }

  isolate(node: number): void {
    this.net.isolated.add(node);
  }

  rejoin(node: number): void {
    this.net.isolated.delete(node);
  }

  /**
   * Hydra: a new sequencer starts (stamping, flushing) and an "add" control
   * op goes through an existing one, re-sent every `retryUs` until every
   * live replica has the new sequencer (replicas buffer its traffic until
   * the op is merged). Clients use it from the start: their requests wait
   * at the replicas like the rest of its traffic.
   */
  addSequencer(retryUs = 3_000): SimSequencer {
    const hp = this.hydraParams!;
    const sid = this.sequencers.length;
    const node = SEQUENCER_NODE + sid;
    const s0 = this.sequencers[0]!.p;
    const q = new SimSequencer(
      this.q,
      {
        ...s0,
        hydra: { id: sid, rng: this.rng.fork(), skewUs: hp.skewUs[sid] ?? 0, drift: hp.drift[sid] ?? 0, tickUs: hp.tickUs, inversion: hp.inversion, inversionNs: hp.inversionNs, flushIntervalUs: hp.flushIntervalUs },
      },
      {
        toReplica: (r, m) => this.net.send(node, r, m, () => this.replicas[r]?.receive(m)),
        toClient: (cn, m) =>
          this.net.send(node, cn, m, () => {
            this.replySid[cn - CLIENT_NODE_BASE] = m.sequencerId;
            this.clients[cn - CLIENT_NODE_BASE]?.receive(m);
          }),
      },
    );
    this.sequencers.push(q);
    const op = encodeControlOp({ kind: 'add', sid });
    const send = (): void => {
      if (this.live().every((r) => r.hydra?.stream(sid))) return;
      const via = this.sequencers.find((x) => x.up && x !== q);
      const req: RequestMsg = { type: 'REQUEST', clientId: CONTROL_CLIENT, requestId: ++this.controlIds, op, control: true };
      if (via) this.net.send(CONTROL_NODE, SEQUENCER_NODE + via.id, req, () => via.onRequest(req, CONTROL_NODE));
      this.q.after(retryUs, send);
    };
    send();
    return q;
  }

  /**
   * Hydra: an operator's "remove" op for sequencer sid (of `session`, or
   * whichever the replicas hold) through a live other sequencer, re-sent
   * every `retryUs` until every live replica ended that stream.
   */
  removeSequencer(sid: number, session = ANY_SESSION, retryUs = 3_000): void {
    const op = encodeControlOp({ kind: 'remove', sid, session });
    const send = (): void => {
      // Done once every live replica ended it (or holds a newer session: a
      // stale removal must not be re-sent into a rejoined stream).
      if (this.live().every((r) => { const st = r.hydra?.stream(sid); return !st || st.ended || (session !== ANY_SESSION && st.session !== session); })) return;
      const via = this.sequencers.find((x) => x.up && x.id !== sid);
      const req: RequestMsg = { type: 'REQUEST', clientId: CONTROL_CLIENT, requestId: ++this.controlIds, op, control: true };
      if (via) this.net.send(CONTROL_NODE, SEQUENCER_NODE + via.id, req, () => via.onRequest(req, CONTROL_NODE));
      this.q.after(retryUs, send);
    };
    send();
  }

  /** Sequencer failover: the data path is re-created with a new session. */
  failoverSequencer(): void {
    this.sequencer.restart();
  }

  // ---- workload ----------------------------------------------------------------

  /** Each client issues ops back to back until it has issued `perClient` in total (Infinity: until stopWorkload). */
  startWorkload(perClient = Infinity): void {
    this.workloadLimit = perClient;
    for (let j = 0; j < this.clients.length; j++) if (this.clients[j]!.pending === 0) this.submitNext(j);
  }

  stopWorkload(): void {
    this.workloadLimit = 0;
  }

  /** One op from client j now; the callback sees the outcome. */
  submit(j: number, then?: (ok: boolean) => void): void {
    const index = ++this.opIndex[j]!;
    const op = HistoryApp.op(j + 1, index);
    const c = this.clients[j]!;
    const at = this.q.now;
    c.submit(op, (err, result, cert) => {
      this.maxOpUs = Math.max(this.maxOpUs, this.q.now - at);
      if (err || !result || !cert) {
        if (err) this.failures.push(err);
        return then?.(false);
      }
      const sid = this.replySid[j];
      const r: CertifiedReply = { clientId: c.clientId, cert, result, op, at: this.q.now, ...(sid !== undefined ? { sequencerId: sid } : {}) };
      this.certified.push(r);
      this.onCertified?.(r);
      then?.(true);
    });
  }

  private submitNext(j: number): void {
    if (this.opIndex[j]! >= this.workloadLimit) return;
    this.submit(j, () => this.submitNext(j));
  }

  get pendingRequests(): number {
    let p = 0;
    for (const c of this.clients) p += c.pending;
    return p;
  }

  // ---- running -------------------------------------------------------------------

  step(): boolean {
    const ran = this.q.step();
    if (ran) this.afterEvent?.();
    return ran;
  }

  runFor(us: number): void {
    const end = this.q.now + us;
    while (this.q.now < end && this.step());
  }

  /** Runs until pred() holds; false if maxUs of virtual time passed first. */
  runUntil(pred: () => boolean, maxUs: number): boolean {
    const end = this.q.now + maxUs;
    while (!pred()) {
      if (this.q.now >= end || !this.step()) return pred();
    }
    return true;
  }

  /** The replica leading the highest normal view, if any. */
  leader(): Replica | null {
    let best: Replica | null = null;
    for (const r of this.replicas) {
      if (!r || r.status !== 'normal' || leaderOf(r.view, this.n) !== r.id) continue;
      if (!best || viewCmp(r.view, best.view) > 0) best = r;
    }
    return best;
  }

  /** Every replica up, normal, in the leader's view, with the leader's whole log committed. */
  converged(): boolean {
    const l = this.leader();
    return !!l && this.replicas.every((r) => r !== null && r.status === 'normal' && viewEq(r.view, l.view) && r.committed === l.log.lastSlot);
  }

  live(): Replica[] {
    return this.replicas.filter((r): r is Replica => r !== null);
  }
}

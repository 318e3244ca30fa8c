// A whole group in virtual time: n replicas running the real protocol code,
// the simulated sequencer host, clients using the real client core, all
// wired through the simulated network. Scenario tests drive it by hand; the
// random simulation drives it with a PRNG.
import { Client, type Certificate, type ClientError } from '../client.ts';
import type { ReplicaConfig } from '../config.ts';
import type { ClientInbound, PeerMsg } from '../messages.ts';
import { Replica } from '../replica.ts';
import type { ReplicaTransport } from '../transport.ts';
import { leaderOf, viewCmp, viewEq } from '../view.ts';
import { EventQueue } from './event-queue.ts';
import { HistoryApp } from './history-app.ts';
import { SimNetwork, type NetParams } from './network.ts';
import { Prng } from './prng.ts';
import { SimSequencer } from './sequencer.ts';

export const SEQUENCER_NODE = 1000;
export const CLIENT_NODE_BASE = 2000;

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
  retransmitUs?: number;
  replica?: Partial<ReplicaConfig>;
  clientRetryUs?: number;
  clientDeadlineUs?: number;
  /** The sequencer's first session (default 1). */
  session?: number;
  /** The session replicas are created with (default: the sequencer's). */
  replicaSession?: number;
}

export interface CertifiedReply {
  readonly clientId: bigint;
  readonly cert: Certificate;
  readonly result: Uint8Array;
  readonly op: Uint8Array;
  readonly at: number;
}

export class SimCluster {
  readonly q = new EventQueue();
  readonly rng: Prng;
  readonly net: SimNetwork;
  readonly sequencer: SimSequencer;
  readonly n: number;
  readonly f: number;
  readonly replicas: (Replica | null)[] = [];
  readonly apps: HistoryApp[] = [];
  readonly incarnation: number[] = [];
  readonly clients: Client[] = [];
  readonly certified: CertifiedReply[] = [];
  readonly failures: ClientError[] = [];
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
    this.net = new SimNetwork(this.q, this.rng.fork(), { loss: 0, dup: 0, minDelayUs: 20, maxDelayUs: 300, ...o.net });
    this.sequencer = new SimSequencer(
      this.q,
      {
        n: o.n,
        quorum: this.f + 1,
        windowSlots: o.windowSlots ?? 64,
        retransmitUs: o.retransmitUs ?? 0,
        aggregated: this.aggregated,
        session: o.session ?? 1,
      },
      {
        toReplica: (r, m) => this.net.send(SEQUENCER_NODE, r, m, () => this.replicas[r]?.receive(m)),
        toClient: (node, m) => this.net.send(SEQUENCER_NODE, node, m, () => this.clients[node - CLIENT_NODE_BASE]?.receive(m)),
      },
    );
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
          transport: { sendRequest: (m) => this.net.send(node, SEQUENCER_NODE, m, () => this.sequencer.onRequest(m, node)) },
        }),
      );
    }
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
        if (this.aggregated) return this.net.send(i, SEQUENCER_NODE, a, () => this.sequencer.onAck(a, i));
        const j = Number(a.clientId) - 1;
        this.net.send(i, CLIENT_NODE_BASE + j, a, () => this.clients[j]?.receive(a as ClientInbound));
      },
      sendRepairRequest: (r) => {
        if (alive()) this.net.send(i, SEQUENCER_NODE, r, () => this.sequencer.onRepair(r, i));
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
      ...(recover ? { recoverNonce: inc } : {}),
    });
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
    c.submit(op, (err, result, cert) => {
      if (err || !result || !cert) {
        if (err) this.failures.push(err);
        return then?.(false);
      }
      const r: CertifiedReply = { clientId: c.clientId, cert, result, op, at: this.q.now };
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

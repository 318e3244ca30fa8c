// The KV client library: get / put / compare-and-set over the replica
// group, each answered once a quorum including the leader holds it (the
// sequencer's single REPLY). A KvClient holds `lanes` client cores on one
// socket; each core has one request in flight (the replicas' at-most-once
// table remembers one request id per client), so lanes are the client's
// concurrency. Ops of one lane execute in the order they were issued.
//
// Several sequencers (Hydra): each request goes to one of them by the
// policy (round-robin, or `key`: the op's KV key hashed, key-hash.ts), and a
// retry after a timeout goes to the next one (replica/client.ts).
import { randomBytes } from 'node:crypto';
import { ANY_SESSION, type ControlOp, encodeControlOp } from '../../replica/control-op.ts';
import { Client, ClientError, type Certificate, type SequencerHealth, type SequencerPolicy } from '../../replica/index.ts';
import { type HostPort, RealTimeScheduler, type SequencerAddr, UdpClientTransport } from '../../replica/udp/index.ts';
import { decodeResult, encodeOp, type Op, type Result } from './ops.ts';
import { type ChangeSummary, decodeChanges, decodeWeightResult, type WeightResult } from '../../replica/weights-exec.ts';
import type { GroupKey } from '../../bpf/mac.ts';

export interface KvClientOptions {
  /** Keyed group: the client key REQUESTs are sealed with (UdpClientOptions.clientKey). */
  clientKey?: GroupKey;
  /** Keyed group: the group key, for control ops (UdpClientOptions.groupKey). */
  groupKey?: GroupKey;
  /** The sequencer host's xseq port, or an unreplicated server (unreplicated.ts). */
  sequencer?: HostPort;
  /** Or the group's sequencers, with their ids (one of the two). */
  sequencers?: readonly SequencerAddr[];
  /** How a request picks its first sequencer (default round-robin). */
  policy?: SequencerPolicy;
  /** A sequencer that timed out is avoided this long, doubling per timeout (default 1000 ms). */
  backoffMs?: number;
  groupId: number;
  /** Local address to send from (default any). */
  bindAddress?: string;
  /** Local port (default any). */
  bindPort?: number;
  /** Client cores (default 1). */
  lanes?: number;
  /** Re-send a request after this long without an answer (default 200 ms). */
  retryMs?: number;
  /** Fail a request with ETIMEDOUT after this long (default 10 s). */
  timeoutMs?: number;
  /**
   * The group runs without aggregation: replicas ACK this client directly
   * (replicas with --acks-to client) and an op is certified by f+1
   * matching ACKs including the leader's. Needs `replicas`.
   */
  directAcks?: boolean;
  /** The group's size 2f+1 (directAcks only). */
  replicas?: number;
}

export interface Answer {
  readonly result: Result;
  /** Where the op sits in the total order: (session, seq) and the leader's view. */
  readonly cert: Certificate | null;
}

/** A random non-zero 63-bit id: the replicas' client table is keyed by it, and a
 * restarted client must not come back as a client whose request ids it reuses. */
function randomClientId(): bigint {
  const id = randomBytes(8).readBigUInt64BE(0) >> 1n;
  return id === 0n ? 1n : id;
}

export class KvClient {
  readonly clientIds: readonly bigint[];
  private readonly cores: Client[];

  private constructor(
    private readonly transport: UdpClientTransport,
    o: KvClientOptions,
  ) {
    const scheduler = new RealTimeScheduler();
    this.cores = Array.from({ length: o.lanes ?? 1 }, () => {
      const c = new Client({
        clientId: randomClientId(),
        // With aggregation the sequencer counts the quorum and n is unused.
        n: o.directAcks ? o.replicas! : 1,
        transport,
        scheduler,
        aggregated: !o.directAcks,
        retryUs: (o.retryMs ?? 200) * 1000,
        deadlineUs: (o.timeoutMs ?? 10_000) * 1000,
        backoffUs: (o.backoffMs ?? 1000) * 1000,
        sequencers: transport.sequencerIds,
        policy: o.policy ?? 'round-robin',
      });
      transport.register(c);
      return c;
    });
    this.clientIds = this.cores.map((c) => c.clientId);
  }

  /** Each lane's last request id handed out, in clientIds order. */
  lastRequestIds(): bigint[] {
    return this.cores.map((c) => c.lastRequestId);
  }

  static async open(o: KvClientOptions): Promise<KvClient> {
    const lanes = o.lanes ?? 1;
    if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`lanes=${lanes} must be a positive integer`);
    if (o.directAcks && !(Number.isInteger(o.replicas) && o.replicas! >= 1 && o.replicas! % 2 === 1)) throw new RangeError(`directAcks needs replicas = the group size, an odd number (got ${o.replicas})`);
    const t = await UdpClientTransport.open({
      ...(o.sequencers ? { sequencers: o.sequencers } : {}),
      ...(o.sequencer ? { sequencer: o.sequencer } : {}),
      groupId: o.groupId,
      ...(o.bindAddress ? { bindAddress: o.bindAddress } : {}),
      ...(o.bindPort ? { bindPort: o.bindPort } : {}),
      ...(o.directAcks ? { directAcks: true } : {}),
      ...(o.clientKey ? { clientKey: o.clientKey } : {}),
      ...(o.groupKey ? { groupKey: o.groupKey } : {}),
    });
    return new KvClient(t, o);
  }

  get lanes(): number {
    return this.cores.length;
  }

  /** Runs op on `lane` (default: the least busy). Rejects with ClientError ETIMEDOUT or ECLOSED. */
  execute(op: Op, lane?: number): Promise<Answer> {
    const core = lane === undefined ? this.leastBusy() : this.cores[lane];
    if (!core) return Promise.reject(new RangeError(`lane ${lane} of ${this.cores.length}`));
    const bytes = encodeOp(op);
    return new Promise((resolve, reject) =>
      core.submit(
        bytes,
        (err, result, cert) => {
          if (err) return reject(err);
          try {
            resolve({ result: decodeResult(result!), cert });
          } catch (e) {
            reject(e as Error);
          }
        },
        { key: op.key },
      ),
    );
  }

  async get(key: string | Uint8Array, lane?: number): Promise<Uint8Array | null> {
    const r = (await this.execute({ kind: 'get', key: bytes(key) }, lane)).result;
    if (r.status === 'found') return r.value;
    if (r.status === 'not-found') return null;
    throw new Error(`get: unexpected result ${r.status}`);
  }

  async put(key: string | Uint8Array, value: string | Uint8Array, lane?: number): Promise<Certificate | null> {
    const a = await this.execute({ kind: 'put', key: bytes(key), value: bytes(value) }, lane);
    if (a.result.status !== 'ok') throw new Error(`put: unexpected result ${a.result.status}`);
    return a.cert;
  }

  /** Sets value if the key holds `expected` (null: if the key is absent). */
  async cas(key: string | Uint8Array, expected: string | Uint8Array | null, value: string | Uint8Array, lane?: number): Promise<{ swapped: boolean; current: Uint8Array | null }> {
    const a = await this.execute({ kind: 'cas', key: bytes(key), expected: expected === null ? null : bytes(expected), value: bytes(value) }, lane);
    if (a.result.status === 'ok') return { swapped: true, current: bytes(value) };
    if (a.result.status === 'mismatch') return { swapped: false, current: a.result.current };
    throw new Error(`cas: unexpected result ${a.result.status}`);
  }

  /**
   * Hydra: the group's "add sequencer sid" control op, through the
   * sequencers this client knows (one attempt at a time, a timed-out one
   * re-sent with the same request id to the next, until the deadline).
   * Resolves once a quorum including the leader holds the op in the log:
   * from its place on, every replica counts sid as a member. Adding a
   * member again is harmless (replicas ignore the repeat).
   */
  addSequencer(sid: number, lane = 0): Promise<Certificate | null> {
    return this.control({ kind: 'add', sid }, lane);
  }

  /**
   * The group's "remove sequencer sid" control op (replica/control-op.ts),
   * for an operator who knows the host is dead: the replicas then decide
   * the dead stream's last seq among themselves without waiting for the
   * dead-sequencer timeout. Send it through the surviving sequencers only.
   * `session` limits it to that session of sid (default: whichever the
   * replicas hold), so a removal that arrives after sid rejoined under a
   * new session leaves the new stream alone. Resolves once a quorum
   * including the leader holds the op.
   */
  removeSequencer(sid: number, session = ANY_SESSION, lane = 0): Promise<Certificate | null> {
    return this.control({ kind: 'remove', sid, session }, lane);
  }

  /**
   * Weight reassignment (docs/weights.md): the group's "weights" control op
   * through the total order. Every replica applies it at its log position;
   * one that would break integrity (or let fewer than a majority certify)
   * is committed as a no-op change. Resolves with the decision: applied or
   * refused (and why), and the table (version, weights) after it. Re-sends
   * keep the request id, so a change is never applied twice.
   */
  async reassignWeight(member: number, delta: number, lane = 0): Promise<WeightResult> {
    return this.weightsOp({ kind: 'weights', change: { kind: 'reassign', member, delta } }, lane);
  }

  async transferWeight(from: number, to: number, amount: number, lane = 0): Promise<WeightResult> {
    return this.weightsOp({ kind: 'weights', change: { kind: 'transfer', from, to, amount } }, lane);
  }

  /** read_changes(member) through the total order: its history as committed there (the newest CHANGES_MAX). */
  async readChanges(member: number, lane = 0): Promise<{ total: number; changes: ChangeSummary[] }> {
    const r = await this.controlResult({ kind: 'read-changes', member }, lane);
    const d = decodeChanges(r);
    if (!d) throw new Error('read_changes: the replicas answered something else (do they keep a weight ledger?)');
    return d;
  }

  private async weightsOp(op: ControlOp, lane: number): Promise<WeightResult> {
    const r = decodeWeightResult(await this.controlResult(op, lane));
    if (!r) throw new Error('weights: the replicas answered something else (do they keep a weight ledger?)');
    return r;
  }

  private controlResult(op: ControlOp, lane: number): Promise<Uint8Array> {
    let payload: Uint8Array;
    try {
      payload = encodeControlOp(op);
    } catch (e) {
      return Promise.reject(e);
    }
    const core = this.cores[lane];
    if (!core) return Promise.reject(new RangeError(`lane ${lane} of ${this.cores.length}`));
    return new Promise((resolve, reject) => core.submit(payload, (err, r) => (err ? reject(err) : resolve(r ?? new Uint8Array(0))), { control: true }));
  }

  private control(op: ControlOp, lane: number): Promise<Certificate | null> {
    let payload: Uint8Array;
    try {
      payload = encodeControlOp(op);
    } catch (e) {
      return Promise.reject(e);
    }
    const core = this.cores[lane];
    if (!core) return Promise.reject(new RangeError(`lane ${lane} of ${this.cores.length}`));
    return new Promise((resolve, reject) => core.submit(payload, (err, _r, cert) => (err ? reject(err) : resolve(cert)), { control: true }));
  }

  counters() {
    return this.transport.counters();
  }

  /** Each sequencer's health as lane `lane` (default 0) sees it. */
  health(lane = 0): SequencerHealth[] {
    return this.cores[lane]?.health() ?? [];
  }

  async close(): Promise<void> {
    for (const c of this.cores) {
      c.close();
      this.transport.unregister(c);
    }
    await this.transport.close();
  }

  private leastBusy(): Client {
    let best = this.cores[0]!;
    for (const c of this.cores) if (c.pending < best.pending) best = c;
    return best;
  }
}

export function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'utf8')) : s;
}

export { ClientError };

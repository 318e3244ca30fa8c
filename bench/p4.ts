// P4: Hydra replica merge throughput, in process. 8 sequencers' SEQUENCED
// streams (interleaved as they would arrive, clocks skewed between
// sequencers, some stamps racing another CPU so raw clocks step back, a
// FLUSH per sequencer every 64 messages) go into
//   - P4:  a whole Replica (the leader of a one-replica group: merge, log
//          append, execute a trivial app, ACK to a no-op transport), against
//          the same Replica with one sequencer (the single-sequencer path);
//   - P4m: the merge layer alone (replica/hydra.ts with a host that only
//          counts deliveries), 8 sequencers against 1.
// Messages per second (wall clock, one thread), median of interleaved rounds.
// Nothing here needs root or a network.
import { Hydra } from '../replica/hydra.ts';
import type { EngineHost } from '../replica/intake.ts';
import { configWith } from '../replica/config.ts';
import { Log, ORIGIN } from '../replica/log.ts';
import type { Checkpoint, FlushMsg, SequencedMsg } from '../replica/messages.ts';
import { Replica } from '../replica/replica.ts';
import { Timer, type ReplicaTransport, type Scheduler } from '../replica/transport.ts';
import { atLeast, type BenchRow, type Goal } from './row.ts';

export interface P4Options {
  messages?: number;
  rounds?: number;
  log?: (s: string) => void;
}

const OP = new Uint8Array(16);
const RESULT = new Uint8Array(0);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** What arrives at a replica from k sequencers, in arrival order. */
function traffic(k: number, count: number): (SequencedMsg | FlushMsg)[] {
  const out: (SequencedMsg | FlushMsg)[] = [];
  const seq = new Array<number>(k).fill(0);
  let x = 12345;
  const rand = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let i = 0; i < count; i++) {
    const sid = k === 1 ? 0 : Math.floor(rand() * k);
    const q = ++seq[sid]!;
    const t = i * 200; // 200 ns apart: 5M msgs/s of arrivals
    const skew = sid * 3_000;
    const clock = t + skew - (rand() < 0.05 ? Math.floor(rand() * 2_000) : 0);
    out.push({ type: 'SEQUENCED', session: 1, seq: q, clientId: BigInt(1 + (i % 64)), requestId: BigInt(1 + Math.floor(i / 64)), op: OP, retransmit: false, sequencerId: sid, clock: k === 1 ? t : clock });
    if (k > 1 && i % 64 === 63) {
      for (let s = 0; s < k; s++) out.push({ type: 'FLUSH', sequencerId: s, session: 1, seq: seq[s]!, clock: t + s * 3_000, final: false });
    }
  }
  return out;
}

const idleScheduler: Scheduler = { now: () => 0, setTimer: () => ({ cancel() {} }) };
const quietTransport: ReplicaTransport = { sendToReplica() {}, sendAck() {}, sendRepairRequest() {}, sendFlushSolicit() {} };

/** A whole replica (leader of n=1): messages per second. */
function runReplica(k: number, msgs: readonly (SequencedMsg | FlushMsg)[], count: number): number {
  const app = { execute: () => RESULT, snapshot: () => RESULT, restore() {} };
  const r = new Replica({ id: 0, n: 1, app, transport: quietTransport, scheduler: idleScheduler, session: 1, ...(k > 1 ? { sequencers: [...Array(k).keys()] } : {}) });
  const t0 = performance.now();
  for (const m of msgs) r.receive(m);
  const sec = (performance.now() - t0) / 1000;
  const delivered = r.log.lastSlot;
  if (delivered < count * 0.99) throw new Error(`p4: replica with ${k} sequencers delivered ${delivered} of ${count}`);
  return delivered / sec;
}

/** The merge layer alone: messages per second. */
function runMerge(k: number, msgs: readonly (SequencedMsg | FlushMsg)[], count: number): number {
  let delivered = 0;
  const log = new Log(ORIGIN);
  const cp: Checkpoint = { slot: 0, session: 0, seq: 0, app: RESULT, clients: [] };
  const host: EngineHost = {
    id: 0,
    f: 0,
    n: 1,
    view: { leaderNum: 0, session: 1 },
    log,
    committed: 0,
    checkpoint: cp,
    transport: quietTransport,
    normal: () => true,
    amLeader: () => true,
    nextSeq: () => 1,
    append: () => void delivered++,
    reAck() {},
    reAckSettled() {},
    admit: () => true,
    heardFromLeader() {},
    toLeader() {},
    startViewChange() {},
    currentState: () => ({ checkpoint: cp, entries: [], committed: 0 }),
    timer: (fire) => new Timer(idleScheduler, fire),
  };
  const h = new Hydra(host, [...Array(k).keys()], configWith({}), idleScheduler);
  const t0 = performance.now();
  for (const m of msgs) {
    if (m.type === 'FLUSH') h.onFlush(m);
    else h.onSequenced(m);
  }
  const sec = (performance.now() - t0) / 1000;
  if (delivered < count * 0.99) throw new Error(`p4: merge with ${k} sequencers delivered ${delivered} of ${count}`);
  return delivered / sec;
}

export function runP4(o: P4Options = {}): BenchRow[] {
  const count = o.messages ?? 400_000;
  const rounds = o.rounds ?? 5;
  const many = traffic(8, count);
  const one = traffic(1, count);
  const r8: number[] = [];
  const r1: number[] = [];
  const m8: number[] = [];
  const m1: number[] = [];
  runMerge(8, many, count); // warm-up: JIT
  runReplica(8, many, count);
  for (let i = 0; i < rounds; i++) {
    r8.push(runReplica(8, many, count));
    r1.push(runReplica(1, one, count));
    m8.push(runMerge(8, many, count));
    m1.push(runMerge(1, one, count));
    o.log?.(`P4 round ${i + 1}/${rounds}: replica 8 seq ${(r8[i]! / 1e6).toFixed(2)}M/s, 1 seq ${(r1[i]! / 1e6).toFixed(2)}M/s; merge alone 8 seq ${(m8[i]! / 1e6).toFixed(2)}M/s, 1 seq ${(m1[i]! / 1e6).toFixed(2)}M/s`);
  }
  const row = (id: string, name: string, x: number, b: number, baselineName: string, goal: Goal | null): BenchRow => ({
    id,
    name,
    unit: 'msgs/s',
    xseq: Math.round(x),
    baseline: Math.round(b),
    baselineName,
    ratio: Number((x / b).toFixed(3)),
    goal,
  });
  return [
    row('P4', 'Hydra: whole replica (merge + log + execute + ACK) with 8 sequencers, in process, one core', median(r8), median(r1), 'the same replica, 1 sequencer', null),
    row('P4m', 'Hydra: the merge layer alone (replica/hydra.ts) with 8 sequencers, in process, one core', median(m8), median(m1), 'the merge layer, 1 sequencer', atLeast('xseq', 1_000_000)),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = runP4({ log: console.log });
  console.table(rows);
}

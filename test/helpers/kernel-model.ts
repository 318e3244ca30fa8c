// The differential run of kernel against model: one seeded random sequence
// of REQUESTs, ACKs (members and strangers, duplicates, late, from older
// views and sessions, with and without results), FLUSH_SOLICITs (members,
// the agent, strangers), agent releases, new sessions and a drain, fed
// step by step to the compiled sequencer program through BPF_PROG_TEST_RUN
// and to the model the simulation runs on (replica/sim/sequencer.ts).
// After every step: the verdict (the counter the model names moved by one),
// the frame sent (SEQUENCED, REPLY, FLUSH: its fields), every window slot
// as the map holds it (read through its mmap), and the window_overwrite and
// ack_view_reset counters must agree; after every sequence, every counter
// of the program must equal the model's tally of its verdicts (a counter
// the model never names must not move). With `everyCounter` the full
// accounting runs after every step, to find the step of a sequence's
// mismatch. The kernel's clocks are checked against its own rule (a FLUSH's
// clock is no older than any stamp before it and no newer than any stamp
// after it), since the model's clock is virtual.
import { COUNTER_NAMES, decodeSlot, type CounterName, type GroupConfig, type Member } from '../../bpf/maps.ts';
import type { Sequencer } from '../../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_REPLICA_AGENT, type XseqHeader } from '../../bpf/wire.ts';
import { EventQueue } from '../../replica/sim/event-queue.ts';
import { Prng } from '../../replica/sim/prng.ts';
import { AGENT_SOLICIT, SimSequencer } from '../../replica/sim/sequencer.ts';
import type { FlushMsg, ReplyMsg, SequencedMsg } from '../../replica/messages.ts';
import { buildFrame, parseFrame } from '../../tools/frame.ts';

export const GROUP_ID = 1;
const XDP_DROP = 1;
const XDP_TX = 3;
const SEQ_IP = '10.77.0.2';
const CLIENT = { ip: '10.77.0.1', port: 40000 };
const MEMBERS: Member[] = Array.from({ length: 5 }, (_, i) => ({ addr: `10.77.0.${11 + i}`, port: 7600 + i }));
const STRANGER = { addr: '10.77.0.99', port: 7666 };
export const MAX_RESULT = 32;

/** The counters each model verdict moves by one (busy: a refused request answered BUSY, where the program does). */
const MOVES: Record<string, string[]> = {
  sequenced: ['rx', 'sequenced'],
  drop_backpressure: ['rx', 'drop_backpressure', 'busy'],
  drop_draining: ['rx', 'drop_draining'],
  drop_result_too_big: ['rx', 'ack_rx', 'drop_result_too_big'],
  drop_ack_session: ['rx', 'ack_rx', 'drop_ack_session'],
  drop_ack_stranger: ['rx', 'ack_rx', 'drop_ack_stranger'],
  drop_ack_window: ['rx', 'ack_rx', 'drop_ack_window'],
  drop_ack_stale_view: ['rx', 'ack_rx', 'drop_ack_stale_view'],
  ack_duplicate: ['rx', 'ack_rx', 'ack_duplicate'],
  ack_counted: ['rx', 'ack_rx', 'ack_counted'],
  ack_late: ['rx', 'ack_rx', 'ack_counted', 'ack_late'],
  reply: ['rx', 'ack_rx', 'ack_counted', 'reply'],
  flush: ['rx', 'flush'],
  drop_solicit_stranger: ['rx', 'drop_solicit_stranger'],
};
/** Counters that say how, not what: not part of the accounting. */
const UNMODELLED = new Set(['events_lost', 'reply_headroom']);

export type Step =
  | { kind: 'request'; requestId: number; op: number[] }
  | { kind: 'ack'; seq: number; view: number; rid: number; from: 'self' | 'other-member' | 'stranger'; session: 'current' | 'older'; result?: number[] }
  | { kind: 'solicit'; rid: number; from: 'self' | 'agent' | 'stranger' }
  | { kind: 'release'; seq: number }
  | { kind: 'new-session' }
  | { kind: 'drain' };

export interface Setup {
  policy: 'backpressure' | 'overwrite';
  n: number;
  quorum: number;
  sequencerId: number;
  session: number;
}

export class Disagreement extends Error {
  override readonly name = 'Disagreement';
}

const mmaps = new WeakMap<Sequencer, Uint8Array>();
/** The slots map's mmap, made once per loaded program. */
function mmapOf(k: Sequencer): Uint8Array {
  let b = mmaps.get(k);
  if (!b) mmaps.set(k, (b = k.slots.mmap()));
  return b;
}

/** Whether this program answers a refused request BUSY (a counter of its own). */
const HAS_BUSY = (COUNTER_NAMES as readonly string[]).includes('busy');

const typeName = (t: number): string => Object.entries(MsgType).find(([, v]) => v === t)?.[0] ?? `type ${t}`;

function hdr(p: Partial<XseqHeader>): XseqHeader {
  return { ...emptyHeader(), groupId: GROUP_ID, ...p };
}

/** One random step; `last` is the highest seq stamped so far in this session. */
export function randomStep(rng: Prng, s: Setup, last: number, released: number, windowSlots: number, drained: boolean): Step {
  const r = rng.next();
  if (r < 0.3) return { kind: 'request', requestId: rng.int(1, 1_000_000), op: Array.from({ length: rng.int(0, 6) }, () => rng.int(0, 255)) };
  if (r < 0.82) {
    // Mostly seqs in or just behind the window; sometimes seq 0, one not stamped yet, or long gone.
    const seq = rng.chance(0.85) ? Math.max(0, last - rng.int(0, windowSlots + 2)) : rng.pick([0, last + 1, last + 2, Math.max(0, last - 3 * windowSlots)]);
    const view = rng.pick([0, 0, 1, 1, 2, 3, 7]);
    const fromR = rng.next();
    const from = fromR < 0.85 ? 'self' : fromR < 0.93 ? 'other-member' : 'stranger';
    const rid = rng.chance(0.95) ? rng.int(0, s.n - 1) : rng.int(s.n, 7);
    const leader = rid === view % s.n;
    const withResult = leader ? rng.chance(0.7) : rng.chance(0.1);
    return {
      kind: 'ack',
      seq,
      view,
      rid,
      from,
      session: rng.chance(0.93) ? 'current' : 'older',
      // Now and then longer than max_result: the leader's ACK is refused.
      ...(withResult ? { result: Array.from({ length: rng.chance(0.05) ? rng.int(MAX_RESULT + 1, MAX_RESULT + 8) : rng.int(0, 12) }, () => rng.int(0, 255)) } : {}),
    };
  }
  if (r < 0.9) return { kind: 'solicit', rid: rng.chance(0.9) ? rng.int(0, s.n - 1) : rng.int(s.n, 7), from: rng.pick(['self', 'self', 'agent', 'stranger'] as const) };
  if (r < 0.985) return { kind: 'release', seq: Math.min(last, released + rng.int(0, windowSlots)) };
  if (r < 0.995 && !drained) return { kind: 'new-session' };
  return drained ? { kind: 'release', seq: released } : { kind: 'drain' };
}

/** The kernel and the model side by side for one sequence. */
export class Pair {
  readonly model: SimSequencer;
  private readonly q = new EventQueue();
  private modelOut: (SequencedMsg | FlushMsg | ReplyMsg)[] = [];
  session: number;
  last = 0;
  released = 0;
  drained = false;
  private lastStampClock = 0n;
  /** The model's count per counter name since start(). */
  private readonly tally = new Map<string, number>();
  private base: Record<string, bigint> = {};
  private readonly bytes: Uint8Array;
  private readonly stride: number;
  private lastFlushClock = 0n;

  constructor(
    private readonly k: Sequencer,
    readonly s: Setup,
  ) {
    this.session = s.session;
    // Zero the window, as a freshly loaded program has it (through the
    // map's mmap, where every slot read comes from too); then the group.
    k.disableGroup(GROUP_ID);
    k.resetSeq(GROUP_ID);
    this.bytes = mmapOf(k);
    this.stride = Math.ceil(k.slots.valueSize / 8) * 8;
    this.bytes.fill(0);
    k.setGroup(GROUP_ID, this.group(), 0);
    this.model = new SimSequencer(
      this.q,
      {
        n: s.n,
        quorum: s.quorum,
        windowSlots: k.windowSlots,
        retransmitUs: 0,
        aggregated: true,
        session: s.session,
        policy: s.policy,
        maxResult: MAX_RESULT,
        // Hydra on, so FLUSHes exist; no timer, no clock games.
        hydra: { id: s.sequencerId, rng: new Prng(1), skewUs: 0, drift: 0, tickUs: 1, inversion: 0, inversionNs: 0, flushIntervalUs: 0 },
      },
      {
        toReplica: (r, m) => {
          if (r === 0 && (m.type === 'SEQUENCED' || m.type === 'FLUSH')) this.modelOut.push(m);
        },
        toClient: (_c, m) => this.modelOut.push(m),
      },
    );
  }

  private group(): GroupConfig {
    return {
      mcastAddr: '239.7.7.1',
      mcastPort: 7500,
      sequencerId: this.s.sequencerId,
      session: this.session,
      enabled: true,
      draining: this.drained,
      members: MEMBERS.slice(0, this.s.n),
      quorum: this.s.quorum,
    };
  }

  /** Runs one step on both sides and compares; returns the verdict both gave; throws Disagreement. */
  step(st: Step): string {
    this.modelOut = [];
    const k = this.k;
    const m = this.model;
    let frame: Buffer | null = null;
    let mv: string;
    switch (st.kind) {
      case 'request': {
        const op = Buffer.from(st.op);
        frame = buildFrame({ srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, payload: encodeMessage(hdr({ type: MsgType.REQUEST, clientId: 9n, requestId: BigInt(st.requestId) }), op) });
        mv = m.onRequest({ type: 'REQUEST', clientId: 9n, requestId: BigInt(st.requestId), op }, 0);
        break;
      }
      case 'ack': {
        const src = st.from === 'self' ? (MEMBERS[st.rid] ?? STRANGER) : st.from === 'other-member' ? MEMBERS[(st.rid + 1) % this.s.n]! : STRANGER;
        const session = st.session === 'current' ? this.session : this.session - 1;
        const result = st.result ? Buffer.from(st.result) : undefined;
        frame = buildFrame({
          srcIp: src.addr,
          dstIp: SEQ_IP,
          srcPort: src.port,
          payload: encodeMessage(hdr({ type: MsgType.ACK, flags: result ? Flags.RESULT : 0, replicaId: st.rid, session, view: st.view, seq: BigInt(st.seq) }), result ?? Buffer.alloc(0)),
        });
        // The model is told which member's address the ACK came from (or none).
        const fromIdx = MEMBERS.slice(0, this.s.n).findIndex((x) => x.addr === src.addr && x.port === src.port);
        mv = m.onAck({ type: 'ACK', session, seq: st.seq, leaderNum: st.view, replicaId: st.rid, clientId: 9n, requestId: 0n, result: result ?? null }, fromIdx);
        break;
      }
      case 'solicit': {
        // The model has no clock: every solicit is the first of its gap
        // (XSEQ_SOLICIT_GAP_NS; the gap itself is tested in flush.prog).
        k.resetSolicitGap(GROUP_ID);
        const agent = st.from === 'agent';
        const src = agent ? { addr: SEQ_IP, port: 7400 } : st.from === 'self' ? (MEMBERS[st.rid] ?? STRANGER) : STRANGER;
        const rid = agent ? XSEQ_REPLICA_AGENT : st.rid;
        frame = buildFrame({ srcIp: src.addr, dstIp: SEQ_IP, srcPort: src.port, payload: encodeMessage(hdr({ type: MsgType.FLUSH_SOLICIT, replicaId: rid, sequencerId: this.s.sequencerId, session: this.session })) });
        const fromIdx = agent ? AGENT_SOLICIT : MEMBERS.slice(0, this.s.n).findIndex((x) => x.addr === src.addr && x.port === src.port);
        mv = m.onSolicit({ type: 'FLUSH_SOLICIT', sequencerId: this.s.sequencerId, replicaId: rid, session: this.session }, fromIdx);
        break;
      }
      case 'release':
        this.released = Math.max(this.released, st.seq);
        k.setReleased(GROUP_ID, BigInt(this.released));
        m.release(st.seq);
        mv = 'none';
        break;
      case 'new-session':
        // As the agent starts a new session on a data path it keeps
        // (agent/groups.ts applyGroups): the group off, seq and release
        // zeroed, the group on with the next session. The window is not
        // touched.
        this.session++;
        this.last = 0;
        this.released = 0;
        k.disableGroup(GROUP_ID);
        k.resetSeq(GROUP_ID);
        k.setGroup(GROUP_ID, this.group(), 0);
        m.restart();
        mv = 'none';
        break;
      case 'drain':
        this.drained = true;
        k.setGroup(GROUP_ID, this.group(), 0);
        m.retired = true;
        m.up = false;
        mv = 'none';
        break;
    }
    const res = frame ? k.program.testRun({ data: frame }) : null;
    if (res && res.retval !== XDP_TX && res.retval !== XDP_DROP) throw new Disagreement(`kernel answered XDP action ${res.retval}`);
    if (mv === 'down') throw new Disagreement('the model is down: a step the harness should not generate');
    // The counters the model's verdict names moved by one each, now.
    const moves = frame ? (MOVES[mv] ?? []).filter((c) => c !== 'busy' || HAS_BUSY) : [];
    if (mv === 'flush' && this.drained) moves.push('flush_final');
    for (const c of moves) this.tally.set(c, (this.tally.get(c) ?? 0) + 1);
    this.tally.set('window_overwrite', this.model.stats.windowOverwrites);
    this.tally.set('ack_view_reset', this.model.stats.ackViewResets);
    // Per step, the verdict's own counters (a syscall each); rx, ack_rx and
    // the rest are accounted at the end of the sequence (finish()).
    const own = moves.filter((c) => c !== 'rx' && c !== 'ack_rx');
    if (mv === 'sequenced') own.push('window_overwrite');
    if (st.kind === 'ack') own.push('ack_view_reset');
    this.account(this.everyCounter ? COUNTER_NAMES : own, `after ${mv}`);

    // The frame the kernel sent against the message the model sent.
    let sent = res && res.retval === XDP_TX ? readHeader(parseFrame(res.data).payload) : null;
    const sentPayload = res && res.retval === XDP_TX ? parseFrame(res.data).payload.subarray(XSEQ_HDR_LEN) : null;
    // A refused request answered BUSY is the kernel telling the client what
    // the model's drop leaves to its timeout: the same verdict.
    if (sent && sent.type === MsgType.ERROR && mv === 'drop_backpressure') sent = null;
    const out = this.modelOut;
    if ((sent ? 1 : 0) !== out.length) throw new Disagreement(`kernel sent ${sent ? typeName(sent.type) : 'nothing'}, model sent ${out.map((x) => x.type).join(', ') || 'nothing'}`);
    if (sent) this.compareSent(sent, sentPayload!, out[0]!);
    if (mv === 'sequenced') this.last++;
    // A REQUEST or ACK can change one slot, the one of its seq: that one
    // after every step, the whole window every few steps and at the end.
    this.steps++;
    if (this.steps % 8 === 0 || this.everyCounter || (st.kind !== 'request' && st.kind !== 'ack')) this.compareSlots();
    else this.compareSlot((st.kind === 'ack' ? st.seq : this.last) % this.k.windowSlots);
    return mv;
  }

  /** Full accounting after every step (slow: every counter is a syscall), for a replay. */
  everyCounter = false;

  /** Each counter in `names` moved, since start(), by what the model tallied (0 if it names none). */
  account(names: readonly string[], when: string): void {
    for (const name of names) {
      if (UNMODELLED.has(name)) continue;
      const now = this.k.counterPerCpu(name as CounterName).reduce((a, b) => a + b, 0n);
      const got = Number(now - (this.base[name] ?? 0n));
      const want = this.tally.get(name) ?? 0;
      if (got !== want) throw new Disagreement(`counter ${name} ${when}: kernel ${got}, model ${want}`);
    }
  }

  /** Before the first step: the program's counters run across sequences, so count from here. */
  start(): void {
    const c = this.k.counters() as Record<string, bigint>;
    this.base = { ...c };
  }

  /** After the last step: every counter of the program against the model's tally. */
  finish(): void {
    this.compareSlots();
    this.account(COUNTER_NAMES, 'at the end of the sequence');
  }

  private compareSent(h: XseqHeader, payload: Buffer, mm: SequencedMsg | FlushMsg | ReplyMsg): void {
    const want = (what: string, k: unknown, m: unknown) => {
      if (k !== m) throw new Disagreement(`${mm.type} ${what}: kernel ${String(k)}, model ${String(m)}`);
    };
    want('type', typeName(h.type), mm.type);
    want('session', h.session, mm.session);
    want('seq', Number(h.seq), mm.seq);
    want('sequencer id', h.sequencerId, this.s.sequencerId);
    if (mm.type === 'SEQUENCED') {
      want('client id', h.clientId, mm.clientId);
      want('request id', h.requestId, mm.requestId);
      want('payload', payload.toString('hex'), Buffer.from(mm.op).toString('hex'));
      if (h.clockNs < this.lastFlushClock) throw new Disagreement(`SEQUENCED seq ${h.seq} clock ${h.clockNs} older than the FLUSH before it (${this.lastFlushClock})`);
      this.lastStampClock = h.clockNs > this.lastStampClock ? h.clockNs : this.lastStampClock;
    } else if (mm.type === 'FLUSH') {
      want('final', (h.flags & Flags.FINAL) !== 0, mm.final);
      want('payload length', payload.length, 0);
      if (h.clockNs < this.lastStampClock) throw new Disagreement(`FLUSH clock ${h.clockNs} older than a stamp before it (${this.lastStampClock})`);
      this.lastFlushClock = h.clockNs;
    } else {
      want('view', h.view, mm.leaderNum);
      want('replica id (leader)', h.replicaId, mm.replicaId);
      want('client id', h.clientId, mm.clientId);
      want('request id', h.requestId, mm.requestId);
      want('result', payload.toString('hex'), Buffer.from(mm.result).toString('hex'));
      want('RESULT flag', (h.flags & Flags.RESULT) !== 0, true);
    }
  }

  private steps = 0;

  /** Every slot of the window, as the map holds it, against the model's. */
  private compareSlots(): void {
    for (let i = 0; i < this.k.windowSlots; i++) this.compareSlot(i);
  }

  private compareSlot(i: number): void {
    const w = this.k.windowSlots;
    {
      const ms = this.model.slotView(i === 0 ? w : i);
      const ks = decodeSlot(this.bytes.subarray(i * this.stride, i * this.stride + this.k.slots.valueSize));
      const kUsed = ks && ks.seq !== 0n;
      if (!ms) {
        if (kUsed && ks.session === this.session) throw new Disagreement(`slot ${i}: kernel holds seq ${ks.seq} of this session, model none`);
        return;
      }
      if (!kUsed) throw new Disagreement(`slot ${i}: model holds seq ${ms.seq}, kernel none`);
      const k = {
        seq: Number(ks.seq),
        session: ks.session,
        view: ks.view,
        acked: ks.acked,
        replied: ks.replied,
        result: ks.result ? Buffer.from(ks.result).toString('hex') : null,
      };
      const mo = { seq: ms.seq, session: ms.session, view: ms.view, acked: ms.acked, replied: ms.replied, result: ms.result ? Buffer.from(ms.result).toString('hex') : null };
      if (JSON.stringify(k) !== JSON.stringify(mo)) throw new Disagreement(`slot ${i}: kernel ${JSON.stringify(k)}, model ${JSON.stringify(mo)}`);
    }
  }
}

export interface DiffResult {
  steps: number;
  verdicts: Record<string, number>;
}

/** One seed: its setup and steps; throws Disagreement with the step's index and the trace. */
export function runSeed(seed: number, kernels: Record<Setup['policy'], Sequencer>, steps: number, trace?: string[]): DiffResult {
  const rng = new Prng(seed);
  const n = rng.pick([1, 3, 3, 5]);
  const majority = Math.floor(n / 2) + 1;
  const s: Setup = {
    policy: rng.pick(['backpressure', 'backpressure', 'overwrite'] as const),
    n,
    quorum: rng.int(majority, n),
    sequencerId: rng.int(0, 3),
    session: rng.int(2, 1000),
  };
  const k = kernels[s.policy];
  const pair = new Pair(k, s);
  pair.everyCounter = trace !== undefined;
  pair.start();
  const verdicts: Record<string, number> = {};
  trace?.push(`setup ${JSON.stringify(s)}, window ${k.windowSlots}`);
  for (let i = 0; i < steps; i++) {
    const st = randomStep(rng, s, pair.last, pair.released, k.windowSlots, pair.drained);
    trace?.push(`${i}: ${JSON.stringify(st)}`);
    let v: string;
    try {
      v = pair.step(st);
    } catch (e) {
      if (e instanceof Disagreement) throw new Disagreement(`seed ${seed} step ${i} (${JSON.stringify(st)}), setup ${JSON.stringify(s)}: ${e.message}`);
      throw e;
    }
    const key = v === 'none' ? st.kind : v;
    verdicts[key] = (verdicts[key] ?? 0) + 1;
  }
  try {
    pair.finish();
  } catch (e) {
    if (e instanceof Disagreement) throw new Disagreement(`seed ${seed} after ${steps} steps, setup ${JSON.stringify(s)}: ${e.message} (replay it to find the step)`);
    throw e;
  }
  return { steps, verdicts };
}

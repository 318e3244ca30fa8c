// The sequencer host as the replicas see it, modelled on bpf/aggregator.h
// and the agent: OUM stamping into a window of W slots (overwrite mode, so
// old copies disappear), multicast with per-receiver loss, ACK counting with
// the kernel's view rule and exactly one REPLY per slot, the agent's
// retransmission of slots not acked by all, and its repair service over the
// same window (what fell out of it is reported missing). A restart is a
// failover: a new session, seq back to 1, the old window gone.
//
// test/kernel-model.prog.test.ts feeds the same random steps to this model
// and to the compiled program (BPF_PROG_TEST_RUN) and compares, step by
// step, each verdict (the kernel's counter that moved), REPLY, FLUSH and
// window slot: the verdicts returned here are named after those counters.
import type { AckMsg, FlushMsg, FlushSolicitMsg, RepairErrorMsg, RepairReplyMsg, RepairRequestMsg, ReplyMsg, RequestMsg, SequencedMsg } from '../messages.ts';
import type { Prng } from './prng.ts';
import { certifies } from '../../bpf/quorum.ts';
import type { EventQueue } from './event-queue.ts';

export interface SequencerParams {
  n: number;
  /** ACKs that certify a request, the leader's included (f+1). */
  quorum: number;
  /** Window slots (the kernel's W): the repair service's memory too. */
  windowSlots: number;
  /** Agent retransmission of slots not acked by every replica; 0 = off. */
  retransmitUs: number;
  /** false: ACKs go to clients and the sequencer only stamps. */
  aggregated: boolean;
  session: number;
  /** Hydra: set when the group has several sequencers (messages then carry the id and a clock). */
  hydra?: HydraSeqParams;
  /**
   * The kernel's window policy: overwrite (the default here: old copies
   * disappear under load) or backpressure (a request whose slot still
   * waits for an ACK, and was not released by the agent, is dropped).
   */
  policy?: 'overwrite' | 'backpressure';
  /** The largest result a leader may return (the kernel's max_result); longer: the ACK is dropped. Default: no limit. */
  maxResult?: number;
  /** Weighted quorums: the table new requests are stamped under (the agent's
   * current one); each slot keeps its own and is certified by it alone. */
  weights?: () => readonly number[] | undefined;
  /** Weighted: every certification as (seq, acked bitmap, table), for the invariants. */
  onWeightedReply?: (seq: number, acks: number, weights: readonly number[]) => void;
}

/** replica id of the agent's own FLUSH_SOLICIT (XSEQ_REPLICA_AGENT). */
export const AGENT_SOLICIT = 0xffff;

/** What the program did with a REQUEST: the counter that moved. */
export type RequestVerdict = 'sequenced' | 'drop_backpressure' | 'drop_draining' | 'down';
/** What the program did with an ACK: the counter that moved (reply and ack_late after ack_counted). */
export type AckVerdict = 'drop_result_too_big' | 'drop_ack_session' | 'drop_ack_stranger' | 'drop_ack_window' | 'drop_ack_stale_view' | 'ack_duplicate' | 'ack_counted' | 'ack_late' | 'reply' | 'down';
export type SolicitVerdict = 'flush' | 'drop_solicit_stranger' | 'down';

/** A window slot as the kernel's maps show it (xseq_slot). */
export interface ModelSlot {
  seq: number;
  session: number;
  view: number;
  acked: number;
  replied: boolean;
  /** The leader's result when stored for `view`. */
  result: Uint8Array | undefined;
}

/**
 * Hydra: the sequencer host's clock and flushes, emulating the kernel's
 * ordering facts (hydra design): a stamp takes seq first, then the clock,
 * so two CPUs stamping at once can give seq q+1 a clock below seq q's; a
 * flush reads the clock first, then the last seq, so every later seq has a
 * clock >= the flush's.
 */
export interface HydraSeqParams {
  id: number;
  rng: Prng;
  /** This host's clock runs skewUs ahead of true time (negative: behind)... */
  skewUs: number;
  /** ...and gains drift per unit of time (1e-4 = 100 ppm). */
  drift: number;
  /** Clock resolution in us: coarse clocks make cross-sequencer ties common. */
  tickUs: number;
  /** Chance a stamp races another CPU's and gets an earlier clock than the seq before it. */
  inversion: number;
  /** How far back such a clock can be, ns. */
  inversionNs: number;
  /** The agent's periodic flush; 0 = off (flushes only when solicited). */
  flushIntervalUs: number;
}

export interface SequencerRoutes {
  toReplica(replica: number, msg: SequencedMsg | FlushMsg | RepairReplyMsg | RepairErrorMsg): void;
  toClient(clientNode: number, msg: ReplyMsg): void;
}

/** One stamp as the sequencer made it: what the simulation's order oracle trusts (invariants.ts). */
export interface StampRecord {
  readonly sid: number;
  readonly session: number;
  readonly seq: number;
  /** Hydra: the raw clock stamped (0 with one sequencer). */
  readonly raw: number;
  readonly clientId: bigint;
  readonly requestId: bigint;
}

interface Slot {
  readonly msg: SequencedMsg;
  readonly clientNode: number;
  readonly stampedAt: number;
  acks: number;
  ackView: number;
  replied: boolean;
  result: Uint8Array | null;
  resultView: number;
  /** The leader's stored answer is a stale mark (XSEQ_SLOT_F_STALE). */
  stale: boolean;
  resends: number;
  /** Weighted: the table the request was stamped under (the slot's weights_version). */
  weights?: readonly number[];
}

const WRONG_SESSION = 4; // XSEQ_ERR_WRONG_SESSION
const RANGE_TOO_LARGE = 5;
const MAX_RESENDS = 3;

function popcount(x: number): number {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

export class SimSequencer {
  session: number;
  up = true;
  private lastSeq = 0;
  private slots: (Slot | undefined)[];
  readonly stats = {
    stamped: 0,
    replies: 0,
    repairRequests: 0,
    repairMissing: 0,
    retransmits: 0,
    failovers: 0,
    flushes: 0,
    solicits: 0,
    inversions: 0,
    /** A slot taken while it still waited for an ACK (kernel: window_overwrite). */
    windowOverwrites: 0,
    /** An ACK of a newer view replaced a non-empty ack set (kernel: ack_view_reset). */
    ackViewResets: 0,
  };
  /** Backpressure: the agent stopped waiting for every seq <= released of this session (xseq_released). */
  private released = 0;
  /** Hydra: stopped stamping for good (removed from the group); flushes are FINAL. */
  retired = false;
  /** Every stamp this sequencer made, by `session:seq` (never forgotten, unlike the window). */
  readonly stamps = new Map<string, StampRecord>();
  private lastFlushClock = -Infinity;
  private lastRaw = -Infinity;

  constructor(
    private readonly q: EventQueue,
    readonly p: SequencerParams,
    private readonly routes: SequencerRoutes,
  ) {
    this.session = p.session;
    this.slots = new Array<Slot | undefined>(p.windowSlots);
    if (p.retransmitUs > 0 && p.aggregated) this.q.after(p.retransmitUs, () => this.retransmitTick());
    const h = p.hydra;
    if (h && h.flushIntervalUs > 0) this.q.after(h.rng.int(1, h.flushIntervalUs), () => this.flushTick());
  }

  get id(): number {
    return this.p.hydra?.id ?? 0;
  }

  /** This host's TAI clock now, ns. */
  clockNs(): number {
    const h = this.p.hydra!;
    const t = (this.q.now + h.skewUs) * (1 + h.drift);
    return Math.floor(t / h.tickUs) * h.tickUs * 1000;
  }

  /** Stamp: seq first, then the clock; another CPU may have read a later clock for the seq before. */
  private stampClock(): number {
    const h = this.p.hydra!;
    let c = this.clockNs();
    if (h.rng.chance(h.inversion)) {
      c = Math.max(this.lastFlushClock, c - h.rng.int(1, h.inversionNs));
      if (c < this.lastRaw) this.stats.inversions++;
    }
    this.lastRaw = c;
    return c;
  }

  /** FLUSH: the clock first, then the last seq. */
  flush(): void {
    if (!this.up && !this.retired) return;
    const clock = this.clockNs();
    this.lastFlushClock = Math.max(this.lastFlushClock, clock);
    this.stats.flushes++;
    const m: FlushMsg = { type: 'FLUSH', sequencerId: this.id, session: this.session, seq: this.lastSeq, clock, final: this.retired };
    for (let i = 0; i < this.p.n; i++) this.routes.toReplica(i, m);
  }

  /**
   * A member's solicit from its own address (fromReplica = the member whose
   * address sent it), or the agent's (replica id and fromReplica both
   * AGENT_SOLICIT). The kernel does not look at the solicit's sequencer id:
   * a solicit reaches this host only if it was sent here.
   */
  onSolicit(m: FlushSolicitMsg, fromReplica: number): SolicitVerdict {
    if (!this.up && !this.retired) return 'down';
    const agent = m.replicaId === AGENT_SOLICIT && fromReplica === AGENT_SOLICIT;
    if (!agent && (m.replicaId !== fromReplica || m.replicaId >= this.p.n)) return 'drop_solicit_stranger';
    this.stats.solicits++;
    this.flush();
    return 'flush';
  }

  /** Removed from the group: stamping off for good, then FINAL flushes (repeated: they can be lost). */
  retire(): void {
    this.retired = true;
    this.up = false;
    for (let k = 0; k < 3; k++) this.q.after(k * 500, () => this.flush());
  }

  private flushTick(): void {
    this.flush();
    this.q.after(this.p.hydra!.flushIntervalUs, () => this.flushTick());
  }

  get lastStamped(): number {
    return this.lastSeq;
  }

  onRequest(r: RequestMsg, clientNode: number): RequestVerdict {
    if (this.retired) return 'drop_draining';
    if (!this.up) return 'down';
    const next = this.slots[(this.lastSeq + 1) % this.p.windowSlots];
    if (next && !this.slotFree(next)) {
      if (this.p.policy === 'backpressure' && this.p.aggregated) return 'drop_backpressure';
      this.stats.windowOverwrites++;
    }
    const seq = ++this.lastSeq;
    const base: SequencedMsg = { type: 'SEQUENCED', session: this.session, seq, clientId: r.clientId, requestId: r.requestId, op: r.op, retransmit: false, ...(r.control ? { control: true } : {}) };
    const msg: SequencedMsg = this.p.hydra ? { ...base, sequencerId: this.id, clock: this.stampClock() } : base;
    this.stamps.set(`${this.session}:${seq}`, { sid: this.id, session: this.session, seq, raw: msg.clock ?? 0, clientId: r.clientId, requestId: r.requestId });
    const weights = this.p.weights?.();
    this.slots[seq % this.p.windowSlots] = { msg, clientNode, stampedAt: this.q.now, acks: 0, ackView: 0, replied: false, result: null, resultView: 0, stale: false, resends: 0, ...(weights ? { weights } : {}) };
    this.stats.stamped++;
    for (let i = 0; i < this.p.n; i++) this.routes.toReplica(i, msg);
    return 'sequenced';
  }

  /** Every member acked the slot's seq in the slot's view, or the agent released it. */
  private slotFree(s: Slot): boolean {
    const all = (1 << this.p.n) - 1;
    return (s.acks & all) === all || (s.msg.session === this.session && s.msg.seq <= this.released);
  }

  /** The agent releases every seq <= seq of the current session (only grows within a session). */
  release(seq: number): void {
    this.released = Math.max(this.released, seq);
  }

  /** The slot that holds (or last held) seq, as the kernel's map shows it; undefined if never used. */
  slotView(seq: number): ModelSlot | undefined {
    const s = this.slots[seq % this.p.windowSlots];
    if (!s) return undefined;
    return {
      seq: s.msg.seq,
      session: s.msg.session,
      view: s.ackView,
      acked: s.acks,
      replied: s.replied,
      result: s.result && s.resultView === s.ackView + 1 ? s.result : undefined,
    };
  }

  /** bpf/aggregator.h ack_handle, minus the CAS. */
  onAck(a: AckMsg, fromReplica: number): AckVerdict {
    if ((!this.up && !this.retired) || !this.p.aggregated) return 'down';
    if (a.session !== this.session) return 'drop_ack_session';
    if (a.replicaId !== fromReplica || a.replicaId >= this.p.n) return 'drop_ack_stranger';
    const s = this.slots[a.seq % this.p.windowSlots];
    if (!s || s.msg.seq !== a.seq) return 'drop_ack_window';
    const view = a.leaderNum;
    const leader = view % this.p.n;
    const bit = 1 << a.replicaId;
    if (a.replicaId === leader && a.result) {
      if (a.result.length > (this.p.maxResult ?? Infinity)) return 'drop_result_too_big';
      if (s.ackView > view) return 'drop_ack_stale_view';
      s.result = a.result;
      s.stale = a.stale === true;
      s.resultView = view + 1;
    }
    if (view < s.ackView) return 'drop_ack_stale_view';
    if (view === s.ackView && s.acks & bit) return 'ack_duplicate';
    if (view > s.ackView && s.acks) this.stats.ackViewResets++;
    s.acks = view > s.ackView ? bit : s.acks | bit;
    s.ackView = view;
    if (!(s.acks & (1 << leader)) || (s.weights ? !certifies(s.acks, leader, { weights: s.weights, quorum: 0 }) : popcount(s.acks) < this.p.quorum)) return 'ack_counted';
    if (s.replied) return 'ack_late';
    s.replied = true;
    if (s.weights) this.p.onWeightedReply?.(s.msg.seq, s.acks, s.weights);
    this.stats.replies++;
    const m = s.msg;
    const stale = s.resultView === view + 1 && s.stale;
    const result = s.resultView === view + 1 && s.result && !stale ? s.result : new Uint8Array(0);
    const reply: ReplyMsg = { type: 'REPLY', session: m.session, seq: m.seq, leaderNum: view, replicaId: leader, clientId: m.clientId, requestId: m.requestId, result, ...(stale ? { stale } : {}) };
    this.routes.toClient(s.clientNode, this.p.hydra ? { ...reply, sequencerId: this.id } : reply);
    return 'reply';
  }

  onRepair(r: RepairRequestMsg, fromReplica: number): void {
    if (!this.up && !this.retired) return;
    this.stats.repairRequests++;
    const sid = this.p.hydra ? { sequencerId: this.id } : {};
    const err = (code: number, text: string): void => this.routes.toReplica(fromReplica, { type: 'ERROR', session: r.session, first: r.first, code, text, ...sid });
    if (r.session !== this.session) return err(WRONG_SESSION, `session ${r.session} is not the group's (${this.session})`);
    if (r.count < 1 || r.count > 128) return err(RANGE_TOO_LARGE, `count ${r.count} not in 1..128`);
    const missing: number[] = [];
    for (let seq = r.first; seq < r.first + r.count; seq++) {
      const s = this.slots[seq % this.p.windowSlots];
      if (s && s.msg.seq === seq) this.routes.toReplica(fromReplica, { ...s.msg, retransmit: true });
      else missing.push(seq);
    }
    this.stats.repairMissing += missing.length;
    this.routes.toReplica(fromReplica, { type: 'REPAIR_REPLY', session: r.session, first: r.first, count: r.count, missing, ...sid });
  }

  /** The window slot of seq is overwritten (what overwrite mode does under load). */
  forget(seq: number): void {
    const i = seq % this.p.windowSlots;
    if (this.slots[i]?.msg.seq === seq) this.slots[i] = undefined;
  }

  /** The data path dies: nothing is stamped or answered until restart(). */
  crash(): void {
    this.up = false;
  }

  /** A re-created data path: a new session, and the old window is gone. */
  restart(): void {
    this.up = true;
    // As agent/session.ts: the session after 0xffffffff is 1.
    this.session = this.session >= 0xffffffff ? 1 : this.session + 1;
    this.lastSeq = 0;
    this.released = 0;
    this.slots = new Array<Slot | undefined>(this.p.windowSlots);
    this.stats.failovers++;
  }

  private retransmitTick(): void {
    if (this.up || this.retired) {
      const all = (1 << this.p.n) - 1;
      for (const s of this.slots) {
        if (!s || s.resends >= MAX_RESENDS || this.q.now - s.stampedAt < this.p.retransmitUs * (s.resends + 1)) continue;
        if ((s.acks & all) === all) continue;
        s.resends++;
        this.stats.retransmits++;
        const copy = { ...s.msg, retransmit: true };
        for (let i = 0; i < this.p.n; i++) if (!(s.acks & (1 << i))) this.routes.toReplica(i, copy);
      }
    }
    this.q.after(this.p.retransmitUs, () => this.retransmitTick());
  }
}

// Loopback retransmission (MRTOM): the sequencer keeps every stamped message
// of an aggregating group in its window until all members acked it; a member
// that has not acked a seq within the RTO gets the stamped message again, by
// unicast, from the kernel's copy. Replicas bind the group port on any
// address, so a datagram to member address : group port reaches the same
// socket the multicast does.
//
// Per group the scan covers [floor, lastSeq], where floor is the lowest seq
// not yet settled (acked by every member, overwritten, or given up). The
// window is read through mmap, so a scan costs memory reads, not syscalls;
// a tick where lastSeq did not move and nothing is due costs one map lookup
// per group.
//
// Release (bpf/xseq.h, xseq_released): a seq is done when every member
// acked it, it was overwritten, or its retries ran out after a quorum
// including the leader of the acks' view acked it (its REPLY was due; the
// silent member is dead, or was recovered by state transfer and never acks
// old seqs, and catches up by repair or the slow path). The floor only
// passes done seqs, and the group's released seq is floor - 1, written to
// the kernel whenever it grows: under backpressure those slots free, so one
// silent member cannot stall the group after W requests. A seq given up
// without such a quorum stays below the floor, and would hold the window
// for good if nothing ever made a member ACK it: so it is probed, re-sent
// to the members that lack it once per probe interval (the RTO ceiling,
// 1 s by default) for as long as it stays uncertified. A replica that
// holds it re-ACKs every copy (the leader with its result), so once a
// quorum with the leader is up again the seq completes and the floor moves
// on. Under backpressure the agent still holds its copy, so the replicas
// never had to no-op it. The write is a whole-value map update of one
// u64: no atomics from here.
//
// The RTO adapts (agent/rto.ts) when maxRtoMs is above rtoMs: an RFC 6298
// estimator clamped to [rtoMs, maxRtoMs], fed by the scan itself. A seq
// the scan finds acked by every member, which it saw lacking some at the
// previous scan (or which was stamped since), was completed between the
// two scans: the sample is the middle of that interval minus its stamp.
// Every member, not a quorum, because a re-send goes to each member that
// has not acked: fed stamp-to-quorum times (the kernel's histogram, as
// before), the RTO sat below the slowest member's lag under load and most
// re-sends were spurious. Karn's rule: a seq that was re-sent gives a
// sample only in the share of re-sends that were spurious, which the
// kernel counts (a member that had the seq ACKs the copy again: a
// duplicate ACK); strict Karn censors every sample above the RTO, so when
// most seqs take longer than the floor (an overloaded host) the RTO would
// never learn it and re-sent most seqs (measured: 84 % of stamped requests
// re-sent at P3 peak with nothing lost). Under loss the re-sends draw no
// duplicates, and Karn holds. The interval is at most idlePollMs (rtoMs)
// wide, so a sample is off by at most half of it; that spread only adds
// to the variance term, i.e. errs towards a later re-send. A seq is first re-sent that RTO after stamping; the
// k-th try after that waits the larger of the RTO and rtoMs x 2^k, so a
// slow group is not re-sent to early and the configured worst-case
// schedule (rtoMs doubling) still bounds how long the tries take.
//
// Ticks are scheduled, not periodic: the next one is at the earliest due
// time of an outstanding seq, or one RTO later when nothing is outstanding.
// A seq stamped while idle is then seen before it is due and re-sent on
// time, and an idle agent wakes RTO^-1 times a second (on a VM, a timer
// wakeup costs far more CPU than the check it runs).
import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { GroupConfig, Member } from '../bpf/maps.ts';
import { certifies } from '../bpf/quorum.ts';
import { taiNowNs } from './clock.ts';
import { type KeySource, NO_KEYS, sealFor } from './keys.ts';
import { type Log, silentLog } from './log.ts';
import { RtoEstimator } from './rto.ts';
import { type Epoch, epochOf, type SlotWindow } from './window.ts';

/** What the retransmitter reads of the sequencer (bpf/sequencer.ts). */
export interface GroupSource {
  group(id: number): GroupConfig | undefined;
  lastSeq(id: number): bigint;
  /** The kernel's duplicate-ACK count (ack_duplicate), all groups: tells
   * spurious re-sends from needed ones for the adaptive RTO (see above). */
  ackDuplicates?(): bigint;
  /** The group's released seq in the kernel, and its update (see above). */
  released?(id: number): bigint;
  setReleased?(id: number, seq: bigint): void;
}

export interface RetransmitOptions {
  /** Group keys: a keyed group's re-sends are sealed (agent/keys.ts). */
  keys?: KeySource;
  /** Groups to watch; those without members are skipped. */
  groups: readonly number[];
  /** A seq not acked by every member this long after stamping is re-sent;
   * the least RTO when it adapts. */
  rtoMs: number;
  /** The most the adaptive RTO may grow to; at or below rtoMs (default) the
   * RTO is fixed at rtoMs. */
  maxRtoMs?: number;
  /** Re-sends per seq before giving up; the k-th waits RTO x 2^k after the
   * previous (with an adaptive RTO: the larger of it and rtoMs x 2^k). */
  retries: number;
  /** Longest sleep between ticks (default the RTO, at most 100 ms). */
  idlePollMs?: number;
  /** Datagrams sent per tick at most; due seqs beyond wait for the next
   * tick, so a burst of loss cannot stall the event loop (default 256). */
  maxSendsPerTick?: number;
  /** TAI nanoseconds; tests move time with it. */
  now?: () => bigint;
  log?: Log;
}

export interface RetransmitCounters {
  /** Datagrams re-sent (one per missing member per try). */
  retransmissions: number;
  /** Distinct seqs re-sent at least once. */
  retransmittedSeqs: number;
  /** Seqs given up on after the retry limit. */
  giveUps: number;
  /** Re-sends of given-up seqs still without a quorum and the leader (see
   * Release above), one per missing member per probe interval. */
  probes: number;
  /** Re-sends the socket refused (counted, not retried). */
  sendErrors: number;
  /** Group scans that read the window, and the slots they read. */
  scans: number;
  slotsScanned: number;
  /** Group ticks skipped: lastSeq unchanged and nothing due. */
  idleTicks: number;
  /** Due re-sends left for a later tick by maxSendsPerTick. */
  deferred: number;
  /** Time spent in scans that read the window, nanoseconds. */
  scanNs: number;
}

/** The adaptive RTO's ceiling in the agent (run.ts), unless --rto-ms is higher. */
export const DEFAULT_MAX_RTO_MS = 1000;

/** The config schema's limit (agent/config.ts); a try count fits a byte. */
export const MAX_RETRIES = 100;
/** Tries value that marks a seq given up on. */
const GAVE_UP = 255;

interface GroupState {
  id: number;
  members: Member[];
  mask: number;
  /** ACKs (the leader's among them) that certify a request. */
  quorum: number;
  /** Member weights, when the group certifies by weight (the kernel's
   * current table; see bpf/xseq.h struct xseq_weights). */
  weights?: number[];
  port: number;
  session: number;
  windowBase: number;
  /** When the group's window was last scanned (ns since the epoch), for RTO samples. */
  scannedAt: number;
  /** Lowest seq not done yet (see Release above). */
  floor: number;
  /** The released seq last written to (or read from) the kernel. */
  released: number;
  /** lastSeq at the previous scan (-1: never scanned). */
  lastSeen: number;
  /** Earliest due time of an unsettled seq (ns since the epoch); Infinity when none. */
  nextDue: number;
  /** Seqs some member still lacks and that are not given up, at the last scan. */
  backlog: number;
  /**
   * Per window position (seq & (W - 1)): the seq re-sent or given up on
   * there (0 = none), its tries (GAVE_UP once given up), and when the next
   * try is due (ns since the epoch). The live range never spans more than
   * one window, so a position holds at most one seq's state; typed arrays
   * keep the scan free of hash lookups and allocation.
   */
  stSeq: Float64Array;
  stTries: Uint8Array;
  stDue: Float64Array;
  /** Per window position: the seq seen there lacking some member's ACK at
   * the last scan (0 = none), so its completion falls after that scan. */
  stOpen: Float64Array;
}

const NS_PER_MS = 1_000_000;
/** How often the spurious share of re-sends is re-read (adaptive RTO). */
const SHARE_EVERY_NS = 100 * NS_PER_MS;
const SUMMARY_EVERY_NS = 1_000 * NS_PER_MS;
/** Given-up seqs named in one warn summary per group; the count has the rest. */
const SUMMARY_SEQS = 16;

export class Retransmitter {
  readonly idlePollMs: number;
  readonly maxSendsPerTick: number;
  readonly #source: GroupSource;
  readonly #window: SlotWindow;
  readonly #socket: Socket;
  readonly #keys: KeySource;
  readonly #groupIds: readonly number[];
  /** The configured RTO: the least, and the base of the backoff. */
  readonly #rtoMinNs: number;
  readonly #est: RtoEstimator | undefined;
  /** Share of recent re-sends that drew a duplicate ACK (0..1), and the
   * counts it was last computed from; #credit spends it on re-sent seqs. */
  #spurious = 0;
  #shareAt = -Infinity;
  #shareRetx = 0;
  #shareDups: bigint | undefined;
  #credit = 0;
  readonly #retries: number;
  /** How often a given-up, uncertified seq is re-sent (see Release above). */
  readonly #probeNs: number;
  readonly #now: () => bigint;
  /** Times below are Numbers of ns since this TAI instant: exact, no BigInt. */
  readonly #epoch: Epoch;
  readonly #epochNs: bigint;
  readonly #log: Log;
  #groups: GroupState[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Sends left in the current tick. */
  #budget = 0;
  /** Earliest due time over all groups after the last tick (ns since the epoch). */
  #wakeAt = Infinity;
  #counters: RetransmitCounters = {
    retransmissions: 0,
    retransmittedSeqs: 0,
    giveUps: 0,
    probes: 0,
    sendErrors: 0,
    scans: 0,
    slotsScanned: 0,
    idleTicks: 0,
    deferred: 0,
    scanNs: 0,
  };
  readonly #onSent = (err: Error | null): void => {
    if (err) this.#counters.sendErrors++;
  };
  /** Given-up seqs since the last warn summary, per group. */
  #gaveUp = new Map<number, { count: number; seqs: number[] }>();
  #lastSummary = -Infinity;

  constructor(source: GroupSource, window: SlotWindow, socket: Socket, opts: RetransmitOptions) {
    if (!Number.isInteger(opts.rtoMs) || opts.rtoMs < 1) throw new RangeError(`rtoMs must be a positive integer, got ${opts.rtoMs}`);
    if (!Number.isInteger(opts.retries) || opts.retries < 0 || opts.retries > MAX_RETRIES) {
      throw new RangeError(`retries must be 0..${MAX_RETRIES}, got ${opts.retries}`);
    }
    this.#source = source;
    this.#window = window;
    this.#socket = socket;
    this.#keys = opts.keys ?? NO_KEYS;
    this.#groupIds = [...opts.groups];
    this.#rtoMinNs = opts.rtoMs * NS_PER_MS;
    if (opts.maxRtoMs !== undefined && (!Number.isInteger(opts.maxRtoMs) || opts.maxRtoMs < opts.rtoMs)) {
      throw new RangeError(`maxRtoMs must be an integer of at least rtoMs (${opts.rtoMs}), got ${opts.maxRtoMs}`);
    }
    this.#est = opts.maxRtoMs !== undefined && opts.maxRtoMs > opts.rtoMs ? new RtoEstimator(this.#rtoMinNs, opts.maxRtoMs * NS_PER_MS) : undefined;
    this.#retries = opts.retries;
    this.#probeNs = Math.max(opts.rtoMs, opts.maxRtoMs ?? DEFAULT_MAX_RTO_MS) * NS_PER_MS;
    this.#now = opts.now ?? taiNowNs;
    this.#epochNs = this.#now();
    this.#epoch = epochOf(this.#epochNs);
    this.#log = opts.log ?? silentLog;
    this.idlePollMs = opts.idlePollMs ?? Math.min(100, opts.rtoMs);
    this.maxSendsPerTick = opts.maxSendsPerTick ?? 256;
    this.refresh();
  }

  /**
   * Reads the groups' configuration again (after setGroup). A group whose
   * session, members or window changed starts over from its current window.
   */
  refresh(): void {
    const old = new Map(this.#groups.map((g) => [g.id, g]));
    const next: GroupState[] = [];
    for (const id of this.#groupIds) {
      const g = this.#source.group(id);
      const members = g?.members ?? [];
      if (!g || members.length === 0) continue;
      const prev = old.get(id);
      const same =
        prev &&
        prev.session === g.session &&
        prev.windowBase === (g.windowBase ?? 0) &&
        prev.port === g.mcastPort &&
        JSON.stringify(prev.members) === JSON.stringify(members) &&
        JSON.stringify(prev.weights) === JSON.stringify(g.weights);
      if (same) {
        next.push(prev);
        continue;
      }
      const last = Number(this.#source.lastSeq(id));
      next.push({
        id,
        members,
        mask: (1 << members.length) - 1,
        quorum: g.quorum ?? Math.floor(members.length / 2) + 1,
        ...(g.weights ? { weights: g.weights } : {}),
        port: g.mcastPort,
        session: g.session,
        windowBase: g.windowBase ?? 0,
        floor: Math.max(1, last - this.#window.windowSlots + 1),
        released: Number(this.#source.released?.(id) ?? 0n),
        lastSeen: -1,
        scannedAt: -Infinity,
        nextDue: Infinity,
        backlog: 0,
        stSeq: new Float64Array(this.#window.windowSlots),
        stTries: new Uint8Array(this.#window.windowSlots),
        stDue: new Float64Array(this.#window.windowSlots),
        stOpen: new Float64Array(this.#window.windowSlots),
      });
    }
    this.#groups = next;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      try {
        this.tick();
      } catch (e) {
        // A daemon timer must not take the agent down; the next tick retries.
        this.#log.error({ err: (e as Error).message, code: (e as { code?: string }).code }, 'retransmit tick failed');
        this.#wakeAt = Infinity;
      }
      const untilDue = (this.#wakeAt - Number(this.#now() - this.#epochNs)) / NS_PER_MS;
      this.#schedule(Math.min(this.idlePollMs, Math.max(1, Math.ceil(untilDue))));
    }, delayMs);
    // The agent's own lifetime (signals) decides when the process ends.
    this.#timer.unref();
  }

  /** The RTO in force, ms (the configured one unless it adapts). */
  rtoMs(): number {
    return this.#rtoNs / NS_PER_MS;
  }

  get #rtoNs(): number {
    return this.#est?.rtoNs ?? this.#rtoMinNs;
  }

  counters(): RetransmitCounters {
    return { ...this.#counters };
  }

  /** Per group: seqs some member has not acked and that are still being
   * re-sent (not given up), as of the last scan. */
  backlog(): Map<number, number> {
    return new Map(this.#groups.map((g) => [g.id, g.backlog]));
  }

  /** Every SHARE_EVERY_NS: the share of the re-sends since that drew a duplicate ACK. */
  #spuriousShare(now: number): void {
    if (!this.#est || !this.#source.ackDuplicates || now - this.#shareAt < SHARE_EVERY_NS) return;
    this.#shareAt = now;
    const dups = this.#source.ackDuplicates();
    const retx = this.#counters.retransmissions;
    const sent = retx - this.#shareRetx;
    if (this.#shareDups !== undefined && sent > 0) this.#spurious = Math.min(1, Math.max(0, Number(dups - this.#shareDups) / sent));
    this.#shareDups = dups;
    this.#shareRetx = retx;
  }

  /** One pass over every group; start() schedules it. */
  tick(): void {
    const now = Number(this.#now() - this.#epochNs);
    this.#budget = this.maxSendsPerTick;
    this.#spuriousShare(now);
    let wakeAt = Infinity;
    for (const g of this.#groups) {
      this.#tickGroup(g, now);
      wakeAt = Math.min(wakeAt, g.nextDue);
    }
    this.#wakeAt = wakeAt;
    if (this.#gaveUp.size > 0 && now - this.#lastSummary >= SUMMARY_EVERY_NS) {
      for (const [group, { count, seqs }] of this.#gaveUp) {
        this.#log.warn(
          { event: 'retransmit_give_up', group, count, seqs: seqs.map(String), retries: this.#retries },
          `gave up re-sending ${count} seqs of group ${group} after ${this.#retries} retransmissions`,
        );
      }
      this.#gaveUp.clear();
      this.#lastSummary = now;
    }
  }

  #tickGroup(g: GroupState, now: number): void {
    const last = Number(this.#source.lastSeq(g.id));
    /** Seqs above this were stamped after the previous scan (-1: no scan to measure from). */
    let prevLast = g.lastSeen;
    if (last < g.lastSeen) {
      // The data path's seq was reset (a new session): old seqs mean nothing.
      g.floor = 1;
      g.released = 0; // zeroed with the seq (Sequencer.resetSeq)
      g.stSeq.fill(0);
      g.stOpen.fill(0);
      prevLast = 0;
      g.nextDue = Infinity;
      g.backlog = 0;
    } else if (last === g.lastSeen && (g.floor > last || now < g.nextDue)) {
      this.#counters.idleTicks++;
      return;
    }
    g.lastSeen = last;
    const t0 = performance.now();
    const w = this.#window;
    const lo = Math.max(g.floor, last - w.windowSlots + 1);
    // Seqs below lo left the window unacked (overwrite policy): the kernel
    // counted them (window_overwrite) and nothing is left to re-send. Their
    // state entries no longer match the seq at their position.
    g.floor = lo;
    let donePrefix = true;
    let nextDue = Infinity;
    let backlog = 0;
    for (let s = lo; s <= last; s++) {
      const slot = w.slotOf(g.windowBase, s);
      const held = w.seqAt(slot);
      /** Nothing more to send; done: and the slot may be reused. */
      let settled: boolean;
      let done: boolean;
      if (held < s || w.sessionAt(slot) !== g.session) {
        // The seq is taken but its slot not written yet (another CPU is
        // between stamp and keep), so it was stamped about now and is due
        // one RTO from now. (A slot left by an earlier session looks the
        // same until overwritten: checking once per RTO keeps that cheap.)
        settled = done = false;
        nextDue = Math.min(nextDue, now + this.#rtoNs);
      } else if (held > s || (w.ackedAt(slot) & g.mask) === g.mask) {
        settled = done = true; // overwritten, or every member has it
        if (held === s) this.#sampleAllAcked(g, s, slot, now, prevLast);
        g.stSeq[slot - g.windowBase] = 0;
      } else {
        g.stOpen[slot - g.windowBase] = s;
        const due = this.#outstanding(g, s, slot, now);
        settled = due === Infinity;
        done = settled && this.#certified(g, slot);
        // Given up without a quorum: look again in an RTO.
        nextDue = Math.min(nextDue, settled && !done ? now + this.#rtoNs : due);
      }
      if (done && donePrefix) {
        g.floor = s + 1;
        g.stSeq[slot - g.windowBase] = 0;
      } else {
        donePrefix = false;
      }
      if (!settled && !(g.stSeq[slot - g.windowBase] === s && g.stTries[slot - g.windowBase] === GAVE_UP)) backlog++;
    }
    if (g.floor - 1 > g.released && this.#source.setReleased) {
      this.#source.setReleased(g.id, BigInt(g.floor - 1));
      g.released = g.floor - 1;
    }
    g.nextDue = nextDue;
    g.backlog = backlog;
    g.scannedAt = now;
    this.#counters.scans++;
    this.#counters.slotsScanned += last - lo + 1;
    this.#counters.scanNs += Math.round((performance.now() - t0) * 1e6);
  }

  /**
   * A seq every member has acked, seen so for the first time: one RTO
   * sample (see the top), unless there is no earlier scan to bound when it
   * completed, or it was re-sent and falls outside the spurious share (Karn).
   */
  #sampleAllAcked(g: GroupState, seq: number, slot: number, now: number, prevLast: number): void {
    const i = slot - g.windowBase;
    const open = g.stOpen[i] === seq;
    g.stOpen[i] = 0;
    if (!this.#est || prevLast < 0 || (!open && seq <= prevLast)) return;
    if (g.stSeq[i] === seq) {
      this.#credit = Math.min(1, this.#credit + this.#spurious);
      if (this.#credit < 1 - 1e-9) return;
      this.#credit = 0;
    }
    const stamp = this.#window.stampSince(slot, this.#epoch);
    const from = open ? Math.max(g.scannedAt, stamp) : stamp;
    this.#est.sample((from + now) / 2 - stamp);
  }

  /**
   * A seq some member has not acked: re-send it if due, or give up.
   * Returns when it is due next, Infinity once given up.
   */
  #outstanding(g: GroupState, seq: number, slot: number, now: number): number {
    const w = this.#window;
    const i = slot - g.windowBase;
    const known = g.stSeq[i] === seq;
    const tries = known ? g.stTries[i]! : 0;
    if (tries === GAVE_UP) return this.#probe(g, seq, slot, now);
    const due = known ? g.stDue[i]! : w.stampSince(slot, this.#epoch) + this.#rtoNs;
    if (now < due) return due;
    if (this.#budget <= 0 && tries < this.#retries) {
      this.#counters.deferred++;
      return now;
    }
    if (tries >= this.#retries) {
      g.stSeq[i] = seq;
      g.stTries[i] = GAVE_UP;
      g.stDue[i] = now + this.#probeNs;
      this.#giveUp(g, seq, w.ackedAt(slot));
      return this.#certified(g, slot) ? Infinity : g.stDue[i]!;
    }
    const copy = w.copyRetransmit(slot, seq, g.session);
    // Rewritten while we copied (the next scan finds the new seq there and
    // settles this one), or not a message we can send: try again later.
    if (!copy) return now + this.#rtoNs;
    // The flags changed (RETRANSMIT): a keyed group's copy is sealed anew.
    const msg = sealFor(this.#keys, g.id, copy);
    const missing = g.mask & ~w.ackedAt(slot);
    for (let rid = 0; rid < g.members.length; rid++) {
      if (!(missing & (1 << rid))) continue;
      this.#budget--;
      this.#counters.retransmissions++;
      this.#socket.send(msg, g.port, g.members[rid]!.addr, this.#onSent);
    }
    if (!known) {
      g.stSeq[i] = seq;
      this.#counters.retransmittedSeqs++;
    }
    g.stTries[i] = tries + 1;
    g.stDue[i] = now + Math.max(this.#rtoNs, this.#rtoMinNs * 2 ** (tries + 1));
    return g.stDue[i]!;
  }

  /**
   * A given-up seq: done (Infinity) once certified; else re-sent to the
   * members that lack it when its probe is due. Returns when it is due next.
   */
  #probe(g: GroupState, seq: number, slot: number, now: number): number {
    if (this.#certified(g, slot)) return Infinity;
    const i = slot - g.windowBase;
    const due = g.stDue[i]!;
    if (now < due) return due;
    if (this.#budget <= 0) {
      this.#counters.deferred++;
      return now;
    }
    const msg = this.#window.copyRetransmit(slot, seq, g.session);
    if (msg) {
      const missing = g.mask & ~this.#window.ackedAt(slot);
      for (let rid = 0; rid < g.members.length; rid++) {
        if (!(missing & (1 << rid))) continue;
        this.#budget--;
        this.#counters.probes++;
        this.#socket.send(msg, g.port, g.members[rid]!.addr, this.#onSent);
      }
    }
    g.stDue[i] = now + this.#probeNs;
    return g.stDue[i]!;
  }

  /** Whether a quorum including the leader of the acks' view acked the
   * slot's seq: its REPLY was due. The two halves of the acks word are read
   * apart, so the bitmap is read again to rule out a view reset between. */
  #certified(g: GroupState, slot: number): boolean {
    const w = this.#window;
    const acked = w.ackedAt(slot);
    const leader = w.viewAt(slot) % g.members.length;
    if (w.ackedAt(slot) !== acked) return false;
    return certifies(acked & g.mask, leader, g);
  }

  #giveUp(g: GroupState, seq: number, acked: number): void {
    this.#counters.giveUps++;
    const missing = g.members.map((_, rid) => rid).filter((rid) => !(acked & (1 << rid)));
    this.#log.debug({ event: 'retransmit_give_up', group: g.id, seq: String(seq), missing }, `gave up re-sending seq ${seq} of group ${g.id}`);
    const sum = this.#gaveUp.get(g.id) ?? { count: 0, seqs: [] };
    sum.count++;
    if (sum.seqs.length < SUMMARY_SEQS) sum.seqs.push(seq);
    this.#gaveUp.set(g.id, sum);
  }
}

// Safety invariants, checked after every event of a simulation, and the
// liveness check at the end. They look only at what replicas expose and what
// clients were told, never at protocol internals, so a protocol bug shows as
// a broken promise rather than a broken assertion about the code.
//
//  1. Committed prefixes agree: every slot any replica holds as committed
//     has the same decision on every replica (an oracle remembers each one).
//  2. Certified requests are never lost or moved: the request a client got a
//     certified reply for stays at its (session, seq), never becomes a no-op,
//     is in the log of every view started after the certifying view, and its
//     result equals what the committed order computes.
//  3. Executed at most once, in committed order: each replica's application
//     history, as far as that replica has committed, is exactly the committed
//     order with at-most-once filtering (the app itself throws on a repeat).
//  Every committed request is one a sequencer stamped (its own records,
//  sim/sequencer.ts); with Hydra the committed order is checked against
//  the merge computed from those stamps (checkMergeOrder).
//  4. Liveness (finalCheck): after healing, every request completed, none
//     failed (clients have a finite deadline), and all replicas share one
//     view and one committed log.
import { sameEntry } from '../log.ts';
import type { LogEntry } from '../messages.ts';
import type { Replica } from '../replica.ts';
import { sessionCmp, viewEq, viewLeq, viewStr, type ViewId } from '../view.ts';
import type { CertifiedReply, SimCluster } from './cluster.ts';
import { encodeResult, HistoryApp, mixHash } from './history-app.ts';
import { addedBy } from '../control-op.ts';

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

interface Cert {
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly view: ViewId;
  readonly result: Uint8Array;
  readonly sid: number | undefined;
  readonly session: number;
  readonly seq: number;
}

interface Tracker {
  incarnation: number;
  checkedCommit: number;
  verifiedHistory: number;
  restores: number;
  view: ViewId | null;
}

const sk = (session: number, seq: number): string => `${session}:${seq}`;
/** What a certificate names: (session, seq), or with Hydra (sequencer, session, seq). */
const ek = (e: LogEntry): string => (e.src ? `${e.src.sid}/${sk(e.src.session, e.src.seq)}` : sk(e.session, e.seq));
const rk = (clientId: bigint, requestId: bigint): string => `${clientId}:${requestId}`;

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class InvariantChecker {
  private readonly oracle: (LogEntry | undefined)[] = [];
  private readonly slotOf = new Map<string, number>();
  /** Oracle known for every slot 1..contig. */
  private contig = 0;
  private readonly expected: number[] = [];
  /** expected.length after slot s, for s <= contig. */
  private readonly lenAt: number[] = [0];
  private readonly lastReq = new Map<bigint, bigint>();
  private expHash = HistoryApp.initialHash();
  private readonly expectedResult = new Map<string, Uint8Array>();
  private readonly certified = new Map<string, Cert>();
  private readonly certByReq = new Map<string, Cert>();
  private readonly trackers: Tracker[] = [];

  constructor(private readonly c: SimCluster) {
    this.initialSequencers = c.sequencers.length;
    for (let i = 0; i < c.n; i++) this.trackers.push({ incarnation: -1, checkedCommit: 0, verifiedHistory: 0, restores: 0, view: null });
    c.onCertified = (r) => this.onCertified(r);
    c.afterEvent = () => this.afterEvent();
  }

  get committedSlots(): number {
    return this.contig;
  }

  /** The committed entry of (session, seq), once any replica committed it. */
  committedAt(session: number, seq: number, sequencerId?: number): LogEntry | undefined {
    const slot = this.slotOf.get(sequencerId === undefined ? sk(session, seq) : `${sequencerId}/${sk(session, seq)}`);
    return slot === undefined ? undefined : this.oracle[slot];
  }

  /** Committed entries of slots 1..committedSlots, in order. */
  committedLog(): LogEntry[] {
    return this.oracle.slice(1, this.contig + 1) as LogEntry[];
  }

  /** Committed slots that gap agreement (or a view change) made no-ops. */
  committedNoops = 0;

  /**
   * Hydra: while set, no replica may wait longer than this with resolved
   * messages held back by another sequencer's frontier (an idle sequencer
   * must not stall delivery past its flush interval plus a bound).
   */
  stallBoundUs: number | null = null;
  maxStallUs = 0;

  afterEvent(): void {
    for (let i = 0; i < this.c.n; i++) {
      const r = this.c.replicas[i];
      if (!r || r.status === 'recovering') continue;
      const h = r.hydra;
      if (h && r.status === 'normal' && !Number.isNaN(h.blockedSince)) {
        const stall = this.c.q.now - h.blockedSince;
        if (stall > this.maxStallUs) this.maxStallUs = stall;
        if (this.stallBoundUs !== null && stall > this.stallBoundUs) {
          this.fail(`replica ${i}: ${h.waiting} resolved messages held back by sequencer ${h.blockedOn}'s frontier for ${stall.toFixed(0)} us (bound ${this.stallBoundUs} us)`);
        }
      }
      const t = this.trackers[i]!;
      if (t.incarnation !== this.c.incarnation[i]) {
        t.incarnation = this.c.incarnation[i]!;
        t.checkedCommit = 0;
        t.verifiedHistory = 0;
        t.restores = -1;
        t.view = null;
      }
      this.checkCommits(r, t);
      if (r.status === 'normal' && t.view !== r.view) {
        t.view = r.view;
        this.checkNewView(r);
      }
      this.checkHistory(i, r, t);
    }
  }

  private checkCommits(r: Replica, t: Tracker): void {
    const from = Math.max(t.checkedCommit, r.log.firstSlot - 1) + 1;
    for (let s = from; s <= r.committed; s++) {
      const e = r.log.get(s);
      if (e) this.observeCommitted(s, e, r.id);
    }
    t.checkedCommit = Math.max(t.checkedCommit, r.committed);
  }

  private observeCommitted(slot: number, e: LogEntry, who: number): void {
    const known = this.oracle[slot];
    if (known) {
      if (!sameDecision(known, e)) this.fail(`slot ${slot}: replica ${who} committed ${show(e)}, another committed ${show(known)}`);
      return;
    }
    this.oracle[slot] = e;
    if (e.noop) this.committedNoops++;
    const key = ek(e);
    const prev = this.slotOf.get(key);
    if (prev !== undefined && prev !== slot) this.fail(`(session ${e.session}, seq ${e.seq}) committed at slot ${prev} and at slot ${slot}`);
    this.slotOf.set(key, slot);
    const cert = this.certified.get(key);
    if (cert) this.matchCert(cert, e, `committed slot ${slot}`);
    while (this.oracle[this.contig + 1]) {
      const next = this.oracle[++this.contig]!;
      if (next.src) this.checkMergeOrder(next);
      else if (!next.noop) this.checkStamp(next);
      if (!next.src && this.c.sequencers.length > 1) this.fail(`slot ${next.slot}: committed without a sequencer stream position in a Hydra group`);
      this.extendExpected(next);
    }
  }

  /**
   * Hydra order oracle, per sequencer: the next seq due, the effective clock
   * computed from its own stamps (and the no-op clocks decided in it), and
   * for an added sequencer the key interval of the op that added it.
   */
  private readonly streamAt = new Map<number, { seq: number; eff: number; floorLo: number; floorHi: number; session: number; ended: boolean }>();
  /** Added sequencers: the key interval [lo, hi] of their first committed "add" op. */
  private readonly addedAt = new Map<number, { lo: number; hi: number }>();
  /** The greatest (key lower bound, sequencer id) committed so far. */
  private top: { clock: number; sid: number; seq: number } | null = null;
  private readonly initialSequencers: number;

  /**
   * Every committed request is one its sequencer stamped, at that (session,
   * seq), for that client and request id, carrying the raw clock stamped:
   * the sequencers' own records (sim/sequencer.ts), not a replica's log.
   */
  private checkStamp(e: LogEntry): number {
    const sid = e.src?.sid ?? 0;
    const session = e.src?.session ?? e.session;
    const seq = e.src?.seq ?? e.seq;
    const st = this.c.sequencers[sid]?.stamps.get(`${session}:${seq}`);
    if (!st) this.fail(`slot ${e.slot}: ${show(e)} committed, but sequencer ${sid} never stamped (${session}, ${seq})`);
    if (st.clientId !== e.clientId || st.requestId !== e.requestId) this.fail(`slot ${e.slot}: ${show(e)} committed at sequencer ${sid}'s (${session}, ${seq}), which stamped ${rk(st.clientId, st.requestId)}`);
    if (e.src && e.src.raw !== st.raw) this.fail(`slot ${e.slot}: sequencer ${sid} seq ${seq} committed with raw clock ${e.src.raw}, stamped ${st.raw}`);
    return st.raw;
  }

  /**
   * Hydra: the committed order is the merge the spec (replica/README.md,
   * "Hydra") defines, computed here from the stamps the sequencers recorded:
   * each stream's seqs in order with none skipped; eff(s, q) = max(raw(s, q),
   * eff(s, q-1)), a no-op's raw being the clock its leader decided (no
   * stamp stands behind a no-op); the whole in (eff, sequencer id) order.
   * An added sequencer's traffic sorts after the op that added it (its
   * floor is above that op's key); while its own stamps are not past that
   * key its exact key is unknown here, so it only gets a lower bound. The
   * check is on key intervals: every entry's key upper bound must not sort
   * below any earlier entry's lower bound.
   */
  private checkMergeOrder(e: LogEntry): void {
    const src = e.src!;
    let at = this.streamAt.get(src.sid);
    if (!at) {
      const add = this.addedAt.get(src.sid);
      if (src.sid >= this.initialSequencers && !add) this.fail(`slot ${e.slot}: sequencer ${src.sid} committed seq ${src.seq} before any op added it`);
      at = { seq: 0, eff: -Infinity, floorLo: add ? add.lo : -Infinity, floorHi: add ? add.hi : -Infinity, session: src.session, ended: false };
      this.streamAt.set(src.sid, at);
    }
    // A sequencer's sessions (stream-epochs.ts): one at a time, a new one
    // only by a start marker after the old one's end, never an old one again.
    if (e.noop && src.seq === 0) {
      if (!at.ended) this.fail(`slot ${e.slot}: sequencer ${src.sid} session ${src.session} started while its session ${at.session} had not ended`);
      if (sessionCmp(src.session, at.session) <= 0) this.fail(`slot ${e.slot}: sequencer ${src.sid} restarted at session ${src.session}, not after its ended session ${at.session}`);
      at.session = src.session;
      at.seq = 0;
      at.ended = false;
    } else if (src.session !== at.session) {
      this.fail(`slot ${e.slot}: sequencer ${src.sid} (${src.session}, ${src.seq}) committed while the log holds its session ${at.session} (an old session merged after a rejoin)`);
    } else if (at.ended) {
      this.fail(`slot ${e.slot}: sequencer ${src.sid} (${src.session}, ${src.seq}) committed after the replicas ended that session at seq ${at.seq}`);
    } else if (src.seq !== at.seq + 1) this.fail(`slot ${e.slot}: sequencer ${src.sid} seq ${src.seq} committed after its seq ${at.seq} (a gap was skipped)`);
    const raw = e.noop ? src.raw : this.checkStamp(e);
    at.seq = src.seq;
    if (src.end) at.ended = true;
    at.eff = Math.max(at.eff, raw);
    const lo = Math.max(at.eff, at.floorLo);
    const hi = at.eff >= at.floorHi + 1 ? at.eff : Infinity;
    const p = this.top;
    if (p && p.sid !== src.sid && (hi < p.clock || (hi === p.clock && src.sid < p.sid))) {
      this.fail(`slot ${e.slot}: (${src.sid}, ${src.seq}) with effective clock ${hi} (from its stamps) committed after (${p.sid}, ${p.seq}) with at least ${p.clock}: not in (clock, sequencer id) order`);
    }
    if (!p || lo > p.clock || (lo === p.clock && src.sid > p.sid)) this.top = { clock: lo, sid: src.sid, seq: src.seq };
    // Only an "add" adds (control-op.ts): a merged "remove" is no add.
    const added = addedBy(e);
    if (added !== null && !this.addedAt.has(added) && !this.streamAt.has(added)) this.addedAt.set(added, { lo, hi });
  }

  /** The committed order as the application must see it: at-most-once per client. */
  private extendExpected(e: LogEntry): void {
    if (!e.noop && !e.control && e.requestId > (this.lastReq.get(e.clientId) ?? 0n)) {
      this.lastReq.set(e.clientId, e.requestId);
      const key = HistoryApp.key(e.op);
      const result = encodeResult(this.expected.length, this.expHash);
      this.expected.push(key);
      this.expHash = mixHash(this.expHash, key);
      const id = rk(e.clientId, e.requestId);
      this.expectedResult.set(id, result);
      const cert = this.certByReq.get(id);
      if (cert && !bytesEq(cert.result, result)) this.fail(`request ${id}: client was answered ${hex(cert.result)}, the committed order gives ${hex(result)} (moved)`);
    }
    this.lenAt[e.slot] = this.expected.length;
  }

  private matchCert(cert: Cert, e: LogEntry, where: string): void {
    if (e.noop) this.fail(`certified request ${rk(cert.clientId, cert.requestId)} at (${e.session}, ${e.seq}) is a no-op in ${where} (lost)`);
    if (e.clientId !== cert.clientId || e.requestId !== cert.requestId) {
      this.fail(`certified request ${rk(cert.clientId, cert.requestId)} at (${e.session}, ${e.seq}) is ${rk(e.clientId, e.requestId)} in ${where}`);
    }
  }

  private onCertified(r: CertifiedReply): void {
    const { cert } = r;
    const c: Cert = { clientId: r.clientId, requestId: cert.requestId, view: { leaderNum: cert.leaderNum, session: cert.session }, result: r.result, sid: r.sequencerId, session: cert.session, seq: cert.seq };
    const key = r.sequencerId === undefined ? sk(cert.session, cert.seq) : `${r.sequencerId}/${sk(cert.session, cert.seq)}`;
    const id = rk(c.clientId, c.requestId);
    const other = this.certified.get(key);
    if (other && (other.clientId !== c.clientId || other.requestId !== c.requestId)) {
      this.fail(`(${key}) certified for ${rk(other.clientId, other.requestId)} and for ${id}`);
    }
    const earlier = this.certByReq.get(id);
    if (earlier && !bytesEq(earlier.result, c.result)) this.fail(`request ${id} answered twice with different results`);
    this.certified.set(key, c);
    this.certByReq.set(id, c);
    const slot = this.slotOf.get(key);
    if (slot !== undefined) this.matchCert(c, this.oracle[slot]!, `committed slot ${slot}`);
    const exp = this.expectedResult.get(id);
    if (exp && !bytesEq(exp, c.result)) this.fail(`request ${id}: client was answered ${hex(c.result)}, the committed order gives ${hex(exp)} (moved)`);
  }

  /** A view that started after a request was certified must carry it. */
  private checkNewView(r: Replica): void {
    let bySeq: Map<string, LogEntry> | null = null;
    const cp = r.exec.checkpoint;
    for (const [key, cert] of this.certified) {
      // With Hydra a certificate's session is a sequencer's, not the replicas' view session.
      const certView = cert.sid === undefined ? cert.view : { leaderNum: cert.view.leaderNum, session: r.view.session };
      if (!viewLeq(certView, r.view) || viewEq(certView, r.view)) continue;
      if (!bySeq) {
        bySeq = new Map();
        for (let s = r.log.firstSlot; s <= r.log.lastSlot; s++) {
          const e = r.log.get(s)!;
          bySeq.set(ek(e), e);
        }
      }
      const e = bySeq.get(key);
      if (e) {
        this.matchCert(cert, e, `replica ${r.id}'s log of view ${viewStr(r.view)}`);
        continue;
      }
      const { session, seq } = cert;
      let belowCheckpoint: boolean;
      if (cert.sid === undefined) belowCheckpoint = session < cp.session || (session === cp.session && seq <= cp.seq);
      else {
        const at = cp.streams?.find((p) => p.sid === cert.sid);
        belowCheckpoint = !!at && (session < at.session || (session === at.session && seq <= at.seq));
      }
      if (!belowCheckpoint) this.fail(`certified request ${rk(cert.clientId, cert.requestId)} at (${key}) missing from replica ${r.id}'s log of view ${viewStr(r.view)} (lost)`);
    }
  }

  private checkHistory(i: number, r: Replica, t: Tracker): void {
    const app = this.c.apps[i]!;
    if (app.restores !== t.restores) {
      t.restores = app.restores;
      t.verifiedHistory = 0;
    }
    const upTo = Math.min(r.committed, r.exec.executed, this.contig);
    const want = this.lenAt[upTo];
    if (want === undefined) return;
    if (app.history.length < want) this.fail(`replica ${i} executed ${app.history.length} ops through slot ${upTo}, the committed order has ${want}`);
    for (let p = t.verifiedHistory; p < want; p++) {
      if (app.history[p] !== this.expected[p]) {
        this.fail(`replica ${i}: op #${p} executed is ${opStr(app.history[p])}, the committed order has ${opStr(this.expected[p])}`);
      }
    }
    t.verifiedHistory = Math.max(t.verifiedHistory, want);
  }

  /** After healing and quiescing: everything completed and converged. */
  finalCheck(): void {
    const c = this.c;
    if (c.pendingRequests > 0) this.fail(`liveness: ${c.pendingRequests} client requests still pending after healing`);
    // Faults never exceed f at once, so no op may give up either.
    if (c.failures.length > 0) this.fail(`liveness: ${c.failures.length} client ops failed, the first: ${c.failures[0]!.code}: ${c.failures[0]!.message}`);
    const rs = c.replicas;
    const leader = c.leader();
    if (!leader) this.fail('liveness: no leader in normal status after healing');
    for (const r of rs) {
      if (!r) this.fail('a replica is still down after healing');
      if (r.status !== 'normal' || !viewEq(r.view, leader.view)) this.fail(`liveness: replica ${r.id} is ${r.status} in view ${viewStr(r.view)}, leader ${leader.id} in ${viewStr(leader.view)}`);
      if (r.committed !== leader.log.lastSlot) this.fail(`liveness: replica ${r.id} committed through ${r.committed}, the leader's log ends at ${leader.log.lastSlot}`);
    }
    for (const [key, cert] of this.certified) {
      if (!this.slotOf.has(key)) this.fail(`certified request ${rk(cert.clientId, cert.requestId)} at (${key}) never committed`);
    }
    if (this.contig !== leader.committed) this.fail(`the oracle saw slots 1..${this.contig} committed, the leader committed ${leader.committed}: a committed slot went unobserved`);
  }

  private fail(msg: string): never {
    throw new InvariantViolation(`t=${this.c.q.now.toFixed(0)}us: ${msg}`);
  }
}

/**
 * The checker's "same committed decision": sameEntry (the protocol's own
 * comparison, which ignores clocks) and, with Hydra, the same raw clock, so
 * replicas that disagree on a stamp or on a no-op's decided clock (which
 * feeds every later effective clock of that stream) are caught.
 */
function sameDecision(a: LogEntry, b: LogEntry): boolean {
  return sameEntry(a, b) && a.src?.raw === b.src?.raw;
}

function show(e: LogEntry): string {
  const src = e.src ? ` of sequencer ${e.src.sid} (${e.src.session}, ${e.src.seq}) raw ${e.src.raw}` : '';
  return (e.noop ? `no-op (${e.session}, ${e.seq})` : `request ${rk(e.clientId, e.requestId)} (${e.session}, ${e.seq})`) + src;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function opStr(key: number | undefined): string {
  return key === undefined ? 'nothing' : `${Math.floor(key / 4294967296)}:${key % 4294967296}`;
}

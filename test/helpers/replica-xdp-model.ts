// The replica-side program (bpf/replica.bpf.o) against what the replica
// expects of it, step by step on seeded random sequences:
//
//   - its classification of every datagram to the group port must be user
//     space's own: malformed exactly when bpf/wire.ts decodeMessage() or
//     replica/wire-map.ts sequencedFromWire() refuses it, another type
//     when it decodes as one, SEQUENCED otherwise; and a frame it passes
//     is unchanged;
//   - of a tracked stream it may drop only what the replica ignores: an
//     older session than the replica's, a delivered seq that is no
//     retransmission, a retransmission retransmit_keep or more below
//     delivered (xseq.h, struct xseq_rx_ctl); everything else passes;
//   - its state (highest seq seen, per-stream counters) and the gap events
//     it posts follow the replica's notion of a gap: seqs above both the
//     highest seen and delivered that a later seq skipped.
// The replica's side (session, delivered) moves as a replica's would:
// delivered grows, a view change starts a new session lower down.
import { RX_COUNTER_NAMES, type GapEvent, type RxCounterName, type RxKey } from '../../bpf/replica-maps.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, XSEQ_HDR_LEN, XSEQ_MAX_PAYLOAD } from '../../bpf/wire.ts';
import { Prng } from '../../replica/sim/prng.ts';
import { sequencedFromWire } from '../../replica/wire-map.ts';
import type { ReplicaXdp } from '../../replica/xdp/replica-xdp.ts';
import { buildFrame } from '../../tools/frame.ts';

export const RX_PORT = 7500;
const XDP_DROP = 1;
const XDP_PASS = 2;
const MSG_TYPE_MAX = 23;

export class RxDisagreement extends Error {
  override readonly name = 'RxDisagreement';
}

export type RxStep =
  | { kind: 'packet'; session: number; seq: bigint; retransmit: boolean; mangle: string | null; otherType: number | null; stream: 'tracked' | 'untracked' }
  | { kind: 'deliver'; to: number }
  | { kind: 'new-session' };

/** The replica's position and what it expects the program's state to be. */
interface Model {
  session: number;
  delivered: number;
  keep: number;
  st: { session: number; highest: number; droppedStale: number; droppedDuplicate: number; passedRetransmit: number; gapEvents: number; gapSeqs: number };
}

const MANGLES = ['short', 'magic', 'version', 'type0', 'typeMax', 'lenLong', 'lenShort', 'lenHuge', 'seq0', 'seqHuge'] as const;

function mangle(b: Buffer, how: string): Buffer {
  const c = Buffer.from(b);
  switch (how) {
    case 'short':
      return c.subarray(0, XSEQ_HDR_LEN - 4);
    case 'magic':
      c.writeUInt32BE(0x58534552, 0);
      return c;
    case 'version':
      c[4] = 2;
      return c;
    case 'type0':
      c[5] = 0;
      return c;
    case 'typeMax':
      c[5] = MSG_TYPE_MAX + 7;
      return c;
    case 'lenLong':
      c.writeUInt32BE(c.readUInt32BE(56) + 1, 56);
      return c;
    case 'lenShort':
      c.writeUInt32BE(Math.max(0, c.readUInt32BE(56) - 1), 56);
      return c;
    case 'lenHuge':
      c.writeUInt32BE(XSEQ_MAX_PAYLOAD + 1, 56);
      return c;
    case 'seq0':
      c.writeBigUInt64BE(0n, 24);
      return c;
    case 'seqHuge':
      c.writeBigUInt64BE(1n << 53n, 24);
      return c;
  }
  throw new Error(`unknown mangle ${how}`);
}

/** User space's classification of a datagram (what the replica's transport does with it). */
function userSpace(msg: Buffer): 'malformed' | 'other_type' | 'sequenced' {
  const d = decodeMessage(msg);
  if (!d.ok) return 'malformed';
  if (d.message.header.type !== MsgType.SEQUENCED) return 'other_type';
  return sequencedFromWire(d.message) ? 'sequenced' : 'malformed';
}

export function randomRxStep(rng: Prng, m: Model): RxStep {
  const r = rng.next();
  if (r < 0.12) return { kind: 'deliver', to: m.delivered + rng.int(0, 6) };
  if (r < 0.15) return { kind: 'new-session' };
  const around = Math.max(1, Math.max(m.delivered, m.st.highest) + rng.int(-12, 6));
  return {
    kind: 'packet',
    session: m.session + rng.pick([0, 0, 0, 0, 0, 0, -1, 1]),
    seq: BigInt(rng.chance(0.02) ? rng.int(0, 3) : around),
    retransmit: rng.chance(0.3),
    mangle: rng.chance(0.08) ? rng.pick(MANGLES) : null,
    otherType: rng.chance(0.05) ? rng.pick([MsgType.FLUSH, MsgType.REQUEST, MsgType.ACK, MsgType.REPAIR_REPLY]) : null,
    stream: rng.chance(0.05) ? 'untracked' : 'tracked',
  };
}

export class RxPair {
  readonly m: Model;
  private base: Record<string, bigint> = {};
  private readonly tally = new Map<string, number>();
  private readonly gaps: GapEvent[];

  constructor(
    private readonly x: ReplicaXdp,
    private readonly key: RxKey,
    private readonly untracked: RxKey,
    gaps: GapEvent[],
    session: number,
    keep: number,
  ) {
    this.gaps = gaps;
    this.m = { session, delivered: 0, keep, st: { session: 0, highest: 0, droppedStale: 0, droppedDuplicate: 0, passedRetransmit: 0, gapEvents: 0, gapSeqs: 0 } };
    x.track(key, { session, delivered: 0n, retransmitKeep: BigInt(keep) });
    this.base = { ...(x.counters() as Record<string, bigint>) };
  }

  private count(c: RxCounterName): void {
    this.tally.set(c, (this.tally.get(c) ?? 0) + 1);
  }

  /** One step on both sides; returns the verdict. */
  step(s: RxStep): string {
    const m = this.m;
    if (s.kind === 'deliver') {
      m.delivered = Math.max(m.delivered, s.to);
      this.x.track(this.key, { session: m.session, delivered: BigInt(m.delivered), retransmitKeep: BigInt(m.keep) });
      return 'deliver';
    }
    if (s.kind === 'new-session') {
      // A view change: the next session, the replica's log of it starting low.
      m.session++;
      m.delivered = 0;
      this.x.track(this.key, { session: m.session, delivered: 0n, retransmitKeep: BigInt(m.keep) });
      return 'new-session';
    }
    const k = s.stream === 'tracked' ? this.key : this.untracked;
    let msg = encodeMessage(
      { ...emptyHeader(), type: s.otherType ?? MsgType.SEQUENCED, flags: s.retransmit ? Flags.RETRANSMIT : 0, groupId: k.groupId, sequencerId: k.sequencerId, session: Math.max(0, s.session), seq: s.seq, clientId: 9n, requestId: s.seq },
      Buffer.from('op'),
    );
    if (s.mangle) msg = mangle(msg, s.mangle);
    const frame = buildFrame({ srcIp: '10.77.0.2', dstIp: '239.7.7.1', srcPort: 7400, dstPort: RX_PORT, payload: msg });
    const r = this.x.program.testRun({ data: frame });
    const passedSame = r.retval === XDP_PASS && Buffer.from(r.data).equals(frame);

    // What the replica expects.
    this.count('rx');
    let want: 'pass' | 'drop' = 'pass';
    let verdict: string;
    const cls = userSpace(msg);
    if (cls === 'malformed') verdict = 'pass_malformed';
    else if (cls === 'other_type') verdict = 'pass_other_type';
    else {
      this.count('sequenced');
      const seq = Number(s.seq);
      const sess = Math.max(0, s.session);
      if (s.stream === 'untracked') verdict = 'pass_untracked';
      else if (sess < m.session) {
        verdict = 'drop_stale_session';
        want = 'drop';
        m.st.droppedStale++;
      } else if (sess > m.session) verdict = 'pass_newer_session';
      else if (seq <= m.delivered && !s.retransmit) {
        verdict = 'drop_duplicate';
        want = 'drop';
        m.st.droppedDuplicate++;
      } else if (seq <= m.delivered && m.delivered - seq >= m.keep) {
        verdict = 'drop_retransmit_old';
        want = 'drop';
        m.st.droppedDuplicate++;
      } else if (seq <= m.delivered) {
        verdict = 'pass_retransmit';
        m.st.passedRetransmit++;
      } else {
        verdict = 'track';
        const st = m.st;
        if (st.session !== sess) {
          st.session = sess;
          st.highest = m.delivered;
        }
        if (seq > st.highest) {
          const base = Math.max(st.highest, m.delivered);
          st.highest = seq;
          if (seq > base + 1) {
            st.gapEvents++;
            st.gapSeqs += seq - 1 - base;
            this.expectGaps.push({ groupId: k.groupId, sequencerId: k.sequencerId, session: sess, from: BigInt(base + 1), to: BigInt(seq - 1) });
            this.count('gap_events');
          }
        }
      }
    }
    if (verdict !== 'track') this.count(verdict as RxCounterName);

    const got = r.retval === XDP_DROP ? 'drop' : r.retval === XDP_PASS ? 'pass' : `action ${r.retval}`;
    if (got !== want) throw new RxDisagreement(`${verdict}: kernel ${got}, the replica expects ${want}`);
    if (want === 'pass' && !passedSame) throw new RxDisagreement('a passed frame was changed');
    this.compare(verdict);
    return verdict;
  }

  private readonly expectGaps: GapEvent[] = [];

  private compare(when: string): void {
    // Gap events, in order, exactly.
    this.x.consumeGaps();
    const got = this.gaps.splice(0).map((g) => ({ groupId: g.groupId, sequencerId: g.sequencerId, session: g.session, from: g.from, to: g.to }));
    const want = this.expectGaps.splice(0);
    if (JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? String(v) : v)) !== JSON.stringify(want, (_k, v) => (typeof v === 'bigint' ? String(v) : v))) {
      throw new RxDisagreement(`gap events after ${when}: kernel ${JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}, expected ${JSON.stringify(want, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    const st = this.x.stateOf(this.key);
    if (!st) throw new RxDisagreement('the tracked stream has no state entry');
    const k = { session: st.session, highest: Number(st.highestSeen), droppedStale: Number(st.droppedStale), droppedDuplicate: Number(st.droppedDuplicate), passedRetransmit: Number(st.passedRetransmit), gapEvents: Number(st.gapEvents), gapSeqs: Number(st.gapSeqs) };
    if (JSON.stringify(k) !== JSON.stringify(this.m.st)) throw new RxDisagreement(`stream state after ${when}: kernel ${JSON.stringify(k)}, expected ${JSON.stringify(this.m.st)}`);
  }

  /** Every counter against the expected tally. */
  finish(): void {
    const now = this.x.counters() as Record<string, bigint>;
    for (const c of RX_COUNTER_NAMES) {
      const got = Number(now[c]! - (this.base[c] ?? 0n));
      const want = this.tally.get(c) ?? 0;
      if (got !== want) throw new RxDisagreement(`counter ${c} at the end: kernel ${got}, expected ${want}`);
    }
  }
}

export function runRxSeed(seed: number, x: ReplicaXdp, gaps: GapEvent[], steps: number, trace?: string[]): Record<string, number> {
  const rng = new Prng(seed ^ 0x52580);
  const key: RxKey = { groupId: rng.int(1, 1000), sequencerId: seed % 60000 };
  const untracked: RxKey = { groupId: key.groupId, sequencerId: 60001 };
  const keep = rng.pick([1, 4, 1 << 20]);
  const pair = new RxPair(x, key, untracked, gaps, rng.int(1, 50), keep);
  trace?.push(`seed ${seed}: stream ${JSON.stringify(key)}, retransmit_keep ${keep}`);
  const verdicts: Record<string, number> = {};
  try {
    for (let i = 0; i < steps; i++) {
      const s = randomRxStep(rng, pair.m);
      trace?.push(`${i}: ${JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
      try {
        const v = pair.step(s);
        verdicts[v] = (verdicts[v] ?? 0) + 1;
      } catch (e) {
        if (e instanceof RxDisagreement) throw new RxDisagreement(`seed ${seed} step ${i} (${JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}): ${e.message}`);
        throw e;
      }
    }
    try {
      pair.finish();
    } catch (e) {
      if (e instanceof RxDisagreement) throw new RxDisagreement(`seed ${seed} after ${steps} steps: ${e.message}`);
      throw e;
    }
  } finally {
    x.untrack(key);
  }
  return verdicts;
}

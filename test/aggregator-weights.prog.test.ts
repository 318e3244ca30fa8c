// Weighted quorums on the ACK path of sequencer.bpf.o under
// BPF_PROG_TEST_RUN: which acked sets certify under a weight table, that
// equal weights are today's majority, and that a slot is certified under
// the table it was stamped under, never a mix.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COUNTER_NAMES, type Counters, type GroupConfig } from '../bpf/maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader } from '../bpf/wire.ts';
import { buildFrame, parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const SEQ_MAC = '02:00:00:00:00:02';
const SEQ_IP = '10.78.0.2';
const CLIENT = { mac: '02:00:00:00:00:01', ip: '10.78.0.1', port: 40000 };
const MEMBERS = [0, 1, 2, 3, 4].map((i) => ({ addr: `10.78.0.${11 + i}`, port: 7600 + i }));
const base = (n: number): GroupConfig => ({ mcastAddr: '239.7.7.2', mcastPort: 7500, sequencerId: 3, session: 52, enabled: true, members: MEMBERS.slice(0, n) });

function requestFrame(requestId: bigint): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 77n, requestId }, Buffer.from(`op-${requestId}`));
  return buildFrame({ srcMac: CLIENT.mac, dstMac: SEQ_MAC, srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, dstPort: 7400, payload: msg });
}

/** An ACK from member rid (its result when it is the view's leader), or
 * from `from` claiming to be rid. */
function ackFrame(rid: number, seq: bigint, leader: number, from = MEMBERS[rid]!): Buffer {
  const lead = rid === leader;
  return buildFrame({
    srcMac: `02:00:00:00:00:1${rid}`, dstMac: SEQ_MAC, srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400,
    payload: encodeMessage(
      { ...emptyHeader(), type: MsgType.ACK, groupId: 1, replicaId: rid, session: 52, view: leader, seq, ...(lead ? { flags: Flags.RESULT } : {}) },
      Buffer.from(lead ? 'ok' : ''),
    ),
  });
}

describePrivileged('weighted quorums on the ACK path (BPF_PROG_TEST_RUN)', () => {
  let seq: Sequencer;
  let before: Counters;
  beforeAll(() => {
    seq = Sequencer.load({ port: 7400, windowSlots: 8, windows: 2, maxResult: 32 });
  });
  afterAll(() => seq?.close());
  /** A fresh group: no seqs, an empty window. */
  const fresh = () => {
    seq.disableGroup(1);
    seq.resetSeq(1);
    for (let i = 0; i < 16; i++) seq.slots.update(new Uint8Array(new Uint32Array([i]).buffer), new Uint8Array(seq.slots.valueSize));
    before = seq.counters();
  };
  beforeEach(fresh);
  const run = (f: Buffer) => seq.program.testRun({ data: f });
  const stamp = (req: bigint) => {
    const r = run(requestFrame(req));
    expect(r.retval).toBe(XDP_TX);
    return readHeader(parseFrame(r.data).payload).seq;
  };
  const delta = () => {
    const now = seq.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  };
  /** Acks seq from each rid in turn; the XDP verdict of each, 'R' for a REPLY. */
  const ackAll = (n: bigint, rids: number[], leader = 0) => rids.map((rid) => (run(ackFrame(rid, n, leader)).retval === XDP_TX ? 'R' : '-')).join('');

  // [name, weights, leader (= view), acks in order, verdict per ack]
  const cases: [string, number[], number, number[], string][] = [
    ['3/1/1 (f = 0): the heavy leader alone is more than half', [3, 1, 1], 0, [0, 1, 2], 'R--'],
    ['3/1/1: the two light followers never certify without the leader', [3, 1, 1], 0, [1, 2], '--'],
    ['1/3/3/1/1: a majority by count (0, 3, 4) without the weight does not certify', [1, 3, 3, 1, 1], 0, [0, 3, 4, 1], '---R'],
    ['3/3/1/1/1: a minority by count (0, 1) is a majority by weight', [3, 3, 1, 1, 1], 0, [1, 0, 2], '-R-'],
    ['1/3/3/1/1: 6 of 9 without the leader does not certify', [1, 3, 3, 1, 1], 0, [1, 2, 3, 4], '----'],
    ['1/3/3/1/1, view 1: the heavy leader 1 and a light member (4 of 9) do not', [1, 3, 3, 1, 1], 1, [1, 0, 2], '--R'],
    ['2/1/1/1: two light followers (2 of 5) wait for the leader, then certify', [2, 1, 1, 1], 0, [1, 2, 0], '--R'],
    ['2/1/1/1: leader + one light (3 of 5) certifies', [2, 1, 1, 1], 0, [0, 3], '-R'],
    ['1/1/1/1: 2 of 4 is half, not more', [1, 1, 1, 1], 0, [0, 1, 2, 3], '--R-'],
    ['1/1/0: a zero weight adds nothing (0 and 2 are 1 of 2)', [1, 1, 0], 0, [0, 2, 1], '--R'],
  ];
  it.each(cases)('%s', (_name, weights, leader, rids, want) => {
    seq.setGroup(1, { ...base(weights.length), weights });
    const n = stamp(1n);
    expect(seq.slot(1, n)!.weightsVersion).toBe(seq.weightTable(1)!.version);
    expect(ackAll(n, rids, leader)).toBe(want);
    const replies = [...want].filter((c) => c === 'R').length;
    expect(delta()['reply'] ?? 0).toBe(replies);
  });

  // Equal weights are today's majority, bit for bit: the same ACK orders
  // give the same verdicts, counters and REPLY bytes under the count rule.
  const orders: number[][] = [[1, 0, 2], [0, 1, 2], [1, 2, 0], [2, 1], [0, 0, 1, 1, 2], [0, 3, 4, 1, 2], [1, 2, 3, 0, 4]];
  it.each(orders)('equal weights certify like the count majority: acks %j', (...rids) => {
    const n = Math.max(3, ...rids.map((r) => r + 1));
    const outcome = (g: GroupConfig) => {
      fresh();
      seq.setGroup(1, g);
      const s = stamp(9n);
      const frames = rids.map((rid) => run(ackFrame(rid, s, 0)));
      const slot = seq.slot(1, s)!;
      return { verdicts: frames.map((f) => f.retval), replies: frames.filter((f) => f.retval === XDP_TX).map((f) => Buffer.from(f.data).toString('hex').replace(slot.stampNs.toString(16).padStart(16, '0'), '')), counters: delta() };
    };
    const counted = outcome(base(n));
    const weighted = outcome({ ...base(n), weights: Array(n).fill(1) });
    expect(weighted).toEqual(counted);
    expect(seq.group(1)!.weightsVersion).toBeGreaterThan(0);
  });

  it('duplicates and strangers add no weight; exactly one REPLY per seq', () => {
    seq.setGroup(1, { ...base(5), weights: [1, 3, 3, 1, 1] });
    const n = stamp(2n);
    expect(ackAll(n, [0, 3, 3, 3])).toBe('----');
    // The heavy replica 1's id from another address, and from member 4's.
    expect(run(ackFrame(1, n, 0, { addr: '10.78.0.99', port: 7601 })).retval).toBe(XDP_DROP);
    expect(run(ackFrame(1, n, 0, MEMBERS[4]!)).retval).toBe(XDP_DROP);
    expect(seq.slot(1, n)!.acked).toBe(0b01001);
    expect(ackAll(n, [1, 2, 4, 1])).toBe('R---');
    expect(delta()).toMatchObject({ ack_duplicate: 3, drop_ack_stranger: 2, reply: 1, ack_late: 2 });
  });

  it('a table switch is a seq boundary: each seq is certified under the table it was stamped under', () => {
    seq.setGroup(1, { ...base(5), weights: [3, 3, 1, 1, 1] });
    const v1 = seq.weightTable(1)!.version;
    const a = stamp(3n);
    seq.setGroup(1, { ...base(5), weights: [1, 1, 3, 3, 1] });
    const v2 = seq.weightTable(1)!.version;
    expect(v2).toBe(v1 + 1);
    const b = stamp(4n);
    expect([seq.slot(1, a)!.weightsVersion, seq.slot(1, b)!.weightsVersion]).toEqual([v1, v2]);
    // 0 and 1: 6 of 9 under the old table, 2 of 9 under the new one.
    expect(ackAll(a, [1, 0])).toBe('-R');
    expect(ackAll(b, [1, 0, 4, 2])).toBe('---R');
    // Setting the same weights again keeps the version (no switch).
    seq.setGroup(1, { ...base(5), weights: [1, 1, 3, 3, 1] });
    expect(seq.weightTable(1)!.version).toBe(v2);
  });

  it('an ACK for a slot whose table was replaced by two later switches is dropped, counted, never certified', () => {
    seq.setGroup(1, { ...base(3), weights: [1, 1, 1] });
    const a = stamp(5n);
    seq.setGroup(1, { ...base(3), weights: [2, 1, 1] });
    seq.setGroup(1, { ...base(3), weights: [3, 1, 1] }); // v3 takes v1's entry
    expect(run(ackFrame(0, a, 0)).retval).toBe(XDP_DROP);
    expect(run(ackFrame(1, a, 0)).retval).toBe(XDP_DROP);
    expect(delta()).toMatchObject({ drop_ack_weights: 2 });
    expect(delta()['reply']).toBeUndefined();
    // New requests certify under v3: the leader alone (3 of 5).
    expect(ackAll(stamp(6n), [0])).toBe('R');
  });

  it('refuses weights together with a count quorum, and weights that are not one per member', () => {
    expect(() => seq.setGroup(1, { ...base(3), weights: [1, 1, 1], quorum: 2 })).toThrow(/either quorum or weights/);
    expect(() => seq.setGroup(1, { ...base(3), weights: [1, 1] })).toThrow(/one whole number 0..255 per member/);
    expect(() => seq.setGroup(1, { ...base(3), weights: [0, 0, 0] })).toThrow(/not all 0/);
  });
});

// The FLUSH path of sequencer.bpf.o (Hydra) under BPF_PROG_TEST_RUN: a
// member's (or the agent's) FLUSH_SOLICIT becomes a FLUSH to the group that
// carries the group's current seq without taking one and a clock no older
// than the last stamp; a stranger's is refused and counted; a draining
// group refuses requests and answers FINAL.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { COUNTER_NAMES, type Counters, type DropEvent, type GroupConfig } from '../bpf/maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { agentSolicitFrame } from '../agent/flush-frame.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_REPLICA_AGENT, type XseqHeader } from '../bpf/wire.ts';
import { buildFrame, ipv4Checksum, parseFrame } from '../tools/frame.ts';
import { taiNowNs } from './helpers/clock.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const SEQ_MAC = '02:00:00:00:00:02';
const SEQ_IP = '10.77.0.2';
const MEMBERS = [
  { addr: '10.77.0.11', port: 7600 },
  { addr: '10.77.0.12', port: 7601 },
  { addr: '10.77.0.13', port: 7602 },
];
const GROUP: GroupConfig = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 2, session: 41, enabled: true, members: MEMBERS };
/** Header of the frame, after Ethernet, IPv4 and UDP. */
const HDR = 14 + 20 + 8;

function requestFrame(requestId: bigint): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 77n, requestId }, Buffer.from(`op-${requestId}`));
  return buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: SEQ_MAC, srcIp: '10.77.0.1', dstIp: SEQ_IP, srcPort: 40000, dstPort: 7400, payload: msg });
}

interface SolicitOpts {
  rid?: number;
  from?: { addr: string; port: number };
  over?: Partial<XseqHeader>;
  payload?: Buffer;
}
function solicitFrame(o: SolicitOpts = {}): Buffer {
  const rid = o.rid ?? 1;
  const from = o.from ?? MEMBERS[rid] ?? MEMBERS[0]!;
  // The replica names the sequencer it asks and the session it knows; the
  // FLUSH carries the sequencer's own values whatever these say.
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: 1, sequencerId: 2, replicaId: rid, session: 40, ...o.over }, o.payload ?? Buffer.alloc(0));
  return buildFrame({ srcMac: '02:00:00:00:00:12', dstMac: SEQ_MAC, srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400, payload: msg });
}

describePrivileged('FLUSH_SOLICIT and FLUSH under BPF_PROG_TEST_RUN', () => {
  let seq: Sequencer;
  let before: Counters;
  const events: DropEvent[] = [];
  let ring: ReturnType<Sequencer['dropEvents']>;

  beforeAll(() => {
    // Overwrite: stamped requests are never acked here, and backpressure
    // is not under test.
    seq = Sequencer.load({ port: 7400, windowSlots: 64, windows: 1, policy: 'overwrite' });
    ring = seq.dropEvents((e) => events.push(e));
  });
  afterAll(() => {
    ring?.close();
    seq?.close();
  });
  beforeEach(() => {
    seq.disableGroup(1);
    seq.resetSeq(1);
    seq.setGroup(1, GROUP);
    ring.consume();
    events.length = 0;
    before = seq.counters();
  });

  function delta(): Partial<Record<string, number>> {
    const now = seq.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  }

  /** Stamps `n` requests; returns the clock of the last. */
  function stamp(n: number): bigint {
    let clock = 0n;
    for (let i = 1; i <= n; i++) {
      const r = seq.program.testRun({ data: requestFrame(BigInt(i)) });
      expect(r.retval).toBe(XDP_TX);
      clock = readHeader(r.data, HDR).clockNs;
    }
    return clock;
  }

  it("a member's solicit becomes a FLUSH with the group's current seq, a clock >= the last stamp, and no seq taken", () => {
    const lastStamp = stamp(3);
    before = seq.counters();
    const r = seq.program.testRun({ data: solicitFrame() });
    const after = taiNowNs();
    expect(r.retval).toBe(XDP_TX);
    const out = Buffer.from(r.data);
    const h = readHeader(out, HDR);
    expect(h).toEqual({
      ...emptyHeader(),
      type: MsgType.FLUSH,
      flags: 0,
      groupId: 1,
      sequencerId: 2,
      replicaId: 0,
      session: 41,
      seq: 3n,
      clockNs: h.clockNs,
      payloadLen: 0,
    });
    expect(h.clockNs >= lastStamp && h.clockNs <= after, `flush clock ${h.clockNs}, last stamp ${lastStamp}, now ${after}`).toBe(true);
    // Addressed to the group exactly like a SEQUENCED, from the sequencer.
    const f = parseFrame(out);
    expect(f).toMatchObject({ srcMac: SEQ_MAC, dstMac: '01:00:5e:07:07:01', srcIp: SEQ_IP, dstIp: '239.7.7.1', srcPort: 7400, dstPort: 7500, udpCheck: 0 });
    expect(f.ipCheck).toBe(ipv4Checksum(out));
    expect(out.length).toBe(HDR + 64);
    expect(delta()).toEqual({ rx: 1, flush: 1 });
    // Not incremented: the next request still gets 4, with a clock >= the flush's.
    expect(seq.lastSeq(1)).toBe(3n);
    const next = seq.program.testRun({ data: requestFrame(4n) });
    const nh = readHeader(next.data, HDR);
    expect(nh.seq).toBe(4n);
    expect(nh.clockNs >= h.clockNs).toBe(true);
  });

  it('before any request the FLUSH carries seq 0', () => {
    const r = seq.program.testRun({ data: solicitFrame({ rid: 0 }) });
    expect(r.retval).toBe(XDP_TX);
    expect(readHeader(r.data, HDR)).toMatchObject({ type: MsgType.FLUSH, seq: 0n, session: 41, sequencerId: 2 });
    expect(seq.lastSeq(1)).toBe(0n);
  });

  it("the agent's own solicit (replica id 0xffff, source = the sequencer's address) is answered", () => {
    stamp(2);
    before = seq.counters();
    const r = seq.program.testRun({ data: solicitFrame({ rid: XSEQ_REPLICA_AGENT, from: { addr: SEQ_IP, port: 7400 } }) });
    expect(r.retval).toBe(XDP_TX);
    expect(readHeader(r.data, HDR)).toMatchObject({ type: MsgType.FLUSH, seq: 2n, replicaId: 0 });
    expect(delta()).toEqual({ rx: 1, flush: 1 });
  });

  it("the agent's frame as agent/flush-frame.ts builds it is well formed and answered", () => {
    stamp(1);
    before = seq.counters();
    const f = agentSolicitFrame({ mac: SEQ_MAC, addr: SEQ_IP, port: 7400, groupId: 1, sequencerId: 2, session: 41 });
    expect(parseFrame(f)).toMatchObject({ srcMac: SEQ_MAC, dstMac: SEQ_MAC, srcIp: SEQ_IP, dstIp: SEQ_IP, srcPort: 7400, dstPort: 7400, udpCheck: 0 });
    expect(parseFrame(f).ipCheck).toBe(ipv4Checksum(f));
    expect(readHeader(f, HDR)).toMatchObject({ type: MsgType.FLUSH_SOLICIT, replicaId: XSEQ_REPLICA_AGENT, groupId: 1, payloadLen: 0 });
    const r = seq.program.testRun({ data: f });
    expect(r.retval).toBe(XDP_TX);
    expect(readHeader(r.data, HDR)).toMatchObject({ type: MsgType.FLUSH, seq: 1n, sequencerId: 2, session: 41 });
    expect(parseFrame(r.data)).toMatchObject({ srcMac: SEQ_MAC, srcIp: SEQ_IP, dstIp: '239.7.7.1', dstPort: 7500 });
    expect(delta()).toEqual({ rx: 1, flush: 1 });
  });

  const strangers: [string, SolicitOpts][] = [
    ['a replica id beyond the members', { rid: 3, from: { addr: '10.77.0.14', port: 7603 } }],
    ["a member's id from another address", { rid: 1, from: { addr: '10.77.0.99', port: 7601 } }],
    ["a member's id from another port", { rid: 1, from: { addr: '10.77.0.12', port: 9999 } }],
    ["the agent's id from another address", { rid: XSEQ_REPLICA_AGENT, from: { addr: '10.77.0.12', port: 7400 } }],
  ];
  it.each(strangers)("%s: refused, counted and sampled; no FLUSH", (_name, o) => {
    stamp(1);
    before = seq.counters();
    const r = seq.program.testRun({ data: solicitFrame(o) });
    expect(r.retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, drop_solicit_stranger: 1 });
    ring.consume();
    expect(events.at(-1)).toMatchObject({ reason: 'drop_solicit_stranger', saddr: o.from!.addr, sport: o.from!.port });
    expect(seq.lastSeq(1)).toBe(1n);
  });

  it('a solicit with a payload is refused as a bad length', () => {
    const r = seq.program.testRun({ data: solicitFrame({ payload: Buffer.from('x') }) });
    expect(r.retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, drop_bad_length: 1 });
  });

  it('a group without members answers only the agent', () => {
    seq.disableGroup(1);
    seq.setGroup(1, { ...GROUP, members: [] });
    before = seq.counters();
    expect(seq.program.testRun({ data: solicitFrame({ rid: 0 }) }).retval).toBe(XDP_DROP);
    expect(seq.program.testRun({ data: solicitFrame({ rid: XSEQ_REPLICA_AGENT, from: { addr: SEQ_IP, port: 7400 } }) }).retval).toBe(XDP_TX);
    expect(delta()).toEqual({ rx: 2, drop_solicit_stranger: 1, flush: 1 });
  });

  it('a draining group refuses requests (no seq taken) and answers every solicit with a FINAL flush of its last seq', () => {
    stamp(5);
    seq.setGroup(1, { ...GROUP, draining: true });
    expect(seq.group(1)?.draining).toBe(true);
    before = seq.counters();
    const req = seq.program.testRun({ data: requestFrame(6n) });
    expect(req.retval).toBe(XDP_DROP);
    expect(seq.lastSeq(1)).toBe(5n);
    for (const o of [{ rid: 0 }, { rid: XSEQ_REPLICA_AGENT, from: { addr: SEQ_IP, port: 7400 } }]) {
      const r = seq.program.testRun({ data: solicitFrame(o) });
      expect(r.retval).toBe(XDP_TX);
      expect(readHeader(r.data, HDR)).toMatchObject({ type: MsgType.FLUSH, flags: Flags.FINAL, seq: 5n, session: 41, sequencerId: 2 });
    }
    expect(delta()).toEqual({ rx: 3, drop_draining: 1, flush: 2, flush_final: 2 });
  });
});

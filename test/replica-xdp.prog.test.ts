// The compiled replica-side program (bpf/replica.bpf.o) under
// BPF_PROG_TEST_RUN, through replica/xdp/ReplicaXdp: stale sessions and
// delivered duplicates dropped and counted, retransmitted copies of
// delivered seqs passed (the replica must re-ACK them: the ACK race), gap
// events with the exact range, newer sessions passing, and everything that
// is not a well-formed SEQUENCED of a tracked stream passing untouched.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { RX_COUNTER_NAMES, type GapEvent, type RxCounters, type RxKey } from '../bpf/replica-maps.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, type XseqHeader } from '../bpf/wire.ts';
import { ReplicaXdp } from '../replica/xdp/replica-xdp.ts';
import { buildFrame, type FrameSpec } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_PASS = 2;
const PORT = 7500;

let streamNo = 0;
/** A fresh (group, sequencer) per test, so no test sees another's state. */
function newStream(): RxKey {
  streamNo++;
  return { groupId: 1, sequencerId: 100 + streamNo };
}

function sequenced(k: RxKey, session: number, seq: bigint, over: Partial<XseqHeader> = {}): Buffer {
  return encodeMessage(
    { ...emptyHeader(), type: MsgType.SEQUENCED, groupId: k.groupId, sequencerId: k.sequencerId, session, seq, clientId: 9n, requestId: seq, ...over },
    Buffer.from('op-bytes'),
  );
}
function frame(msg: Buffer, over: Partial<FrameSpec> = {}): Buffer {
  return buildFrame({ srcMac: '02:00:00:00:00:02', dstMac: '01:00:5e:07:07:01', srcIp: '10.77.0.2', dstIp: '239.7.7.1', srcPort: 7400, dstPort: PORT, payload: msg, ...over });
}

describePrivileged('replica.bpf.o under BPF_PROG_TEST_RUN', () => {
  let x: ReplicaXdp;
  const gaps: GapEvent[] = [];
  let before: RxCounters;

  beforeAll(() => {
    x = ReplicaXdp.load({ port: PORT });
    x.onGap((e) => gaps.push(e), { watch: false });
  });
  afterAll(() => x?.close());
  beforeEach(() => {
    x.consumeGaps();
    gaps.length = 0;
    before = x.counters();
  });

  function run(f: Buffer): { action: number; same: boolean } {
    const r = x.program.testRun({ data: f });
    return { action: r.retval, same: Buffer.from(r.data).equals(f) };
  }
  function delta(): Partial<Record<string, number>> {
    const now = x.counters();
    const d: Record<string, number> = {};
    for (const n of RX_COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  }
  function drained(): GapEvent[] {
    x.consumeGaps();
    return gaps.splice(0);
  }

  it('a stream user space has not set up passes, whatever its seqs', () => {
    const k = newStream();
    expect(run(frame(sequenced(k, 5, 1n)))).toEqual({ action: XDP_PASS, same: true });
    expect(run(frame(sequenced(k, 5, 1n)))).toEqual({ action: XDP_PASS, same: true });
    expect(delta()).toEqual({ rx: 2, sequenced: 2, pass_untracked: 2 });
    expect(drained()).toEqual([]);
  });

  it('an older session is dropped; a newer one passes (the replica starts a view change on it)', () => {
    const k = newStream();
    x.track(k, { session: 5, delivered: 10n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 4, 50n))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 4, 50n, { flags: Flags.RETRANSMIT }))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 6, 50n)))).toEqual({ action: XDP_PASS, same: true });
    expect(delta()).toEqual({ rx: 3, sequenced: 3, drop_stale_session: 2, pass_newer_session: 1 });
    expect(x.stateOf(k)).toMatchObject({ droppedStale: 2n, highestSeen: 0n });
    expect(drained()).toEqual([]);
  });

  it('a delivered seq is dropped; one past delivered passes', () => {
    const k = newStream();
    x.track(k, { session: 5, delivered: 10n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 5, 10n))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 5, 1n))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 5, 11n)))).toEqual({ action: XDP_PASS, same: true });
    expect(run(frame(sequenced(k, 5, 11n)))).toEqual({ action: XDP_PASS, same: true }); // not delivered yet: the replica decides
    expect(delta()).toEqual({ rx: 4, sequenced: 4, drop_duplicate: 2 });
    // User space delivers 11 and says so: its copies are dropped from then on.
    x.track(k, { session: 5, delivered: 11n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 5, 11n))).action).toBe(XDP_DROP);
    expect(x.stateOf(k)).toMatchObject({ droppedDuplicate: 3n, highestSeen: 11n, session: 5 });
  });

  it('the ACK race: a retransmitted copy of a delivered seq passes so the replica re-ACKs it, unless its slot is past the margin', () => {
    const k = newStream();
    x.track(k, { session: 5, delivered: 100n, retransmitKeep: 10n });
    const rt = { flags: Flags.RETRANSMIT };
    expect(run(frame(sequenced(k, 5, 100n, rt)))).toEqual({ action: XDP_PASS, same: true });
    expect(run(frame(sequenced(k, 5, 91n, rt)))).toEqual({ action: XDP_PASS, same: true }); // 9 below: within 10
    expect(run(frame(sequenced(k, 5, 90n, rt))).action).toBe(XDP_DROP); // 10 below: its slot is reused
    expect(run(frame(sequenced(k, 5, 1n, rt))).action).toBe(XDP_DROP);
    // The same seqs without the flag are network duplicates: dropped.
    expect(run(frame(sequenced(k, 5, 100n))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 5, 95n))).action).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 6, sequenced: 6, pass_retransmit: 2, drop_retransmit_old: 2, drop_duplicate: 2 });
    expect(x.stateOf(k)).toMatchObject({ passedRetransmit: 2n, droppedDuplicate: 4n });
  });

  it('a seq past highest+1 posts one gap event with the missing range; late ones fill in without events', () => {
    const k = newStream();
    x.track(k, { session: 7, delivered: 20n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 7, 21n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([]);
    expect(run(frame(sequenced(k, 7, 25n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([{ groupId: 1, sequencerId: k.sequencerId, session: 7, from: 22n, to: 24n }]);
    for (const s of [23n, 22n, 24n, 25n]) expect(run(frame(sequenced(k, 7, s))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([]);
    expect(run(frame(sequenced(k, 7, 26n))).action).toBe(XDP_PASS);
    expect(run(frame(sequenced(k, 7, 1000n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([{ groupId: 1, sequencerId: k.sequencerId, session: 7, from: 27n, to: 999n }]);
    expect(delta()).toMatchObject({ gap_events: 2 });
    expect(x.stateOf(k)).toMatchObject({ highestSeen: 1000n, gapEvents: 2n, gapSeqs: 3n + 973n });
  });

  it('a gap starts after what the replica holds, when it got more than the kernel saw (state transfer)', () => {
    const k = newStream();
    x.track(k, { session: 7, delivered: 5n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 7, 6n))).action).toBe(XDP_PASS);
    x.track(k, { session: 7, delivered: 40n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 7, 45n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([{ groupId: 1, sequencerId: k.sequencerId, session: 7, from: 41n, to: 44n }]);
  });

  it('a new session in the ctl restarts the stream at what the replica holds', () => {
    const k = newStream();
    x.track(k, { session: 7, delivered: 30n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 7, 31n))).action).toBe(XDP_PASS);
    // The view change is done: session 8, the merged log holds nothing of it.
    x.track(k, { session: 8, delivered: 0n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(k, 8, 3n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([{ groupId: 1, sequencerId: k.sequencerId, session: 8, from: 1n, to: 2n }]);
    expect(x.stateOf(k)).toMatchObject({ session: 8, highestSeen: 3n });
    expect(run(frame(sequenced(k, 7, 32n))).action).toBe(XDP_DROP);
  });

  it('streams are keyed by sequencer too: two sequencers of one group never mix', () => {
    const a = newStream();
    const b = { groupId: a.groupId, sequencerId: a.sequencerId + 1000 };
    x.track(a, { session: 3, delivered: 50n, retransmitKeep: 1024n });
    x.track(b, { session: 3, delivered: 5n, retransmitKeep: 1024n });
    expect(run(frame(sequenced(a, 3, 20n))).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(b, 3, 20n))).action).toBe(XDP_PASS);
    expect(drained()).toEqual([{ groupId: 1, sequencerId: b.sequencerId, session: 3, from: 6n, to: 19n }]);
    x.untrack(b);
    expect(run(frame(sequenced(b, 3, 2n))).action).toBe(XDP_PASS);
  });

  it('a group with several sequencers: each stream gets its own delivered position and session, one seen later starts at its own', () => {
    const a = { groupId: 2, sequencerId: 1 };
    const b = { groupId: 2, sequencerId: 2 };
    const c = { groupId: 2, sequencerId: 3 };
    x.see(a);
    x.see(b);
    x.setDelivered(2, 7, 40, a.sequencerId);
    x.setDelivered(2, 9, 5, b.sequencerId);
    x.setDelivered(2, 4, 12, c.sequencerId); // not seen yet: kept for when it is
    expect(x.ctlOf(a)).toMatchObject({ session: 7, delivered: 40n });
    expect(x.ctlOf(b)).toMatchObject({ session: 9, delivered: 5n });
    expect(x.ctlOf(c)).toBeUndefined();
    expect(run(frame(sequenced(a, 7, 20n))).action).toBe(XDP_DROP); // delivered in a's stream
    expect(run(frame(sequenced(b, 9, 20n))).action).toBe(XDP_PASS); // not in b's
    expect(run(frame(sequenced(b, 8, 3n))).action).toBe(XDP_DROP); // older than b's session
    expect(run(frame(sequenced(a, 8, 3n))).action).toBe(XDP_PASS); // newer than a's
    x.see(c);
    expect(x.ctlOf(c)).toMatchObject({ session: 4, delivered: 12n });
    for (const k of [a, b, c]) x.untrack(k);
    drained();
  });

  it('a full ring buffer counts lost events and never blocks the packet', () => {
    const k = newStream();
    x.track(k, { session: 1, delivered: 0n, retransmitKeep: 1024n });
    // 64 KiB holds ~1600 records of 32 bytes plus their 8-byte headers.
    for (let i = 1; i <= 2200; i++) expect(run(frame(sequenced(k, 1, BigInt(2 * i)))).action).toBe(XDP_PASS);
    const d = delta();
    expect(d['gap_events']).toBe(2200);
    expect(d['events_lost']).toBeGreaterThan(0);
    const got = drained();
    expect(got.length + d['events_lost']!).toBe(2200);
    expect(got[0]).toEqual({ groupId: 1, sequencerId: k.sequencerId, session: 1, from: 1n, to: 1n });
  });

  const k0 = { groupId: 1, sequencerId: 99 };
  const seq0 = () => sequenced(k0, 5, 1n);
  const passing: [string, () => Buffer, Partial<Record<string, number>>][] = [
    ['ARP', () => { const f = Buffer.alloc(42); f.fill(0xff, 0, 6); f.writeUInt16BE(0x0806, 12); return f; }, {}],
    ['IPv6', () => frame(seq0(), { etherType: 0x86dd }), {}],
    ['ICMP', () => frame(seq0(), { protocol: 1 }), {}],
    ['TCP to the group port', () => frame(seq0(), { protocol: 6 }), {}],
    ['UDP to another port', () => frame(seq0(), { dstPort: 7401 }), {}],
    ['a fragment', () => frame(seq0(), { fragOff: 0x2000 }), {}],
    ['a bare Ethernet header', () => frame(seq0()).subarray(0, 14), {}],
    ['a frame cut inside the IP header', () => frame(seq0()).subarray(0, 14 + 12), {}],
    ['a frame cut inside the UDP header', () => frame(seq0()).subarray(0, 14 + 20 + 4), {}],
    ['a frame cut inside the xseq header', () => frame(seq0()).subarray(0, 14 + 20 + 8 + 30), { rx: 1, pass_malformed: 1 }],
    ['IP total length beyond the frame', () => frame(seq0(), { ipTotalLen: 20 + 8 + 64 + 8 + 40 }), { rx: 1, pass_malformed: 1 }],
    ['bad magic', () => { const m = seq0(); m.writeUInt32BE(0x12345678, 0); return frame(m); }, { rx: 1, pass_malformed: 1 }],
    ['version 2', () => frame(sequenced(k0, 5, 1n, { version: 2 })), { rx: 1, pass_malformed: 1 }],
    ['type 0', () => frame(sequenced(k0, 5, 1n, { type: 0 })), { rx: 1, pass_malformed: 1 }],
    ['payload_len beyond the datagram', () => { const m = seq0(); m.writeUInt32BE(200, 56); return frame(m); }, { rx: 1, pass_malformed: 1 }],
    ['seq 0', () => frame(sequenced(k0, 5, 0n)), { rx: 1, pass_malformed: 1 }],
    ['seq past 2^53', () => frame(sequenced(k0, 5, 1n << 60n)), { rx: 1, pass_malformed: 1 }],
    ['a FLUSH', () => frame(sequenced(k0, 5, 1n, { type: MsgType.FLUSH })), { rx: 1, pass_other_type: 1 }],
  ];
  it.each(passing)('%s passes untouched, even for a tracked stream', (_n, make, counted) => {
    x.track(k0, { session: 5, delivered: 1_000n, retransmitKeep: 1024n });
    const f = make();
    expect(run(f)).toEqual({ action: XDP_PASS, same: true });
    expect(delta()).toEqual(counted);
  });

  it('IP options are skipped, not mistaken for the UDP header', () => {
    const k = newStream();
    x.track(k, { session: 5, delivered: 10n, retransmitKeep: 1024n });
    const opts = { ipOptions: new Uint8Array([1, 1, 1, 0]) };
    expect(run(frame(sequenced(k, 5, 3n), opts)).action).toBe(XDP_DROP);
    expect(run(frame(sequenced(k, 5, 11n), opts)).action).toBe(XDP_PASS);
  });
});

describePrivileged('replica.bpf.o under BPF_PROG_TEST_RUN: sessions wrap', () => {
  let x: ReplicaXdp;
  beforeAll(() => {
    x = ReplicaXdp.load({ port: PORT });
  });
  afterAll(() => x?.close());

  it('the session after 0xffffffff is newer (passes); the one before is older (dropped)', () => {
    const k = { groupId: 2, sequencerId: 1 };
    x.track(k, { session: 0xffffffff, delivered: 10n, retransmitKeep: 1024n });
    expect(x.program.testRun({ data: frame(sequenced(k, 1, 50n)) }).retval).toBe(XDP_PASS);
    expect(x.program.testRun({ data: frame(sequenced(k, 0xfffffffe, 50n)) }).retval).toBe(XDP_DROP);
    // "None yet" (0): every session is newer.
    x.track(k, { session: 0, delivered: 0n, retransmitKeep: 1024n });
    expect(x.program.testRun({ data: frame(sequenced(k, 0x80000005, 50n)) }).retval).toBe(XDP_PASS);
    expect(x.counters()).toMatchObject({ pass_newer_session: 2n, drop_stale_session: 1n });
  });
});

describePrivileged('replica.bpf.o under BPF_PROG_TEST_RUN: the source check (sequencers given)', () => {
  let x: ReplicaXdp;
  let before: RxCounters;
  const k = { groupId: 3, sequencerId: 1 };
  beforeAll(() => {
    x = ReplicaXdp.load({ port: PORT, sequencers: [{ host: '10.77.0.2', port: 7400 }, { host: '10.77.0.3', port: 7400 }] });
    x.track(k, { session: 5, delivered: 10n, retransmitKeep: 1024n });
  });
  afterAll(() => x?.close());
  beforeEach(() => {
    before = x.counters();
  });
  function delta(): Partial<Record<string, number>> {
    const now = x.counters();
    const d: Record<string, number> = {};
    for (const n of RX_COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  }
  const run = (f: Buffer) => x.program.testRun({ data: f }).retval;

  const strangers: [string, () => Buffer][] = [
    ['a SEQUENCED from another address', () => frame(sequenced(k, 5, 11n), { srcIp: '10.77.0.99' })],
    ['a SEQUENCED from the sequencer\'s address, another port', () => frame(sequenced(k, 5, 11n), { srcPort: 40000 })],
    ['the largest session from a stranger', () => frame(sequenced(k, 0xffffffff, 1n), { srcIp: '10.77.0.99' })],
    ['a FLUSH from a stranger', () => frame(sequenced(k, 6, 11n, { type: MsgType.FLUSH }), { srcIp: '10.77.0.99', srcPort: 7400 })],
  ];
  it.each(strangers)('%s is dropped and counted (drop_stranger)', (_n, make) => {
    expect(run(make())).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, drop_stranger: 1 });
  });

  it('the configured sequencers\' SEQUENCED and FLUSH go on as before', () => {
    expect(run(frame(sequenced(k, 5, 11n)))).toBe(XDP_PASS);
    expect(run(frame(sequenced(k, 5, 12n), { srcIp: '10.77.0.3' }))).toBe(XDP_PASS);
    expect(run(frame(sequenced(k, 5, 3n)))).toBe(XDP_DROP); // a delivered duplicate, as without the check
    expect(run(frame(sequenced(k, 6, 1n, { type: MsgType.FLUSH })))).toBe(XDP_PASS);
    expect(delta()).toEqual({ rx: 4, sequenced: 3, drop_duplicate: 1, pass_other_type: 1 });
  });

  it('other types and malformed datagrams from a stranger pass: user space ignores them, as it did', () => {
    expect(run(frame(sequenced(k, 5, 11n, { type: MsgType.REQUEST }), { srcIp: '10.77.0.99' }))).toBe(XDP_PASS);
    const bad = sequenced(k, 5, 11n);
    bad.writeUInt32BE(0x12345678, 0);
    expect(run(frame(bad, { srcIp: '10.77.0.99' }))).toBe(XDP_PASS);
    expect(delta()).toEqual({ rx: 2, pass_other_type: 1, pass_malformed: 1 });
  });
});

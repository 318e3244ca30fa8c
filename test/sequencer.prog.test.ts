// The compiled sequencer under BPF_PROG_TEST_RUN: exact output bytes for a
// valid request, a counter for every malformed class, untouched passes for
// everything else, and dense per-group numbering.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { Sequencer } from '../bpf/sequencer.ts';
import { COUNTER_NAMES, type Counters, type DropEvent } from '../bpf/maps.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, type XseqHeader } from '../bpf/wire.ts';
import { buildFrame, type FrameSpec, ipv4Checksum, parseFrame, udpChecksum } from '../tools/frame.ts';
import { taiNowNs } from './helpers/clock.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;

const G1 = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 3, session: 41, enabled: true };
const G2 = { mcastAddr: '239.8.9.10', mcastPort: 7501, sequencerId: 3, session: 41, enabled: true };

function request(over: Partial<XseqHeader> = {}, payload = Buffer.from('payload-1')): Buffer {
  return encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 77n, requestId: 5n, ...over }, payload);
}
function frame(over: Partial<FrameSpec> = {}, msg = request()): Buffer {
  return buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.77.0.1', dstIp: '10.77.0.2', srcPort: 40000, dstPort: 7400, payload: msg, ...over });
}

describePrivileged('sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
  let seq: Sequencer;
  let before: Counters;
  const events: DropEvent[] = [];
  let ring: ReturnType<Sequencer['dropEvents']>;

  beforeAll(() => {
    seq = Sequencer.load({ port: 7400 });
    seq.setGroup(1, G1);
    seq.setGroup(2, G2);
    ring = seq.dropEvents((e) => events.push(e));
  });
  afterAll(() => {
    ring?.close();
    seq?.close();
  });
  beforeEach(() => {
    seq.resetSeq(1);
    seq.resetSeq(2);
    ring.consume();
    events.length = 0;
    before = seq.counters();
  });

  /** Counters that moved since beforeEach, as numbers. */
  function delta(): Partial<Record<string, number>> {
    const now = seq.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  }

  it('a valid request becomes exactly the expected SEQUENCED frame', () => {
    const input = frame();
    const t0 = taiNowNs();
    const r = seq.program.testRun({ data: input });
    const t1 = taiNowNs();
    expect(r.retval).toBe(XDP_TX);
    const out = Buffer.from(r.data);
    const clock = readHeader(out, 42).clockNs;
    expect(clock >= t0 && clock <= t1).toBe(true);

    // Build the expected frame independently: same request, stamped, sent
    // from the sequencer's MAC/IP to the group's multicast MAC/IP.
    const stamped = encodeMessage(
      { ...emptyHeader(), type: MsgType.SEQUENCED, groupId: 1, clientId: 77n, requestId: 5n, sequencerId: 3, session: 41, seq: 1n, clockNs: clock },
      Buffer.from('payload-1'),
    );
    const want = buildFrame({ srcMac: '02:00:00:00:00:02', dstMac: '01:00:5e:07:07:01', srcIp: '10.77.0.2', dstIp: '239.7.7.1', srcPort: 7400, dstPort: 7500, payload: stamped });
    expect(out.toString('hex')).toBe(want.toString('hex'));
    // The incremental checksum update equals a from-scratch computation.
    expect(parseFrame(out).udpCheck).toBe(udpChecksum(out));
    expect(parseFrame(out).ipCheck).toBe(ipv4Checksum(out));
    expect(delta()).toEqual({ rx: 1, sequenced: 1 });
    expect(seq.lastSeq(1)).toBe(1n);
  });

  it('a control request (XSEQ_F_CONTROL) from a member is stamped with its flags kept, payload untouched; a plain request beside it carries no flag', () => {
    // Without a key a control op counts only from a member's address
    // (test/clientauth.prog.test.ts has the refusals).
    seq.disableGroup(1);
    seq.setGroup(1, { ...G1, members: [{ addr: '10.77.0.1', port: 7600 }] });
    try {
      const op = Buffer.from([0x48, 1, 0, 2]); // replica/hydra.ts encodeControlOp({kind:'add', sid: 2})
      const r = seq.program.testRun({ data: frame({}, request({ flags: Flags.CONTROL }, op)) });
      expect(r.retval).toBe(XDP_TX);
      const out = Buffer.from(r.data);
      const h = readHeader(out, 42);
      expect(h.type).toBe(MsgType.SEQUENCED);
      expect(h.flags).toBe(Flags.CONTROL);
      expect(h.seq).toBe(1n);
      expect(out.subarray(42 + 64).toString('hex')).toBe(op.toString('hex'));
      expect(parseFrame(out).udpCheck).toBe(udpChecksum(out));
      const plain = readHeader(Buffer.from(seq.program.testRun({ data: frame() }).data), 42);
      expect(plain.flags).toBe(0);
      expect(plain.seq).toBe(2n);
    } finally {
      seq.disableGroup(1);
      seq.setGroup(1, G1);
    }
  });

  it('a request sent without a UDP checksum is stamped without one', () => {
    const r = seq.program.testRun({ data: frame({ udpChecksum: false }) });
    expect(r.retval).toBe(XDP_TX);
    expect(parseFrame(r.data).udpCheck).toBe(0);
    expect(parseFrame(r.data).ipCheck).toBe(ipv4Checksum(Buffer.from(r.data)));
  });

  it('the multicast MAC carries the low 23 bits of the group address', () => {
    seq.setGroup(9, { ...G1, mcastAddr: '239.200.1.2' });
    const r = seq.program.testRun({ data: frame({}, request({ groupId: 9 })) });
    expect(r.retval).toBe(XDP_TX);
    expect(parseFrame(r.data).dstMac).toBe('01:00:5e:48:01:02');
    seq.disableGroup(9);
  });

  const bad = (over: Partial<XseqHeader>) => request(over);
  const malformed: [string, () => Buffer, string][] = [
    ['a frame cut inside the xseq header', () => frame().subarray(0, 14 + 20 + 8 + 30), 'drop_truncated'],
    ['IP total length beyond the frame', () => frame({ ipTotalLen: 20 + 8 + 64 + 9 + 50 }), 'drop_truncated'],
    ['bad magic', () => { const m = request(); m.writeUInt32BE(0x12345678, 0); return frame({}, m); }, 'drop_bad_magic'],
    ['unsupported version', () => frame({}, bad({ version: 2 })), 'drop_bad_version'],
    ['payload_len larger than the UDP payload', () => { const m = request(); m.writeUInt32BE(20, 56); return frame({}, m); }, 'drop_bad_length'],
    ['UDP length shorter than the IP payload', () => frame({ udpLen: 8 + 64 + 9 - 1 }), 'drop_bad_length'],
    ['payload over XSEQ_MAX_PAYLOAD', () => frame({}, request({}, Buffer.alloc(1401))), 'drop_bad_length'],
    ['type 0', () => frame({}, bad({ type: 0 })), 'drop_unknown_type'],
    ['type 200', () => frame({}, bad({ type: 200 })), 'drop_unknown_type'],
    ['a SEQUENCED sent to the sequencer', () => frame({}, bad({ type: MsgType.SEQUENCED })), 'drop_unexpected_type'],
    ['group 5, not configured', () => frame({}, bad({ groupId: 5 })), 'drop_unknown_group'],
    ['group 300, out of range', () => frame({}, bad({ groupId: 300 })), 'drop_unknown_group'],
    ['IP options', () => frame({ ipOptions: new Uint8Array([1, 1, 1, 0]) }), 'drop_ip_options'],
    ['a first fragment (MF set)', () => frame({ fragOff: 0x2000 }), 'drop_fragment'],
  ];
  it.each(malformed)('%s is dropped and counted', (_name, make, reason) => {
    const input = make();
    const r = seq.program.testRun({ data: input });
    expect(r.retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, [reason]: 1 });
    expect(seq.lastSeq(1)).toBe(0n);
    ring.consume();
    expect(events).toEqual([{ reason, saddr: '10.77.0.1', sport: 40000, frameLen: input.length }]);
  });

  const others: [string, () => Buffer][] = [
    ['ARP', () => { const f = Buffer.alloc(42); f.fill(0xff, 0, 6); f.writeUInt16BE(0x0806, 12); return f; }],
    ['IPv6', () => frame({ etherType: 0x86dd })],
    ['ICMP', () => frame({ protocol: 1 })],
    ['TCP to the xseq port', () => frame({ protocol: 6 })],
    ['UDP to another port', () => frame({ dstPort: 53 })],
    ['a non-first fragment', () => frame({ fragOff: 0x0010 })],
    ['an IPv4 frame cut inside the IP header', () => frame().subarray(0, 14 + 12)],
    ['a UDP frame cut inside the UDP header', () => frame().subarray(0, 14 + 20 + 4)],
  ];
  it.each(others)('%s passes to the stack untouched and uncounted', (_name, make) => {
    const input = make();
    const r = seq.program.testRun({ data: input });
    expect(r.retval).toBe(XDP_PASS);
    expect(Buffer.from(r.data).toString('hex')).toBe(input.toString('hex'));
    expect(delta()).toEqual({});
  });

  it('1,000 runs give seqs 1..1000 with no hole', () => {
    const seen: bigint[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = seq.program.testRun({ data: frame({}, request({ requestId: BigInt(i) })) });
      expect(r.retval).toBe(XDP_TX);
      seen.push(readHeader(r.data, 42).seq);
    }
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => BigInt(i + 1)));
    expect(delta()).toEqual({ rx: 1000, sequenced: 1000 });
  });

  it('two groups count independently', () => {
    const got: Record<number, bigint[]> = { 1: [], 2: [] };
    const order = [1, 2, 2, 1, 2, 1, 1, 1, 2, 2, 2];
    for (const g of order) {
      const r = seq.program.testRun({ data: frame({}, request({ groupId: g })) });
      expect(r.retval).toBe(XDP_TX);
      const p = parseFrame(r.data);
      expect(p.dstIp).toBe(g === 1 ? G1.mcastAddr : G2.mcastAddr);
      got[g]!.push(readHeader(p.payload).seq);
    }
    expect(got[1]).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(got[2]).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
  });

  it('a disabled group stops stamping at once', () => {
    seq.setGroup(3, { ...G1 });
    expect(seq.program.testRun({ data: frame({}, request({ groupId: 3 })) }).retval).toBe(XDP_TX);
    seq.disableGroup(3);
    expect(seq.program.testRun({ data: frame({}, request({ groupId: 3 })) }).retval).toBe(XDP_DROP);
    expect(delta()).toMatchObject({ sequenced: 1, drop_unknown_group: 1 });
  });
});

// The NEXTVAL path of the compiled sequencer under BPF_PROG_TEST_RUN: the
// exact reply frame, dense values, blocks, refusal at the durable mark,
// unknown and dropped sequences, and a counter for every malformed NEXTVAL.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { decodeNvReplyPayload, encodeNextval, encodeNvReplyPayload, NV_COUNTER_NAMES, NvStatus, XSEQ_NV_MAX_COUNT, type NvReply } from '../bpf/nextval.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { SequenceTable } from '../bpf/sequences.ts';
import { emptyHeader, encodeMessage, MsgType, readHeader, XSEQ_HDR_LEN } from '../bpf/wire.ts';
import { buildFrame, type FrameSpec, ipv4Checksum, parseFrame, udpChecksum } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const L4 = 14 + 20 + 8;

const CLIENT = { srcMac: '02:00:00:00:00:01', srcIp: '10.77.0.1', srcPort: 40000 };
const HOST = { dstMac: '02:00:00:00:00:02', dstIp: '10.77.0.2', dstPort: 7400 };

function frame(msg: Buffer, over: Partial<FrameSpec> = {}): Buffer {
  return buildFrame({ ...CLIENT, ...HOST, payload: msg, ...over });
}
function nextval(name: string, count = 1, requestId = 9n): Buffer {
  return frame(encodeNextval({ name, count, clientId: 77n, requestId }));
}

describePrivileged('NEXTVAL in sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
  let seq: Sequencer;
  let table: SequenceTable;
  let before: Record<string, bigint>;

  beforeAll(() => {
    seq = Sequencer.load({ port: 7400 });
    table = new SequenceTable(seq.nvMaps);
  });
  afterAll(() => seq?.close());
  beforeEach(() => {
    for (const [name, id] of table.names()) {
      table.disable(id, name);
      table.forget(id);
    }
    table.create(3, 'orders', { next: 1n, mark: 1_000_000n, increment: 1n, cache: 1 });
    table.create(4, 'blocks', { next: 100n, mark: 1n << 40n, increment: 1n, cache: 65536 });
    table.create(5, 'odd', { next: 1n, mark: 1_000n, increment: 2n, cache: 3 });
    before = table.counters();
  });

  function delta(): Record<string, number> {
    const now = table.counters();
    const d: Record<string, number> = {};
    for (const n of NV_COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]!);
    return d;
  }
  function run(data: Buffer): { retval: number; out: Buffer; reply?: NvReply } {
    const r = seq.program.testRun({ data });
    const out = Buffer.from(r.data);
    return { retval: r.retval, out, ...(r.retval === XDP_TX ? { reply: decodeNvReplyPayload(out.subarray(L4 + XSEQ_HDR_LEN)) } : {}) };
  }

  it('a NEXTVAL comes back to the client as exactly the expected frame, checksums included', () => {
    const r = run(nextval('orders'));
    expect(r.retval).toBe(XDP_TX);
    const payload = encodeNvReplyPayload({ first: 1n, count: 1, increment: 1, mark: 1_000_000n, seqId: 3, status: NvStatus.OK });
    const msg = encodeMessage({ ...emptyHeader(), type: MsgType.NEXTVAL_REPLY, clientId: 77n, requestId: 9n }, payload);
    const want = buildFrame({ srcMac: HOST.dstMac, dstMac: CLIENT.srcMac, srcIp: HOST.dstIp, dstIp: CLIENT.srcIp, srcPort: 7400, dstPort: CLIENT.srcPort, payload: msg });
    expect(r.out.toString('hex')).toBe(want.toString('hex'));
    expect(parseFrame(r.out).udpCheck).toBe(udpChecksum(r.out));
    expect(parseFrame(r.out).ipCheck).toBe(ipv4Checksum(r.out));
    expect(delta()).toEqual({ rx: 1, reply_ok: 1, values: 1 });
  });

  it('a NEXTVAL sent without a UDP checksum is answered without one', () => {
    const r = run(frame(encodeNextval({ name: 'orders', count: 1, clientId: 1n, requestId: 1n }), { udpChecksum: false }));
    expect(r.retval).toBe(XDP_TX);
    expect(parseFrame(r.out).udpCheck).toBe(0);
  });

  it('dense: consecutive calls get 1, 2, 3, ... with nothing skipped, and the stats count them', () => {
    const got = Array.from({ length: 50 }, (_, i) => run(nextval('orders', 1, BigInt(i))).reply!);
    expect(got.map((r) => r.first)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
    expect(got.every((r) => r.status === NvStatus.OK && r.count === 1)).toBe(true);
    expect(table.read(3).next).toBe(51n);
    expect(table.stats(3)).toMatchObject({ calls: 50n, values: 50n, refused: 0n });
  });

  it.each([
    { what: 'count 0 takes the sequence cache', name: 'blocks', count: 0, want: [100n, 65536, 65636n] },
    { what: 'an explicit count', name: 'blocks', count: 7, want: [100n, 7, 107n] },
    { what: 'the largest count', name: 'blocks', count: XSEQ_NV_MAX_COUNT, want: [100n, XSEQ_NV_MAX_COUNT, 100n + BigInt(XSEQ_NV_MAX_COUNT)] },
    { what: 'increment 2, cache 3', name: 'odd', count: 0, want: [1n, 3, 7n] },
  ])('block sizes: $what', ({ name, count, want }) => {
    const r = run(nextval(name, count)).reply!;
    expect([r.first, r.count, table.read(name === 'odd' ? 5 : 4).next]).toEqual(want);
    expect(r.increment).toBe(name === 'odd' ? 2 : 1);
    const again = run(nextval(name, count)).reply!;
    expect(again.first).toBe(want[2]); // the next block starts where this one ended
  });

  it('refuses at the durable mark: every value handed out is below it, a refusal takes none', () => {
    table.setMark(3, 4n); // values 1, 2, 3 may go out
    const got = [1, 2, 3, 4, 5].map((i) => run(nextval('orders', 1, BigInt(i))).reply!);
    expect(got.map((r) => [r.status, r.first])).toEqual([
      [NvStatus.OK, 1n],
      [NvStatus.OK, 2n],
      [NvStatus.OK, 3n],
      [NvStatus.REFUSED, 0n],
      [NvStatus.REFUSED, 0n],
    ]);
    expect(got[3]!.mark).toBe(4n);
    expect(table.read(3).next).toBe(4n); // refused before the add: nothing burnt
    expect(delta()).toMatchObject({ rx: 5, reply_ok: 3, refused: 2 });
    expect(table.stats(3).refused).toBe(2n);
    // A block that would cross the mark is refused whole, not cut.
    table.setMark(3, 10n);
    expect(run(nextval('orders', 7)).reply!.status).toBe(NvStatus.REFUSED);
    expect(run(nextval('orders', 6)).reply).toMatchObject({ status: NvStatus.OK, first: 4n, count: 6 });
    // Raising the mark lets values continue where they stopped.
    table.setMark(3, 100n);
    expect(run(nextval('orders')).reply).toMatchObject({ status: NvStatus.OK, first: 10n });
  });

  it('an unknown sequence and a dropped one are answered UNKNOWN, counted, and take nothing', () => {
    const u = run(nextval('nosuch'));
    expect(u.retval).toBe(XDP_TX);
    expect(u.reply).toMatchObject({ status: NvStatus.UNKNOWN, first: 0n, count: 0, seqId: 0 });
    expect(readHeader(u.out, L4).type).toBe(MsgType.NEXTVAL_REPLY);
    table.disable(3, 'orders');
    expect(run(nextval('orders')).reply!.status).toBe(NvStatus.UNKNOWN);
    // Disabled but still named (setval in progress): UNKNOWN too, nothing taken.
    table.disable(4);
    expect(run(nextval('blocks')).reply!.status).toBe(NvStatus.UNKNOWN);
    expect(table.read(4).next).toBe(100n);
    expect(delta()).toEqual({ rx: 3, unknown: 3 });
  });

  function badPayload(mut: (p: Buffer) => void, len = 40): Buffer {
    const good = encodeNextval({ name: 'orders', count: 1, clientId: 1n, requestId: 1n });
    const payload = Buffer.alloc(len);
    good.copy(payload, 0, XSEQ_HDR_LEN, XSEQ_HDR_LEN + Math.min(len, 40));
    mut(payload);
    return frame(encodeMessage({ ...emptyHeader(), type: MsgType.NEXTVAL, clientId: 1n, requestId: 1n }, payload));
  }

  it.each([
    { what: 'payload too short', data: () => badPayload(() => {}, 39), ctr: 'drop_length' },
    { what: 'payload too long', data: () => badPayload(() => {}, 41), ctr: 'drop_length' },
    { what: 'no payload', data: () => badPayload(() => {}, 0), ctr: 'drop_length' },
    { what: 'flags set', data: () => badPayload((p) => p.writeUInt32BE(1, 4)), ctr: 'drop_flags' },
    { what: 'empty name', data: () => badPayload((p) => p.fill(0, 8)), ctr: 'drop_name' },
    { what: 'count over the maximum', data: () => badPayload((p) => p.writeUInt32BE(XSEQ_NV_MAX_COUNT + 1, 0)), ctr: 'drop_count' },
    { what: 'count 2^32-1', data: () => badPayload((p) => p.writeUInt32BE(0xffffffff, 0)), ctr: 'drop_count' },
  ])('malformed NEXTVAL: $what is dropped and counted as $ctr', ({ data, ctr }) => {
    const r = seq.program.testRun({ data: data() });
    expect(r.retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, [ctr]: 1 });
    expect(table.read(3).next).toBe(1n);
  });

  it('a NEXTVAL_REPLY sent to the sequencer (a reflection attempt) is dropped as an unexpected type', () => {
    const before = seq.counters();
    const msg = encodeMessage({ ...emptyHeader(), type: MsgType.NEXTVAL_REPLY }, Buffer.alloc(40));
    expect(seq.program.testRun({ data: frame(msg) }).retval).toBe(XDP_DROP);
    expect(seq.counters().drop_unexpected_type - before.drop_unexpected_type).toBe(1n);
    expect(delta()).toEqual({});
  });

  it('a name that is a prefix of a known one, or differs in padding, is unknown', () => {
    expect(run(nextval('order')).reply!.status).toBe(NvStatus.UNKNOWN);
    const p = badPayload((b) => b.write('x', 39));
    expect(run(p).reply!.status).toBe(NvStatus.UNKNOWN);
  });
});

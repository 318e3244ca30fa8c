// NEXTVAL under a group key, in the compiled sequencer under
// BPF_PROG_TEST_RUN: a request MAC'd under the client key of the
// sequence's group (as a client's REQUEST) is answered with a reply sealed
// under it; every request a stranger without that
// key can make (no MAC, another group's key, a forged, flipped or cut MAC,
// an unkeyed group id) is dropped unanswered, counted as drop_mac, and
// takes no value: it can neither advance nor read the sequence.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { checkMac, clientKeyOf, groupKey, seal } from '../bpf/mac.ts';
import { decodeNvReplyPayload, encodeNvRequestPayload, NV_COUNTER_NAMES, NvStatus } from '../bpf/nextval.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { SequenceTable } from '../bpf/sequences.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_MAC_LEN } from '../bpf/wire.ts';
import { buildFrame, parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';
import { reserveFrame } from '../agent/group-marks.ts';
import { ErrorCode } from '../bpf/repair.ts';
import { encodeReserveOp } from '../replica/sequence-marks.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const L4 = 14 + 20 + 8;
// The group keys the agent installs, and the client keys NEXTVAL clients seal with.
const GROUP_KEY = groupKey(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
const OTHER_GROUP_KEY = groupKey(Buffer.from('ffeeddccbbaa99887766554433221100', 'hex'));
const KEY = clientKeyOf(GROUP_KEY);
const OTHER_KEY = clientKeyOf(OTHER_GROUP_KEY);
const CLIENT = { srcMac: '02:00:00:00:00:01', srcIp: '10.77.0.1', srcPort: 40000 };
const HOST = { dstMac: '02:00:00:00:00:02', dstIp: '10.77.0.2', dstPort: 7400 };

function msg(name: string, groupId: number, requestId = 9n): Buffer {
  return encodeMessage({ ...emptyHeader(), type: MsgType.NEXTVAL, groupId, clientId: 77n, requestId }, encodeNvRequestPayload({ name, count: 1 }));
}
function frame(m: Buffer): Buffer {
  return buildFrame({ ...CLIENT, ...HOST, payload: m });
}

describePrivileged('NEXTVAL authentication in sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
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
    seq.setKey(1, GROUP_KEY);
    seq.setKey(2, OTHER_GROUP_KEY);
    seq.setKey(3, null);
    table.create(3, 'orders', { next: 1n, mark: 1_000_000n, increment: 1n, cache: 1, keyedGroup: 1 });
    table.create(4, 'open', { next: 500n, mark: 1_000_000n, increment: 1n, cache: 1 });
    before = table.counters();
  });

  function delta(): Record<string, number> {
    const now = table.counters();
    const d: Record<string, number> = {};
    for (const n of NV_COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]!);
    return d;
  }
  const run = (data: Buffer) => {
    const r = seq.program.testRun({ data });
    return { retval: r.retval, out: Buffer.from(r.data) };
  };

  it("a request MAC'd under the group's key gets the next value in a reply sealed with that key", () => {
    for (const i of [1n, 2n, 3n]) {
      const r = run(frame(seal(msg('orders', 1, i), KEY)));
      expect(r.retval).toBe(XDP_TX);
      const f = parseFrame(r.out);
      expect(f.payload.length).toBe(XSEQ_HDR_LEN + 40 + XSEQ_MAC_LEN);
      expect(f.udpCheck).toBe(0); // the MAC covers the message instead
      expect(readHeader(f.payload)).toMatchObject({ type: MsgType.NEXTVAL_REPLY, flags: Flags.MAC, groupId: 1, requestId: i });
      expect(checkMac(f.payload, KEY)).toBe('ok');
      expect(checkMac(f.payload, OTHER_KEY)).toBe('bad_mac');
      expect(decodeNvReplyPayload(f.payload.subarray(XSEQ_HDR_LEN, XSEQ_HDR_LEN + 40))).toMatchObject({ status: NvStatus.OK, first: i, count: 1 });
    }
    expect(delta()).toEqual({ rx: 3, reply_ok: 3, values: 3 });
  });

  const flip = (m: Buffer, at: number) => {
    const b = Buffer.from(m);
    b[at] = b[at]! ^ 0x01;
    return b;
  };
  const strangers: Array<[string, () => Buffer]> = [
    ['no MAC, naming the keyed group', () => frame(msg('orders', 1))],
    ['no MAC, naming an unkeyed group', () => frame(msg('orders', 3))],
    ['no MAC, naming no group', () => frame(msg('orders', 0))],
    ["a valid MAC under another keyed group's key, naming that group", () => frame(seal(msg('orders', 2), OTHER_KEY))],
    ["the other group's key, naming the sequence's group", () => frame(seal(msg('orders', 1), OTHER_KEY))],
    ['a MAC flag on an unkeyed group (a MAC means nothing there)', () => frame(seal(msg('orders', 3), KEY))],
    ['a flipped bit in the MAC', () => frame(flip(seal(msg('orders', 1), KEY), XSEQ_HDR_LEN + 40 + 3))],
    ['a flipped bit in the name', () => frame(flip(seal(msg('orders', 1), KEY), XSEQ_HDR_LEN + 8))],
    ['a flipped bit in the count', () => frame(flip(seal(msg('orders', 1), KEY), XSEQ_HDR_LEN + 3))],
    ['a zero MAC', () => {
      const b = Buffer.concat([msg('orders', 1), Buffer.alloc(XSEQ_MAC_LEN)]);
      b[7] = b[7]! | Flags.MAC;
      return frame(b);
    }],
  ];
  strangers.push(["the group key itself (a client key is what seals a NEXTVAL)", () => frame(seal(msg('orders', 1), GROUP_KEY))]);
  it.each(strangers)('%s: dropped unanswered, counted drop_mac, no value taken', (_what, make) => {
    const r = run(make());
    expect(r.retval).toBe(XDP_DROP);
    expect(table.read(3).next).toBe(1n);
    expect(table.stats(3)).toMatchObject({ calls: 0n, values: 0n, refused: 0n });
    expect(delta()).toEqual({ rx: 1, drop_mac: 1 });
  });

  it('a cut-off MAC fails the length check before anything else (drop_length or the sequencer drop)', () => {
    const sealed = seal(msg('orders', 1), KEY);
    const r = run(frame(sealed.subarray(0, sealed.length - 3)));
    expect(r.retval).toBe(XDP_DROP);
    expect(table.read(3).next).toBe(1n);
  });

  it('a sequence bound to no group is answered without a key, and sealed when the request names a keyed group', () => {
    const plain = run(frame(msg('open', 0)));
    expect(plain.retval).toBe(XDP_TX);
    expect(readHeader(parseFrame(plain.out).payload).flags & Flags.MAC).toBe(0);
    const keyed = run(frame(seal(msg('open', 1), KEY)));
    expect(keyed.retval).toBe(XDP_TX);
    expect(checkMac(parseFrame(keyed.out).payload, KEY)).toBe('ok');
    // A keyed group id without the key is a stranger even for an open sequence.
    expect(run(frame(msg('open', 1))).retval).toBe(XDP_DROP);
    expect(table.read(4).next).toBe(502n);
    expect(delta()).toEqual({ rx: 3, reply_ok: 2, values: 2, drop_mac: 1 });
  });

  it('the binding survives disable and enable (setval): never answered unauthenticated in between', () => {
    table.disable(3);
    table.enable(3);
    expect(table.read(3)).toMatchObject({ enabled: true, keyedGroup: 1 });
    expect(run(frame(msg('orders', 0))).retval).toBe(XDP_DROP);
    expect(run(frame(seal(msg('orders', 1), KEY))).retval).toBe(XDP_TX);
  });

  it('an unknown name under the key is answered UNKNOWN, sealed; without the key it is not answered', () => {
    const r = run(frame(seal(msg('nosuch', 1), KEY)));
    expect(r.retval).toBe(XDP_TX);
    const f = parseFrame(r.out);
    expect(checkMac(f.payload, KEY)).toBe('ok');
    expect(decodeNvReplyPayload(f.payload.subarray(XSEQ_HDR_LEN, XSEQ_HDR_LEN + 40)).status).toBe(NvStatus.UNKNOWN);
    expect(run(frame(msg('nosuch', 1))).retval).toBe(XDP_DROP);
  });
});

// The agent's sequence mark reservation (agent/group-marks.ts) is a control
// op: in a keyed group the kernel stamps it only sealed with the group key.
describePrivileged("the agent's mark reservation in a keyed group", () => {
  let seq: Sequencer;
  beforeAll(() => {
    seq = Sequencer.load({ port: 7400, windowSlots: 8, windows: 1 });
    seq.setGroup(1, { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 1, session: 9, enabled: true, members: [{ addr: '10.77.0.11', port: 7600 }] });
    seq.setKey(1, GROUP_KEY);
  });
  afterAll(() => seq?.close());
  const frame = (key?: typeof GROUP_KEY) => reserveFrame({ mac: HOST.dstMac, addr: HOST.dstIp, port: 7400, groupId: 1, requestId: 5n, op: encodeReserveOp({ name: 'orders', mark: 2001n }), key });

  it('sealed with the group key it becomes a sealed SEQUENCED; unsealed or under the client key it is refused UNAUTHORIZED', () => {
    const ok = seq.program.testRun({ data: frame(GROUP_KEY) });
    expect(ok.retval).toBe(XDP_TX);
    const f = parseFrame(Buffer.from(ok.data));
    expect(readHeader(f.payload)).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.CONTROL | Flags.MAC, seq: 1n });
    expect(checkMac(f.payload, GROUP_KEY)).toBe('ok');
    for (const k of [undefined, KEY]) {
      const r = seq.program.testRun({ data: frame(k) });
      const h = readHeader(parseFrame(Buffer.from(r.data)).payload);
      expect(h.type).toBe(MsgType.ERROR);
      expect(Buffer.from(parseFrame(Buffer.from(r.data)).payload).readUInt16BE(XSEQ_HDR_LEN)).toBe(ErrorCode.UNAUTHORIZED);
    }
  });
});

// The MAC in the kernel, under BPF_PROG_TEST_RUN on the compiled objects:
// the sequencer stamps SipHash-2-4 trailers equal to the TypeScript
// reference (bpf/siphash.ts, checked against the paper's vectors in
// test/mac.test.ts) on SEQUENCED and FLUSH, and requires them on ACKs; the
// replica program drops a keyed group's SEQUENCED and FLUSH whose MAC is
// wrong, missing or cut. Every refusal is counted.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkMac, clientKeyOf, groupKey, seal } from '../bpf/mac.ts';
import { COUNTER_NAMES, type Counters, type GroupConfig } from '../bpf/maps.ts';
import { RX_COUNTER_NAMES, type RxCounters } from '../bpf/replica-maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { siphash24 } from '../bpf/siphash.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_REPLICA_AGENT, type XseqHeader } from '../bpf/wire.ts';
import { ReplicaXdp } from '../replica/xdp/replica-xdp.ts';
import { buildFrame, parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;
const SEQ_MAC = '02:00:00:00:00:02';
const SEQ_IP = '10.77.0.2';
const CLIENT = { mac: '02:00:00:00:00:01', ip: '10.77.0.1', port: 40000 };
const MEMBERS = [
  { addr: '10.77.0.11', port: 7600 },
  { addr: '10.77.0.12', port: 7601 },
  { addr: '10.77.0.13', port: 7602 },
];
const KEY = groupKey(Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i));
const OTHER_KEY = groupKey(Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i + (i === 3 ? 1 : 0)));
// Group 1 aggregates (members, a window); group 2 does not; group 3 has no key.
const AGG: GroupConfig = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 3, session: 41, enabled: true, members: MEMBERS };
const PLAIN: GroupConfig = { mcastAddr: '239.7.7.2', mcastPort: 7500, sequencerId: 3, session: 41, enabled: true };

const CLIENT_KEY = clientKeyOf(KEY);

/** A client's REQUEST; groups 1 and 2 are keyed, so it is sealed with their client key. */
function requestFrame(group: number, requestId: bigint, payload: Buffer, flags = 0): Buffer {
  const plain = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, flags, groupId: group, clientId: 77n, requestId }, payload);
  const msg = group === 3 ? plain : seal(plain, CLIENT_KEY);
  return buildFrame({ srcMac: CLIENT.mac, dstMac: SEQ_MAC, srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, dstPort: 7400, payload: msg });
}

function ackMsg(rid: number, seq: bigint, result?: string): Buffer {
  const h: Partial<XseqHeader> = { type: MsgType.ACK, groupId: 1, replicaId: rid, session: 41, view: 0, seq };
  if (result !== undefined) h.flags = Flags.RESULT;
  return encodeMessage({ ...emptyHeader(), ...h }, Buffer.from(result ?? ''));
}
function ackFrame(rid: number, msg: Buffer): Buffer {
  const from = MEMBERS[rid]!;
  return buildFrame({ srcMac: `02:00:00:00:00:1${rid}`, dstMac: SEQ_MAC, srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400, payload: msg });
}

/** The MAC a receiver expects for `msg` (header + payload, MAC flag set). */
function expectedMac(msg: Uint8Array): bigint {
  return siphash24(KEY.sip, msg);
}

describePrivileged('the MAC in sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
  let s: Sequencer;
  let before: Counters;
  beforeAll(() => {
    s = Sequencer.load({ port: 7400, windowSlots: 8, windows: 2 });
  });
  afterAll(() => s?.close());
  beforeEach(() => {
    for (const g of [1, 2, 3]) {
      s.disableGroup(g);
      s.resetSeq(g);
    }
    for (let i = 0; i < 16; i++) s.slots.update(new Uint8Array(new Uint32Array([i]).buffer), new Uint8Array(s.slots.valueSize));
    s.setGroup(1, AGG);
    s.setGroup(2, PLAIN);
    s.setGroup(3, { ...AGG, members: [], windowBase: undefined });
    s.setKey(1, KEY);
    s.setKey(2, KEY);
    s.setKey(3, null);
    before = s.counters();
  });
  const run = (f: Buffer) => s.program.testRun({ data: f });
  const delta = () => {
    const now = s.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  };

  // Every tail length (0..7) and both sizes the bench measures.
  const SIZES = [0, 1, 5, 7, 8, 13, 64, 1000, 1400];
  it.each(SIZES)('a %i-byte request is stamped with the reference MAC of its SEQUENCED, in a window group and a plain one', (n) => {
    const payload = Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff));
    const sent: Buffer[] = [];
    for (const group of [1, 2]) {
      const r = run(requestFrame(group, BigInt(n + 1), payload));
      expect(r.retval).toBe(XDP_TX);
      const f = parseFrame(r.data);
      expect(f.udpCheck).toBe(0); // the MAC replaces it
      expect(r.data.length).toBe(14 + 20 + 8 + XSEQ_HDR_LEN + n + XSEQ_MAC_LEN);
      const msg = f.payload.subarray(0, XSEQ_HDR_LEN + n);
      const h = readHeader(msg);
      expect(h).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.MAC, groupId: group, payloadLen: n, seq: 1n });
      expect(f.payload.subarray(XSEQ_HDR_LEN + n).readBigUInt64LE(0)).toBe(expectedMac(msg));
      expect(checkMac(f.payload, KEY)).toBe('ok');
      expect(checkMac(f.payload, OTHER_KEY)).toBe('bad_mac');
      const d = decodeMessage(f.payload);
      expect(d.ok && Buffer.from(d.message.payload).equals(payload)).toBe(true);
      sent.push(Buffer.from(msg));
    }
    // The window keeps the message without its trailer (flag set): the agent seals re-sends itself.
    expect(Buffer.from(s.slot(1, 1n)!.msg)).toEqual(sent[0]);
    expect(delta()).toMatchObject({ sequenced: 2 });
  });

  it('a group without a key stamps as before: no flag, no trailer, a UDP checksum', () => {
    const r = run(requestFrame(3, 1n, Buffer.from('plain')));
    expect(r.retval).toBe(XDP_TX);
    const f = parseFrame(r.data);
    expect(readHeader(f.payload).flags).toBe(0);
    expect(f.payload.length).toBe(XSEQ_HDR_LEN + 5);
    expect(f.udpCheck).not.toBe(0);
  });

  it('a REQUEST that carries a MAC flag in a group without a key (nobody holds one) is dropped and counted', () => {
    const req = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 3, clientId: 1n, requestId: 1n }, Buffer.from('x'));
    const f = buildFrame({ srcMac: CLIENT.mac, dstMac: SEQ_MAC, srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, dstPort: 7400, payload: seal(req, KEY) });
    expect(run(f).retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 1, drop_bad_mac: 1 });
  });

  describe('ACKs of a keyed group', () => {
    const cases: [string, (m: Buffer) => Buffer][] = [
      ['no MAC', (m) => m],
      ['the wrong key', (m) => seal(m, OTHER_KEY)],
      ['a flipped bit in the header', (m) => {
        const b = seal(m, KEY);
        b[20]! ^= 0x01; // view
        return b;
      }],
      ['a flipped bit in the MAC', (m) => {
        const b = seal(m, KEY);
        b[b.length - 1]! ^= 0x80;
        return b;
      }],
      ['a zero MAC', (m) => {
        const b = seal(m, KEY);
        b.fill(0, b.length - XSEQ_MAC_LEN);
        return b;
      }],
    ];
    it.each(cases)('%s: dropped as drop_bad_mac, the slot untouched', (_name, forge) => {
      const n = readHeader(parseFrame(run(requestFrame(1, 5n, Buffer.from('op'))).data).payload).seq;
      const r = run(ackFrame(1, forge(ackMsg(1, n))));
      expect(r.retval).toBe(XDP_DROP);
      expect(delta()).toMatchObject({ drop_bad_mac: 1, ack_rx: 1 });
      expect(delta()['ack_counted']).toBeUndefined();
      expect(s.slot(1, n)!.acked).toBe(0);
    });

    it('truncated (flag set, trailer cut short): dropped as a bad length before any hashing', () => {
      const n = readHeader(parseFrame(run(requestFrame(1, 5n, Buffer.from('op'))).data).payload).seq;
      const cut = seal(ackMsg(1, n), KEY).subarray(0, XSEQ_HDR_LEN + 4);
      expect(run(ackFrame(1, Buffer.from(cut))).retval).toBe(XDP_DROP);
      expect(delta()).toMatchObject({ drop_bad_length: 1 });
      expect(s.slot(1, n)!.acked).toBe(0);
    });

    it('sealed ACKs count, and the quorum turns the leader-completed one into a REPLY without a MAC', () => {
      const n = readHeader(parseFrame(run(requestFrame(1, 6n, Buffer.from('op'))).data).payload).seq;
      expect(run(ackFrame(1, seal(ackMsg(1, n), KEY))).retval).toBe(XDP_DROP);
      expect(s.slot(1, n)!.acked).toBe(0b10);
      const r = run(ackFrame(0, seal(ackMsg(0, n, 'result-bytes'), KEY)));
      expect(r.retval).toBe(XDP_TX);
      const f = parseFrame(r.data);
      expect(r.data.length).toBe(14 + 20 + 8 + XSEQ_HDR_LEN + 12);
      const d = decodeMessage(f.payload);
      expect(d.ok).toBe(true);
      if (d.ok) {
        expect(d.message.header).toMatchObject({ type: MsgType.REPLY, flags: Flags.RESULT, requestId: 6n, payloadLen: 12 });
        expect(Buffer.from(d.message.payload).toString()).toBe('result-bytes');
      }
      expect(delta()).toMatchObject({ ack_counted: 2, reply: 1 });
      expect(delta()['drop_bad_mac']).toBeUndefined();
    });
  });

  it("the agent's sealed FLUSH_SOLICIT becomes a FLUSH with the reference MAC; unsealed or wrongly sealed, it is dropped", () => {
    run(requestFrame(2, 1n, Buffer.from('a')));
    const sol = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: 2, sequencerId: 3, replicaId: XSEQ_REPLICA_AGENT, session: 41 });
    const frame = (m: Buffer) => buildFrame({ srcMac: SEQ_MAC, dstMac: SEQ_MAC, srcIp: SEQ_IP, dstIp: SEQ_IP, srcPort: 7400, dstPort: 7400, payload: m });
    for (const bad of [sol, seal(sol, OTHER_KEY), seal(sol, CLIENT_KEY)]) expect(run(frame(bad)).retval).toBe(XDP_DROP);
    expect(delta()).toMatchObject({ drop_bad_mac: 3 });
    const r = run(frame(seal(sol, KEY)));
    expect(r.retval).toBe(XDP_TX);
    const f = parseFrame(r.data);
    expect(f.payload.length).toBe(XSEQ_HDR_LEN + XSEQ_MAC_LEN);
    const h = readHeader(f.payload);
    expect(h).toMatchObject({ type: MsgType.FLUSH, flags: Flags.MAC, seq: 1n, groupId: 2 });
    expect(f.payload.readBigUInt64LE(XSEQ_HDR_LEN)).toBe(expectedMac(f.payload.subarray(0, XSEQ_HDR_LEN)));
    expect(delta()).toMatchObject({ flush: 1 });
  });
});

describePrivileged('the MAC in replica.bpf.o under BPF_PROG_TEST_RUN', () => {
  let x: ReplicaXdp;
  let before: RxCounters;
  beforeAll(() => {
    x = ReplicaXdp.load({ port: 7500 });
    x.setKey(1, KEY);
  });
  afterAll(() => x?.close());
  beforeEach(() => {
    before = x.counters();
  });
  const delta = () => {
    const now = x.counters();
    const d: Record<string, number> = {};
    for (const n of RX_COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  };
  const run = (msg: Uint8Array) => x.program.testRun({
    data: buildFrame({ srcMac: SEQ_MAC, dstMac: '01:00:5e:07:07:01', srcIp: SEQ_IP, dstIp: '239.7.7.1', srcPort: 7400, dstPort: 7500, payload: msg, udpChecksum: false }),
  }).retval;
  const sequenced = (group: number, session: number, payload = 'op') =>
    encodeMessage({ ...emptyHeader(), type: MsgType.SEQUENCED, groupId: group, sequencerId: 3, session, seq: 1n, clientId: 1n, requestId: 1n }, Buffer.from(payload));
  const flush = (group: number) => encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH, groupId: group, sequencerId: 3, session: 0xffffffff, seq: 9n });

  it('a sealed SEQUENCED and FLUSH of the keyed group pass', () => {
    expect(run(seal(sequenced(1, 7), KEY))).toBe(XDP_PASS);
    expect(run(seal(sequenced(1, 7, 'x'.repeat(1000)), KEY))).toBe(XDP_PASS);
    expect(run(seal(flush(1), KEY))).toBe(XDP_PASS);
    expect(delta()['drop_bad_mac']).toBeUndefined();
  });

  const forgeries: [string, () => Uint8Array][] = [
    ['a SEQUENCED with the largest session and no MAC', () => sequenced(1, 0xffffffff)],
    ['a FLUSH with no MAC', () => flush(1)],
    ['a SEQUENCED sealed with the wrong key', () => seal(sequenced(1, 0xffffffff), OTHER_KEY)],
    ['a FLUSH sealed with the wrong key', () => seal(flush(1), OTHER_KEY)],
    ['a sealed SEQUENCED with its session changed', () => {
      const b = seal(sequenced(1, 7), KEY);
      b.writeUInt32BE(0xffffffff, 16);
      return b;
    }],
    ['a sealed SEQUENCED with a payload bit flipped', () => {
      const b = seal(sequenced(1, 7, 'payload'), KEY);
      b[XSEQ_HDR_LEN + 2]! ^= 4;
      return b;
    }],
    ['a sealed SEQUENCED with the flag cleared and the trailer kept as payload', () => {
      const b = seal(sequenced(1, 7), KEY);
      b.writeUInt16BE(0, 6);
      b.writeUInt32BE(b.readUInt32BE(56) + XSEQ_MAC_LEN, 56);
      return b;
    }],
  ];
  it.each(forgeries)('%s: dropped and counted', (_name, make) => {
    expect(run(make())).toBe(XDP_DROP);
    expect(delta()).toMatchObject({ drop_bad_mac: 1 });
  });

  it('truncated (flag set, trailer cut): not well formed, passes to user space, which refuses it too', () => {
    const cut = seal(sequenced(1, 7), KEY).subarray(0, XSEQ_HDR_LEN + 2 + 5);
    expect(run(cut)).toBe(XDP_PASS);
    expect(delta()).toMatchObject({ pass_malformed: 1 });
    expect(checkMac(cut, KEY)).not.toBe('ok');
  });

  it('a group without a key is not checked here; removing the key stops the checks', () => {
    expect(run(sequenced(2, 7))).toBe(XDP_PASS);
    x.setKey(1, null);
    x.setKey(1, null); // idempotent
    expect(run(sequenced(1, 7))).toBe(XDP_PASS);
    x.setKey(1, KEY);
    expect(run(sequenced(1, 7))).toBe(XDP_DROP);
  });
});

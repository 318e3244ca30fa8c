// Who may speak for a client id, and who may send a control op, in
// sequencer.bpf.o under BPF_PROG_TEST_RUN (bpf/sequencer.h
// seq_client_check; docs/trust-model.md "Client ids"):
//   keyed group: a REQUEST counts only sealed with the group's client key
//     (the MAC covers client id and request id), a control op only sealed
//     with the group key; the stamped SEQUENCED is re-sealed with the group
//     key in the same trailer;
//   no key: a client id belongs to the source address that first used
//     it; a control op is accepted only from a member's address or the
//     sequencer's own (the agent).
// And the solicit gap of bpf/flush.h: one FLUSH per solicitor per gap.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sealedFrame } from '../agent/flush-frame.ts';
import { reserveFrame } from '../agent/group-marks.ts';
import { encodeReserveOp } from '../replica/sequence-marks.ts';
import { checkMac, clientKeyOf, groupKey, seal } from '../bpf/mac.ts';
import { COUNTER_NAMES, type Counters, type GroupConfig } from '../bpf/maps.ts';
import { decodeError, ErrorCode } from '../bpf/repair.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_REPLICA_AGENT } from '../bpf/wire.ts';
import { buildFrame, parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const SEQ_MAC = '02:00:00:00:00:02';
const SEQ_IP = '10.77.0.2';
const CLIENT = { ip: '10.77.0.1', port: 40000 };
const STRANGER = { ip: '10.77.0.66', port: 40000 };
const MEMBERS = [
  { addr: '10.77.0.11', port: 7600 },
  { addr: '10.77.0.12', port: 7601 },
  { addr: '10.77.0.13', port: 7602 },
];
const KEY = groupKey(Uint8Array.from({ length: 16 }, (_, i) => 0x30 + i));
const CLIENT_KEY = clientKeyOf(KEY);
const OTHER_CLIENT_KEY = clientKeyOf(groupKey(Uint8Array.from({ length: 16 }, (_, i) => 0x31 + i)));
// Group 1 is keyed, group 2 is not; both aggregate (members, a window).
const KEYED: GroupConfig = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 4, session: 9, enabled: true, members: MEMBERS };
const OPEN: GroupConfig = { ...KEYED, mcastAddr: '239.7.7.2' };
const CONTROL_ADD = Buffer.from([0x48, 1, 0, 2]); // replica/control-op.ts: add sequencer 2

interface Req {
  group: number;
  clientId: bigint;
  requestId: bigint;
  from?: { ip: string; port: number };
  control?: boolean;
  seal?: 'client' | 'group' | 'other' | 'none';
  tamper?: (msg: Buffer) => void;
}

function requestFrame(r: Req): Buffer {
  const plain = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, flags: r.control ? Flags.CONTROL : 0, groupId: r.group, clientId: r.clientId, requestId: r.requestId }, r.control ? CONTROL_ADD : Buffer.from(`op-${r.requestId}`));
  const how = r.seal ?? 'none';
  const msg = how === 'none' ? plain : seal(plain, how === 'client' ? CLIENT_KEY : how === 'group' ? KEY : OTHER_CLIENT_KEY);
  r.tamper?.(msg);
  const from = r.from ?? CLIENT;
  return buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: SEQ_MAC, srcIp: from.ip, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400, payload: msg });
}

describePrivileged('client ids and control ops in sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
  let s: Sequencer;
  let before: Counters;
  beforeAll(() => {
    s = Sequencer.load({ port: 7400, windowSlots: 8, windows: 2 });
  });
  afterAll(() => s?.close());
  beforeEach(() => {
    for (const g of [1, 2]) {
      s.disableGroup(g);
      s.resetSeq(g);
    }
    for (let i = 0; i < 16; i++) s.slots.update(new Uint8Array(new Uint32Array([i]).buffer), new Uint8Array(s.slots.valueSize));
    s.setGroup(1, KEYED);
    s.setGroup(2, OPEN);
    s.setKey(1, KEY);
    s.setKey(2, null);
    before = s.counters();
  });
  const run = (f: Buffer) => s.program.testRun({ data: f });
  const delta = () => {
    const now = s.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  };
  /** The ERROR a refused request was turned into: back to its sender. */
  const errorOf = (out: Uint8Array, to: { ip: string; port: number }) => {
    const f = parseFrame(out);
    expect({ dstIp: f.dstIp, dstPort: f.dstPort, srcIp: f.srcIp, srcPort: f.srcPort }).toEqual({ dstIp: to.ip, dstPort: to.port, srcIp: SEQ_IP, srcPort: 7400 });
    const h = readHeader(f.payload);
    expect(h.type).toBe(MsgType.ERROR);
    return { h, code: decodeError(f.payload.subarray(XSEQ_HDR_LEN, XSEQ_HDR_LEN + h.payloadLen))?.code };
  };

  describe('a keyed group', () => {
    it('stamps a REQUEST sealed with the client key, and re-seals its SEQUENCED with the group key', () => {
      const r = run(requestFrame({ group: 1, clientId: 5n, requestId: 1n, seal: 'client' }));
      expect(r.retval).toBe(XDP_TX);
      const f = parseFrame(r.data);
      const h = readHeader(f.payload);
      expect(h).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.MAC, seq: 1n, clientId: 5n, requestId: 1n });
      expect(f.payload.length).toBe(XSEQ_HDR_LEN + h.payloadLen + XSEQ_MAC_LEN);
      expect(checkMac(f.payload, KEY)).toBe('ok');
      expect(checkMac(f.payload, CLIENT_KEY)).toBe('bad_mac'); // a client key cannot make a SEQUENCED
      expect(delta()).toEqual({ rx: 1, sequenced: 1 });
    });

    const refused: [string, Partial<Req>][] = [
      ['no MAC', { seal: 'none' }],
      ['a MAC under the group key (not a control op)', { seal: 'group' }],
      ['a MAC under another group\'s client key', { seal: 'other' }],
      ['a sealed REQUEST whose client id was changed (impersonation)', { seal: 'client', tamper: (m) => m.writeBigUInt64BE(6n, 40) }],
      ['a sealed REQUEST whose request id was raised (poisoning the client table)', { seal: 'client', tamper: (m) => m.writeBigUInt64BE(1000n, 48) }],
    ];
    it.each(refused)('%s: dropped and counted, no seq taken, no answer', (_name, o) => {
      const r = run(requestFrame({ group: 1, clientId: 5n, requestId: 2n, ...o }));
      expect(r.retval).toBe(XDP_DROP);
      expect(delta()).toEqual({ rx: 1, drop_client_mac: 1 });
      expect(s.lastSeq(1)).toBe(0n);
    });

    it('a control op sealed with the client key is answered ERROR UNAUTHORIZED, not stamped; sealed with the group key it is stamped', () => {
      const r = run(requestFrame({ group: 1, clientId: 7n, requestId: 1n, control: true, seal: 'client' }));
      expect(r.retval).toBe(XDP_TX);
      const e = errorOf(r.data, CLIENT);
      expect(e.code).toBe(ErrorCode.UNAUTHORIZED);
      expect(e.h).toMatchObject({ clientId: 7n, requestId: 1n, groupId: 1, flags: 0 });
      expect(r.data.length).toBeLessThanOrEqual(requestFrame({ group: 1, clientId: 7n, requestId: 1n, control: true, seal: 'client' }).length);
      expect(run(requestFrame({ group: 1, clientId: 7n, requestId: 1n, control: true, seal: 'none' })).retval).toBe(XDP_TX);
      expect(delta()).toEqual({ rx: 2, control_refused: 2 });
      expect(s.lastSeq(1)).toBe(0n);

      const ok = run(requestFrame({ group: 1, clientId: 7n, requestId: 1n, control: true, seal: 'group' }));
      expect(ok.retval).toBe(XDP_TX);
      const f = parseFrame(ok.data);
      expect(readHeader(f.payload)).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.CONTROL | Flags.MAC, seq: 1n });
      expect(f.payload.subarray(XSEQ_HDR_LEN, XSEQ_HDR_LEN + 4)).toEqual(CONTROL_ADD);
      expect(checkMac(f.payload, KEY)).toBe('ok');
    });

    it('under backpressure a sealed REQUEST is answered BUSY without its trailer, no larger than it came', () => {
      for (let i = 1; i <= 8; i++) expect(run(requestFrame({ group: 1, clientId: 5n, requestId: BigInt(i), seal: 'client' })).retval).toBe(XDP_TX);
      const req = requestFrame({ group: 1, clientId: 5n, requestId: 9n, seal: 'client' });
      const r = run(req);
      expect(r.retval).toBe(XDP_TX);
      const e = errorOf(r.data, CLIENT);
      expect(e.code).toBe(ErrorCode.BUSY);
      const f = parseFrame(r.data);
      expect(f.payload.length).toBe(XSEQ_HDR_LEN + 4); // the UDP length says so: no trailer left
      expect(e.h.flags).toBe(0);
      expect(r.data.length).toBeLessThanOrEqual(req.length);
      expect(delta()).toMatchObject({ sequenced: 8, drop_backpressure: 1, busy: 1 });
    });

    it("the agent's reserve op (agent/group-marks.ts) is refused unsealed and stamped sealed with the group key", () => {
      const plain = reserveFrame({ mac: SEQ_MAC, addr: SEQ_IP, port: 7400, groupId: 1, requestId: 1n, op: encodeReserveOp({ name: 'orders', mark: 100n }) });
      const refused = run(plain);
      expect(errorOf(refused.data, { ip: SEQ_IP, port: 7400 }).code).toBe(ErrorCode.UNAUTHORIZED);
      const ok = run(sealedFrame(plain, KEY));
      expect(ok.retval).toBe(XDP_TX);
      const f = parseFrame(ok.data);
      expect(readHeader(f.payload)).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.CONTROL | Flags.MAC, seq: 1n });
      expect(checkMac(f.payload, KEY)).toBe('ok');
      expect(delta()).toEqual({ rx: 2, control_refused: 1, sequenced: 1 });
    });

    it('binds nothing to sources: a sealed REQUEST from any address is stamped', () => {
      for (const [i, from] of [CLIENT, STRANGER, { ip: CLIENT.ip, port: 40001 }].entries()) {
        expect(run(requestFrame({ group: 1, clientId: 5n, requestId: BigInt(i + 1), seal: 'client', from })).retval).toBe(XDP_TX);
      }
      expect(delta()).toEqual({ rx: 3, sequenced: 3 });
    });
  });

  describe('a group without a key', () => {
    it('binds a client id to its first source address; the same id from another address is dropped, from another port of it (a restart) goes on', () => {
      expect(run(requestFrame({ group: 2, clientId: 11n, requestId: 1n })).retval).toBe(XDP_TX);
      expect(s.clientSource(11n)).toEqual({ addr: CLIENT.ip, port: CLIENT.port });
      // An overheard id, from the stranger's own address (any port), with a higher request id.
      expect(run(requestFrame({ group: 2, clientId: 11n, requestId: 1000n, from: STRANGER })).retval).toBe(XDP_DROP);
      expect(run(requestFrame({ group: 2, clientId: 11n, requestId: 1001n, from: { ip: STRANGER.ip, port: CLIENT.port } })).retval).toBe(XDP_DROP);
      // The real client goes on, also from another port.
      const r = run(requestFrame({ group: 2, clientId: 11n, requestId: 2n }));
      expect(r.retval).toBe(XDP_TX);
      expect(readHeader(parseFrame(r.data).payload)).toMatchObject({ seq: 2n, clientId: 11n, requestId: 2n, flags: 0 });
      expect(run(requestFrame({ group: 2, clientId: 11n, requestId: 3n, from: { ip: CLIENT.ip, port: 40001 } })).retval).toBe(XDP_TX);
      // Another id is the stranger's own: it may speak for that one.
      expect(run(requestFrame({ group: 2, clientId: 12n, requestId: 1n, from: STRANGER })).retval).toBe(XDP_TX);
      expect(s.clientSource(12n)).toEqual({ addr: STRANGER.ip, port: STRANGER.port });
      expect(delta()).toEqual({ rx: 6, sequenced: 4, drop_client_source: 2 });
    });

    it('a control op from a member\'s address (any port) or the sequencer\'s own is stamped; from anywhere else it is answered ERROR UNAUTHORIZED', () => {
      const stranger = run(requestFrame({ group: 2, clientId: 21n, requestId: 1n, control: true, from: STRANGER }));
      expect(stranger.retval).toBe(XDP_TX);
      expect(errorOf(stranger.data, STRANGER).code).toBe(ErrorCode.UNAUTHORIZED);
      const client = run(requestFrame({ group: 2, clientId: 22n, requestId: 1n, control: true }));
      expect(errorOf(client.data, CLIENT).code).toBe(ErrorCode.UNAUTHORIZED);
      expect(s.lastSeq(2)).toBe(0n);
      // The sequencer's own address (the agent injecting it, agent/group-marks.ts) counts too.
      const own = run(reserveFrame({ mac: SEQ_MAC, addr: SEQ_IP, port: 7400, groupId: 2, requestId: 1n, op: encodeReserveOp({ name: 'orders', mark: 100n }) }));
      expect(readHeader(parseFrame(own.data).payload)).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.CONTROL, seq: 1n });
      const member = { ip: MEMBERS[1]!.addr, port: 45123 };
      const ok = run(requestFrame({ group: 2, clientId: 23n, requestId: 1n, control: true, from: member }));
      expect(ok.retval).toBe(XDP_TX);
      const f = parseFrame(ok.data);
      expect(readHeader(f.payload)).toMatchObject({ type: MsgType.SEQUENCED, flags: Flags.CONTROL, seq: 2n });
      expect(f.payload.subarray(XSEQ_HDR_LEN)).toEqual(CONTROL_ADD);
      expect(delta()).toEqual({ rx: 4, control_refused: 2, sequenced: 2 });
    });

    it('a control op from a member\'s address under a client id bound elsewhere is dropped like any REQUEST (a weight change passes the client table)', () => {
      expect(run(requestFrame({ group: 2, clientId: 31n, requestId: 1n })).retval).toBe(XDP_TX);
      const member = { ip: MEMBERS[1]!.addr, port: 45123 };
      // The client's overheard id, from a (forged) member address, flagged as a control op.
      expect(run(requestFrame({ group: 2, clientId: 31n, requestId: 5000n, control: true, from: member })).retval).toBe(XDP_DROP);
      // The member's own id still goes through.
      expect(run(requestFrame({ group: 2, clientId: 32n, requestId: 1n, control: true, from: member })).retval).toBe(XDP_TX);
      expect(delta()).toEqual({ rx: 3, sequenced: 2, drop_client_source: 1 });
    });

    it('a group without members accepts no control op at all', () => {
      s.disableGroup(2);
      s.setGroup(2, { ...OPEN, members: [], windowBase: undefined });
      before = s.counters();
      const r = run(requestFrame({ group: 2, clientId: 24n, requestId: 1n, control: true, from: { ip: MEMBERS[0]!.addr, port: 7600 } }));
      expect(errorOf(r.data, { ip: MEMBERS[0]!.addr, port: 7600 }).code).toBe(ErrorCode.UNAUTHORIZED);
      expect(delta()).toEqual({ rx: 1, control_refused: 1 });
    });
  });
});

describePrivileged('the solicit gap in sequencer.bpf.o under BPF_PROG_TEST_RUN', () => {
  // A gap far longer than a test step, so "inside the gap" does not depend
  // on how fast the machine runs the next line; the default (50 µs) is
  // what every other test and the agent run.
  const GAP_NS = 4_000_000_000;
  let s: Sequencer;
  let before: Counters;
  beforeAll(() => {
    s = Sequencer.load({ port: 7400, windowSlots: 8, windows: 2, solicitGapNs: GAP_NS });
  });
  afterAll(() => s?.close());
  beforeEach(() => {
    s.disableGroup(1);
    s.resetSeq(1);
    s.setGroup(1, KEYED);
    s.setKey(1, KEY);
    s.disableGroup(2);
    s.resetSeq(2);
    s.setGroup(2, OPEN);
    s.setKey(2, null);
    before = s.counters();
  });
  const run = (f: Buffer) => s.program.testRun({ data: f });
  const delta = () => {
    const now = s.counters();
    const d: Record<string, number> = {};
    for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
    return d;
  };
  const solicit = (group: number, rid: number, sealed: boolean) => {
    const from = rid === XSEQ_REPLICA_AGENT ? { addr: SEQ_IP, port: 7400 } : MEMBERS[rid]!;
    const m = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: group, sequencerId: 4, replicaId: rid, session: 9 });
    return buildFrame({ srcMac: '02:00:00:00:00:12', dstMac: SEQ_MAC, srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400, payload: sealed ? seal(m, KEY) : m });
  };

  it('each solicitor (member or agent) is answered once per gap; the rest are dropped and counted', () => {
    for (let i = 0; i < 5; i++) {
      for (const rid of [0, 1, XSEQ_REPLICA_AGENT]) expect(run(solicit(2, rid, false)).retval).toBe(i === 0 ? XDP_TX : XDP_DROP);
    }
    expect(delta()).toEqual({ rx: 15, flush: 3, drop_solicit_rate: 12 });
    // A new session starts with a fresh gap (Sequencer.resetSeq).
    s.resetSeq(2);
    expect(run(solicit(2, 0, false)).retval).toBe(XDP_TX);
  });

  it('a keyed group answers only sealed solicits, and an unsealed one does not use up the gap', () => {
    expect(run(solicit(1, 0, false)).retval).toBe(XDP_DROP);
    expect(run(solicit(1, 0, true)).retval).toBe(XDP_TX);
    expect(run(solicit(1, 0, true)).retval).toBe(XDP_DROP);
    expect(delta()).toEqual({ rx: 3, drop_bad_mac: 1, flush: 1, drop_solicit_rate: 1 });
  });
});

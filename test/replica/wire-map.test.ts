// The fast path and repair messages survive a trip through the real codec
// (bpf/wire.ts, bpf/repair.ts): the UDP transport can be this plus a socket.
import { describe, expect, it } from 'vitest';
import { encodeError, encodeRepairReply, ErrorCode } from '../../bpf/repair.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, type XseqMessage } from '../../bpf/wire.ts';
import type { AckMsg, SequencedMsg } from '../../replica/messages.ts';
import {
  ackDatagram,
  ackFromWire,
  ackToWire,
  repairErrorFromWire,
  repairReplyFromWire,
  repairRequestToWire,
  replyFromWire,
  requestFromWire,
  requestToWire,
  sequencedFromDatagram,
  sequencedFromWire,
  sequencedToWire,
} from '../../replica/wire-map.ts';

const decode = (b: Uint8Array): XseqMessage => {
  const r = decodeMessage(b);
  if (!r.ok) throw r.error;
  return r.message;
};

describe('wire mapping', () => {
  it('REQUEST and SEQUENCED round-trip, the retransmit flag included', () => {
    const req = { type: 'REQUEST' as const, clientId: 2n ** 63n, requestId: 9n, op: new Uint8Array([1, 2, 3]) };
    expect(requestFromWire(decode(requestToWire(req, { groupId: 4 })))).toEqual(req);
    // A control op (Hydra) carries XSEQ_F_CONTROL on the REQUEST and back.
    const ctl = { ...req, control: true };
    expect(decode(requestToWire(ctl, { groupId: 4 })).header.flags).toBe(Flags.CONTROL);
    expect(decode(requestToWire(req, { groupId: 4 })).header.flags).toBe(0);
    expect(requestFromWire(decode(requestToWire(ctl, { groupId: 4 })))).toEqual(ctl);
    const s: SequencedMsg = { type: 'SEQUENCED', session: 3, seq: 2 ** 40, clientId: 5n, requestId: 6n, op: new Uint8Array([7]), retransmit: true };
    const w = decode(sequencedToWire(s, { groupId: 4, sequencerId: 2 }));
    expect(w.header.flags & Flags.RETRANSMIT).toBe(Flags.RETRANSMIT);
    expect(w.header.groupId).toBe(4);
    expect(sequencedFromWire(w)).toEqual(s);
  });

  it("the leader's ACK carries its result with XSEQ_F_RESULT; a follower's has neither", () => {
    const lead: AckMsg = { type: 'ACK', session: 1, seq: 10, leaderNum: 4, replicaId: 1, clientId: 3n, requestId: 8n, result: new Uint8Array([0xaa, 0xbb]) };
    const w = decode(ackToWire(lead, { groupId: 0 }));
    expect(w.header.type).toBe(MsgType.ACK);
    expect(w.header.view).toBe(4);
    expect(w.header.flags).toBe(Flags.RESULT);
    expect(ackFromWire(w)).toEqual(lead);
    const follower: AckMsg = { ...lead, replicaId: 2, result: null };
    const wf = decode(ackToWire(follower, { groupId: 0 }));
    expect(wf.header.flags).toBe(0);
    expect(wf.header.payloadLen).toBe(0);
    expect(ackFromWire(wf)).toEqual(follower);
  });

  it('ackDatagram writes the bytes ackToWire does; a padded follower ACK only adds zero payload', () => {
    const acks: AckMsg[] = [
      { type: 'ACK', session: 1, seq: 10, leaderNum: 4, replicaId: 1, clientId: 3n, requestId: 8n, result: new Uint8Array([0xaa, 0xbb]) },
      { type: 'ACK', session: 0xffffffff, seq: Number.MAX_SAFE_INTEGER, leaderNum: 0xfffffffe, replicaId: 0xffff, clientId: 2n ** 64n - 1n, requestId: 2n ** 63n, result: null, sequencerId: 0xfffe },
      { type: 'ACK', session: 7, seq: 2 ** 32 + 5, leaderNum: 0, replicaId: 2, clientId: 0n, requestId: 1n, result: new Uint8Array(0), sequencerId: 3 },
    ];
    for (const a of acks) {
      // Recycled memory must not leak into a fresh ACK (allocUnsafe).
      Buffer.alloc(4096, 0xee);
      expect(ackDatagram(a, 9)).toEqual(ackToWire(a, { groupId: 9 }));
      const padded = ackDatagram(a, 9, 40);
      if (a.result) {
        expect(padded).toEqual(ackToWire(a, { groupId: 9 }));
        continue;
      }
      const w = decode(padded);
      expect(w.header.payloadLen).toBe(40);
      expect([...w.payload]).toEqual(new Array(40).fill(0));
      expect(padded.subarray(0, 56)).toEqual(ackToWire(a, { groupId: 9 }).subarray(0, 56));
      expect(ackFromWire(w)).toEqual(a.sequencerId ? a : { ...a, sequencerId: undefined });
    }
    expect(() => ackDatagram({ ...acks[0]!, seq: -1 }, 9)).toThrow();
    expect(() => ackDatagram({ ...acks[0]!, session: 2 ** 32 }, 9)).toThrow();
  });

  it('sequencedFromDatagram decodes what the general path does and declines the rest', () => {
    const s: SequencedMsg = { type: 'SEQUENCED', session: 3, seq: 2 ** 40 + 3, clientId: 2n ** 64n - 1n, requestId: 6n, op: new Uint8Array([7, 8]), retransmit: true };
    const b = sequencedToWire(s, { groupId: 4, sequencerId: 2, clockNs: 123n });
    const fast = sequencedFromDatagram(b, 4);
    expect(fast).toEqual(sequencedFromWire(decode(b)));
    expect(fast).toEqual(s);
    // The op outlives the datagram: a copy, not a view of it.
    expect(fast!.op.buffer).not.toBe(b.buffer);
    expect(sequencedFromDatagram(sequencedToWire({ ...s, retransmit: false, seq: 1 }, { groupId: 4 }), 4)).toEqual({ ...s, retransmit: false, seq: 1 });
    const bad = (f: (x: Buffer) => void): Buffer => {
      const x = Buffer.from(b);
      f(x);
      return x;
    };
    expect(sequencedFromDatagram(b, 5)).toBeNull(); // another group
    expect(sequencedFromDatagram(b.subarray(0, 63), 4)).toBeNull();
    expect(sequencedFromDatagram(b.subarray(0, b.length - 1), 4)).toBeNull(); // payload_len disagrees
    expect(sequencedFromDatagram(bad((x) => x.writeUInt32BE(0, 0)), 4)).toBeNull(); // magic
    expect(sequencedFromDatagram(bad((x) => (x[4] = 2)), 4)).toBeNull(); // version
    expect(sequencedFromDatagram(bad((x) => (x[5] = MsgType.ACK)), 4)).toBeNull();
    expect(sequencedFromDatagram(sequencedToWire({ ...s, seq: 0 }, { groupId: 4 }), 4)).toBeNull();
    expect(sequencedFromDatagram(bad((x) => x.writeBigUInt64BE(2n ** 53n, 24)), 4)).toBeNull(); // past a safe integer
    expect(sequencedFromWire(decode(bad((x) => x.writeBigUInt64BE(2n ** 53n, 24))))).toBeNull();
    const big = encodeMessage({ ...emptyHeader(), type: MsgType.SEQUENCED, groupId: 4, seq: 1n }, new Uint8Array(1401));
    expect(decodeMessage(big).ok).toBe(false);
    expect(sequencedFromDatagram(big, 4)).toBeNull(); // over XSEQ_MAX_PAYLOAD
  });

  it('REPLY as the aggregator writes it decodes into what the client matches on', () => {
    const b = encodeMessage({ ...emptyHeader(), type: MsgType.REPLY, flags: Flags.RESULT, session: 2, view: 3, seq: 77n, replicaId: 0, clientId: 5n, requestId: 6n }, new Uint8Array([9]));
    expect(replyFromWire(decode(b))).toEqual({ type: 'REPLY', session: 2, seq: 77, leaderNum: 3, replicaId: 0, clientId: 5n, requestId: 6n, result: new Uint8Array([9]) });
  });

  it('repair request, reply (with missing seqs) and error', () => {
    const rq = decode(repairRequestToWire({ type: 'REPAIR_REQUEST', session: 5, replicaId: 2, first: 100, count: 7 }, { groupId: 1 }));
    expect(rq.header).toMatchObject({ type: MsgType.REPAIR_REQUEST, session: 5, replicaId: 2, seq: 100n, groupId: 1 });
    const rp = decode(encodeRepairReply({ groupId: 1, session: 5, replicaId: 2, first: 100n, sequencerId: 0 }, { count: 7, resent: 5, missing: [100n, 104n] }));
    expect(repairReplyFromWire(rp)).toEqual({ type: 'REPAIR_REPLY', session: 5, first: 100, count: 7, missing: [100, 104] });
    const er = decode(encodeError({ groupId: 1, session: 5, replicaId: 2, seq: 100n }, ErrorCode.WRONG_SESSION, 'session 5 is over'));
    expect(repairErrorFromWire(er)).toEqual({ type: 'ERROR', session: 5, first: 100, code: ErrorCode.WRONG_SESSION, text: 'session 5 is over' });
  });

  it('the wrong type or a seq past 2^53 is refused, not misread', () => {
    const s = decode(sequencedToWire({ type: 'SEQUENCED', session: 1, seq: 1, clientId: 1n, requestId: 1n, op: new Uint8Array(), retransmit: false }, { groupId: 0 }));
    expect(ackFromWire(s)).toBeNull();
    expect(replyFromWire(s)).toBeNull();
    const huge = decode(encodeMessage({ ...emptyHeader(), type: MsgType.SEQUENCED, seq: 2n ** 60n }));
    expect(sequencedFromWire(huge)).toBeNull();
  });

  it('payloads are copied out of the datagram buffer', () => {
    const buf = sequencedToWire({ type: 'SEQUENCED', session: 1, seq: 1, clientId: 1n, requestId: 1n, op: new Uint8Array([5]), retransmit: false }, { groupId: 0 });
    const m = sequencedFromWire(decode(buf))!;
    buf.fill(0);
    expect(m.op).toEqual(new Uint8Array([5]));
  });
});

describe('wire map: Hydra', () => {
  it('SEQUENCED keeps its sequencer, clock and control flag; FLUSH and FLUSH_SOLICIT round-trip; ACKs name the sequencer', async () => {
    const { decodeMessage, MsgType } = await import('../../bpf/wire.ts');
    const { ackToWire, flushFromWire, flushSolicitToWire, flushToWire, hydraSequencedFromWire, sequencedToWire, FLAG_CONTROL } = await import('../../replica/wire-map.ts');
    const dec = (b: Buffer) => {
      const d = decodeMessage(b);
      if (!d.ok) throw new Error('decode');
      return d.message;
    };
    const seq = { type: 'SEQUENCED' as const, session: 3, seq: 9, clientId: 5n, requestId: 6n, op: new Uint8Array([1, 2]), retransmit: false };
    const tai = 1_763_000_000_123_456_789n;
    const m = hydraSequencedFromWire(dec(sequencedToWire(seq, { groupId: 1, sequencerId: 7, clockNs: tai })))!;
    expect(m).toMatchObject({ sequencerId: 7, seq: 9, session: 3 });
    expect(m.control).toBeUndefined();
    // Doubles round TAI ns monotonically (256 ns at today's values).
    expect(Math.abs(m.clock! - Number(tai))).toBeLessThanOrEqual(256);
    const ctl = Buffer.from(sequencedToWire(seq, { groupId: 1, sequencerId: 7, clockNs: tai }));
    ctl.writeUInt16BE(FLAG_CONTROL, 6); // the flags field
    expect(hydraSequencedFromWire(dec(ctl))!.control).toBe(true);
    const f = { type: 'FLUSH' as const, sequencerId: 2, session: 3, seq: 41, clock: 2 ** 52, final: true };
    expect(flushFromWire(dec(flushToWire(f, { groupId: 1 })))).toEqual(f);
    const sol = dec(flushSolicitToWire({ type: 'FLUSH_SOLICIT', sequencerId: 2, replicaId: 1, session: 3 }, { groupId: 1 })).header;
    expect(sol).toMatchObject({ type: MsgType.FLUSH_SOLICIT, sequencerId: 2, replicaId: 1, session: 3, groupId: 1 });
    const ack = dec(ackToWire({ type: 'ACK', session: 3, seq: 9, leaderNum: 0, replicaId: 1, clientId: 5n, requestId: 6n, result: null, sequencerId: 2 }, { groupId: 1 })).header;
    expect(ack.sequencerId).toBe(2);
  });
});

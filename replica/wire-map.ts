// The fast path and the repair service on the wire: typed messages <-> the
// bpf/wire.ts header and bpf/repair.ts payloads, so the UDP transport is a
// socket plus these functions. Slow-path peer messages are not here (they
// carry logs; see README.md, "What the UDP transport still needs").
import { decodeError, decodeRepairReply, encodeRepairRequest } from '../bpf/repair.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, WireError, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_MAGIC, XSEQ_MAX_PAYLOAD, XSEQ_VERSION, type XseqMessage } from '../bpf/wire.ts';
import type { AckMsg, FlushMsg, FlushSolicitMsg, RepairErrorMsg, RepairReplyMsg, RepairRequestMsg, ReplyMsg, RequestMsg, SequencedMsg } from './messages.ts';

export interface WireAddressing {
  groupId: number;
}

function toNum(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

/** The payload outlives the datagram buffer it was decoded from (and is a plain Uint8Array, not a Buffer view). */
function copy(p: Uint8Array): Uint8Array {
  return new Uint8Array(p);
}

export function requestToWire(m: RequestMsg, a: WireAddressing): Buffer {
  return encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, flags: m.control ? Flags.CONTROL : 0, groupId: a.groupId, clientId: m.clientId, requestId: m.requestId }, m.op);
}

export function requestFromWire(w: XseqMessage): RequestMsg | null {
  const h = w.header;
  if (h.type !== MsgType.REQUEST) return null;
  return { type: 'REQUEST', clientId: h.clientId, requestId: h.requestId, op: copy(w.payload), ...(h.flags & Flags.CONTROL ? { control: true } : {}) };
}

/** What the sequencer multicasts (the simulation and tests build these; the kernel does in production). */
export function sequencedToWire(m: SequencedMsg, a: WireAddressing & { sequencerId?: number; clockNs?: bigint }): Buffer {
  return encodeMessage(
    {
      ...emptyHeader(),
      type: MsgType.SEQUENCED,
      flags: (m.retransmit ? Flags.RETRANSMIT : 0) | (m.control ? Flags.CONTROL : 0),
      groupId: a.groupId,
      sequencerId: a.sequencerId ?? 0,
      session: m.session,
      seq: BigInt(m.seq),
      clockNs: a.clockNs ?? 0n,
      clientId: m.clientId,
      requestId: m.requestId,
    },
    m.op,
  );
}

export function sequencedFromWire(w: XseqMessage): SequencedMsg | null {
  const h = w.header;
  const seq = toNum(h.seq);
  if (h.type !== MsgType.SEQUENCED || seq === null || seq < 1) return null;
  return {
    type: 'SEQUENCED',
    session: h.session,
    seq,
    clientId: h.clientId,
    requestId: h.requestId,
    op: copy(w.payload),
    retransmit: (h.flags & Flags.RETRANSMIT) !== 0,
    // One sequencer too: a weights control op is executed by the replicas.
    ...(h.flags & Flags.CONTROL ? { control: true } : {}),
  };
}

const SEQ_HI = 0x1_0000_0000;
const MAX_SAFE_HI = Math.floor(Number.MAX_SAFE_INTEGER / SEQ_HI);

/**
 * A SEQUENCED datagram of group `groupId` straight from its bytes, the
 * work of decodeMessage + sequencedFromWire (same checks, same message)
 * without the intermediate header object and the BigInt seq and clock:
 * every request takes this path on every replica. null for anything that
 * is not a well-formed SEQUENCED of this group with a usable seq; the
 * caller then decodes it the general way.
 */
export function sequencedFromDatagram(b: Buffer, groupId: number): SequencedMsg | null {
  if (b.length < XSEQ_HDR_LEN || b[5] !== MsgType.SEQUENCED || b[4] !== XSEQ_VERSION || b.readUInt32BE(0) !== XSEQ_MAGIC) return null;
  const payloadLen = b.readUInt32BE(56);
  // A MAC trailer (checked by the transport before this) is outside payload_len.
  const trailer = b[7]! & Flags.MAC ? XSEQ_MAC_LEN : 0;
  if (payloadLen > XSEQ_MAX_PAYLOAD || payloadLen !== b.length - XSEQ_HDR_LEN - trailer || b.readUInt32BE(8) !== groupId) return null;
  const hi = b.readUInt32BE(24);
  if (hi > MAX_SAFE_HI) return null;
  const seq = hi * SEQ_HI + b.readUInt32BE(28);
  if (seq < 1 || seq > Number.MAX_SAFE_INTEGER) return null;
  const flags = b.readUInt16BE(6);
  const m: SequencedMsg = {
    type: 'SEQUENCED',
    session: b.readUInt32BE(16),
    seq,
    clientId: b.readBigUInt64BE(40),
    requestId: b.readBigUInt64BE(48),
    op: copy(b.subarray(XSEQ_HDR_LEN, XSEQ_HDR_LEN + payloadLen)),
    retransmit: (flags & Flags.RETRANSMIT) !== 0,
  };
  // A control op (a weight change) is the replicas', not the application's.
  return flags & Flags.CONTROL ? { ...m, control: true } : m;
}

/** The leader's ACK carries its result as payload with XSEQ_F_RESULT; the aggregator copies it into the REPLY. */
export function ackToWire(m: AckMsg, a: WireAddressing): Buffer {
  return encodeMessage(
    {
      ...emptyHeader(),
      type: MsgType.ACK,
      flags: m.result ? Flags.RESULT : 0,
      groupId: a.groupId,
      sequencerId: m.sequencerId ?? 0,
      replicaId: m.replicaId,
      session: m.session,
      view: m.leaderNum,
      seq: BigInt(m.seq),
      clientId: m.clientId,
      requestId: m.requestId,
    },
    m.result ?? new Uint8Array(0),
  );
}

/**
 * The same bytes as ackToWire, written straight into the one buffer that is
 * sent: every request costs each replica an ACK, and the generic encoder's
 * header object, range checks and BigInt seq are most of its cost. `pad`
 * zero bytes of payload when there is no result (the transport's
 * ackPadding; the kernel ignores a follower's payload).
 */
export function ackDatagram(m: AckMsg, groupId: number, pad = 0, trailer = 0): Buffer {
  const result = m.result;
  const len = result ? result.length : pad;
  if (!Number.isSafeInteger(m.seq) || m.seq < 0) throw new WireError('EWIRE_FIELD_RANGE', `seq=${m.seq} is not a u64`);
  if (len > 0xffffffff) throw new WireError('EWIRE_FIELD_RANGE', `payloadLen=${len} is not a u32`);
  // `trailer` spare bytes at the end for the MAC (bpf/mac.ts sealInPlace).
  const b = Buffer.allocUnsafe(XSEQ_HDR_LEN + len + trailer);
  // Node's writers throw a RangeError for a value that does not fit its field.
  b.writeUInt32BE(XSEQ_MAGIC, 0);
  b[4] = XSEQ_VERSION;
  b[5] = MsgType.ACK;
  b.writeUInt16BE((result ? Flags.RESULT : 0) | (m.stale ? Flags.STALE : 0), 6);
  b.writeUInt32BE(groupId, 8);
  b.writeUInt16BE(m.sequencerId ?? 0, 12);
  b.writeUInt16BE(m.replicaId, 14);
  b.writeUInt32BE(m.session, 16);
  b.writeUInt32BE(m.leaderNum, 20);
  b.writeUInt32BE(Math.floor(m.seq / 0x1_0000_0000), 24);
  b.writeUInt32BE(m.seq >>> 0, 28);
  b.writeUInt32BE(0, 32); // clock_ns: ACKs carry none
  b.writeUInt32BE(0, 36);
  b.writeBigUInt64BE(m.clientId, 40);
  b.writeBigUInt64BE(m.requestId, 48);
  b.writeUInt32BE(len, 56);
  b.writeUInt32BE(0, 60);
  if (result) b.set(result, XSEQ_HDR_LEN);
  else if (len) b.fill(0, XSEQ_HDR_LEN, XSEQ_HDR_LEN + len);
  return b;
}

export function ackFromWire(w: XseqMessage): AckMsg | null {
  const h = w.header;
  const seq = toNum(h.seq);
  if (h.type !== MsgType.ACK || seq === null) return null;
  return {
    type: 'ACK',
    session: h.session,
    seq,
    leaderNum: h.view,
    replicaId: h.replicaId,
    clientId: h.clientId,
    requestId: h.requestId,
    result: h.flags & Flags.RESULT ? copy(w.payload) : null,
    ...(h.flags & Flags.STALE ? { stale: true } : {}),
    // Absent means 0, so single-sequencer messages look as they always did.
    ...(h.sequencerId ? { sequencerId: h.sequencerId } : {}),
  };
}

export function replyFromWire(w: XseqMessage): ReplyMsg | null {
  const h = w.header;
  const seq = toNum(h.seq);
  if (h.type !== MsgType.REPLY || seq === null) return null;
  return {
    type: 'REPLY',
    session: h.session,
    seq,
    leaderNum: h.view,
    replicaId: h.replicaId,
    clientId: h.clientId,
    requestId: h.requestId,
    result: copy(w.payload),
    ...(h.flags & Flags.STALE ? { stale: true } : {}),
    ...(h.sequencerId ? { sequencerId: h.sequencerId } : {}),
  };
}

export function repairRequestToWire(m: RepairRequestMsg, a: WireAddressing): Buffer {
  return encodeRepairRequest({ groupId: a.groupId, session: m.session, replicaId: m.replicaId, first: BigInt(m.first), count: m.count });
}

export function repairReplyFromWire(w: XseqMessage): RepairReplyMsg | null {
  const h = w.header;
  const first = toNum(h.seq);
  if (h.type !== MsgType.REPAIR_REPLY || first === null) return null;
  const r = decodeRepairReply(w.payload);
  if (!r) return null;
  const missing: number[] = [];
  for (const s of r.missing) {
    const n = toNum(s);
    if (n !== null) missing.push(n);
  }
  return { type: 'REPAIR_REPLY', session: h.session, first, count: r.count, missing };
}

export function repairErrorFromWire(w: XseqMessage): RepairErrorMsg | null {
  const h = w.header;
  if (h.type !== MsgType.ERROR) return null;
  const e = decodeError(w.payload);
  if (!e) return null;
  return { type: 'ERROR', session: h.session, first: toNum(h.seq) ?? 0, code: e.code, text: e.text };
}

// ---- Hydra (several sequencers) ------------------------------------------------

/** XSEQ_F_FINAL on a FLUSH: the sequencer left the group for good (bpf/xseq.h). */
export const FLAG_FINAL = Flags.FINAL;

/**
 * TAI nanoseconds as a double. Today's TAI (~1.8e18 ns) is past 2^53, so this
 * rounds to 256 ns; rounding is monotone and the same on every replica, so
 * the merge order it gives is deterministic and the FLUSH promise (later
 * stamps >= the flush clock) survives it. Equal roundings are ties, broken by
 * sequencer id.
 */
export function clockFromWire(ns: bigint): number {
  return Number(ns);
}

/** XSEQ_F_CONTROL on a REQUEST (kept on its SEQUENCED): a group control op, see hydra.ts. */
export const FLAG_CONTROL = Flags.CONTROL;

/** A SEQUENCED with its stamping sequencer and clock (what the merge needs). */
export function hydraSequencedFromWire(w: XseqMessage): SequencedMsg | null {
  const m = sequencedFromWire(w);
  if (!m) return null;
  const h = w.header;
  return { ...m, sequencerId: h.sequencerId, clock: clockFromWire(h.clockNs), ...(h.flags & FLAG_CONTROL ? { control: true } : {}) };
}

export function flushFromWire(w: XseqMessage): FlushMsg | null {
  const h = w.header;
  const seq = toNum(h.seq);
  if (h.type !== MsgType.FLUSH || seq === null) return null;
  return { type: 'FLUSH', sequencerId: h.sequencerId, session: h.session, seq, clock: clockFromWire(h.clockNs), final: (h.flags & FLAG_FINAL) !== 0 };
}

export function flushToWire(m: FlushMsg, a: WireAddressing): Buffer {
  return encodeMessage(
    { ...emptyHeader(), type: MsgType.FLUSH, flags: m.final ? FLAG_FINAL : 0, groupId: a.groupId, sequencerId: m.sequencerId, session: m.session, seq: BigInt(m.seq), clockNs: BigInt(m.clock) },
    new Uint8Array(0),
  );
}

/** replica -> sequencer: "flush now" (sent from the member's ACK address, which the XDP program checks). */
export function flushSolicitToWire(m: FlushSolicitMsg, a: WireAddressing): Buffer {
  return encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: a.groupId, sequencerId: m.sequencerId, replicaId: m.replicaId, session: m.session }, new Uint8Array(0));
}

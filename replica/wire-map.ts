// The fast path and the repair service on the wire: typed messages <-> the
// bpf/wire.ts header and bpf/repair.ts payloads, so the UDP transport is a
// socket plus these functions. Slow-path peer messages are not here (they
// carry logs; see README.md, "What the UDP transport still needs").
import { decodeError, decodeRepairReply, encodeRepairRequest } from '../bpf/repair.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, type XseqMessage } from '../bpf/wire.ts';
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
  };
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

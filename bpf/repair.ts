// Payloads of the repair protocol and of ERROR replies (bpf/xseq.h: struct
// xseq_repair_req, xseq_repair_reply, xseq_error), big endian like the
// header. test/contract.test.ts proves sizes, offsets and codes equal.
import { emptyHeader, encodeMessage, MsgType, type XseqHeader } from './wire.ts';

export const XSEQ_REPAIR_MAX = 128;
export const REPAIR_REQ_SIZE = 4;
export const REPAIR_REPLY_SIZE = 16;
export const ERROR_SIZE = 4;

export const ErrorCode = {
  BAD_REQUEST: 1,
  NOT_MEMBER: 2,
  UNKNOWN_GROUP: 3,
  WRONG_SESSION: 4,
  RANGE_TOO_LARGE: 5,
  /** From the sequencer's XDP program: backpressure, the REQUEST was not stamped; re-send it. */
  BUSY: 6,
  /** A control op (XSEQ_F_CONTROL) that is not authenticated: not stamped (bpf/xseq.h). */
  UNAUTHORIZED: 7,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

type Addressing = Pick<XseqHeader, 'groupId' | 'session' | 'replicaId'>;

/** A replica's request for `count` seqs from `first` on. */
export function encodeRepairRequest(a: Addressing & { first: bigint; count: number }): Buffer {
  const p = Buffer.alloc(REPAIR_REQ_SIZE);
  p.writeUInt32BE(a.count, 0);
  return encodeMessage({ ...emptyHeader(), type: MsgType.REPAIR_REQUEST, groupId: a.groupId, session: a.session, replicaId: a.replicaId, seq: a.first }, p);
}

/** The count a REPAIR_REQUEST payload asks for, or null if malformed. */
export function decodeRepairRequestCount(payload: Uint8Array): number | null {
  if (payload.length !== REPAIR_REQ_SIZE) return null;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.length).readUInt32BE(0);
}

export interface RepairReply {
  count: number;
  resent: number;
  missing: bigint[];
}

export function encodeRepairReply(a: Addressing & { first: bigint; sequencerId: number }, r: RepairReply): Buffer {
  const p = Buffer.alloc(REPAIR_REPLY_SIZE + 8 * r.missing.length);
  p.writeUInt32BE(r.count, 0);
  p.writeUInt32BE(r.resent, 4);
  p.writeUInt32BE(r.missing.length, 8);
  r.missing.forEach((s, i) => p.writeBigUInt64BE(s, REPAIR_REPLY_SIZE + 8 * i));
  return encodeMessage(
    { ...emptyHeader(), type: MsgType.REPAIR_REPLY, groupId: a.groupId, session: a.session, replicaId: a.replicaId, sequencerId: a.sequencerId, seq: a.first },
    p,
  );
}

export function decodeRepairReply(payload: Uint8Array): RepairReply | null {
  if (payload.length < REPAIR_REPLY_SIZE) return null;
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const n = b.readUInt32BE(8);
  if (payload.length !== REPAIR_REPLY_SIZE + 8 * n) return null;
  const missing: bigint[] = [];
  for (let i = 0; i < n; i++) missing.push(b.readBigUInt64BE(REPAIR_REPLY_SIZE + 8 * i));
  return { count: b.readUInt32BE(0), resent: b.readUInt32BE(4), missing };
}

/** struct xseq_error and its text: an ERROR's payload. */
export function encodeErrorPayload(code: number, text: string): Buffer {
  const t = Buffer.from(text, 'utf8').subarray(0, 1024);
  const p = Buffer.alloc(ERROR_SIZE + t.length);
  p.writeUInt16BE(code, 0);
  p.writeUInt16BE(t.length, 2);
  t.copy(p, ERROR_SIZE);
  return p;
}

export function encodeError(a: Addressing & { seq?: bigint }, code: number, text: string): Buffer {
  const p = encodeErrorPayload(code, text);
  return encodeMessage({ ...emptyHeader(), type: MsgType.ERROR, groupId: a.groupId, session: a.session, replicaId: a.replicaId, seq: a.seq ?? 0n }, p);
}

export function decodeError(payload: Uint8Array): { code: number; name: string; text: string } | null {
  if (payload.length < ERROR_SIZE) return null;
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const len = b.readUInt16BE(2);
  if (payload.length !== ERROR_SIZE + len) return null;
  const code = b.readUInt16BE(0);
  const name = (Object.entries(ErrorCode).find(([, v]) => v === code)?.[0] as string | undefined) ?? `code${code}`;
  return { code, name, text: b.subarray(ERROR_SIZE).toString('utf8') };
}

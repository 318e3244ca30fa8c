// Sequences (NEXTVAL) of bpf/xseq.h as TypeScript codecs: the request and
// reply payloads (network order), the per-sequence map values (host order)
// and the counters. test/contract.test.ts proves every size and offset equal
// to the C structs.
import { endianness } from 'node:os';
import { emptyHeader, encodeMessage, MsgType, readHeader, XSEQ_HDR_LEN } from './wire.ts';

const LE = endianness() === 'LE';

export const XSEQ_NV_NAME_MAX = 32;
export const XSEQ_NV_MAX_SEQS = 1024;
export const XSEQ_NV_MAX_COUNT = 1 << 20;
export const XSEQ_NV_F_ENABLED = 0x1;
/** Only NEXTVALs MAC'd under the key of the sequence's group are answered. */
export const XSEQ_NV_F_KEYED = 0x2;
/** Largest value a sequence may reach (values are 0..2^63-1). */
export const NV_VALUE_MAX = (1n << 63n) - 1n;

export const NvStatus = { OK: 0, UNKNOWN: 1, REFUSED: 2 } as const;
export type NvStatusValue = (typeof NvStatus)[keyof typeof NvStatus];

export const NvMapName = {
  SEQS: 'xseq_nv_seqs',
  NAMES: 'xseq_nv_names',
  STATS: 'xseq_nv_stats',
  COUNTERS: 'xseq_nv_counters',
} as const;

/** enum xseq_nv_counter, in order. */
export const NV_COUNTER_NAMES = ['rx', 'reply_ok', 'values', 'refused', 'unknown', 'drop_length', 'drop_flags', 'drop_name', 'drop_count', 'drop_mac'] as const;
export type NvCounterName = (typeof NV_COUNTER_NAMES)[number];

export const NV_REQ_SIZE = 40;
export const NV_REPLY_SIZE = 40;
/** struct xseq_nv_req offsets. */
export const NV_REQ = { count: 0, flags: 4, name: 8 } as const;
/** struct xseq_nv_reply offsets. */
export const NV_REPLY = { first: 0, count: 8, increment: 12, mark: 16, seqId: 24, status: 28, reserved: 32 } as const;
/** struct xseq_nv_seq offsets (host order) and size: one cache line. */
export const NV_SEQ = { next: 0, mark: 8, increment: 16, cache: 24, flags: 28, groupId: 32, size: 64 } as const;
export const NV_STATS = { calls: 0, values: 8, refused: 16, size: 32 } as const;

/** A sequence name: 1..32 bytes of [A-Za-z0-9_.-]. */
export const NV_NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;

/** The name as the kernel's hash key: its bytes, NUL-padded to 32. */
export function encodeName(name: string): Uint8Array {
  const b = new Uint8Array(XSEQ_NV_NAME_MAX);
  const s = Buffer.from(name, 'utf8');
  if (s.length === 0 || s.length > XSEQ_NV_NAME_MAX) throw new RangeError(`sequence name "${name}" must be 1..${XSEQ_NV_NAME_MAX} bytes`);
  b.set(s);
  return b;
}

export function decodeName(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
}

export interface NvRequest {
  name: string;
  /** 0 = the sequence's cache. */
  count: number;
  flags?: number;
}

export function encodeNvRequestPayload(r: NvRequest): Buffer {
  const b = Buffer.alloc(NV_REQ_SIZE);
  b.writeUInt32BE(r.count, NV_REQ.count);
  b.writeUInt32BE(r.flags ?? 0, NV_REQ.flags);
  b.set(encodeName(r.name), NV_REQ.name);
  return b;
}

/** A whole NEXTVAL message (header + payload), ready for a UDP socket. */
export function encodeNextval(r: NvRequest & { clientId: bigint; requestId: bigint; groupId?: number }): Buffer {
  return encodeMessage({ ...emptyHeader(), type: MsgType.NEXTVAL, groupId: r.groupId ?? 0, clientId: r.clientId, requestId: r.requestId }, encodeNvRequestPayload(r));
}

export interface NvReply {
  first: bigint;
  count: number;
  increment: number;
  mark: bigint;
  seqId: number;
  status: number;
}

export function encodeNvReplyPayload(r: NvReply): Buffer {
  const b = Buffer.alloc(NV_REPLY_SIZE);
  b.writeBigUInt64BE(r.first, NV_REPLY.first);
  b.writeUInt32BE(r.count, NV_REPLY.count);
  b.writeUInt32BE(r.increment, NV_REPLY.increment);
  b.writeBigUInt64BE(r.mark, NV_REPLY.mark);
  b.writeUInt32BE(r.seqId, NV_REPLY.seqId);
  b.writeUInt16BE(r.status, NV_REPLY.status);
  return b;
}

export function decodeNvReplyPayload(p: Uint8Array): NvReply {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return {
    first: b.readBigUInt64BE(NV_REPLY.first),
    count: b.readUInt32BE(NV_REPLY.count),
    increment: b.readUInt32BE(NV_REPLY.increment),
    mark: b.readBigUInt64BE(NV_REPLY.mark),
    seqId: b.readUInt32BE(NV_REPLY.seqId),
    status: b.readUInt16BE(NV_REPLY.status),
  };
}

/** A NEXTVAL_REPLY datagram, or undefined for anything else. */
export function decodeNextvalReply(msg: Uint8Array): (NvReply & { clientId: bigint; requestId: bigint }) | undefined {
  if (msg.length !== XSEQ_HDR_LEN + NV_REPLY_SIZE) return undefined;
  let h;
  try {
    h = readHeader(msg);
  } catch {
    return undefined;
  }
  if (h.type !== MsgType.NEXTVAL_REPLY || h.payloadLen !== NV_REPLY_SIZE) return undefined;
  return { ...decodeNvReplyPayload(msg.subarray(XSEQ_HDR_LEN)), clientId: h.clientId, requestId: h.requestId };
}

export interface NvSeqValue {
  next: bigint;
  mark: bigint;
  increment: bigint;
  cache: number;
  enabled: boolean;
  /** Bound to a keyed group: only NEXTVALs MAC'd under its key are answered. */
  keyedGroup?: number;
}

export function encodeNvSeq(v: NvSeqValue): Uint8Array {
  const b = new Uint8Array(NV_SEQ.size);
  const d = new DataView(b.buffer);
  d.setBigUint64(NV_SEQ.next, v.next, LE);
  d.setBigUint64(NV_SEQ.mark, v.mark, LE);
  d.setBigUint64(NV_SEQ.increment, v.increment, LE);
  d.setUint32(NV_SEQ.cache, v.cache, LE);
  d.setUint32(NV_SEQ.flags, (v.enabled ? XSEQ_NV_F_ENABLED : 0) | (v.keyedGroup !== undefined ? XSEQ_NV_F_KEYED : 0), LE);
  d.setUint32(NV_SEQ.groupId, v.keyedGroup ?? 0, LE);
  return b;
}

export function decodeNvSeq(b: Uint8Array): NvSeqValue {
  const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const flags = d.getUint32(NV_SEQ.flags, LE);
  return {
    next: d.getBigUint64(NV_SEQ.next, LE),
    mark: d.getBigUint64(NV_SEQ.mark, LE),
    increment: d.getBigUint64(NV_SEQ.increment, LE),
    cache: d.getUint32(NV_SEQ.cache, LE),
    enabled: (flags & XSEQ_NV_F_ENABLED) !== 0,
    ...(flags & XSEQ_NV_F_KEYED ? { keyedGroup: d.getUint32(NV_SEQ.groupId, LE) } : {}),
  };
}

export interface NvStatsValue {
  calls: bigint;
  values: bigint;
  refused: bigint;
}

/** Sums a per-CPU xseq_nv_stats value. */
export function sumNvStats(perCpu: readonly Uint8Array[]): NvStatsValue {
  const s = { calls: 0n, values: 0n, refused: 0n };
  for (const b of perCpu) {
    const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
    s.calls += d.getBigUint64(NV_STATS.calls, LE);
    s.values += d.getBigUint64(NV_STATS.values, LE);
    s.refused += d.getBigUint64(NV_STATS.refused, LE);
  }
  return s;
}

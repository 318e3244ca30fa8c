// The TypeScript side of the wire format in bpf/xseq.h. Offsets, sizes and
// enum values here are proven equal to the C header by test/contract.test.ts.

export const XSEQ_MAGIC = 0x58534551; // "XSEQ"
export const XSEQ_VERSION = 1;
export const XSEQ_HDR_LEN = 64;
export const XSEQ_MAX_PAYLOAD = 1400;
export const XSEQ_DEFAULT_PORT = 7400;

export const MsgType = {
  REQUEST: 1,
  SEQUENCED: 2,
  ACK: 3,
  REPLY: 4,
  FLUSH: 5,
  FLUSH_SOLICIT: 6,
  REPAIR_REQUEST: 7,
  REPAIR_REPLY: 8,
  GAP_FIND: 9,
  GAP_RECV: 10,
  GAP_DROP: 11,
  GAP_COMMIT: 12,
  GAP_COMMIT_REPLY: 13,
  VIEW_CHANGE_REQUEST: 14,
  VIEW_CHANGE: 15,
  START_VIEW: 16,
  STATE_REQUEST: 17,
  STATE_REPLY: 18,
  SYNC_PREPARE: 19,
  SYNC_REPLY: 20,
  SYNC_COMMIT: 21,
  ERROR: 22,
  NEXTVAL: 23,
  NEXTVAL_REPLY: 24,
  WEIGHTS: 25,
} as const;
export type MsgTypeName = keyof typeof MsgType;
export type MsgTypeValue = (typeof MsgType)[MsgTypeName];
/** First value that is not a type (XSEQ_MSG_TYPE_MAX). */
export const MSG_TYPE_MAX = 26;

export const Flags = {
  RETRANSMIT: 0x0001,
  NOOP: 0x0002,
  RESULT: 0x0004,
  /** FLUSH: the sequencer stopped for good; seq is its last (Hydra). */
  FINAL: 0x0008,
  /** REQUEST/SEQUENCED: a replica-group control op, not the application's (Hydra). */
  CONTROL: 0x0010,
  /** An XSEQ_MAC_LEN-byte MAC trailer follows the payload (bpf/mac.ts). */
  MAC: 0x0020,
  /** Leader's ACK and its REPLY: a stale request id, not executed, no result. */
  STALE: 0x0040,
} as const;

/** Bytes of the MAC trailer of a message flagged MAC (outside payload_len). */
export const XSEQ_MAC_LEN = 8;

/** replica_id of the agent's own FLUSH_SOLICIT (XSEQ_REPLICA_AGENT). */
export const XSEQ_REPLICA_AGENT = 0xffff;

export interface XseqHeader {
  version: number;
  type: number;
  flags: number;
  groupId: number;
  sequencerId: number;
  replicaId: number;
  session: number;
  view: number;
  seq: bigint;
  clockNs: bigint;
  clientId: bigint;
  requestId: bigint;
  payloadLen: number;
}

type FieldKind = 'u8' | 'u16' | 'u32' | 'u64';
export interface FieldLayout {
  /** Member name in struct xseq_hdr. */
  readonly c: string;
  /** Property of XseqHeader, or null for magic/reserved. */
  readonly ts: keyof XseqHeader | null;
  readonly offset: number;
  readonly kind: FieldKind;
}

/** struct xseq_hdr, member by member, in order. */
export const HEADER_LAYOUT: readonly FieldLayout[] = [
  { c: 'magic', ts: null, offset: 0, kind: 'u32' },
  { c: 'version', ts: 'version', offset: 4, kind: 'u8' },
  { c: 'type', ts: 'type', offset: 5, kind: 'u8' },
  { c: 'flags', ts: 'flags', offset: 6, kind: 'u16' },
  { c: 'group_id', ts: 'groupId', offset: 8, kind: 'u32' },
  { c: 'sequencer_id', ts: 'sequencerId', offset: 12, kind: 'u16' },
  { c: 'replica_id', ts: 'replicaId', offset: 14, kind: 'u16' },
  { c: 'session', ts: 'session', offset: 16, kind: 'u32' },
  { c: 'view', ts: 'view', offset: 20, kind: 'u32' },
  { c: 'seq', ts: 'seq', offset: 24, kind: 'u64' },
  { c: 'clock_ns', ts: 'clockNs', offset: 32, kind: 'u64' },
  { c: 'client_id', ts: 'clientId', offset: 40, kind: 'u64' },
  { c: 'request_id', ts: 'requestId', offset: 48, kind: 'u64' },
  { c: 'payload_len', ts: 'payloadLen', offset: 56, kind: 'u32' },
  { c: 'reserved', ts: null, offset: 60, kind: 'u32' },
];

export type WireErrorCode =
  | 'EWIRE_TRUNCATED'
  | 'EWIRE_BAD_MAGIC'
  | 'EWIRE_BAD_VERSION'
  | 'EWIRE_UNKNOWN_TYPE'
  | 'EWIRE_BAD_LENGTH'
  | 'EWIRE_FIELD_RANGE';

export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    readonly code: WireErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface XseqMessage {
  header: XseqHeader;
  /** A view into the input buffer: copy it to keep it past the buffer. */
  payload: Uint8Array;
}

export type DecodeResult = { ok: true; message: XseqMessage } | { ok: false; error: WireError };

/** A header with every field zero but version; spread over it. */
export function emptyHeader(): XseqHeader {
  return {
    version: XSEQ_VERSION,
    type: 0,
    flags: 0,
    groupId: 0,
    sequencerId: 0,
    replicaId: 0,
    session: 0,
    view: 0,
    seq: 0n,
    clockNs: 0n,
    clientId: 0n,
    requestId: 0n,
    payloadLen: 0,
  };
}

const U64_MAX = (1n << 64n) - 1n;

function checkRange(name: string, v: number, bits: 8 | 16 | 32): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new WireError('EWIRE_FIELD_RANGE', `${name}=${v} is not a u${bits}`);
  }
}

function checkRange64(name: string, v: bigint): void {
  if (v < 0n || v > U64_MAX) throw new WireError('EWIRE_FIELD_RANGE', `${name}=${v} is not a u64`);
}

/**
 * Writes the 64-byte header at `offset` of `out`, network byte order.
 * Throws WireError EWIRE_FIELD_RANGE when a field does not fit its width.
 */
export function encodeHeader(h: XseqHeader, out: Uint8Array, offset = 0): void {
  if (out.length - offset < XSEQ_HDR_LEN) {
    throw new WireError('EWIRE_TRUNCATED', `need ${XSEQ_HDR_LEN} bytes at offset ${offset}, have ${out.length - offset}`);
  }
  checkRange('version', h.version, 8);
  checkRange('type', h.type, 8);
  checkRange('flags', h.flags, 16);
  checkRange('groupId', h.groupId, 32);
  checkRange('sequencerId', h.sequencerId, 16);
  checkRange('replicaId', h.replicaId, 16);
  checkRange('session', h.session, 32);
  checkRange('view', h.view, 32);
  checkRange('payloadLen', h.payloadLen, 32);
  checkRange64('seq', h.seq);
  checkRange64('clockNs', h.clockNs);
  checkRange64('clientId', h.clientId);
  checkRange64('requestId', h.requestId);
  const v = new DataView(out.buffer, out.byteOffset + offset, XSEQ_HDR_LEN);
  v.setUint32(0, XSEQ_MAGIC);
  v.setUint8(4, h.version);
  v.setUint8(5, h.type);
  v.setUint16(6, h.flags);
  v.setUint32(8, h.groupId);
  v.setUint16(12, h.sequencerId);
  v.setUint16(14, h.replicaId);
  v.setUint32(16, h.session);
  v.setUint32(20, h.view);
  v.setBigUint64(24, h.seq);
  v.setBigUint64(32, h.clockNs);
  v.setBigUint64(40, h.clientId);
  v.setBigUint64(48, h.requestId);
  v.setUint32(56, h.payloadLen);
  v.setUint32(60, 0);
}

/** Header plus payload in one buffer; payloadLen is set from the payload. */
export function encodeMessage(h: Omit<XseqHeader, 'payloadLen'> & { payloadLen?: number }, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(XSEQ_HDR_LEN + payload.length);
  encodeHeader({ ...h, payloadLen: payload.length }, out, 0);
  out.set(payload, XSEQ_HDR_LEN);
  return out;
}

/** Reads the header fields without validating magic, version or lengths. */
export function readHeader(buf: Uint8Array, offset = 0): XseqHeader {
  const v = new DataView(buf.buffer, buf.byteOffset + offset, XSEQ_HDR_LEN);
  return {
    version: v.getUint8(4),
    type: v.getUint8(5),
    flags: v.getUint16(6),
    groupId: v.getUint32(8),
    sequencerId: v.getUint16(12),
    replicaId: v.getUint16(14),
    session: v.getUint32(16),
    view: v.getUint32(20),
    seq: v.getBigUint64(24),
    clockNs: v.getBigUint64(32),
    clientId: v.getBigUint64(40),
    requestId: v.getBigUint64(48),
    payloadLen: v.getUint32(56),
  };
}

/**
 * Decodes one xseq message (a UDP payload). Never throws: bad bytes come
 * back as a WireError with a stable code, checked in the same order as the
 * kernel program checks them.
 */
export function decodeMessage(buf: Uint8Array): DecodeResult {
  const fail = (code: WireErrorCode, message: string): DecodeResult => ({ ok: false, error: new WireError(code, message) });
  if (buf.length < XSEQ_HDR_LEN) return fail('EWIRE_TRUNCATED', `message is ${buf.length} bytes, header needs ${XSEQ_HDR_LEN}`);
  const v = new DataView(buf.buffer, buf.byteOffset, XSEQ_HDR_LEN);
  const magic = v.getUint32(0);
  if (magic !== XSEQ_MAGIC) return fail('EWIRE_BAD_MAGIC', `magic 0x${magic.toString(16)} is not 0x${XSEQ_MAGIC.toString(16)}`);
  const header = readHeader(buf);
  if (header.version !== XSEQ_VERSION) return fail('EWIRE_BAD_VERSION', `version ${header.version} is not supported (want ${XSEQ_VERSION})`);
  if (header.type === 0 || header.type >= MSG_TYPE_MAX) return fail('EWIRE_UNKNOWN_TYPE', `type ${header.type} is unknown`);
  // A MAC trailer is outside payload_len; it is checked (bpf/mac.ts) by
  // whoever holds the group's key, before decoding.
  const trailer = header.flags & Flags.MAC ? XSEQ_MAC_LEN : 0;
  if (header.payloadLen > XSEQ_MAX_PAYLOAD || header.payloadLen !== buf.length - XSEQ_HDR_LEN - trailer) {
    return fail('EWIRE_BAD_LENGTH', `payload_len ${header.payloadLen} but ${buf.length - XSEQ_HDR_LEN - trailer} bytes follow the header (max ${XSEQ_MAX_PAYLOAD})`);
  }
  return { ok: true, message: { header, payload: buf.subarray(XSEQ_HDR_LEN, buf.length - trailer) } };
}

/** Name of a message type value, or `type<N>` for unknown values. */
export function msgTypeName(t: number): string {
  for (const [k, v] of Object.entries(MsgType)) if (v === t) return k;
  return `type${t}`;
}

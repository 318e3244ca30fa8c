// The replica-side XDP program's part of bpf/xseq.h (replica.bpf.c) as
// TypeScript codecs. Sizes and offsets are proven equal to the C structs by
// test/contract.test.ts; the loader (replica/xdp/) checks every map's key
// and value size against these at load.

import { endianness } from 'node:os';

// Map values hold host-order fields; the kernel and this process share a CPU.
const LE = endianness() === 'LE';

export const PROG_REPLICA = 'xseq_replica';
export const RxMapName = {
  CTL: 'xseq_rx_ctl',
  STATE: 'xseq_rx_state',
  COUNTERS: 'xseq_rx_counters',
  GAPS: 'xseq_rx_gaps',
  SOURCES: 'xseq_rx_sources',
  MAC_KEYS: 'xseq_rx_mac_keys',
} as const;
export const XSEQ_RX_STREAMS = 1024;
export const XSEQ_RX_GAPS_BYTES = 64 * 1024;
export const XSEQ_RX_SOURCES = 64;

/** enum xseq_rx_counter, in order: index i is the counter with value i. */
export const RX_COUNTER_NAMES = [
  'rx',
  'sequenced',
  'pass_malformed',
  'pass_other_type',
  'pass_untracked',
  'pass_newer_session',
  'drop_stale_session',
  'drop_duplicate',
  'drop_retransmit_old',
  'pass_retransmit',
  'gap_events',
  'events_lost',
  'drop_stranger',
  'drop_bad_mac',
] as const;
export type RxCounterName = (typeof RX_COUNTER_NAMES)[number];
export type RxCounters = Record<RxCounterName, bigint>;

/** One stream: a (group, sequencer) pair. */
export interface RxKey {
  groupId: number;
  sequencerId: number;
}

export const RX_KEY_SIZE = 8;
/** struct xseq_rx_key, host order, pad zero (it is part of the hash). */
export function encodeRxKey(k: RxKey): Uint8Array {
  const out = new Uint8Array(RX_KEY_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, k.groupId, LE);
  v.setUint16(4, k.sequencerId, LE);
  return out;
}
export function decodeRxKey(b: Uint8Array): RxKey {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return { groupId: v.getUint32(0, LE), sequencerId: v.getUint16(4, LE) };
}

export interface RxCtl {
  session: number;
  /** Highest seq of `session` in the replica's log. */
  delivered: bigint;
  /** Retransmitted copies at most this far below delivered still pass. */
  retransmitKeep: bigint;
}
export const RX_CTL_SIZE = 24;
export function encodeRxCtl(c: RxCtl): Uint8Array {
  const out = new Uint8Array(RX_CTL_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, c.session, LE);
  v.setBigUint64(8, c.delivered, LE);
  v.setBigUint64(16, c.retransmitKeep, LE);
  return out;
}
export function decodeRxCtl(b: Uint8Array): RxCtl {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return { session: v.getUint32(0, LE), delivered: v.getBigUint64(8, LE), retransmitKeep: v.getBigUint64(16, LE) };
}

export interface RxState {
  session: number;
  highestSeen: bigint;
  droppedStale: bigint;
  droppedDuplicate: bigint;
  passedRetransmit: bigint;
  gapEvents: bigint;
  gapSeqs: bigint;
}
export const RX_STATE_SIZE = 56;
/** struct xseq_rx_state field offsets; test/contract.test.ts checks them. */
export const RX_STATE = {
  session: 0,
  highestSeen: 8,
  droppedStale: 16,
  droppedDuplicate: 24,
  passedRetransmit: 32,
  gapEvents: 40,
  gapSeqs: 48,
} as const;
export function decodeRxState(b: Uint8Array): RxState {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const u64 = (o: number) => v.getBigUint64(o, LE);
  return {
    session: v.getUint32(RX_STATE.session, LE),
    highestSeen: u64(RX_STATE.highestSeen),
    droppedStale: u64(RX_STATE.droppedStale),
    droppedDuplicate: u64(RX_STATE.droppedDuplicate),
    passedRetransmit: u64(RX_STATE.passedRetransmit),
    gapEvents: u64(RX_STATE.gapEvents),
    gapSeqs: u64(RX_STATE.gapSeqs),
  };
}
/** The zeroed value user space creates beside a ctl entry. */
export function emptyRxState(): Uint8Array {
  return new Uint8Array(RX_STATE_SIZE);
}

export interface GapEvent {
  groupId: number;
  sequencerId: number;
  session: number;
  /** First and last missing seq, inclusive. */
  from: bigint;
  to: bigint;
}
export const GAP_EVENT_SIZE = 32;
export function decodeGapEvent(b: Uint8Array): GapEvent {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return {
    groupId: v.getUint32(0, LE),
    sequencerId: v.getUint16(4, LE),
    session: v.getUint32(8, LE),
    from: v.getBigUint64(16, LE),
    to: v.getBigUint64(24, LE),
  };
}
/** Tests and the contract build events the way the kernel lays them out. */
export function encodeGapEvent(e: GapEvent): Uint8Array {
  const out = new Uint8Array(GAP_EVENT_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, e.groupId, LE);
  v.setUint16(4, e.sequencerId, LE);
  v.setUint32(8, e.session, LE);
  v.setBigUint64(16, e.from, LE);
  v.setBigUint64(24, e.to, LE);
  return out;
}

export const RX_CFG_SIZE = 4;
/** struct xseq_rx_cfg, the program's .rodata: the group port (network order), the source check. */
export function encodeRxCfg(c: { port: number; checkSources?: boolean }): Uint8Array {
  const out = new Uint8Array(RX_CFG_SIZE);
  new DataView(out.buffer).setUint16(0, c.port, false);
  out[2] = c.checkSources ? 1 : 0;
  return out;
}

export const RX_SOURCE_SIZE = 8;
/** struct xseq_rx_source: a sequencer's IPv4 address and UDP port, network order, pad zero. */
export function encodeRxSource(s: { host: string; port: number }): Uint8Array {
  const out = new Uint8Array(RX_SOURCE_SIZE);
  const parts = s.host.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError(`"${s.host}" is not an IPv4 address`);
  out.set(parts, 0);
  new DataView(out.buffer).setUint16(4, s.port, false);
  return out;
}

export function zeroRxCounters(): RxCounters {
  return Object.fromEntries(RX_COUNTER_NAMES.map((n) => [n, 0n])) as RxCounters;
}

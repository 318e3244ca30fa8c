// Map keys and values of bpf/xseq.h, as TypeScript codecs. Sizes and field
// offsets are proven equal to the C structs by test/contract.test.ts; the
// loader checks every map's key/value size against these at open.

import { endianness } from 'node:os';

// Map values hold host-order fields; the kernel and this process share a CPU.
const LE = endianness() === 'LE';

export const XSEQ_MAX_GROUPS = 256;
export const XSEQ_GROUP_F_ENABLED = 0x1;
export const XSEQ_EVENTS_BYTES = 64 * 1024;

export const MapName = {
  GROUPS: 'xseq_groups',
  GROUP_SEQ: 'xseq_group_seq',
  COUNTERS: 'xseq_counters',
  EVENTS: 'xseq_events',
} as const;
export const PROG_SEQUENCER = 'xseq_sequencer';
export const PIN_ROOT = '/sys/fs/bpf/xseq';

/** enum xseq_counter, in order: index i is the counter with value i. */
export const COUNTER_NAMES = [
  'rx',
  'sequenced',
  'drop_truncated',
  'drop_bad_magic',
  'drop_bad_version',
  'drop_bad_length',
  'drop_unknown_type',
  'drop_unexpected_type',
  'drop_unknown_group',
  'drop_ip_options',
  'drop_fragment',
  'events_lost',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, bigint>;
export const CTR = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])) as Record<CounterName, number>;

export function zeroCounters(): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0n])) as Counters;
}

/** A u32 map key in host order (ARRAY keys are host-order indexes). */
export function u32Key(i: number): Uint8Array {
  const k = new Uint8Array(4);
  new DataView(k.buffer).setUint32(0, i, LE);
  return k;
}

export const GROUP_SIZE = 16;
export interface GroupConfig {
  /** Dotted IPv4 multicast address. */
  mcastAddr: string;
  mcastPort: number;
  sequencerId: number;
  session: number;
  enabled: boolean;
}

function ipv4Bytes(addr: string): number[] {
  const parts = addr.split('.');
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new RangeError(`"${addr}" is not a dotted IPv4 address`);
  }
  return bytes;
}

export function isMulticastIpv4(addr: string): boolean {
  try {
    const b0 = ipv4Bytes(addr)[0]!;
    return b0 >= 224 && b0 <= 239;
  } catch {
    return false;
  }
}

/** struct xseq_group: addr and port in network order, the rest host order. */
export function encodeGroup(g: GroupConfig): Uint8Array {
  const out = new Uint8Array(GROUP_SIZE);
  out.set(ipv4Bytes(g.mcastAddr), 0);
  const v = new DataView(out.buffer);
  v.setUint16(4, g.mcastPort, false);
  v.setUint16(6, g.sequencerId, LE);
  v.setUint32(8, g.session, LE);
  v.setUint32(12, g.enabled ? XSEQ_GROUP_F_ENABLED : 0, LE);
  return out;
}

export function decodeGroup(b: Uint8Array): GroupConfig {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return {
    mcastAddr: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`,
    mcastPort: v.getUint16(4, false),
    sequencerId: v.getUint16(6, LE),
    session: v.getUint32(8, LE),
    enabled: (v.getUint32(12, LE) & XSEQ_GROUP_F_ENABLED) !== 0,
  };
}

export const GROUP_SEQ_SIZE = 64;
export function decodeGroupSeq(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, b.length).getBigUint64(0, LE);
}
export function encodeGroupSeq(seq: bigint): Uint8Array {
  const out = new Uint8Array(GROUP_SEQ_SIZE);
  new DataView(out.buffer).setBigUint64(0, seq, LE);
  return out;
}

export const LOAD_CFG_SIZE = 8;
/** struct xseq_load_cfg, the sequencer's .rodata. */
export function encodeLoadCfg(cfg: { port: number }): Uint8Array {
  const out = new Uint8Array(LOAD_CFG_SIZE);
  new DataView(out.buffer).setUint16(0, cfg.port, false);
  return out;
}

export const DROP_EVENT_SIZE = 16;
export interface DropEvent {
  reason: CounterName | `counter${number}`;
  saddr: string;
  sport: number;
  frameLen: number;
}
export function decodeDropEvent(b: Uint8Array): DropEvent {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const r = v.getUint32(0, LE);
  return {
    reason: COUNTER_NAMES[r] ?? `counter${r}`,
    saddr: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`,
    sport: v.getUint16(8, false),
    frameLen: v.getUint32(12, LE),
  };
}

/** Sums one per-CPU u64 counter slot over all CPUs. */
export function sumPerCpu(values: readonly Uint8Array[]): bigint {
  let s = 0n;
  for (const b of values) s += new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, LE);
  return s;
}

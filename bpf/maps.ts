// Map keys and values of bpf/xseq.h, as TypeScript codecs. Sizes and field
// offsets are proven equal to the C structs by test/contract.test.ts; the
// loader checks every map's key/value size against these at open.

import { endianness } from 'node:os';

// Map values hold host-order fields; the kernel and this process share a CPU.
const LE = endianness() === 'LE';

export const XSEQ_MAX_GROUPS = 256;
export const XSEQ_GROUP_F_ENABLED = 0x1;
/** Removed from the group (Hydra): no stamping, FLUSHes are FINAL. */
export const XSEQ_GROUP_F_DRAINING = 0x2;
export const XSEQ_EVENTS_BYTES = 64 * 1024;

export const MapName = {
  GROUPS: 'xseq_groups',
  GROUP_SEQ: 'xseq_group_seq',
  COUNTERS: 'xseq_counters',
  EVENTS: 'xseq_events',
  SLOTS: 'xseq_slots',
  QUORUM_HIST: 'xseq_quorum_hist',
  RELEASED: 'xseq_released',
  WEIGHTS: 'xseq_weights',
  MAC_KEYS: 'xseq_mac_keys',
  CLIENT_SOURCES: 'xseq_client_sources',
  SOLICIT_LAST: 'xseq_solicit_last',
} as const;
/** Entries of xseq_client_sources (LRU: client id -> first source, groups without a key). */
export const XSEQ_CLIENT_SOURCES = 65536;
/** struct xseq_client_source: addr (network order), port (network order), pad. */
export const CLIENT_SOURCE_SIZE = 8;
/** A solicitor is answered at most once per this many ns (bpf/flush.h). */
export const XSEQ_SOLICIT_GAP_NS = 50_000;
export const XSEQ_MAX_REPLICAS = 8;
export const XSEQ_RESULT_CAP = 256;
export const XSEQ_MSG_CAP = 64 + 1400;
export const XSEQ_HIST_BUCKETS = 40;
/** Index of the nanosecond sum in xseq_quorum_hist, after the buckets. */
export const XSEQ_HIST_SUM = XSEQ_HIST_BUCKETS;
export const XSEQ_CFG_F_OVERWRITE = 0x1;
export const XSEQ_SLOT_F_REPLIED = 0x1;
/** xseq_slot.state: the leader's stored answer is a stale mark (XSEQ_F_STALE). */
export const XSEQ_SLOT_F_STALE = 0x2;
/** xseq_slot.acks: (view << 32) | (generation << 8) | bitmap (bpf/xseq.h). */
export const XSEQ_ACKS_BITMAP = 0xff;
export const XSEQ_ACKS_GEN_SHIFT = 8;
export const XSEQ_ACKS_GEN_MASK = 0xffffff;
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
  'ack_rx',
  'ack_counted',
  'ack_duplicate',
  'ack_late',
  'reply',
  'drop_ack_stranger',
  'drop_ack_session',
  'drop_ack_window',
  'drop_ack_stale_view',
  'drop_result_too_big',
  'ack_view_reset',
  'window_overwrite',
  'drop_backpressure',
  'drop_no_window',
  'flush',
  'flush_final',
  'drop_solicit_stranger',
  'drop_draining',
  'reply_grow_failed',
  'reply_headroom',
  'drop_ack_weights',
  'drop_bad_mac',
  'drop_mac_room',
  'busy',
  'drop_client_mac',
  'drop_client_source',
  'control_refused',
  'drop_solicit_rate',
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

export const GROUP_SIZE = 24 + 8 * XSEQ_MAX_REPLICAS;
export interface Member {
  /** Dotted IPv4 address the replica sends its ACKs from. */
  addr: string;
  /** UDP source port of its ACKs. */
  port: number;
}
export interface GroupConfig {
  /** Dotted IPv4 multicast address. */
  mcastAddr: string;
  mcastPort: number;
  sequencerId: number;
  session: number;
  enabled: boolean;
  /** Removed from the group (Hydra): requests refused, FLUSHes FINAL.
   * Absent = false. */
  draining?: boolean;
  /** Replicas, by replica id; empty = no ack aggregation, no window. */
  members?: Member[];
  /** ACKs that certify a request, the leader's included (default: majority).
   * Ignored when `weights` is set. */
  quorum?: number;
  /** Voting weight of each member, by replica id (0..255): a request is
   * certified once the leader and more than half the total weight acked.
   * Absent: the count `quorum`. */
  weights?: number[];
  /** Version of the weight table requests are stamped under (xseq_weights;
   * 0 = none). Set by Sequencer.setGroup, read back by group(). */
  weightsVersion?: number;
  /** Index of the group's first slot in xseq_slots. */
  windowBase?: number;
}

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
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

/** struct xseq_group: addresses and ports in network order, the rest host order. */
export function encodeGroup(g: GroupConfig): Uint8Array {
  const members = g.members ?? [];
  if (members.length > XSEQ_MAX_REPLICAS) throw new RangeError(`${members.length} members; at most ${XSEQ_MAX_REPLICAS}`);
  const out = new Uint8Array(GROUP_SIZE);
  out.set(ipv4Bytes(g.mcastAddr), 0);
  const v = new DataView(out.buffer);
  v.setUint16(4, g.mcastPort, false);
  v.setUint16(6, g.sequencerId, LE);
  v.setUint32(8, g.session, LE);
  v.setUint32(12, (g.enabled ? XSEQ_GROUP_F_ENABLED : 0) | (g.draining ? XSEQ_GROUP_F_DRAINING : 0), LE);
  v.setUint8(16, members.length);
  v.setUint8(17, members.length ? (g.quorum ?? majority(members.length)) : 0);
  v.setUint16(18, g.weightsVersion ?? 0, LE);
  v.setUint32(20, g.windowBase ?? 0, LE);
  members.forEach((m, i) => {
    out.set(ipv4Bytes(m.addr), 24 + 8 * i);
    v.setUint16(24 + 8 * i + 4, m.port, false);
  });
  return out;
}

export function decodeGroup(b: Uint8Array): GroupConfig {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const n = v.getUint8(16);
  const members: Member[] = [];
  for (let i = 0; i < n && i < XSEQ_MAX_REPLICAS; i++) {
    const o = 24 + 8 * i;
    members.push({ addr: `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`, port: v.getUint16(o + 4, false) });
  }
  return {
    mcastAddr: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`,
    mcastPort: v.getUint16(4, false),
    sequencerId: v.getUint16(6, LE),
    session: v.getUint32(8, LE),
    enabled: (v.getUint32(12, LE) & XSEQ_GROUP_F_ENABLED) !== 0,
    ...(v.getUint32(12, LE) & XSEQ_GROUP_F_DRAINING ? { draining: true } : {}),
    members,
    quorum: v.getUint8(17),
    ...(v.getUint16(18, LE) ? { weightsVersion: v.getUint16(18, LE) } : {}),
    windowBase: v.getUint32(20, LE),
  };
}

/** struct xseq_weights: a group's weight table of one version. */
export const WEIGHTS_SIZE = 8 + XSEQ_MAX_REPLICAS;
/** Its key in xseq_weights: two entries per group, by version parity. */
export function weightsKey(groupId: number, version: number): Uint8Array {
  return u32Key(2 * groupId + (version & 1));
}
export function encodeWeights(version: number, weights: readonly number[]): Uint8Array {
  const out = new Uint8Array(WEIGHTS_SIZE);
  new DataView(out.buffer).setUint32(0, version, LE);
  weights.forEach((w, i) => (out[8 + i] = w));
  return out;
}
export function decodeWeights(b: Uint8Array): { version: number; weights: number[] } {
  return { version: new DataView(b.buffer, b.byteOffset, b.length).getUint32(0, LE), weights: [...b.subarray(8, 8 + XSEQ_MAX_REPLICAS)] };
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

export const LOAD_CFG_SIZE = 20;
export interface LoadConfig {
  port: number;
  /** Slots per group window, a power of two (aggregating groups only). */
  windowSlots?: number;
  /** Largest leader result, at most XSEQ_RESULT_CAP. */
  maxResult?: number;
  /** What a request whose slot is still unacked gets. */
  policy?: 'backpressure' | 'overwrite';
  /** A solicitor is answered at most once per this many ns (default XSEQ_SOLICIT_GAP_NS; 0 = no gap). */
  solicitGapNs?: number;
}
/** struct xseq_load_cfg, the sequencer's .rodata. */
export function encodeLoadCfg(cfg: LoadConfig): Uint8Array {
  const out = new Uint8Array(LOAD_CFG_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(0, cfg.port, false);
  v.setUint32(4, cfg.policy === 'overwrite' ? XSEQ_CFG_F_OVERWRITE : 0, LE);
  v.setUint32(8, cfg.windowSlots ?? 1, LE);
  v.setUint32(12, cfg.maxResult ?? XSEQ_RESULT_CAP, LE);
  v.setUint32(16, cfg.solicitGapNs ?? XSEQ_SOLICIT_GAP_NS, LE);
  return out;
}

/** Reads struct xseq_load_cfg back (from a pinned .rodata); windows comes
 * from the slot map's size. */
export function decodeLoadCfg(b: Uint8Array, slotEntries: number): {
  port: number;
  windowSlots: number;
  windows: number;
  maxResult: number;
  policy: 'backpressure' | 'overwrite';
} {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const windowSlots = v.getUint32(8, LE);
  return {
    port: v.getUint16(0, false),
    policy: v.getUint32(4, LE) & XSEQ_CFG_F_OVERWRITE ? 'overwrite' : 'backpressure',
    windowSlots,
    windows: Math.max(1, Math.floor(slotEntries / Math.max(1, windowSlots))),
    maxResult: v.getUint32(12, LE),
  };
}

/** struct xseq_slot field offsets; test/contract.test.ts checks them. */
export const SLOT = {
  size: 56 + XSEQ_RESULT_CAP + XSEQ_MSG_CAP,
  seq: 0,
  acks: 8,
  stampNs: 16,
  session: 24,
  state: 28,
  clientAddr: 32,
  clientPort: 36,
  clientMac: 38,
  msgLen: 44,
  resultLen: 46,
  resultView: 48,
  weightsVersion: 52,
  result: 56,
  msg: 56 + XSEQ_RESULT_CAP,
} as const;

export interface SlotView {
  seq: bigint;
  view: number;
  /** Bitmap of replicas that acked in `view`. */
  acked: number;
  stampNs: bigint;
  session: number;
  replied: boolean;
  client: { addr: string; port: number };
  /** The stamped message (a copy). */
  msg: Uint8Array;
  /** The leader's result, if stored for `view`. */
  result: Uint8Array | undefined;
  /** The weight table version the seq was stamped under (0 = count quorum). */
  weightsVersion: number;
}

/** Decodes one struct xseq_slot (copying the message and result out). */
export function decodeSlot(b: Uint8Array): SlotView {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const acks = v.getBigUint64(SLOT.acks, LE);
  const view = Number(acks >> 32n);
  const msgLen = Math.min(v.getUint16(SLOT.msgLen, LE), XSEQ_MSG_CAP);
  const resultView = v.getUint32(SLOT.resultView, LE);
  const resultLen = Math.min(v.getUint16(SLOT.resultLen, LE), XSEQ_RESULT_CAP);
  const a = SLOT.clientAddr;
  return {
    seq: v.getBigUint64(SLOT.seq, LE),
    view,
    acked: Number(acks & BigInt(XSEQ_ACKS_BITMAP)),
    stampNs: v.getBigUint64(SLOT.stampNs, LE),
    session: v.getUint32(SLOT.session, LE),
    replied: (v.getUint32(SLOT.state, LE) & XSEQ_SLOT_F_REPLIED) !== 0,
    client: { addr: `${b[a]}.${b[a + 1]}.${b[a + 2]}.${b[a + 3]}`, port: v.getUint16(SLOT.clientPort, false) },
    msg: b.slice(SLOT.msg, SLOT.msg + msgLen),
    result: resultView === view + 1 ? b.slice(SLOT.result, SLOT.result + resultLen) : undefined,
    weightsVersion: v.getUint32(SLOT.weightsVersion, LE),
  };
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

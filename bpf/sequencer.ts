// The sequencer object: the typed layer between the libbpf binding and the
// agent. Opens sequencer.bpf.o, sets its load-time configuration, loads it,
// checks every map against the contract, and gives typed access to groups,
// sequence numbers, counters and drop events.
import { join } from 'node:path';
import { endianness } from 'node:os';
import { BpfMap, BpfObjectSpec, type BpfObject, type BpfProgram, RingBuffer, type XdpLink } from './libbpf/index.ts';
import {
  COUNTER_NAMES,
  type CounterName,
  type Counters,
  CTR,
  decodeDropEvent,
  decodeGroup,
  decodeWeights,
  encodeWeights,
  weightsKey,
  WEIGHTS_SIZE,
  decodeGroupSeq,
  type DropEvent,
  DROP_EVENT_SIZE,
  encodeGroup,
  encodeGroupSeq,
  encodeLoadCfg,
  decodeLoadCfg,
  LOAD_CFG_SIZE,
  type GroupConfig,
  GROUP_SEQ_SIZE,
  GROUP_SIZE,
  isMulticastIpv4,
  majority,
  MapName,
  CLIENT_SOURCE_SIZE,
  XSEQ_SOLICIT_GAP_NS,
  SLOT,
  type SlotView,
  decodeSlot,
  XSEQ_HIST_BUCKETS,
  XSEQ_HIST_SUM,
  XSEQ_MAX_REPLICAS,
  XSEQ_RESULT_CAP,
  PROG_SEQUENCER,
  sumPerCpu,
  u32Key,
  XSEQ_MAX_GROUPS,
} from './maps.ts';
import { encodeMacKey, type GroupKey, MAC_KEY_SIZE, XSEQ_KEY_F_SET } from './mac.ts';
import { XSEQ_DEFAULT_PORT } from './wire.ts';
import { NV_SEQ, NV_STATS, NvMapName, XSEQ_NV_NAME_MAX } from './nextval.ts';

// Map values are host order (the kernel and this process share a CPU).
const HOST_LE = endianness() === 'LE';

export const SEQUENCER_OBJECT = join(import.meta.dirname, 'build', 'sequencer.bpf.o');

export type AttachMode = 'native' | 'generic';

export interface SequencerOptions {
  /** Path of sequencer.bpf.o; defaults to the one `make -C bpf` builds. */
  objectPath?: string;
  /** UDP port the sequencer serves (default 7400). */
  port?: number;
  /** Slots per aggregating group's window, a power of two (default 1024). */
  windowSlots?: number;
  /** How many aggregating groups can have a window (default 4). */
  windows?: number;
  /** Largest leader result in bytes, 0..256 (default 256). */
  maxResult?: number;
  /** A request whose slot is not acked by every member yet: dropped
   * ('backpressure', the default; the client retries) or 'overwrite'. */
  policy?: 'backpressure' | 'overwrite';
  /** FLUSH_SOLICITs: each solicitor answered at most once per this many ns
   * (default 50 µs, XSEQ_SOLICIT_GAP_NS; tests of the gap set it). */
  solicitGapNs?: number;
}

export const DEFAULT_WINDOW_SLOTS = 1024;
export const DEFAULT_WINDOWS = 4;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly code: 'ECONFIG_GROUP' | 'ECONFIG_PORT' | 'ECONFIG_WINDOW',
    message: string,
  ) {
    super(message);
  }
}

export function checkGroupId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= XSEQ_MAX_GROUPS) {
    throw new ConfigError('ECONFIG_GROUP', `group id ${id} is out of range: use 0..${XSEQ_MAX_GROUPS - 1}`);
  }
}

export function checkGroupConfig(id: number, g: GroupConfig): void {
  checkGroupId(id);
  if (!isMulticastIpv4(g.mcastAddr)) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: "${g.mcastAddr}" is not an IPv4 multicast address (224.0.0.0-239.255.255.255)`);
  }
  if (!Number.isInteger(g.mcastPort) || g.mcastPort < 1 || g.mcastPort > 65535) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: port ${g.mcastPort} is not 1..65535`);
  }
  if (!Number.isInteger(g.sequencerId) || g.sequencerId < 0 || g.sequencerId > 65535) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: sequencer id ${g.sequencerId} is not 0..65535`);
  }
  if (!Number.isInteger(g.session) || g.session < 0 || g.session > 0xffffffff) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: session ${g.session} is not a u32`);
  }
  const members = g.members ?? [];
  if (members.length > XSEQ_MAX_REPLICAS) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: ${members.length} members; at most ${XSEQ_MAX_REPLICAS}`);
  }
  members.forEach((m, i) => {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(m.addr) || m.addr.split('.').some((o) => Number(o) > 255) || isMulticastIpv4(m.addr)) {
      throw new ConfigError('ECONFIG_GROUP', `group ${id}: member ${i} address "${m.addr}" is not a unicast IPv4 address`);
    }
    if (!Number.isInteger(m.port) || m.port < 1 || m.port > 65535) {
      throw new ConfigError('ECONFIG_GROUP', `group ${id}: member ${i} port ${m.port} is not 1..65535`);
    }
  });
  if (g.weights) {
    if (g.quorum !== undefined) throw new ConfigError('ECONFIG_GROUP', `group ${id}: set either quorum or weights, not both`);
    if (g.weights.length !== members.length || g.weights.some((w) => !Number.isInteger(w) || w < 0 || w > 255) || !g.weights.some((w) => w > 0)) {
      throw new ConfigError('ECONFIG_GROUP', `group ${id}: weights [${g.weights.join(', ')}] must be one whole number 0..255 per member (${members.length}), not all 0`);
    }
  }
  if (members.length && g.quorum !== undefined && (!Number.isInteger(g.quorum) || g.quorum < majority(members.length) || g.quorum > members.length)) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: quorum ${g.quorum} must be ${majority(members.length)}..${members.length} for ${members.length} members (a majority, at most all)`);
  }
}

/** The maps of a loaded sequencer, by role; each is also pinned by this name. */
const MAP_PINS = {
  groups: MapName.GROUPS,
  groupSeq: MapName.GROUP_SEQ,
  counters: MapName.COUNTERS,
  events: MapName.EVENTS,
  slots: MapName.SLOTS,
  hist: MapName.QUORUM_HIST,
  released: MapName.RELEASED,
  weights: MapName.WEIGHTS,
  macKeys: MapName.MAC_KEYS,
  clientSources: MapName.CLIENT_SOURCES,
  solicitLast: MapName.SOLICIT_LAST,
  nvSeqs: NvMapName.SEQS,
  nvNames: NvMapName.NAMES,
  nvStats: NvMapName.STATS,
  nvCounters: NvMapName.COUNTERS,
  rodata: 'rodata',
} as const;
type MapRole = keyof typeof MAP_PINS;
const MAP_SIZES: Record<MapRole, { keySize: number; valueSize: number } | undefined> = {
  groups: { keySize: 4, valueSize: GROUP_SIZE },
  groupSeq: { keySize: 4, valueSize: GROUP_SEQ_SIZE },
  counters: { keySize: 4, valueSize: 8 },
  events: undefined,
  slots: { keySize: 4, valueSize: SLOT.size },
  hist: { keySize: 4, valueSize: 8 },
  released: { keySize: 4, valueSize: 8 },
  weights: { keySize: 4, valueSize: WEIGHTS_SIZE },
  macKeys: { keySize: 4, valueSize: MAC_KEY_SIZE },
  clientSources: { keySize: 8, valueSize: CLIENT_SOURCE_SIZE },
  solicitLast: { keySize: 4, valueSize: 8 },
  nvSeqs: { keySize: 4, valueSize: NV_SEQ.size },
  nvNames: { keySize: XSEQ_NV_NAME_MAX, valueSize: 4 },
  nvStats: { keySize: 4, valueSize: NV_STATS.size },
  nvCounters: { keySize: 4, valueSize: 8 },
  rodata: { keySize: 4, valueSize: LOAD_CFG_SIZE },
};
/** The pin of the XDP link, beside the maps. */
export const LINK_PIN = 'link';

export interface LoadedConfig {
  port: number;
  windowSlots: number;
  windows: number;
  maxResult: number;
  policy: 'backpressure' | 'overwrite';
}

export class Sequencer {
  /** The program, when this process loaded it; absent when adopted from pins. */
  readonly #program: BpfProgram | undefined;
  readonly #maps: Record<MapRole, BpfMap>;
  private readonly counterKeys = COUNTER_NAMES.map((_, i) => u32Key(i));
  readonly port: number;
  readonly windowSlots: number;
  readonly windows: number;
  readonly config: LoadedConfig;

  private constructor(
    private readonly obj: BpfObject | undefined,
    maps: Record<MapRole, BpfMap>,
  ) {
    this.#program = obj?.program(PROG_SEQUENCER);
    this.#maps = maps;
    this.config = decodeLoadCfg(maps.rodata.lookup(u32Key(0))!, maps.slots.maxEntries);
    this.port = this.config.port;
    this.windowSlots = this.config.windowSlots;
    this.windows = this.config.windows;
  }

  get program(): BpfProgram {
    if (!this.#program) throw new ConfigError('ECONFIG_PORT', 'this sequencer was adopted from pins: its program is attached, not held');
    return this.#program;
  }

  /** The sequence maps (bpf/nextval.h), for bpf/sequences.ts. */
  get nvMaps(): { seqs: BpfMap; names: BpfMap; stats: BpfMap; counters: BpfMap } {
    return { seqs: this.#maps.nvSeqs, names: this.#maps.nvNames, stats: this.#maps.nvStats, counters: this.#maps.nvCounters };
  }
  /** struct xseq_slot array of every window. */
  get slots(): BpfMap {
    return this.#maps.slots;
  }

  private get groups(): BpfMap {
    return this.#maps.groups;
  }
  private get groupSeq(): BpfMap {
    return this.#maps.groupSeq;
  }
  private get counterMap(): BpfMap {
    return this.#maps.counters;
  }
  private get eventMap(): BpfMap {
    return this.#maps.events;
  }
  private get hist(): BpfMap {
    return this.#maps.hist;
  }

  /** Opens, configures and loads the program (not attached yet). */
  static load(opts: SequencerOptions = {}): Sequencer {
    const port = opts.port ?? XSEQ_DEFAULT_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError('ECONFIG_PORT', `port ${port} is not 1..65535`);
    }
    const windowSlots = opts.windowSlots ?? DEFAULT_WINDOW_SLOTS;
    if (!Number.isInteger(windowSlots) || windowSlots < 2 || windowSlots > 1 << 20 || (windowSlots & (windowSlots - 1)) !== 0) {
      throw new ConfigError('ECONFIG_WINDOW', `window size ${windowSlots} must be a power of two from 2 to 1048576`);
    }
    const windows = opts.windows ?? DEFAULT_WINDOWS;
    if (!Number.isInteger(windows) || windows < 1 || windows > XSEQ_MAX_GROUPS) {
      throw new ConfigError('ECONFIG_WINDOW', `windows ${windows} must be 1..${XSEQ_MAX_GROUPS}`);
    }
    const maxResult = opts.maxResult ?? XSEQ_RESULT_CAP;
    if (!Number.isInteger(maxResult) || maxResult < 0 || maxResult > XSEQ_RESULT_CAP) {
      throw new ConfigError('ECONFIG_WINDOW', `max result ${maxResult} must be 0..${XSEQ_RESULT_CAP} bytes`);
    }
    const spec = BpfObjectSpec.open(opts.objectPath ?? SEQUENCER_OBJECT);
    let obj: BpfObject | undefined;
    try {
      const solicitGapNs = opts.solicitGapNs ?? XSEQ_SOLICIT_GAP_NS;
      if (!Number.isInteger(solicitGapNs) || solicitGapNs < 0 || solicitGapNs > 0xffffffff) throw new ConfigError('ECONFIG_WINDOW', `solicit gap ${solicitGapNs} ns must be 0..4294967295`);
      spec.setRodata(encodeLoadCfg({ port, windowSlots, maxResult, policy: opts.policy ?? 'backpressure', solicitGapNs }));
      spec.setMaxEntries(MapName.SLOTS, windowSlots * windows);
      obj = spec.load();
      const o = obj;
      const maps = Object.fromEntries(
        (Object.keys(MAP_PINS) as MapRole[]).map((role) => [role, o.map(role === 'rodata' ? '.rodata' : MAP_PINS[role], MAP_SIZES[role])]),
      ) as Record<MapRole, BpfMap>;
      return new Sequencer(o, maps);
    } catch (e) {
      if (obj) obj.close();
      else spec.close();
      throw e;
    }
  }

  /**
   * Re-adopts a data path another process loaded and pinned under `dir`
   * (pinMaps): the same maps, so seqs and counters continue. Every map is
   * checked against the contract; a pin that does not match is reported.
   */
  static adopt(dir: string): Sequencer {
    const opened: BpfMap[] = [];
    try {
      const maps = Object.fromEntries(
        (Object.keys(MAP_PINS) as MapRole[]).map((role) => {
          const m = BpfMap.fromPin(join(dir, MAP_PINS[role]), MAP_SIZES[role]);
          opened.push(m);
          return [role, m];
        }),
      ) as Record<MapRole, BpfMap>;
      return new Sequencer(undefined, maps);
    } catch (e) {
      for (const m of opened) m.close();
      throw e;
    }
  }

  /** Pins every map under `dir` (created by the caller), so adopt() can
   * find them after this process is gone. */
  pinMaps(dir: string): void {
    for (const role of Object.keys(MAP_PINS) as MapRole[]) this.#maps[role].pin(join(dir, MAP_PINS[role]));
  }

  /** The pin names pinMaps() creates, for cleanup and status. */
  static pinNames(): string[] {
    return [...Object.values(MAP_PINS), LINK_PIN];
  }

  /** Configures a group. An aggregating group (with members) takes window
   * number `window` (0..windows-1, default its id modulo windows). */
  setGroup(id: number, g: GroupConfig, window?: number): void {
    checkGroupConfig(id, g);
    let windowBase = 0;
    if (g.members?.length) {
      const w = window ?? id % this.windows;
      if (!Number.isInteger(w) || w < 0 || w >= this.windows) {
        throw new ConfigError('ECONFIG_WINDOW', `group ${id}: window ${w} is not 0..${this.windows - 1}`);
      }
      windowBase = w * this.windowSlots;
    }
    const weightsVersion = g.weights && g.members?.length ? this.#weightsFor(id, g.weights) : 0;
    this.groups.update(u32Key(id), encodeGroup({ ...g, windowBase, weightsVersion }));
  }

  /**
   * The version of the group's weight table holding `weights`: the current
   * one when it already does, else a new version written into the other
   * entry (xseq_weights in bpf/xseq.h) before the caller switches the group
   * to it, so requests stamped before keep the table they were stamped under.
   */
  #weightsFor(id: number, weights: readonly number[]): number {
    const cur = this.weightTable(id);
    if (cur && cur.weights.length === weights.length && cur.weights.every((w, i) => w === weights[i])) return cur.version;
    // Newer than anything either entry held, even after the group was disabled.
    const seen = [0, 1].map((p) => decodeWeights(this.#maps.weights.lookup(weightsKey(id, p)) ?? new Uint8Array(WEIGHTS_SIZE)).version);
    const next = Math.max(cur?.version ?? 0, ...seen) + 1;
    const version = next > 0xffff ? 1 : next;
    this.#maps.weights.update(weightsKey(id, version), encodeWeights(version, weights));
    return version;
  }

  /** The weight table new requests of the group are stamped under, if any. */
  weightTable(id: number): { version: number; weights: number[] } | undefined {
    checkGroupId(id);
    const raw = this.groups.lookup(u32Key(id));
    const g = raw ? decodeGroup(raw) : undefined;
    if (!g?.weightsVersion) return undefined;
    const v = this.#maps.weights.lookup(weightsKey(id, g.weightsVersion));
    const t = v ? decodeWeights(v) : undefined;
    if (!t || t.version !== g.weightsVersion) return undefined;
    return { version: t.version, weights: t.weights.slice(0, g.members?.length ?? 0) };
  }

  /** The slot that holds (or last held) `seq` of group `id`. */
  slot(id: number, seq: bigint): SlotView | undefined {
    const g = this.group(id);
    if (!g?.members?.length) return undefined;
    const idx = (g.windowBase ?? 0) + Number(seq & BigInt(this.windowSlots - 1));
    const v = this.slots.lookup(u32Key(idx));
    return v ? decodeSlot(v) : undefined;
  }

  /** Stamp-to-quorum histogram: count per log2-nanosecond bucket. */
  quorumHistogram(): bigint[] {
    return Array.from({ length: XSEQ_HIST_BUCKETS }, (_, i) => sumPerCpu(this.hist.lookupPerCpu(u32Key(i))));
  }

  /** Sum of every stamp-to-quorum time the histogram counted, ns. */
  quorumNanosSum(): bigint {
    return sumPerCpu(this.hist.lookupPerCpu(u32Key(XSEQ_HIST_SUM)));
  }

  group(id: number): GroupConfig | undefined {
    checkGroupId(id);
    const v = this.groups.lookup(u32Key(id));
    if (!v) return undefined;
    const g = decodeGroup(v);
    if (!g.enabled) return undefined;
    const t = g.weightsVersion ? this.weightTable(id) : undefined;
    if (!t) return g;
    const { quorum: _count, ...weighted } = g;
    return { ...weighted, weights: t.weights };
  }

  /** Stops stamping for a group: its requests are then dropped as unknown. */
  disableGroup(id: number): void {
    checkGroupId(id);
    this.groups.update(u32Key(id), new Uint8Array(GROUP_SIZE));
  }

  /** The last seq stamped for a group (0 before the first). */
  lastSeq(id: number): bigint {
    checkGroupId(id);
    const v = this.groupSeq.lookup(u32Key(id));
    return v ? decodeGroupSeq(v) : 0n;
  }

  /** Only for a group that is not stamping: a new session starts at seq 1,
   * and nothing of it is released yet. */
  resetSeq(id: number): void {
    checkGroupId(id);
    this.setReleased(id, 0n);
    this.groupSeq.update(u32Key(id), encodeGroupSeq(0n));
    this.resetSolicitGap(id);
  }

  /**
   * Forgets when each solicitor of the group was last answered (bpf/flush.h
   * XSEQ_SOLICIT_GAP_NS): its next solicit is answered whatever the time.
   * A new session starts this way (resetSeq).
   */
  resetSolicitGap(id: number): void {
    checkGroupId(id);
    const zero = new Uint8Array(8);
    for (let slot = 0; slot <= XSEQ_MAX_REPLICAS; slot++) this.#maps.solicitLast.update(u32Key(id * (XSEQ_MAX_REPLICAS + 1) + slot), zero);
  }

  /** The source a client id is bound to (groups without a key; xseq_client_sources), or null. */
  clientSource(clientId: bigint): { addr: string; port: number } | null {
    const k = new Uint8Array(8);
    new DataView(k.buffer).setBigUint64(0, clientId, HOST_LE);
    const v = this.#maps.clientSources.lookup(k);
    if (!v) return null;
    return { addr: [...v.subarray(0, 4)].join('.'), port: (v[4]! << 8) | v[5]! };
  }

  /**
   * Releases every seq <= `seq` of the group's current session: under
   * backpressure their slots free even if a member never acks them
   * (xseq_released in bpf/xseq.h says when the agent may). One whole-value
   * map update, so the kernel reads the old or the new value, never a mix.
   */
  setReleased(id: number, seq: bigint): void {
    checkGroupId(id);
    const v = new Uint8Array(8);
    new DataView(v.buffer).setBigUint64(0, seq, HOST_LE);
    this.#maps.released.update(u32Key(id), v);
  }

  /** The group's released seq (0 = none). */
  released(id: number): bigint {
    checkGroupId(id);
    const v = this.#maps.released.lookup(u32Key(id));
    return v ? new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, HOST_LE) : 0n;
  }

  /**
   * Sets (or, with null, removes) the group's MAC key: from the next packet
   * on, the kernel stamps a MAC on every SEQUENCED and FLUSH of the group
   * and requires one on its ACKs (bpf/xseq.h, "Authentication"). One
   * whole-value update: a packet sees the old key or the new one.
   */
  setKey(id: number, key: GroupKey | null): void {
    checkGroupId(id);
    this.#maps.macKeys.update(u32Key(id), encodeMacKey(key));
  }

  /** Whether the group has a key in the kernel. */
  hasKey(id: number): boolean {
    checkGroupId(id);
    const v = this.#maps.macKeys.lookup(u32Key(id));
    return !!v && (new DataView(v.buffer, v.byteOffset, v.length).getUint32(16, HOST_LE) & XSEQ_KEY_F_SET) !== 0;
  }

  /** ACKs whose bit was already set, summed over CPUs: a re-send the
   * member did not need (the adaptive RTO's Karn rule, agent/rto.ts). */
  ackDuplicates(): bigint {
    return sumPerCpu(this.counterMap.lookupPerCpu(this.counterKeys[CTR.ack_duplicate]!));
  }

  /** Every counter, summed over CPUs. */
  counters(): Counters {
    const out = {} as Counters;
    COUNTER_NAMES.forEach((name, i) => {
      out[name] = sumPerCpu(this.counterMap.lookupPerCpu(this.counterKeys[i]!));
    });
    return out;
  }

  /** One counter, per CPU (index = CPU number). */
  counterPerCpu(name: CounterName): bigint[] {
    return this.counterMap.lookupPerCpu(this.counterKeys[CTR[name]]!).map((b) => sumPerCpu([b]));
  }

  /** Drop samples from the kernel; call poll()/consume() on the result. */
  dropEvents(onEvent: (ev: DropEvent) => void): RingBuffer {
    return new RingBuffer(this.eventMap, (data) => {
      if (data.length >= DROP_EVENT_SIZE) onEvent(decodeDropEvent(data));
    });
  }

  /** Another program of the same object (the bench's variants). */
  extraProgram(name: string): BpfProgram {
    if (!this.obj) throw new ConfigError('ECONFIG_PORT', 'adopted sequencer: no object');
    return this.obj.program(name);
  }

  /** Another map of the same object (the bench's fixtures). */
  extraMap(name: string, sizes: { keySize: number; valueSize: number }): BpfMap {
    if (!this.obj) throw new ConfigError('ECONFIG_PORT', 'adopted sequencer: no object');
    return this.obj.map(name, sizes);
  }

  attach(ifname: string, mode: AttachMode): XdpLink {
    return this.program.attachXdp(ifname, mode);
  }

  close(): void {
    if (this.obj) this.obj.close();
    else for (const m of Object.values(this.#maps)) m.close();
  }
}

// The sequencer object: the typed layer between the libbpf binding and the
// agent. Opens sequencer.bpf.o, sets its load-time configuration, loads it,
// checks every map against the contract, and gives typed access to groups,
// sequence numbers, counters and drop events.
import { join } from 'node:path';
import { BpfObjectSpec, type BpfMap, type BpfObject, type BpfProgram, RingBuffer, type XdpLink } from './libbpf/index.ts';
import {
  COUNTER_NAMES,
  type CounterName,
  type Counters,
  CTR,
  decodeDropEvent,
  decodeGroup,
  decodeGroupSeq,
  type DropEvent,
  DROP_EVENT_SIZE,
  encodeGroup,
  encodeGroupSeq,
  encodeLoadCfg,
  type GroupConfig,
  GROUP_SEQ_SIZE,
  GROUP_SIZE,
  isMulticastIpv4,
  majority,
  MapName,
  SLOT,
  type SlotView,
  decodeSlot,
  XSEQ_HIST_BUCKETS,
  XSEQ_MAX_REPLICAS,
  XSEQ_RESULT_CAP,
  PROG_SEQUENCER,
  sumPerCpu,
  u32Key,
  XSEQ_MAX_GROUPS,
} from './maps.ts';
import { XSEQ_DEFAULT_PORT } from './wire.ts';

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
  if (members.length && g.quorum !== undefined && (!Number.isInteger(g.quorum) || g.quorum < majority(members.length) || g.quorum > members.length)) {
    throw new ConfigError('ECONFIG_GROUP', `group ${id}: quorum ${g.quorum} must be ${majority(members.length)}..${members.length} for ${members.length} members (a majority, at most all)`);
  }
}

export class Sequencer {
  readonly program: BpfProgram;
  private readonly groups: BpfMap;
  private readonly groupSeq: BpfMap;
  private readonly counterMap: BpfMap;
  private readonly eventMap: BpfMap;
  /** struct xseq_slot array of every window. */
  readonly slots: BpfMap;
  private readonly hist: BpfMap;
  private readonly counterKeys = COUNTER_NAMES.map((_, i) => u32Key(i));

  private constructor(
    private readonly obj: BpfObject,
    readonly port: number,
    readonly windowSlots: number,
    readonly windows: number,
  ) {
    this.program = obj.program(PROG_SEQUENCER);
    this.groups = obj.map(MapName.GROUPS, { keySize: 4, valueSize: GROUP_SIZE });
    this.groupSeq = obj.map(MapName.GROUP_SEQ, { keySize: 4, valueSize: GROUP_SEQ_SIZE });
    this.counterMap = obj.map(MapName.COUNTERS, { keySize: 4, valueSize: 8 });
    this.eventMap = obj.map(MapName.EVENTS);
    this.slots = obj.map(MapName.SLOTS, { keySize: 4, valueSize: SLOT.size });
    this.hist = obj.map(MapName.QUORUM_HIST, { keySize: 4, valueSize: 8 });
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
    try {
      spec.setRodata(encodeLoadCfg({ port, windowSlots, maxResult, policy: opts.policy ?? 'backpressure' }));
      spec.setMaxEntries(MapName.SLOTS, windowSlots * windows);
      return new Sequencer(spec.load(), port, windowSlots, windows);
    } catch (e) {
      spec.close();
      throw e;
    }
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
    this.groups.update(u32Key(id), encodeGroup({ ...g, windowBase }));
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

  group(id: number): GroupConfig | undefined {
    checkGroupId(id);
    const v = this.groups.lookup(u32Key(id));
    if (!v) return undefined;
    const g = decodeGroup(v);
    return g.enabled ? g : undefined;
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

  /** Only for a group that is not stamping: a new session starts at seq 1. */
  resetSeq(id: number): void {
    checkGroupId(id);
    this.groupSeq.update(u32Key(id), encodeGroupSeq(0n));
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
    return this.obj.program(name);
  }

  /** Another map of the same object (the bench's fixtures). */
  extraMap(name: string, sizes: { keySize: number; valueSize: number }): BpfMap {
    return this.obj.map(name, sizes);
  }

  attach(ifname: string, mode: AttachMode): XdpLink {
    return this.program.attachXdp(ifname, mode);
  }

  close(): void {
    this.obj.close();
  }
}

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
  MapName,
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
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly code: 'ECONFIG_GROUP' | 'ECONFIG_PORT',
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
}

export class Sequencer {
  readonly program: BpfProgram;
  private readonly groups: BpfMap;
  private readonly groupSeq: BpfMap;
  private readonly counterMap: BpfMap;
  private readonly eventMap: BpfMap;
  private readonly counterKeys = COUNTER_NAMES.map((_, i) => u32Key(i));

  private constructor(
    private readonly obj: BpfObject,
    readonly port: number,
  ) {
    this.program = obj.program(PROG_SEQUENCER);
    this.groups = obj.map(MapName.GROUPS, { keySize: 4, valueSize: GROUP_SIZE });
    this.groupSeq = obj.map(MapName.GROUP_SEQ, { keySize: 4, valueSize: GROUP_SEQ_SIZE });
    this.counterMap = obj.map(MapName.COUNTERS, { keySize: 4, valueSize: 8 });
    this.eventMap = obj.map(MapName.EVENTS);
  }

  /** Opens, configures and loads the program (not attached yet). */
  static load(opts: SequencerOptions = {}): Sequencer {
    const port = opts.port ?? XSEQ_DEFAULT_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError('ECONFIG_PORT', `port ${port} is not 1..65535`);
    }
    const spec = BpfObjectSpec.open(opts.objectPath ?? SEQUENCER_OBJECT);
    try {
      spec.setRodata(encodeLoadCfg({ port }));
      return new Sequencer(spec.load(), port);
    } catch (e) {
      spec.close();
      throw e;
    }
  }

  setGroup(id: number, g: GroupConfig): void {
    checkGroupConfig(id, g);
    this.groups.update(u32Key(id), encodeGroup(g));
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

  attach(ifname: string, mode: AttachMode): XdpLink {
    return this.program.attachXdp(ifname, mode);
  }

  close(): void {
    this.obj.close();
  }
}

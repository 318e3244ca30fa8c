// ReplicaXdp: the replica-side XDP program (bpf/replica.bpf.c) on the
// layered libbpf binding: BpfObjectSpec (port in .rodata) -> load -> maps
// checked against bpf/replica-maps.ts -> attachXdp on the replica's
// interface. It tells the kernel what the replica holds per stream
// (session, delivered) and hands the kernel's gap events to a callback.
//
// Nothing is pinned and the attachment is a bpf_link owned by this process:
// when the replica exits or crashes the program goes with it. A program
// that outlived its replica would drop, as duplicates, everything a
// restarted replica (its log gone) needs again.
import { join } from 'node:path';
import {
  BpfError,
  BpfMap,
  BpfObjectSpec,
  type BpfObject,
  type BpfProgram,
  RingBuffer,
  type XdpLink,
  type XdpMode,
} from '../../bpf/libbpf/index.ts';
import { EEXIST, ENOENT, EOPNOTSUPP } from '../../bpf/libbpf/errors.ts';
import { encodeMacKey, type GroupKey, MAC_KEY_SIZE } from '../../bpf/mac.ts';
import { sumPerCpu, u32Key } from '../../bpf/maps.ts';
import {
  decodeGapEvent,
  decodeRxCtl,
  decodeRxState,
  emptyRxState,
  encodeRxCfg,
  encodeRxCtl,
  encodeRxKey,
  encodeRxSource,
  GAP_EVENT_SIZE,
  type GapEvent,
  PROG_REPLICA,
  RX_COUNTER_NAMES,
  RX_CTL_SIZE,
  RX_KEY_SIZE,
  RX_SOURCE_SIZE,
  RX_STATE_SIZE,
  type RxCounters,
  type RxCtl,
  type RxKey,
  RxMapName,
  type RxState,
  XSEQ_RX_SOURCES,
  XSEQ_RX_STREAMS,
} from '../../bpf/replica-maps.ts';

export const REPLICA_OBJECT = join(import.meta.dirname, '..', '..', 'bpf', 'build', 'replica.bpf.o');

/**
 * Default retransmit margin: the agent's largest window (window.slots is at
 * most 2^20, agent/config.ts). A retransmission further below delivered
 * than the sequencer's window cannot be counted by its aggregator, so
 * with the margin at least the window no needed re-ACK is ever dropped
 * (bpf/replica.h, rx_filter). Set it to the agent's window.slots to drop
 * more of them in the kernel.
 */
export const DEFAULT_RETRANSMIT_KEEP = 1 << 20;

export type ReplicaXdpErrorCode =
  /** The program cannot be loaded here: no privileges, no libbpf, not built, verifier. */
  | 'EXDP_UNAVAILABLE'
  /** No such interface, or no interface holds the member address. */
  | 'EXDP_NO_INTERFACE'
  /** Attach refused: another XDP program on the interface, or the mode is unsupported. */
  | 'EXDP_ATTACH'
  /** Anything else the kernel refused. */
  | 'EXDP_FAILED';

export class ReplicaXdpError extends Error {
  override readonly name = 'ReplicaXdpError';
  constructor(
    readonly code: ReplicaXdpErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Classifies a binding error by what an operator does about it. */
export function xdpErrorFrom(e: unknown, what: string): ReplicaXdpError {
  if (e instanceof ReplicaXdpError) return e;
  if (!(e instanceof BpfError)) return new ReplicaXdpError('EXDP_FAILED', `${what}: ${(e as Error).message ?? String(e)}`, { cause: e });
  const code: ReplicaXdpErrorCode = (() => {
    switch (e.code) {
      case 'EBPF_LIBBPF_MISSING':
      case 'EBPF_OBJECT_MISSING':
      case 'EBPF_PERMISSION':
      case 'EBPF_VERIFIER':
      case 'EBPF_LOAD':
      case 'EBPF_OPEN':
        return 'EXDP_UNAVAILABLE';
      case 'EBPF_NO_INTERFACE':
        return 'EXDP_NO_INTERFACE';
      case 'EBPF_ATTACH':
        return 'EXDP_ATTACH';
      default:
        return 'EXDP_FAILED';
    }
  })();
  return new ReplicaXdpError(code, `${what}: ${e.message}`, { cause: e });
}

export interface ReplicaXdpLoadOptions {
  /** The group's UDP port on this host. */
  port: number;
  /** Default: the object `make -C bpf` builds. */
  objectPath?: string;
  /** Retransmitted copies this far below delivered still pass (default DEFAULT_RETRANSMIT_KEEP). */
  retransmitKeep?: number;
  /**
   * The configured sequencers' xseq address:port (IPv4 literals). Given,
   * the program drops SEQUENCED and FLUSH to the group port from anywhere
   * else (counter drop_stranger), as the UDP transport does in user space.
   */
  sequencers?: readonly { host: string; port: number }[];
}

function streamId(k: RxKey): string {
  return `${k.groupId}/${k.sequencerId}`;
}

export class ReplicaXdp {
  readonly program: BpfProgram;
  readonly port: number;
  private readonly ctl: BpfMap;
  private readonly state: BpfMap;
  private readonly counterMap: BpfMap;
  private readonly gapMap: BpfMap;
  private readonly sourceMap: BpfMap;
  private readonly keyMap: BpfMap;
  private readonly counterKeys = RX_COUNTER_NAMES.map((_, i) => u32Key(i));
  private readonly streamsSet = new Map<string, RxKey>();
  private link: XdpLink | null = null;
  private ring: RingBuffer | null = null;
  private attachedTo: { iface: string; mode: XdpMode } | null = null;
  /**
   * What the replica of each group last said it holds (setDelivered): per
   * stream ("group/sequencer") in a group with several sequencers, else
   * per group ("group/*": every sequencer id the group's one stream comes
   * under).
   */
  private readonly positions = new Map<string, { session: number; delivered: bigint }>();
  readonly retransmitKeep: bigint;

  private constructor(
    private obj: BpfObject | null,
    port: number,
    retransmitKeep: number,
  ) {
    this.port = port;
    this.retransmitKeep = BigInt(retransmitKeep);
    const o = obj!;
    this.program = o.program(PROG_REPLICA);
    this.ctl = o.map(RxMapName.CTL, { keySize: RX_KEY_SIZE, valueSize: RX_CTL_SIZE });
    this.state = o.map(RxMapName.STATE, { keySize: RX_KEY_SIZE, valueSize: RX_STATE_SIZE });
    this.counterMap = o.map(RxMapName.COUNTERS, { keySize: 4, valueSize: 8 });
    this.gapMap = o.map(RxMapName.GAPS);
    this.sourceMap = o.map(RxMapName.SOURCES, { keySize: RX_SOURCE_SIZE, valueSize: 4 });
    this.keyMap = o.map(RxMapName.MAC_KEYS, { keySize: 4, valueSize: MAC_KEY_SIZE });
  }

  /** Loads the program (nothing attached yet). Throws ReplicaXdpError. */
  static load(o: ReplicaXdpLoadOptions): ReplicaXdp {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      throw new ReplicaXdpError('EXDP_FAILED', `group port ${o.port} is not 1..65535`);
    }
    const keep = o.retransmitKeep ?? DEFAULT_RETRANSMIT_KEEP;
    if (!Number.isSafeInteger(keep) || keep < 0) throw new ReplicaXdpError('EXDP_FAILED', `retransmitKeep ${keep} is not a non-negative integer`);
    if ((o.sequencers?.length ?? 0) > XSEQ_RX_SOURCES) throw new ReplicaXdpError('EXDP_FAILED', `more than ${XSEQ_RX_SOURCES} sequencer addresses`);
    let spec: BpfObjectSpec | undefined;
    let obj: BpfObject | undefined;
    try {
      spec = BpfObjectSpec.open(o.objectPath ?? REPLICA_OBJECT);
      spec.setRodata(encodeRxCfg({ port: o.port, checkSources: o.sequencers !== undefined }));
      obj = spec.load();
      const x = new ReplicaXdp(obj, o.port, keep);
      // Written before the program is attached: it never runs with the check on and the map empty.
      const one = new Uint8Array(4);
      new DataView(one.buffer).setUint32(0, 1, true);
      for (const q of o.sequencers ?? []) x.sourceMap.update(encodeRxSource(q), one, 'any');
      return x;
    } catch (e) {
      spec?.close();
      obj?.close();
      throw xdpErrorFrom(e, 'loading the replica XDP program');
    }
  }

  /**
   * Attaches to `iface` as a bpf_link. 'auto' takes native XDP and falls
   * back to generic when the driver has none; which one it took and why is
   * in the result.
   */
  attach(iface: string, mode: XdpMode | 'auto'): { mode: XdpMode; reason: string } {
    if (this.link) throw new ReplicaXdpError('EXDP_ATTACH', `already attached to ${this.attachedTo?.iface}`);
    const tryMode = (m: XdpMode): XdpLink => {
      try {
        return this.program.attachXdp(iface, m);
      } catch (e) {
        throw xdpErrorFrom(e, `attaching the replica XDP program to '${iface}' (${m})`);
      }
    };
    let reason: string;
    let taken: XdpMode;
    if (mode !== 'auto') {
      this.link = tryMode(mode);
      taken = mode;
      reason = 'configured';
    } else {
      try {
        this.link = tryMode('native');
        taken = 'native';
        reason = 'the driver has native XDP';
      } catch (e) {
        // Only a driver without native XDP makes generic worth a try; a busy
        // interface is busy in both modes.
        const cause = (e as ReplicaXdpError).cause as BpfError | undefined;
        if ((e as ReplicaXdpError).code !== 'EXDP_ATTACH' || cause?.errno !== EOPNOTSUPP) throw e;
        this.link = tryMode('generic');
        taken = 'generic';
        reason = `native XDP refused (${cause.errnoName}): generic`;
      }
    }
    this.attachedTo = { iface, mode: taken };
    return { mode: taken, reason };
  }

  get attached(): { iface: string; mode: XdpMode; linkId: number; progId: number } | null {
    if (!this.link || !this.attachedTo) return null;
    const info = this.link.info();
    return { ...this.attachedTo, linkId: info.id, progId: info.progId };
  }

  /**
   * Starts tracking a stream: a zeroed state entry, then its ctl. Until a
   * stream is tracked its packets all pass. Idempotent (a second call only
   * rewrites the ctl).
   */
  track(key: RxKey, ctl: RxCtl): void {
    const k = encodeRxKey(key);
    if (!this.streamsSet.has(streamId(key))) {
      if (this.streamsSet.size >= XSEQ_RX_STREAMS) {
        throw new ReplicaXdpError('EXDP_FAILED', `more than ${XSEQ_RX_STREAMS} (group, sequencer) streams`);
      }
      // 'noexist' keeps the kernel's counters if the entry is there already.
      try {
        this.state.update(k, emptyRxState(), 'noexist');
      } catch (e) {
        if ((e as BpfError).errno !== EEXIST) throw xdpErrorFrom(e, 'creating a stream');
      }
      this.streamsSet.set(streamId(key), { ...key });
    }
    this.ctl.update(k, encodeRxCtl(ctl), 'any');
  }

  /**
   * The replica of `groupId` holds seqs 1..seq of `session` of sequencer
   * `sequencerId`'s stream (one HASH update, which replaces the value
   * atomically). Without `sequencerId` (a group with one sequencer, whose
   * id is whatever stamped) every tracked stream of the group learns it.
   */
  setDelivered(groupId: number, session: number, seq: number, sequencerId?: number): void {
    const pos = { session, delivered: BigInt(seq) };
    if (sequencerId !== undefined) {
      const key = { groupId, sequencerId };
      this.positions.set(streamId(key), pos);
      if (this.streamsSet.has(streamId(key))) this.track(key, { ...pos, retransmitKeep: this.retransmitKeep });
      return;
    }
    this.positions.set(`${groupId}/*`, pos);
    for (const k of this.streamsSet.values()) {
      if (k.groupId === groupId) this.track(k, { ...pos, retransmitKeep: this.retransmitKeep });
    }
  }

  /**
   * A SEQUENCED of this stream reached user space: track it from now on,
   * starting from what the group's replica holds. Returns true when it was
   * new. Until then its packets all passed, so nothing was lost by waiting.
   */
  see(key: RxKey): boolean {
    if (this.streamsSet.has(streamId(key))) return false;
    const pos = this.positions.get(streamId(key)) ?? this.positions.get(`${key.groupId}/*`) ?? { session: 0, delivered: 0n };
    this.track(key, { ...pos, retransmitKeep: this.retransmitKeep });
    return true;
  }

  /**
   * The group's MAC key (null: none). With a key, the program drops every
   * SEQUENCED and FLUSH of the group whose MAC is missing or wrong
   * (drop_bad_mac) before any other check, so nothing unauthenticated moves
   * a stream's position or posts a gap. One whole-value update.
   */
  setKey(groupId: number, key: GroupKey | null): void {
    try {
      if (key) this.keyMap.update(u32Key(groupId), encodeMacKey(key), 'any');
      else this.keyMap.delete(u32Key(groupId));
    } catch (e) {
      if (!key && (e as BpfError).errno === ENOENT) return;
      throw xdpErrorFrom(e, `setting the MAC key of group ${groupId}`);
    }
  }

  /** Forgets a stream: its packets pass again. */
  untrack(key: RxKey): void {
    const k = encodeRxKey(key);
    this.ctl.delete(k);
    this.state.delete(k);
    this.streamsSet.delete(streamId(key));
  }

  streams(): RxKey[] {
    return [...this.streamsSet.values()];
  }

  isTracked(key: RxKey): boolean {
    return this.streamsSet.has(streamId(key));
  }

  ctlOf(key: RxKey): RxCtl | undefined {
    const v = this.ctl.lookup(encodeRxKey(key));
    return v ? decodeRxCtl(v) : undefined;
  }

  stateOf(key: RxKey): RxState | undefined {
    const v = this.state.lookup(encodeRxKey(key));
    return v ? decodeRxState(v) : undefined;
  }

  counters(): RxCounters {
    const out = {} as RxCounters;
    RX_COUNTER_NAMES.forEach((name, i) => {
      out[name] = sumPerCpu(this.counterMap.lookupPerCpu(this.counterKeys[i]!));
    });
    return out;
  }

  /**
   * Gap events, delivered from the Node event loop as they are posted
   * (RingBuffer.watch). With `watch: false` the caller drains them with
   * consumeGaps() instead (tests).
   */
  onGap(cb: (ev: GapEvent) => void, opts: { watch?: boolean; onError?: (e: unknown) => void } = {}): void {
    if (this.ring) throw new ReplicaXdpError('EXDP_FAILED', 'gap events already have a consumer');
    this.ring = new RingBuffer(this.gapMap, (data) => {
      if (data.length >= GAP_EVENT_SIZE) cb(decodeGapEvent(data));
    });
    if (opts.watch !== false) this.ring.watch(opts.onError);
  }

  /** Delivers the gap events ready now; returns how many. */
  consumeGaps(): number {
    return this.ring?.consume() ?? 0;
  }

  /** Detaches, stops the gap events and frees the program and maps. Idempotent. */
  close(): void {
    this.ring?.close();
    this.ring = null;
    if (this.link) {
      try {
        this.link.detach();
      } catch {
        // The interface went away first: the link is gone with it.
        this.link.close();
      }
    }
    this.link = null;
    this.attachedTo = null;
    this.obj?.close();
    this.obj = null;
  }
}

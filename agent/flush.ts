// The flush timer (Hydra). XDP runs only when a packet arrives, so the
// periodic FLUSH that lets replicas pass an idle sequencer is the agent's
// job: every flushIntervalMs it runs the attached sequencer program on its
// own FLUSH_SOLICIT for each group (agent/flush-frame.ts), with
// BPF_PROG_TEST_RUN in live-frames mode and the interface as ingress
// device. The program answers it like a member's solicit and its XDP_TX
// really transmits the FLUSH (the same way the bench's generator sends
// requests), so the flush's clock and seq are read in the kernel, in the
// order bpf/flush.h guarantees, never by this process.
//
// Live frames transmit through the driver's XDP transmit hook
// (ndo_xdp_xmit), which only a native XDP driver has (and on a veth only
// when the peer runs an XDP program too): in generic mode the kernel would
// drop those FLUSHes without a trace. So in generic mode the timer runs the
// program in plain test-run mode instead, which hands back the FLUSH the
// program built (clock and seq still read in the kernel, in order), and
// sends its UDP payload to the group from a socket bound to the sequencer's
// address and port. Which path is used is decided by the attach mode and
// logged at start, never switched on failure. A kernel that refuses live
// test runs (EPERM even to root on some hardened builds; probed once at
// start, bpf/libbpf/live-frames.ts) gets the socket path in native mode
// too, with a warning that says why.
//
// A drain (groups[].draining) also sends FINAL_FLUSH_REPEATS flushes at
// start; the kernel marks them FINAL. A failed run is counted and logged,
// never retried behind the operator's back; the next tick tries again.
import type { Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { BPF_F_TEST_XDP_LIVE_FRAMES, type BpfProgram } from '../bpf/libbpf/index.ts';
import { AgentError } from './errors.ts';
import { type GroupKey, seal } from '../bpf/mac.ts';
import { agentSolicitFrame, FINAL_FLUSH_REPEATS, FINAL_FLUSH_SPACING_MS, ipv4HeaderChecksum } from './flush-frame.ts';
import type { KeySource } from './keys.ts';
import type { Log } from './log.ts';

export interface FlushGroup {
  id: number;
  sequencerId: number;
  session: number;
  draining: boolean;
}

export interface FlushCounters {
  /** Solicits run through the program (each makes the kernel send one FLUSH). */
  injected: number;
  /** Runs the kernel refused (BPF_PROG_TEST_RUN failed, or in socket
   * mode the program did not answer XDP_TX) and socket send failures. */
  errors: number;
}

/** How FLUSHes leave: XDP_TX of a live test-run frame, or a socket. */
export type FlushTransmit = { kind: 'xdp' } | { kind: 'socket'; socket: Socket };

const XDP_TX = 3;
const FRAME_HDRS = 14 + 20 + 8;

export interface FlushOptions {
  iface: string;
  ifindex: number;
  port: number;
  intervalMs: number;
  groups: readonly FlushGroup[];
  log: Log;
  transmit: FlushTransmit;
  /** Interface addresses; default: from os.networkInterfaces(). */
  address?: { mac: string; addr: string };
  /** Group keys: a keyed group's solicit is sealed with its current key
   * (the kernel answers no other, bpf/flush.h). Default: none. */
  keys?: KeySource;
}

/** Errors logged per second at most; the counter has all of them. */
const ERROR_LOG_PER_SECOND = 5;

/** The interface's MAC and first IPv4 address, in this network namespace. */
export function interfaceAddress(iface: string): { mac: string; addr: string } {
  const v4 = (networkInterfaces()[iface] ?? []).find((a) => a.family === 'IPv4');
  if (!v4) {
    throw new AgentError(
      'EFLUSH_NO_ADDRESS',
      `${iface} has no IPv4 address: the agent's flush solicit must come from the interface's own address (flushIntervalMs or a draining group need it); add one (\`ip addr add ADDR/LEN dev ${iface}\`) or set flushIntervalMs: 0 and no draining group`,
    );
  }
  return { mac: v4.mac, addr: v4.address };
}

/** The solicit frame with its message sealed (a SIGHUP may change the key,
 * so this is done per flush: one SipHash of 64 bytes). */
function sealedFrame(plain: Buffer, key: GroupKey): Buffer {
  const msg = seal(plain.subarray(FRAME_HDRS), key);
  const f = Buffer.concat([plain.subarray(0, FRAME_HDRS), msg]);
  f.writeUInt16BE(20 + 8 + msg.length, 14 + 2);
  f.writeUInt16BE(0, 14 + 10);
  f.writeUInt16BE(ipv4HeaderChecksum(f, 14), 14 + 10);
  f.writeUInt16BE(8 + msg.length, 14 + 20 + 4);
  return f;
}

export class FlushTimer {
  readonly #program: BpfProgram;
  readonly #opts: FlushOptions;
  readonly #frames: Map<number, Buffer>;
  readonly #counters: FlushCounters = { injected: 0, errors: 0 };
  #timer: NodeJS.Timeout | undefined;
  readonly #pending = new Set<NodeJS.Timeout>();
  #logged = 0;
  #suppressed = 0;
  #logWindow = 0;

  constructor(program: BpfProgram, opts: FlushOptions) {
    this.#program = program;
    this.#opts = opts;
    const { mac, addr } = opts.address ?? interfaceAddress(opts.iface);
    this.#frames = new Map(
      opts.groups.map((g) => [g.id, agentSolicitFrame({ mac, addr, port: opts.port, groupId: g.id, sequencerId: g.sequencerId, session: g.session })]),
    );
  }

  /** Periodic flushes (when intervalMs > 0) and the FINAL burst of draining groups. */
  start(): void {
    const draining = this.#opts.groups.filter((g) => g.draining).map((g) => g.id);
    for (let i = 0; i < FINAL_FLUSH_REPEATS && draining.length; i++) {
      const t = setTimeout(() => {
        this.#pending.delete(t);
        for (const id of draining) this.flushGroup(id);
      }, i * FINAL_FLUSH_SPACING_MS);
      this.#pending.add(t);
    }
    if (this.#opts.intervalMs > 0) this.#timer = setInterval(() => this.flushAll(), this.#opts.intervalMs);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const t of this.#pending) clearTimeout(t);
    this.#pending.clear();
    this.#reportSuppressed();
  }

  flushAll(): void {
    for (const id of this.#frames.keys()) this.flushGroup(id);
  }

  /** Has the kernel send one FLUSH for group `id`; false if the run failed. */
  flushGroup(id: number): boolean {
    const plain = this.#frames.get(id);
    if (!plain) return false;
    const key = this.#opts.keys?.key(id);
    const frame = key ? sealedFrame(plain, key) : plain;
    const tx = this.#opts.transmit;
    try {
      if (tx.kind === 'xdp') {
        this.#program.testRun({ data: frame, repeat: 1, flags: BPF_F_TEST_XDP_LIVE_FRAMES, ctx: { ingressIfindex: this.#opts.ifindex } });
        this.#counters.injected++;
        return true;
      }
      const r = this.#program.testRun({ data: frame });
      this.#counters.injected++;
      if (r.retval !== XDP_TX || r.data.length < FRAME_HDRS + 64) {
        throw new AgentError('EFLUSH_REFUSED', `the sequencer program answered the agent's solicit with XDP action ${r.retval}, not XDP_TX (see the drop_* counters)`);
      }
      const out = Buffer.from(r.data);
      const dst = `${out[30]}.${out[31]}.${out[32]}.${out[33]}`;
      tx.socket.send(out.subarray(FRAME_HDRS), out.readUInt16BE(36), dst, (err) => {
        if (!err) return;
        this.#counters.errors++;
        this.#logError(id, err);
      });
      return true;
    } catch (e) {
      this.#counters.errors++;
      this.#logError(id, e as Error);
      return false;
    }
  }

  counters(): FlushCounters {
    return { ...this.#counters };
  }

  #reportSuppressed(): void {
    if (this.#suppressed) this.#opts.log.warn({ event: 'flush', suppressed: this.#suppressed }, 'more flush errors suppressed; see xseq_agent_flush_errors_total');
    this.#suppressed = 0;
  }

  #logError(group: number, e: Error): void {
    const now = Math.floor(Date.now() / 1000);
    if (now !== this.#logWindow) {
      this.#reportSuppressed();
      this.#logWindow = now;
      this.#logged = 0;
    }
    if (this.#logged++ < ERROR_LOG_PER_SECOND) {
      this.#opts.log.error(
        { event: 'flush', code: (e as { code?: string }).code ?? 'EFLUSH', group, err: e.message, errors: this.#counters.errors },
        `flush of group ${group} failed: ${e.message}`,
      );
    } else {
      this.#suppressed++;
    }
  }
}

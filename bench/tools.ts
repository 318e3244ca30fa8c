/**
 * The C tools of bench/ as TypeScript calls: building them, the load
 * generator and the receiver counters (count.bpf.o through countctl).
 */
import { execFile, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveFramesSupport } from '../bpf/libbpf/index.ts';
import type { Topology, XdpMode } from '../netns/topology.ts';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(BENCH_DIR, '..');
export const BUILD_DIR = join(BENCH_DIR, 'build');
export const bin = {
  loadgen: join(BUILD_DIR, 'loadgen'),
  countctl: join(BUILD_DIR, 'countctl'),
  udpSequencer: join(BUILD_DIR, 'udp-sequencer'),
  countObj: join(BUILD_DIR, 'count.bpf.o'),
  passObj: join(BUILD_DIR, 'pass.bpf.o'),
  xdpgen: join(BUILD_DIR, 'xdpgen'),
  pktgen: join(BUILD_DIR, 'pktgen'),
  cpugap: join(BUILD_DIR, 'cpugap'),
  reqgenObj: join(BUILD_DIR, 'reqgen.bpf.o'),
} as const;

/** Runs `make -C bench` (incremental), so a fresh clone benches as is. */
export function buildBenchTools(): void {
  const r = spawnSync('make', ['-s', '-C', BENCH_DIR], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`make -C bench failed: ${r.stderr || r.stdout}`);
}

export interface LoadgenOptions {
  /** Destination address; default the sequencer host's. */
  dst?: string;
  port?: number;
  count: number;
  /** Packets per second; 0 = as fast as possible. */
  rate: number;
  payload?: number;
  groupId?: number;
  clientId?: number;
  firstRequestId?: number;
  batch?: number;
  maxMs?: number;
  /** Pin the generator to this CPU. */
  cpu?: number;
}

export interface LoadgenResult {
  sent: number;
  elapsedNs: number;
  sendErrors: number;
  lastErrno: number;
  behindBatches: number;
  targetRate: number;
  achievedRate: number;
}

/**
 * 'xdp-live': xdpgen, reqgen.bpf.o in a live test run (kernel speed).
 * 'af-packet': pktgen, the same frames from an AF_PACKET socket, for a
 * kernel that refuses live test runs (bpf/libbpf/live-frames.ts); slower,
 * so rows name it.
 */
export type GeneratorKind = 'xdp-live' | 'af-packet';

export function generatorKind(): GeneratorKind {
  return liveFramesSupport().ok ? 'xdp-live' : 'af-packet';
}

/** Runs loadgen to completion inside `role`'s namespace. */
export function runLoadgen(topo: Topology, role: string, o: LoadgenOptions): LoadgenResult {
  const args = [
    '--dst', o.dst ?? topo.ip('seq'),
    '--port', String(o.port ?? 7400),
    '--count', String(o.count),
    '--rate', String(Math.round(o.rate)),
    '--payload', String(o.payload ?? 0),
    '--group-id', String(o.groupId ?? 1),
    '--client-id', String(o.clientId ?? 1),
    '--first-request-id', String(o.firstRequestId ?? 1),
    '--batch', String(o.batch ?? 32),
    '--max-ms', String(o.maxMs ?? 10_000),
  ];
  if (o.cpu !== undefined) args.push('--cpu', String(o.cpu));
  const out = topo.exec(role, bin.loadgen, args, { timeoutMs: (o.maxMs ?? 10_000) + 10_000 });
  return JSON.parse(out) as LoadgenResult;
}

export interface XdpgenOptions {
  /** The interface the frames leave through (XDP_TX of a live test run). */
  ifname: string;
  /** The REQUEST frame, Ethernet header first, request_id 0 (see
   * xdp/reqgen.h): ids are written per frame. */
  frame: Uint8Array;
  count: number;
  /** Packets per second; 0 = as fast as possible. */
  rate: number;
  /** Frames per live batch (1..256, default 64). */
  batch?: number;
  firstRequestId?: number;
  maxMs?: number;
  /** Pin the generator to this CPU. */
  cpu?: number;
  /** Run it SCHED_FIFO at this priority (1..99). */
  fifo?: number;
  /** Run it at this nice value (-20..19). */
  nice?: number;
}

export interface XdpgenResult {
  /** Frames the program ran on (each one XDP_TX). */
  sent: number;
  /** First frame to last. */
  elapsedNs: number;
  syscallNs: number;
  /** Times the generator was held up and its schedule slipped. */
  late: number;
  maxLateNs: number;
  interrupted: boolean;
  targetRate: number;
  achievedRate: number;
  /** Which generator ran (see generatorKind). */
  generator: GeneratorKind;
}

function xdpgenArgv(ns: string, o: XdpgenOptions): string[] {
  const args = [
    '--ifname', o.ifname,
    '--frame', Buffer.from(o.frame).toString('hex'),
    '--count', String(o.count),
    '--rate', String(Math.round(o.rate)),
    '--batch', String(o.batch ?? 64),
    '--first-request-id', String(o.firstRequestId ?? 1),
    '--max-ms', String(o.maxMs ?? 10_000),
  ];
  if (o.cpu !== undefined) args.push('--cpu', String(o.cpu));
  return [
    'netns', 'exec', ns,
    ...(o.fifo === undefined ? [] : ['chrt', '-f', String(o.fifo)]),
    ...(o.nice === undefined ? [] : ['nice', '-n', String(o.nice)]),
    generatorKind() === 'xdp-live' ? bin.xdpgen : bin.pktgen,
    ...args,
  ];
}

/** Runs xdpgen (reqgen.bpf.o in live test-run mode) to completion inside
 * network namespace `ns`, where `ifname` lives. */
export function runXdpgen(ns: string, o: XdpgenOptions): XdpgenResult {
  const r = spawnSync('ip', xdpgenArgv(ns, o), { encoding: 'utf8', timeout: (o.maxMs ?? 10_000) + 10_000 });
  if (r.status !== 0) throw new Error(`xdpgen in ${ns}: ${r.error?.message ?? r.stderr.trim()}`);
  return parseGen(r.stdout);
}

function parseGen(stdout: string): XdpgenResult {
  const r = JSON.parse(stdout) as Omit<XdpgenResult, 'generator'> & { generator?: GeneratorKind };
  return { ...r, generator: r.generator ?? 'xdp-live' };
}

/** runXdpgen without blocking the event loop for the step: a signal
 * handler (cleanup on Ctrl-C) then runs at once, not after the step. */
export function runXdpgenAsync(ns: string, o: XdpgenOptions): Promise<XdpgenResult> {
  return new Promise((resolve, reject) => {
    execFile('ip', xdpgenArgv(ns, o), { encoding: 'utf8', timeout: (o.maxMs ?? 10_000) + 10_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`xdpgen in ${ns}: ${stderr.trim() || err.message}`));
      try {
        resolve(parseGen(stdout));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

export interface CpuGap {
  cpu: number;
  ms: number;
  /** Longest time a spinning SCHED_FIFO 50 thread did not run. */
  maxGapUs: number;
  over100us: number;
  over300us: number;
  over1ms: number;
}

/** Runs cpugap: how long `cpu` is taken from a real-time thread now. */
export function runCpugap(cpu: number, ms = 300): CpuGap {
  const r = spawnSync(bin.cpugap, ['--cpu', String(cpu), '--ms', String(ms)], { encoding: 'utf8', timeout: ms + 10_000 });
  if (r.status !== 0) throw new Error(`cpugap: ${r.error?.message ?? r.stderr.trim()}`);
  return JSON.parse(r.stdout) as CpuGap;
}

export interface CountStats {
  prog: number;
  packets: number;
  distinct: number;
  duplicates: number;
  zeroSeq: number;
  minSeq: number;
  maxSeq: number;
  bytes: number;
  passed: number;
  missing?: number[];
}

export interface CounterAttachOptions {
  mode: XdpMode;
  /** UDP destination port to count; default any. */
  port?: number;
  groupId?: number;
  sequencerId?: number;
  /** Count REQUESTs by request id (a sink in front of the sequencer). */
  requests?: boolean;
}

/**
 * count.bpf.o attached to a set of hosts' interfaces. Attachments live as
 * long as the interfaces, so destroying the topology is the teardown.
 */
export class Counters {
  private constructor(
    readonly roles: readonly string[],
    private readonly progIds: readonly number[],
  ) {}

  static attach(topo: Topology, roles: readonly string[], o: CounterAttachOptions): Counters {
    const ids = roles.map((role) => {
      const args = ['attach', '--ifname', topo.ifname(role), '--mode', o.mode, '--obj', bin.countObj];
      if (o.port !== undefined) args.push('--port', String(o.port));
      if (o.groupId !== undefined) args.push('--group', String(o.groupId));
      if (o.sequencerId !== undefined) args.push('--sequencer', String(o.sequencerId));
      if (o.requests) args.push('--requests');
      const out = JSON.parse(topo.exec(role, bin.countctl, args)) as { prog: number };
      return out.prog;
    });
    return new Counters(roles, ids);
  }

  /** count.bpf.o on interfaces of plain network namespaces (no Topology);
   * roles are then the namespace names. */
  static attachInNetns(targets: ReadonlyArray<{ ns: string; ifname: string }>, o: CounterAttachOptions): Counters {
    const ids = targets.map(({ ns, ifname }) => {
      const args = ['attach', '--ifname', ifname, '--mode', o.mode, '--obj', bin.countObj];
      if (o.port !== undefined) args.push('--port', String(o.port));
      if (o.groupId !== undefined) args.push('--group', String(o.groupId));
      if (o.sequencerId !== undefined) args.push('--sequencer', String(o.sequencerId));
      if (o.requests) args.push('--requests');
      const r = spawnSync('ip', ['netns', 'exec', ns, bin.countctl, ...args], { encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`countctl attach in ${ns}: ${r.stderr.trim()}`);
      return (JSON.parse(r.stdout) as { prog: number }).prog;
    });
    return new Counters(targets.map((t) => t.ns), ids);
  }

  /** Counters per role, in the order of `roles`. Program ids are global,
   * so this runs in the caller's namespace. */
  read(missing = 0): CountStats[] {
    const args = ['read', ...(missing > 0 ? ['--missing', String(missing)] : []), ...this.progIds.map(String)];
    const r = spawnSync(bin.countctl, args, { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`countctl read: ${r.stderr}`);
    return JSON.parse(r.stdout) as CountStats[];
  }

  /** Zeroes counters and seen-bitmaps; call while no traffic flows. */
  reset(): void {
    const r = spawnSync(bin.countctl, ['reset', ...this.progIds.map(String)], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`countctl reset: ${r.stderr}`);
  }
}

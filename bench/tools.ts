/**
 * The C tools of bench/ as TypeScript calls: building them, the load
 * generator and the receiver counters (count.bpf.o through countctl).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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

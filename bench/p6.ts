/**
 * P6: weighted quorums on uneven hardware (issue 14, docs/weights.md).
 *
 *   5 KV replicas (examples/kv) behind the XDP sequencer, replica 4 slowed
 *   by a CPU cap (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us where the cpu
 *   controller is on v1 as on this host; this kernel has no netem), the
 *   other four normal. f = 1 in the agent and the replicas.
 *
 *   baseline: weights 1/1/1/1/1, a majority of any 3 (the leader included)
 *   xseq:     weights 1/1/1/1/0, reassigned through the log during the run
 *             (kv weights reassign): replica 4 is in no minimal quorum,
 *             any 3 of the other 4 with the leader certify
 *
 * Phases alternate (equal, weighted; the order swaps each round), each a
 * paced light load for latency (P6, P6-p50: commit latency from send to
 * certified answer) and a closed-loop peak load for throughput (P6-ops). A
 * row reports the median round. The switch between phases is the real
 * one: a weights control op through the total order, committed by every
 * replica, reported to the agent, and the kernel's table switched.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatencyHist } from '../examples/kv/latency.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
import { type NsProcess, Topology, type XdpMode } from '../netns/topology.ts';
import { atLeast, atMost, type BenchRow, type Goal } from './row.ts';

type Kind = 'weighted' | 'equal';
type Load = 'light' | 'peak';
const SLOW = 4;

export interface P6Options {
  /** CPU share the slow replica gets, percent of one CPU (default 10). */
  slowPercent?: number;
  phaseMs?: number;
  warmupMs?: number;
  rounds?: number;
  /** Ops/s of each of the 2 client processes at light load (default 150). */
  lightRate?: number;
  /** Closed-loop lanes per client process at peak load (default 6). */
  lanes?: number;
  mode?: XdpMode;
  quick?: boolean;
  log?: (s: string) => void;
}

interface Phase {
  kind: Kind;
  load: Load;
  round: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  timeouts: number;
}

/** A CPU cap on one process: cgroup v2 cpu.max where the cpu controller is there, else v1's CFS quota. */
class CpuCap {
  readonly kind: 'v2' | 'v1';
  private readonly dir: string;
  private readonly parentProcs: string;

  constructor(name: string, percent: number) {
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') && readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/).includes('cpu');
    this.kind = v2 ? 'v2' : 'v1';
    const root = v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpu';
    if (!existsSync(root)) throw new Error('P6: no cgroup cpu controller (neither v2 cpu.max nor v1 cpu) to slow a replica with');
    this.dir = `${root}/${name}`;
    this.parentProcs = `${root}/cgroup.procs`;
    mkdirSync(this.dir, { recursive: true });
    const period = 100_000;
    const quota = Math.max(1000, Math.round((period * percent) / 100));
    if (v2) {
      const sub = readFileSync(`${root}/cgroup.subtree_control`, 'utf8');
      if (!sub.split(/\s+/).includes('cpu')) writeFileSync(`${root}/cgroup.subtree_control`, '+cpu');
      writeFileSync(`${this.dir}/cpu.max`, `${quota} ${period}`);
    } else {
      writeFileSync(`${this.dir}/cpu.cfs_period_us`, String(period));
      writeFileSync(`${this.dir}/cpu.cfs_quota_us`, String(quota));
    }
  }

  add(pid: number): void {
    writeFileSync(`${this.dir}/cgroup.procs`, String(pid));
  }

  /** Moves whatever is left back to the parent and removes the group. */
  remove(): void {
    try {
      for (const pid of readFileSync(`${this.dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(this.parentProcs, pid);
        } catch {
          /* exited meanwhile */
        }
      }
      rmdirSync(this.dir);
    } catch {
      /* already gone */
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

async function runPhase(c: KvCluster, kind: Kind, load: Load, round: number, o: Required<Omit<P6Options, 'log' | 'quick' | 'mode' | 'slowPercent'>>): Promise<Phase> {
  const startAt = Date.now() + 2500;
  const procs = c.t.clients.slice(0, 2).map((role, i) =>
    c.spawnCli(role, [
      'load',
      '--duration-ms', String(o.phaseMs),
      '--warmup-ms', String(o.warmupMs),
      '--start-at', String(startAt),
      '--clients', String(load === 'peak' ? o.lanes : 1),
      ...(load === 'light' ? ['--rate', String(o.lightRate)] : []),
      '--keys', '64',
      '--timeout-ms', '5000',
      '--tag', `p6-${kind}-${load}-${round}-${i}`,
      '--omit-writes',
    ]),
  );
  const sums = await Promise.all(procs.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, o.phaseMs + 60_000)) as LoadSummary));
  const hists = sums.map((s) => s.latencyHist);
  return {
    kind,
    load,
    round,
    opsPerSec: sums.reduce((a, s) => a + s.opsPerSec, 0),
    p50Us: Math.round(LatencyHist.quantile(hists, 0.5)),
    p99Us: Math.round(LatencyHist.quantile(hists, 0.99)),
    timeouts: sums.reduce((a, s) => a + s.timeouts, 0),
  };
}

/** Reassigns replica 4's weight through the log and waits for the agent to switch the kernel to it. */
async function setSlowWeight(c: KvCluster, w: 0 | 1, ledger: { version: number }): Promise<void> {
  // From a replica host: without a group key the sequencer takes control ops only from a member's address.
  const r = c.cli('r1', ['weights', 'reassign', '--member', String(SLOW), `--delta=${w === 0 ? -1 : 1}`, '--timeout-ms', '20000'], 60_000);
  const out = r.stdout.trim() ? (JSON.parse(r.stdout) as { applied: boolean; version: number; weights: number[]; refused?: string }) : null;
  if (r.status !== 0 || !out?.applied) throw new Error(`P6: reassigning replica ${SLOW} to weight ${w} failed: ${r.stderr.trim() || out?.refused}`);
  ledger.version = out.version;
  const agent = c.agent!;
  const deadline = Date.now() + 20_000;
  while (!agent.output().stdout.split('\n').some((l) => l.includes('"event":"weights"') && l.includes(`"ledgerVersion":${out.version},`))) {
    if (Date.now() > deadline) throw new Error(`P6: the agent did not switch to ledger v${out.version} (${out.weights.join('/')})`);
    await sleep(100);
  }
}

export async function runP6(opts: P6Options = {}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const o = {
    phaseMs: opts.phaseMs ?? (quick ? 3000 : 8000),
    warmupMs: opts.warmupMs ?? (quick ? 1000 : 1500),
    rounds: opts.rounds ?? (quick ? 1 : 3),
    lightRate: opts.lightRate ?? 150,
    lanes: opts.lanes ?? 6,
  };
  const slowPercent = opts.slowPercent ?? 10;
  const mode = opts.mode ?? 'native';
  const topo = await Topology.create({ receivers: 5, clients: 2, mode });
  let cluster: KvCluster | undefined;
  let cap: CpuCap | undefined;
  const phases: Phase[] = [];
  try {
    const c = (cluster = new KvCluster(topo, { mode, agentArgs: ['--tolerate', '1:1'], replicaArgs: ['--tolerate', '1'] }));
    await c.startAgent();
    await c.startReplicas();
    cap = new CpuCap(`xseq-p6-${process.pid}`, slowPercent);
    cap.add((c.replicas[SLOW] as NsProcess).pid);
    log(`P6: 5 KV replicas, replica ${SLOW} capped at ${slowPercent}% of a CPU (cgroup ${cap.kind}), f = 1, ${mode} XDP, ${o.rounds} rounds of ${o.phaseMs} ms phases`);
    const warm = c.cli('cli', ['load', '--ops', '500', '--clients', '4', '--omit-writes', '--timeout-ms', '10000'], 60_000);
    if (warm.status !== 0) throw new Error(`P6 warm-up load failed: ${warm.stderr.trim()}`);
    const ledger = { version: 1 };
    let current: Kind = 'equal';
    for (let round = 0; round < o.rounds; round++) {
      const order: Kind[] = round % 2 === 0 ? ['equal', 'weighted'] : ['weighted', 'equal'];
      for (const kind of order) {
        if (kind !== current) {
          await setSlowWeight(c, kind === 'weighted' ? 0 : 1, ledger);
          current = kind;
        }
        for (const load of ['light', 'peak'] as const) {
          const p = await runPhase(c, kind, load, round, o);
          phases.push(p);
          log(`  round ${round + 1} ${kind} (ledger v${ledger.version}) ${load}: ${p.opsPerSec} ops/s, p50 ${p.p50Us} us, p99 ${p.p99Us} us${p.timeouts ? `, ${p.timeouts} timeouts` : ''}`);
          await sleep(300);
        }
      }
    }
    const agent = await c.stopAgent('SIGTERM');
    const k = (agent?.['counters'] ?? {}) as Record<string, string>;
    log(`P6 kernel: reply ${k['reply']}, ack_counted ${k['ack_counted']}, drop_ack_weights ${k['drop_ack_weights']}, busy ${k['busy'] ?? 0}`);
  } finally {
    cap?.remove();
    await cluster?.cleanup();
    await topo.destroy();
  }

  const of = (kind: Kind, load: Load, f: (p: Phase) => number) => median(phases.filter((p) => p.kind === kind && p.load === load).map(f));
  const common = `5 KV replicas, replica ${SLOW} capped at ${slowPercent}% of a CPU, f = 1, 2 shared CPUs, median of ${o.rounds} rounds`;
  const row = (id: string, name: string, unit: string, load: Load, f: (p: Phase) => number, goal: Goal | null): BenchRow => {
    const x = of('weighted', load, f);
    const b = of('equal', load, f);
    const timedOut = phases.filter((p) => p.load === load && p.timeouts > 0).map((p) => `${p.kind} round ${p.round + 1}: ${p.timeouts} timeouts`);
    return { id, name, unit, xseq: x, baseline: b, baselineName: 'equal weights 1/1/1/1/1', ratio: b > 0 ? Number((x / b).toFixed(2)) : 0, goal, ...(timedOut.length ? { failed: timedOut.join('; ') } : {}) };
  };
  const light = `2 clients at ${o.lightRate} ops/s each, ${common}`;
  const peak = `2x${o.lanes} closed-loop clients, ${common}`;
  return [
    row('P6', `KV commit latency p99 with weights 1/1/1/1/0 (the slow replica in no minimal quorum, reassigned through the log), ${light}`, 'us', 'light', (p) => p.p99Us, atMost('ratio', 0.7)),
    row('P6-p50', `KV commit latency p50, weights 1/1/1/1/0 vs equal, ${light}`, 'us', 'light', (p) => p.p50Us, null),
    row('P6-ops', `KV ops/s, weights 1/1/1/1/0 vs equal, ${peak}`, 'ops/s', 'peak', (p) => p.opsPerSec, atLeast('ratio', 1)),
  ];
}

/**
 * P3 and P3c: what replication costs the KV store (examples/kv), against
 * the same store as one unreplicated server.
 *
 *   xseq:     clients ─► seq (XDP: stamp) ─► br0 ─► KV replicas on r1, r2, r3
 *             replicas ACK ─► seq (XDP: quorum incl. the leader) ─► client
 *   baseline: clients ─► KV server on r1 (examples/kv/unreplicated.ts) ─► client
 *
 * Same clients (examples/kv/cli.ts load, 50/40/10 get/put/cas) in the same
 * topology and run. Two loads: peak, closed-loop lanes enough to saturate
 * the CPUs (P3: answered ops/s), and light, one paced lane per client
 * process far below capacity (P3c: the latency of an op from send to its
 * certified answer, the commit path without queueing). Phases alternate
 * (and swap order every round) so machine noise falls on both; a row
 * reports the median round.
 *
 * Nothing is pinned: on this 2-CPU machine the three replicas, the
 * clients, the server and every softirq share both CPUs, where NOPaxos's
 * numbers come from one machine per replica. Each replica does about the
 * work the single server does, so with the CPUs saturated three of them
 * cannot keep up with one. Each phase logs CPU time per op (/proc), and
 * P3-cpu compares the busiest replica's with the server's: that is what
 * would bound throughput with a host per replica.
 *
 * P3-retx: the agent's retransmissions per 100 stamped requests during
 * the xseq peak phases, from its counters logged every STATS_MS. Nothing
 * is lost in this topology, so every re-send is spurious: an RTO shorter
 * than some member's ACK takes under load.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatencyHist } from '../examples/kv/latency.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KV_UNREPLICATED, KvCluster, spawnTs } from '../examples/kv/netns-cluster.ts';
import { type NsProcess, Topology, type XdpMode } from '../netns/topology.ts';
import { clockTicks } from './host.ts';
import { atLeast, atMost, below, type BenchRow, type Goal } from './row.ts';

type Kind = 'xseq' | 'baseline';
/** peak: enough closed-loop clients to saturate the CPUs (P3); light: one
 * lane per client process, paced far below what the CPUs carry, so latency
 * is the commit path and not queueing behind other ops (P3c). */
type Load = 'peak' | 'light';
const SERVER_PORT = 7800;
/** The agent's counter log interval (P3-retx reads it at phase edges). */
const STATS_MS = 250;

export interface P3Options {
  /** Client processes, one per client namespace (default 2). */
  processes?: number;
  /** Closed-loop lanes per process at peak load (default 8; light load uses 1). */
  lanes?: number;
  /** Ops/s of each client process at light load (default 250). */
  lightRate?: number;
  /** Sending time per phase, ms (default 6000; quick 3000). */
  phaseMs?: number;
  /** Leading part of a phase not measured (default 1500; quick 1000). */
  warmupMs?: number;
  /** xseq/baseline phase pairs (default 3; quick 1). */
  rounds?: number;
  mode?: XdpMode;
  quick?: boolean;
  log?: (s: string) => void;
}

export interface P3Phase {
  kind: Kind;
  load: Load;
  round: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  timeouts: number;
  /** CPU time of the replicas (or the server) per answered op, and the part
   * of it in the kernel (system time: a send runs the whole path of the
   * datagram through the bridge, and for an ACK the sequencer's XDP too). */
  serverCpuUsPerOp: number;
  serverSysUsPerOp: number;
  /** The busiest replica's (or the server's) CPU per op: what would bound
   * throughput with a host per replica. */
  busiestCpuUsPerOp: number;
  /** xseq: the agent's re-sends and the requests stamped during the phase. */
  retransmissions: number;
  stamped: number;
  clients: LoadSummary[];
}

/** The agent's latest logged counters: retransmissions and stamped requests. */
function agentCounts(c: KvCluster): { retx: number; stamped: number } {
  const out = c.agents[0]?.output().stdout ?? '';
  const i = out.lastIndexOf('"event":"counters"');
  if (i < 0) return { retx: 0, stamped: 0 };
  const line = out.slice(out.lastIndexOf('\n', i) + 1, out.indexOf('\n', i) < 0 ? undefined : out.indexOf('\n', i));
  const j = JSON.parse(line) as { counters: Record<string, string | number>; retransmit?: { retransmissions: number } };
  return { retx: j.retransmit?.retransmissions ?? 0, stamped: Number(j.counters['sequenced'] ?? 0) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

/** [utime, stime] of a process in microseconds (/proc/<pid>/stat counts clock ticks; their rate from getconf CLK_TCK). */
function cpuUs(pid: number): [number, number] {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const usPerTick = 1e6 / clockTicks();
    return [Number(f[11]) * usPerTick, Number(f[12]) * usPerTick];
  } catch {
    return [0, 0];
  }
}

function cpuOf(ps: NsProcess[]): [number, number] {
  return ps.map((p) => cpuUs(p.pid)).reduce((a, c) => [a[0] + c[0], a[1] + c[1]], [0, 0]);
}

async function runPhase(c: KvCluster, kind: Kind, load: Load, round: number, servers: NsProcess[], o: Required<Omit<P3Options, 'log' | 'quick' | 'mode'>>): Promise<P3Phase> {
  const t = c.t;
  const target = kind === 'xseq' ? undefined : `${t.ip('r1')}:${SERVER_PORT}`;
  const startAt = Date.now() + 2500; // every client process has started by then
  const each0 = servers.map((p) => cpuUs(p.pid));
  const agent0 = agentCounts(c);
  const cpu0 = cpuOf(servers);
  const procs = t.clients.slice(0, o.processes).map((role, i) =>
    c.spawnCli(
      role,
      [
        'load',
        '--duration-ms', String(o.phaseMs),
        '--warmup-ms', String(o.warmupMs),
        '--start-at', String(startAt),
        '--clients', String(load === 'peak' ? o.lanes : 1),
        ...(load === 'light' ? ['--rate', String(o.lightRate)] : []),
        '--keys', '64',
        '--timeout-ms', '5000',
        '--tag', `p3-${kind}-${load}-${round}-${i}`,
        '--omit-writes',
      ],
      target,
    ),
  );
  const sums = await Promise.all(procs.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, o.phaseMs + 60_000)) as LoadSummary));
  const cpu1 = cpuOf(servers);
  await sleep(2 * STATS_MS); // the agent's counters as of the phase's end
  const agent1 = agentCounts(c);
  const busiest = Math.max(...servers.map((p, i) => {
    const [u, sy] = cpuUs(p.pid);
    return u + sy - each0[i]![0] - each0[i]![1];
  }));
  const user = cpu1[0] - cpu0[0];
  const sys = cpu1[1] - cpu0[1];
  const ops = sums.reduce((a, s) => a + s.ok, 0);
  const hists = sums.map((s) => s.latencyHist);
  return {
    kind,
    load,
    round,
    opsPerSec: sums.reduce((a, s) => a + s.opsPerSec, 0),
    p50Us: Math.round(LatencyHist.quantile(hists, 0.5)),
    p99Us: Math.round(LatencyHist.quantile(hists, 0.99)),
    timeouts: sums.reduce((a, s) => a + s.timeouts, 0),
    serverCpuUsPerOp: ops ? Math.round((user + sys) / ops) : 0,
    serverSysUsPerOp: ops ? Math.round(sys / ops) : 0,
    busiestCpuUsPerOp: ops ? Math.round(busiest / ops) : 0,
    retransmissions: agent1.retx - agent0.retx,
    stamped: agent1.stamped - agent0.stamped,
    clients: sums,
  };
}

export async function runP3Detailed(opts: P3Options = {}): Promise<{ rows: BenchRow[]; phases: P3Phase[] }> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const o = {
    processes: opts.processes ?? 2,
    lanes: opts.lanes ?? 8,
    lightRate: opts.lightRate ?? 250,
    phaseMs: opts.phaseMs ?? (quick ? 3000 : 6000),
    warmupMs: opts.warmupMs ?? (quick ? 1000 : 1500),
    rounds: opts.rounds ?? (quick ? 1 : 3),
  };
  const mode = opts.mode ?? 'native';
  log(`P3: ${o.processes} client processes x ${o.lanes} closed-loop lanes, KV on 3 replicas vs 1 server, ${mode} XDP, ${o.rounds} rounds of ${o.phaseMs} ms phases (first ${o.warmupMs} ms not counted)`);
  const topo = await Topology.create({ receivers: 3, clients: o.processes, mode });
  let cluster: KvCluster | undefined;
  const phases: P3Phase[] = [];
  try {
    const c = (cluster = new KvCluster(topo, { mode, agentArgs: ['--policy', 'overwrite', '--window', '4096', '--windows', '1', '--stats-interval', String(STATS_MS)] }));
    await c.startAgent();
    await c.startReplicas();
    const server = spawnTs(topo, 'r1', KV_UNREPLICATED, ['--listen', `${topo.ip('r1')}:${SERVER_PORT}`]);
    await server.waitForLine(/"event":"listening"/, 60_000);
    // The replicas join the agent's session with the first requests (a
    // view change): let that happen outside the measured phases.
    const warm = c.cli('cli', ['load', '--ops', '500', '--clients', '4', '--omit-writes', '--timeout-ms', '10000'], 60_000);
    if (warm.status !== 0) throw new Error(`P3 warm-up load failed: ${warm.stderr.trim()}`);
    const replicas = c.replicas.filter((p): p is NsProcess => p !== null);
    for (let round = 0; round < o.rounds; round++) {
      const order: Kind[] = round % 2 === 0 ? ['xseq', 'baseline'] : ['baseline', 'xseq'];
      for (const [kind, load] of (['peak', 'light'] as const).flatMap((l) => order.map((k) => [k, l] as const))) {
        const p = await runPhase(c, kind, load, round, kind === 'xseq' ? replicas : [server], o);
        phases.push(p);
        log(
          `  round ${round + 1} ${kind} ${load}: ${p.opsPerSec} ops/s, p50 ${p.p50Us} us, p99 ${p.p99Us} us, ` +
            `${kind === 'xseq' ? `replicas CPU ${p.serverCpuUsPerOp} us/op (busiest ${p.busiestCpuUsPerOp}, ` : `server CPU ${p.serverCpuUsPerOp} us/op (`}system ${p.serverSysUsPerOp})` +
            (kind === 'xseq' ? `, ${p.retransmissions} re-sends of ${p.stamped} stamped` : '') +
            (p.timeouts ? `, ${p.timeouts} timeouts` : ''),
        );
        await sleep(300);
      }
    }
    await server.stop('SIGTERM', 5000);
    const agent = await c.stopAgent('SIGTERM');
    const k = (agent?.['counters'] ?? {}) as Record<string, string>;
    const rt = (agent?.['retransmit'] ?? {}) as Record<string, number>;
    log(
      `P3 kernel: ${Object.entries(k).filter(([, v]) => v !== '0').map(([n, v]) => `${n} ${v}`).join(', ')}; ` +
        `agent retransmissions ${rt['retransmissions'] ?? 0}`,
    );
    for (const p of replicas) {
      await p.stop('SIGTERM', 5000);
      const l = p.output().stdout.split('\n').find((x) => x.includes('"event":"stopped"'));
      const views = p.output().stdout.split('\n').filter((x) => x.includes('"status":"view-change"')).length;
      if (!l) continue;
      const st = JSON.parse(l) as { id: number; view: unknown; transport: { sequenced: number; retransmits: number; repairRequests: number; peer: { sent: Record<string, number>; bytesSent: number } } };
      log(
        `P3 replica ${st.id}: view ${JSON.stringify(st.view)} after ${views} view changes, ${st.transport.sequenced} sequenced (${st.transport.retransmits} retransmitted), ` +
          `${st.transport.repairRequests} repair requests, slow path sent ${JSON.stringify(st.transport.peer.sent)} in ${st.transport.peer.bytesSent} bytes`,
      );
    }
  } finally {
    await cluster?.cleanup();
    await topo.destroy();
  }

  const of = (kind: Kind, load: Load, f: (p: P3Phase) => number) => median(phases.filter((p) => p.kind === kind && p.load === load).map(f));
  const ratio = (x: number, b: number) => (b > 0 ? Number((x / b).toFixed(2)) : 0);
  const common = `50/40/10 get/put/cas, ${mode} XDP, 2 shared CPUs, median of ${o.rounds} rounds`;
  const peak = `${o.processes}x${o.lanes} closed-loop clients, ${common}`;
  const light = `${o.processes} clients at ${o.lightRate} ops/s each, ${common}`;
  const baselineName = 'the same KV as one unreplicated server';
  const row = (id: string, name: string, unit: string, load: Load, f: (p: P3Phase) => number, goal: Goal | null): BenchRow => {
    const x = of('xseq', load, f);
    const b = of('baseline', load, f);
    // An op that timed out is a failure, not a slow sample: the row fails.
    const timedOut = phases.filter((p) => p.load === load && p.timeouts > 0).map((p) => `${p.kind} round ${p.round + 1}: ${p.timeouts} timeouts`);
    return { id, name, unit, xseq: x, baseline: b, baselineName, ratio: ratio(x, b), goal, ...(timedOut.length ? { failed: timedOut.join('; ') } : {}) };
  };
  return {
    phases,
    rows: [
      row('P3', `KV ops/s on 3 replicas behind the XDP sequencer, ${peak}`, 'ops/s', 'peak', (p) => p.opsPerSec, atLeast('ratio', 0.9)),
      row('P3c', `KV commit latency p50 (send to certified answer), ${light}`, 'us', 'light', (p) => p.p50Us, atMost('ratio', 1.3)),
      row('P3c-p99', `KV commit latency p99, ${light}`, 'us', 'light', (p) => p.p99Us, null),
      row('P3-p50', `KV latency p50 at peak load, ${peak}`, 'us', 'peak', (p) => p.p50Us, null),
      {
        id: 'P3-retx',
        name: `agent retransmissions per 100 stamped requests with no loss, xseq phases at peak load (all spurious), ${peak}`,
        unit: '%',
        xseq: Number(of('xseq', 'peak', (p) => (p.stamped ? (100 * p.retransmissions) / p.stamped : 0)).toFixed(3)),
        baseline: 0,
        baselineName: 'none: nothing is lost, so no re-send is needed',
        ratio: 0,
        goal: below('xseq', 0.1),
      },
      row('P3-cpu', `CPU per op of the busiest replica (the server for the baseline) at peak load: bounds ops/s with a host per replica, ${peak}`, 'us/op', 'peak', (p) => p.busiestCpuUsPerOp, null),
    ],
  };
}

export async function runP3(opts: P3Options = {}): Promise<BenchRow[]> {
  return (await runP3Detailed(opts)).rows;
}

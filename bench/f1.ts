/**
 * F1: failover time of a group with one sequencer and a standby, and the
 * throughput dip around it, end to end in namespaces.
 *
 *   clients ─► seq (active, id 0)  ─┐
 *           ─► seq2 (standby, id 1) ─┴► br0 ─► KV replicas r1, r2, r3
 *
 * A closed-loop KV load (policy failover) runs through the active; then its
 * host dies (link down + kill -9 + detach --force). Measured from the kill
 * (when `ip link set down` had returned):
 * detection (until the standby's "takeover" line: the active silent for
 * takeoverMs and clients knocking, which takes one client retry timeout)
 * and the rest, agreement (the clients' next attempt reaches the standby,
 * the replicas' view change to its session, the first certified op), both
 * from the load's completion times (examples/kv/failover-timing.ts). The
 * baseline of the total is the number NOPaxos published for a sequencer
 * failure (110 ms until it resumed); the dip row compares ops/s in the 2 s
 * around the kill with the 2 s before. Default settings except --policy
 * overwrite (as P4b; see bench/README.md). A fresh cluster per round; the
 * row is the median.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { failoverTiming } from '../examples/kv/failover-timing.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
import { Topology, type XdpMode } from '../netns/topology.ts';
import { atMost, type BenchRow } from './row.ts';

/** NOPaxos (OSDI'16): throughput resumed about 110 ms after a sequencer failure. */
export const NOPAXOS_FAILOVER_MS = 110;

export interface F1Options {
  rounds?: number;
  lanes?: number;
  mode?: XdpMode;
  quick?: boolean;
  log?: (s: string) => void;
}

interface Round {
  timeouts: number;
  failoverMs: number;
  detectMs: number;
  agreeMs: number;
  before: number;
  around: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

async function oneRound(mode: XdpMode, lanes: number, log: (s: string) => void): Promise<Round> {
  const topo = await Topology.create({ receivers: 3, clients: 1, sequencers: 2, mode });
  let c: KvCluster | undefined;
  try {
    c = new KvCluster(topo, { mode, standby: true, flushIntervalMs: 2, agentArgs: ['--policy', 'overwrite'] });
    const active = await c.startAgent(0);
    await c.startAgent(1);
    await c.startReplicas();
    const load = c.spawnCli('cli', ['load', '--duration-ms', '9000', '--clients', String(lanes), '--keys', '64', '--timeout-ms', '20000', '--policy', 'failover', '--omit-writes', '--completions', '--tag', 'f1']);
    await c.replicas[0]!.waitForLine((l) => l.includes('"event":"status"') && l.includes(`"session":${active.session}`), 60_000);
    await sleep(3500);
    const killAt = await c.killHost(0, { detach: true });
    const took = JSON.parse(await c.agents[1]!.waitForLine(/"event":"takeover"/, 30_000)) as { atMs: number };
    const sum = JSON.parse(await load.waitForLine(/"tag"/, 90_000)) as LoadSummary;
    // Nothing completes through the standby before it takes over, nor through the dead host after.
    const f = failoverTiming(sum.completedAtMs ?? [], killAt, { survivorFromMs: took.atMs });
    const detectMs = Math.max(0, took.atMs - killAt);
    const r = { timeouts: sum.timeouts, failoverMs: f.failoverMs, detectMs, agreeMs: Math.round(Math.max(0, f.failoverMs - detectMs) * 10) / 10, before: f.opsPerSecBefore, around: f.opsPerSecAround };
    log(`  failover ${r.failoverMs} ms (detection ${r.detectMs}, agreement ${r.agreeMs}); ops/s ${r.before} before, ${r.around} in the 2 s around the kill${sum.timeouts ? `; ${sum.timeouts} timeouts` : ''}`);
    return r;
  } finally {
    await c?.cleanup();
    await topo.destroy();
  }
}

export async function runF1(opts: F1Options = {}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {});
  const rounds = opts.rounds ?? (opts.quick ? 1 : 3);
  const lanes = opts.lanes ?? 4;
  const mode = opts.mode ?? 'native';
  log(`F1: one sequencer + a standby, ${lanes} closed-loop KV lanes, 3 replicas, the active host killed, ${rounds} rounds`);
  const rs: Round[] = [];
  for (let i = 0; i < rounds; i++) rs.push(await oneRound(mode, lanes, log));
  const total = median(rs.map((r) => r.failoverMs));
  const what = `one sequencer + a standby (flush 2 ms, takeover 50 flushes), ${lanes} KV lanes, 3 replicas, ${mode} XDP, 2 shared CPUs, median of ${rounds}`;
  const ratio = (x: number, b: number) => (b > 0 ? Number((x / b).toFixed(2)) : 0);
  const detect = median(rs.map((r) => r.detectMs));
  const agree = Math.round(median(rs.map((r) => r.agreeMs)) * 10) / 10;
  const before = median(rs.map((r) => r.before));
  const around = median(rs.map((r) => r.around));
  // A lost op or a load that never resumed makes the numbers meaningless.
  const timeouts = rs.reduce((a, r) => a + r.timeouts, 0);
  const failed = timeouts ? { failed: `${timeouts} ops timed out` } : rs.some((r) => !Number.isFinite(r.failoverMs)) ? { failed: 'the load did not resume after the kill' } : {};
  const rows: BenchRow[] = [
    { id: 'F1', name: `failover: kill of the active host to the load resuming through the standby, ${what}`, unit: 'ms', xseq: total, baseline: NOPAXOS_FAILOVER_MS, baselineName: 'NOPaxos, published (resumed after a sequencer failure)', ratio: ratio(total, NOPAXOS_FAILOVER_MS), goal: atMost('xseq', 500) },
    { id: 'F1-detect', name: `failover, detection share: kill to the standby's takeover, ${what}`, unit: 'ms', xseq: detect, baseline: total, baselineName: 'the whole failover (F1)', ratio: ratio(detect, total), goal: null },
    { id: 'F1-agree', name: `failover, agreement share: takeover to the load resuming (clients' next attempt, view change), ${what}`, unit: 'ms', xseq: agree, baseline: total, baselineName: 'the whole failover (F1)', ratio: ratio(agree, total), goal: null },
    { id: 'F1-dip', name: `throughput in the 2 s around the kill vs the 2 s before, ${what}`, unit: 'ops/s', xseq: around, baseline: before, baselineName: 'the 2 s before the kill', ratio: ratio(around, before), goal: null },
  ];
  return rows.map((r) => ({ ...r, ...failed }));
}

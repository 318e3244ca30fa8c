/**
 * F2: failover time of a merged (Hydra) group when one of its two
 * sequencer hosts dies, and the throughput dip around it, end to end in
 * namespaces (the F1 topology without a standby: both sequencers stamp).
 *
 * A closed-loop KV load (policy round-robin over both) runs; then host 1
 * dies (link down + kill -9 + detach --force). Measured from the kill
 * (when `ip link set down` had returned): detection (until the first
 * replica enters the leader's removal view change: the dead stream held
 * the merge back and was silent for deadSequencerUs, default 50 flush
 * intervals) and agreement (that view change, the end of the dead stream
 * right after what the quorum holds, and the first op certified through
 * the survivor). The total is from the load's completion times
 * (examples/kv/failover-timing.ts), the split from the replicas' status
 * lines. Default settings except --policy overwrite (as F1). A fresh
 * cluster per round; the row is the median.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { failoverTiming } from '../examples/kv/failover-timing.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
import { Topology, type XdpMode } from '../netns/topology.ts';
import { NOPAXOS_FAILOVER_MS } from './f1.ts';
import { atMost, type BenchRow } from './row.ts';

export interface F2Options {
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
    c = new KvCluster(topo, { mode, flushIntervalMs: 2, agentArgs: ['--policy', 'overwrite'] });
    await c.startAgent(0);
    await c.startAgent(1);
    await c.startReplicas();
    const load = c.spawnCli('cli', ['load', '--duration-ms', '9000', '--clients', String(lanes), '--keys', '64', '--timeout-ms', '20000', '--policy', 'round-robin', '--omit-writes', '--completions', '--tag', 'f2']);
    await c.replicas[0]!.waitForLine((l) => l.includes('"event":"status"') && l.includes('"status":"normal"'), 60_000);
    await sleep(3500);
    const killAt = await c.killHost(1, { detach: true });
    const sum = JSON.parse(await load.waitForLine(/"tag"/, 90_000)) as LoadSummary;
    const f = failoverTiming(sum.completedAtMs ?? [], killAt);
    // Detection ends when the first replica joins the removal view change.
    let vcAt = Infinity;
    for (const r of c.replicas) {
      for (const l of r?.output().stdout.split('\n') ?? []) {
        if (!l.includes('"event":"status"') || !l.includes('"status":"view-change"')) continue;
        const t = (JSON.parse(l) as { t: number }).t;
        if (t >= killAt && t < vcAt) vcAt = t;
      }
    }
    const detectMs = Number.isFinite(vcAt) ? vcAt - killAt : NaN;
    const r = { timeouts: sum.timeouts, failoverMs: f.failoverMs, detectMs, agreeMs: Math.round(Math.max(0, f.failoverMs - detectMs) * 10) / 10, before: f.opsPerSecBefore, around: f.opsPerSecAround };
    log(`  failover ${r.failoverMs} ms (detection ${r.detectMs}, agreement ${r.agreeMs}); ops/s ${r.before} before, ${r.around} in the 2 s around the kill${sum.timeouts ? `; ${sum.timeouts} timeouts` : ''}`);
    return r;
  } finally {
    await c?.cleanup();
    await topo.destroy();
  }
}

export async function runF2(opts: F2Options = {}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {});
  const rounds = opts.rounds ?? (opts.quick ? 1 : 3);
  const lanes = opts.lanes ?? 4;
  const mode = opts.mode ?? 'native';
  log(`F2: two sequencers (Hydra), ${lanes} closed-loop KV lanes, 3 replicas, one sequencer host killed, ${rounds} rounds`);
  const rs: Round[] = [];
  for (let i = 0; i < rounds; i++) rs.push(await oneRound(mode, lanes, log));
  const total = median(rs.map((r) => r.failoverMs));
  const what = `two sequencers (flush 2 ms, dead after 50 flushes), ${lanes} KV lanes, 3 replicas, ${mode} XDP, 2 shared CPUs, median of ${rounds}`;
  const ratio = (x: number, b: number) => (b > 0 ? Number((x / b).toFixed(2)) : 0);
  const detect = median(rs.map((r) => r.detectMs));
  const agree = Math.round(median(rs.map((r) => r.agreeMs)) * 10) / 10;
  const before = median(rs.map((r) => r.before));
  const around = median(rs.map((r) => r.around));
  const timeouts = rs.reduce((a, r) => a + r.timeouts, 0);
  const failed = timeouts
    ? { failed: `${timeouts} ops timed out` }
    : rs.some((r) => !Number.isFinite(r.failoverMs) || !Number.isFinite(r.detectMs))
      ? { failed: 'the load did not resume, or no removal view change was seen' }
      : {};
  const rows: BenchRow[] = [
    { id: 'F2', name: `Hydra failover: kill of one sequencer host to the load resuming through the survivor, ${what}`, unit: 'ms', xseq: total, baseline: NOPAXOS_FAILOVER_MS, baselineName: 'NOPaxos, published (resumed after a sequencer failure)', ratio: ratio(total, NOPAXOS_FAILOVER_MS), goal: atMost('xseq', 500) },
    { id: 'F2-detect', name: `Hydra failover, detection share: kill to the replicas' removal view change, ${what}`, unit: 'ms', xseq: detect, baseline: total, baselineName: 'the whole failover (F2)', ratio: ratio(detect, total), goal: null },
    { id: 'F2-agree', name: `Hydra failover, agreement share: the removal view change to the load resuming, ${what}`, unit: 'ms', xseq: agree, baseline: total, baselineName: 'the whole failover (F2)', ratio: ratio(agree, total), goal: null },
    { id: 'F2-dip', name: `Hydra: throughput in the 2 s around the kill vs the 2 s before, ${what}`, unit: 'ops/s', xseq: around, baseline: before, baselineName: 'the 2 s before the kill', ratio: ratio(around, before), goal: null },
  ];
  return rows.map((r) => ({ ...r, ...failed }));
}

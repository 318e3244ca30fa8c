/**
 * P4b: Hydra end to end: KV ops/s with two sequencers against one, in the
 * same topology and run.
 *
 *   clients ─► seq (id 0) ─┐
 *           ─► seq2 (id 1) ─┴► br0 ─► KV replicas r1, r2, r3 (merge by clock)
 *   replicas ACK ─► the sequencer that stamped ─► client
 *
 * Both sequencer hosts run an agent with a flush timer in every phase, and
 * the replicas are configured with both sequencers throughout, so the only
 * difference between the phases is where the clients send: "two" spreads
 * requests round-robin over both sequencers, "one" sends every request to
 * sequencer 0 while sequencer 1 only flushes (the replicas still merge its
 * empty stream: that is what a deployment with a spare sequencer runs).
 * Phases alternate and swap order every round; a row reports the median.
 *
 * On this 2-CPU machine the three replica processes bound both phases (each
 * executes every op), so the ratio shows the cost or gain of the merge
 * and of spreading, not the linear growth Hydra reports with a host per
 * sequencer and per replica.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster, SEQ_PORT } from '../examples/kv/netns-cluster.ts';
import { LatencyHist } from '../examples/kv/latency.ts';
import { Topology, type XdpMode } from '../netns/topology.ts';
import { type BenchRow, type Goal } from './row.ts';

type Kind = 'two' | 'one';

export interface P4bOptions {
  processes?: number;
  lanes?: number;
  phaseMs?: number;
  warmupMs?: number;
  rounds?: number;
  flushIntervalMs?: number;
  mode?: XdpMode;
  quick?: boolean;
  log?: (s: string) => void;
}

interface Phase {
  kind: Kind;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  timeouts: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

export async function runP4b(opts: P4bOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const o = {
    processes: opts.processes ?? 2,
    lanes: opts.lanes ?? 8,
    phaseMs: opts.phaseMs ?? (quick ? 3000 : 6000),
    warmupMs: opts.warmupMs ?? (quick ? 1000 : 1500),
    rounds: opts.rounds ?? (quick ? 1 : 3),
    flushIntervalMs: opts.flushIntervalMs ?? 1,
  };
  const mode = opts.mode ?? 'native';
  log(`P4b: ${o.processes} client processes x ${o.lanes} closed-loop lanes, KV on 3 replicas, 2 sequencer hosts (flush every ${o.flushIntervalMs} ms), ${mode} XDP, ${o.rounds} rounds of ${o.phaseMs} ms phases`);
  const topo = await Topology.create({ receivers: 3, clients: o.processes, sequencers: 2, mode });
  let cluster: KvCluster | undefined;
  const phases: Phase[] = [];
  try {
    const c = (cluster = new KvCluster(topo, { mode, flushIntervalMs: o.flushIntervalMs, agentArgs: ['--policy', 'overwrite', '--window', '4096', '--windows', '1'] }));
    await c.startAgent(0);
    await c.startAgent(1);
    await c.startReplicas();
    const warm = c.cli('cli', ['load', '--ops', '500', '--clients', '4', '--omit-writes', '--timeout-ms', '10000'], 60_000);
    if (warm.status !== 0) throw new Error(`P4b warm-up load failed: ${warm.stderr.trim()}`);
    for (let round = 0; round < o.rounds; round++) {
      const order: Kind[] = round % 2 === 0 ? ['two', 'one'] : ['one', 'two'];
      for (const kind of order) {
        const startAt = Date.now() + 2500;
        const target = kind === 'one' ? `0:${topo.ip(topo.sequencerRole(0))}:${SEQ_PORT}` : undefined;
        const procs = topo.clients.slice(0, o.processes).map((role, i) =>
          c.spawnCli(
            role,
            ['load', '--duration-ms', String(o.phaseMs), '--warmup-ms', String(o.warmupMs), '--start-at', String(startAt), '--clients', String(o.lanes), '--keys', '64', '--timeout-ms', '5000', '--tag', `p4b-${kind}-${round}-${i}`, '--omit-writes'],
            target,
          ),
        );
        const sums = await Promise.all(procs.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, o.phaseMs + 60_000)) as LoadSummary));
        const hists = sums.map((s) => s.latencyHist);
        const p: Phase = {
          kind,
          opsPerSec: sums.reduce((a, s) => a + s.opsPerSec, 0),
          p50Us: Math.round(LatencyHist.quantile(hists, 0.5)),
          p99Us: Math.round(LatencyHist.quantile(hists, 0.99)),
          timeouts: sums.reduce((a, s) => a + s.timeouts, 0),
        };
        phases.push(p);
        log(`  round ${round + 1} ${kind === 'two' ? 'two sequencers' : 'one sequencer '}: ${p.opsPerSec} ops/s, p50 ${p.p50Us} us, p99 ${p.p99Us} us${p.timeouts ? `, ${p.timeouts} timeouts` : ''}`);
        await sleep(300);
      }
    }
    for (const i of [0, 1]) {
      const k = ((await c.stopAgent('SIGTERM', i))?.['counters'] ?? {}) as Record<string, string>;
      log(`P4b agent ${i}: sequenced ${k['sequenced'] ?? '?'}, replies ${k['reply'] ?? '?'}, flushes ${k['flush'] ?? '?'}`);
    }
  } finally {
    await cluster?.cleanup();
    await topo.destroy();
  }
  const of = (kind: Kind, f: (p: Phase) => number) => median(phases.filter((p) => p.kind === kind).map(f));
  const ratio = (x: number, b: number) => (b > 0 ? Number((x / b).toFixed(2)) : 0);
  const what = `${o.processes}x${o.lanes} closed-loop KV clients, 3 replicas, flush every ${o.flushIntervalMs} ms, ${mode} XDP, 2 shared CPUs, median of ${o.rounds} rounds`;
  const baselineName = 'one sequencer (the second only flushes)';
  const row = (id: string, name: string, unit: string, f: (p: Phase) => number, goal: Goal | null): BenchRow => {
    const x = of('two', f);
    const b = of('one', f);
    const timedOut = phases.filter((p) => p.timeouts > 0).map((p) => `${p.kind}: ${p.timeouts} timeouts`);
    return { id, name, unit, xseq: x, baseline: b, baselineName, ratio: ratio(x, b), goal, ...(timedOut.length ? { failed: timedOut.join('; ') } : {}) };
  };
  return [
    row('P4b', `Hydra end to end: KV ops/s with requests spread over two sequencers, ${what}`, 'ops/s', (p) => p.opsPerSec, null),
    row('P4b-p50', `Hydra end to end: KV latency p50, two sequencers, ${what}`, 'us', (p) => p.p50Us, null),
  ];
}

// npm run bench: runs every benchmark row side by side with its baseline,
// judges each row against its goal, writes the run with the host's facts to
// bench/results/<date>-<host>.json and prints a table. --check exits 1 when
// a row misses its goal (or its measurement failed). Needs root (BPF,
// namespaces).
import { parseArgs } from 'node:util';
import { hostFacts } from './host.ts';
import { runP1 } from './p1.ts';
import { writeResult, type BenchResult } from './result.ts';
import { goalText, judge, type BenchRow } from './row.ts';

const HELP = `Usage: npm run bench [-- --only P1,P1r,P2,P2s,P3b,P3,P3r,P4,P4b,P5,P6,T,F1,F2] [--quick] [--check] [--out DIR]

Runs the benchmarks and writes DIR/<date>-<host>.json (default DIR:
bench/results): the host's facts (CPU model, kernel, mitigations, clock
source, clock ticks, load before the run) and the rows
{id, name, unit, xseq, baseline, baselineName, ratio, goal, met, failed?};
ratio is xseq / baseline, goal a comparison on the ratio or the xseq value,
met true/false (null: no goal). A row whose measurement failed (timeouts,
an error) has failed set and met false.
--check  exit 1 if any row has met false.
Rows:
  P1, P1s  sequencer ns/packet under BPF_PROG_TEST_RUN vs a bare MAC-swap XDP_TX
  P1r, P1rs, P1rp, P1ro
           the replica-side XDP program ns/packet (duplicate and stale drops,
           a new seq passed, other traffic) vs an XDP_PASS-only program
  P2, P2b  highest zero-loss sequenced rate through the namespace topology,
           XDP sequencer vs a C recvmmsg/sendmmsg sequencer and a Node dgram one
  P2s, P2sb the same kinds' capacity with the sequencer as the bottleneck: one
           veth, an XDP live-frames generator, counted in XDP (runs with P2,
           or alone with --only P2S)
  P3b, P3b-p50, P3b-p99, P3b-cpu
           closed-loop clients, 3 replicas: one in-kernel REPLY per request vs
           the replicas' ACKs counted by the client (req/s, latency, client CPU)
  P3, P3c, P3c-p99, P3-p50, P3-cpu, P3-retx
           the KV store (examples/kv) on 3 replicas vs the same KV as one
           unreplicated server: ops/s, commit latency p50/p99, p50 at peak,
           the busiest replica's CPU per op, spurious re-sends per 100 stamped
  P4, P4m  Hydra: a replica merging 8 sequencers' streams in process (whole
           replica; the merge layer alone) vs the same with 1 sequencer
  P4b, P4b-p50
           Hydra end to end in namespaces: KV ops/s with clients spreading
           over two sequencer hosts vs all to one (the other only flushes)
  F1, F1-detect, F1-agree, F1-dip
           failover of a group with one sequencer + a standby: kill of the
           active host to the load resuming (detection and agreement shares)
  F2, F2-detect, F2-agree, F2-dip
           failover of a group with two sequencers (Hydra): kill of one host
           to the load resuming through the survivor (detection: the
           dead-sequencer timeout; agreement: the removal view change)
           vs NOPaxos's published 110 ms; ops/s in the 2 s around the kill
  P5, P5-lat, P5-peak, P5-serial100, P5-bulk1000, P5-workers
           sequences: NEXTVAL answered in XDP (C nvgen and the TypeScript
           client) vs PostgreSQL nextval() (CACHE 1 / CACHE 65536) driven by
           pgbench -M prepared; PostgreSQL is installed if missing and run
           from a throwaway data directory on 127.0.0.1
  P6, P6-p50, P6-ops
           weighted quorums: 5 KV replicas, one slowed by a CPU cap; commit
           latency p99/p50 and ops/s with weights 1/1/1/1/0 (reassigned
           through the log) vs equal weights
  P3r      client retries per 100 lost leader ACKs with the replica-side XDP
           program on vs off (the ACK race, bench/p3r.ts)
  T-scan, T-flush, T-pace
           the retransmitter's scan per unacked slot, the flush timer's rate,
           the P2s generator's pacing (bench/timers.ts)
--quick uses fewer repetitions (a smoke run, not numbers to report; the
file says quick: true and bench/readme-tables.ts refuses it).`;

const { values: v } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean' },
    check: { type: 'boolean' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log(HELP);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('bench: needs root (BPF programs and network namespaces); run as root');
  process.exit(1);
}
const only = v.only ? new Set(v.only.split(',').map((s) => s.trim().toUpperCase())) : null;
const want = (id: string) => !only || only.has(id);
const log = (s: string) => console.log(`[bench] ${s}`);
const quick = Boolean(v.quick);
const host = hostFacts();
const startedAt = new Date();
log(`host ${host.hostname}: ${host.cpuModel} x${host.cpus}, kernel ${host.kernel}, clocksource ${host.clocksource}, load ${host.loadBefore.join(' ')}`);

const rows: BenchRow[] = [];
/** Runs one group of rows; a group that throws leaves one failed row, so --check sees it. */
async function group(id: string, what: string, run: () => BenchRow[] | Promise<BenchRow[]>): Promise<void> {
  log(`${id}: ${what}`);
  try {
    rows.push(...(await run()));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log(`${id} failed: ${msg}`);
    rows.push({ id, name: what, unit: '', xseq: 0, baseline: 0, baselineName: '', ratio: 0, goal: null, failed: msg });
  }
}

if (want('P1')) await group('P1', 'BPF_PROG_TEST_RUN, interleaved rounds', () => runP1({ repeat: quick ? 100_000 : 1_000_000, rounds: quick ? 3 : 7, log }));
if (want('P1R')) {
  await group('P1r', 'replica-side XDP program, BPF_PROG_TEST_RUN, interleaved rounds', async () =>
    (await import('./p1r.ts')).runP1r({ repeat: quick ? 100_000 : 1_000_000, rounds: quick ? 3 : 7, log }),
  );
}
if (want('P2')) await group('P2', 'zero-loss rate through the namespace topology', async () => (await import('./p2.ts')).runP2({ quick, log }));
if (want('P2') || want('P2S')) {
  await group('P2s', 'sequencer capacity, the sequencer as the bottleneck (bench/README.md)', async () => (await import('./p2s.ts')).runP2s({ quick, log }));
}
if (want('P3B')) await group('P3b', 'in-kernel ACK aggregation vs the client counting the quorum', async () => (await import('./p3b.ts')).runP3b({ quick, log }));
if (want('P4')) {
  await group('P4', 'Hydra merge throughput in process, 8 sequencers vs 1', async () =>
    (await import('./p4.ts')).runP4({ messages: quick ? 100_000 : 400_000, rounds: quick ? 2 : 5, log }),
  );
}
if (want('P4B')) await group('P4b', 'Hydra end to end, two sequencers vs one', async () => (await import('./p4b.ts')).runP4b({ quick, log }));
const timerRows = (['T-scan', 'T-flush', 'T-pace'] as const).filter((id) => want('T') || want(id.toUpperCase()));
if (timerRows.length) {
  await group('T', "the agent's timers and the generator's pacing", async () => (await import('./timers.ts')).runTimers({ quick, log, only: new Set(timerRows) }));
}
if (want('P3R')) await group('P3r', 'the ACK race: client retries per lost leader ACK, replica XDP on vs off', async () => (await import('./p3r.ts')).runP3r({ quick, log }));
if (want('P5')) {
  await group('P5-peak-kernel', 'the NEXTVAL path under BPF_PROG_TEST_RUN vs a bare XDP_TX', async () =>
    (await import('./p5k.ts')).runP5k({ repeat: quick ? 100_000 : 1_000_000, rounds: quick ? 3 : 7, log }),
  );
  await group('P5', 'sequences, xseq NEXTVAL vs PostgreSQL nextval() (started by the bench)', async () => (await import('./p5.ts')).runP5({ quick, log }));
}
if (want('P3')) await group('P3', 'the KV store replicated vs unreplicated', async () => (await import('./p3.ts')).runP3({ quick, log }));
if (want('P6')) await group('P6', 'weighted quorums, one slow replica of five', async () => (await import('./p6.ts')).runP6({ quick, log }));
if (want('F1')) await group('F1', 'failover, one sequencer + a standby', async () => (await import('./f1.ts')).runF1({ quick, log }));
if (want('F2')) await group('F2', 'failover, two sequencers (Hydra)', async () => (await import('./f2.ts')).runF2({ quick, log }));

const missed = judge(rows);
const result: BenchResult = {
  version: 1,
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  quick,
  only: only ? [...only] : null,
  host,
  rows,
};
const out = writeResult(result, v.out);
console.log();
console.table(rows.map((r) => ({ id: r.id, unit: r.unit, xseq: r.xseq, baseline: r.baseline, vs: r.baselineName, ratio: r.ratio, goal: goalText(r.goal), met: r.met })));
for (const r of rows) console.log(`${r.id}: ${r.name}${r.failed ? ` [FAILED: ${r.failed}]` : ''}`);
log(`wrote ${out}`);
if (missed.length) {
  log(`${missed.length} row(s) missed their goal or failed: ${missed.map((r) => `${r.id} (${r.failed ?? `${goalText(r.goal)}, got ${r.goal?.on === 'xseq' ? r.xseq : r.ratio}`})`).join(', ')}`);
  if (v.check) process.exit(1);
}

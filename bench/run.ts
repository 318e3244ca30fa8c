// npm run bench: runs every benchmark row side by side with its baseline,
// writes bench/results.json and prints a table. Needs root (BPF, namespaces).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runP1 } from './p1.ts';
import type { BenchRow } from './row.ts';

const HELP = `Usage: npm run bench [-- --only P1,P1r,P2,P3b,P3,P4,P4b,P5] [--quick]

Runs the benchmarks and writes bench/results.json, an array of
{id, name, unit, xseq, baseline, baselineName, ratio, goal}; ratio is
xseq / baseline. Rows:
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
  P3, P3c, P3c-p99
           the KV store (examples/kv) on 3 replicas vs the same KV as one
           unreplicated server: ops/s and commit latency p50/p99
  P4, P4m  Hydra: a replica merging 8 sequencers' streams in process (whole
           replica; the merge layer alone) vs the same with 1 sequencer
  P4b, P4b-p50
           Hydra end to end in namespaces: KV ops/s with clients spreading
           over two sequencer hosts vs all to one (the other only flushes)
  P5, P5-lat, P5-peak, P5-serial100, P5-bulk1000, P5-workers
           sequences: NEXTVAL answered in XDP (C nvgen and the TypeScript
           client) vs PostgreSQL nextval() (CACHE 1 / CACHE 65536) driven by
           pgbench -M prepared; PostgreSQL is installed if missing and run
           from a throwaway data directory on 127.0.0.1
--quick uses fewer repetitions (a smoke run, not numbers to report).`;

const { values: v } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
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

const rows: BenchRow[] = [];
if (want('P1')) {
  log('P1: BPF_PROG_TEST_RUN, interleaved rounds');
  rows.push(...runP1({ repeat: v.quick ? 100_000 : 1_000_000, rounds: v.quick ? 3 : 7, log }));
}
if (want('P1R')) {
  const { runP1r } = await import('./p1r.ts');
  log('P1r: replica-side XDP program, BPF_PROG_TEST_RUN, interleaved rounds');
  rows.push(...runP1r({ repeat: v.quick ? 100_000 : 1_000_000, rounds: v.quick ? 3 : 7, log }));
}
if (want('P2')) {
  const { runP2 } = await import('./p2.ts');
  log('P2: zero-loss rate through the namespace topology');
  rows.push(...(await runP2({ quick: Boolean(v.quick), log })));
}
if (want('P2') || want('P2S')) {
  const { runP2s } = await import('./p2s.ts');
  log('P2s: sequencer capacity, the sequencer as the bottleneck (bench/README.md)');
  rows.push(...(await runP2s({ quick: Boolean(v.quick), log })));
}
if (want('P3B')) {
  const { runP3b } = await import('./p3b.ts');
  log('P3b: in-kernel ACK aggregation vs the client counting the quorum');
  rows.push(...(await runP3b({ quick: Boolean(v.quick), log })));
}
if (want('P4')) {
  const { runP4 } = await import('./p4.ts');
  log('P4: Hydra merge throughput in process, 8 sequencers vs 1');
  rows.push(...runP4({ messages: v.quick ? 100_000 : 400_000, rounds: v.quick ? 2 : 5, log }));
}
if (want('P4B')) {
  const { runP4b } = await import('./p4b.ts');
  log('P4b: Hydra end to end, two sequencers vs one');
  rows.push(...(await runP4b({ quick: Boolean(v.quick), log })));
}
if (want('P5')) {
  const { runP5k } = await import('./p5k.ts');
  log('P5-peak-kernel: the NEXTVAL path under BPF_PROG_TEST_RUN vs a bare XDP_TX');
  rows.push(...runP5k({ repeat: v.quick ? 100_000 : 1_000_000, rounds: v.quick ? 3 : 7, log }));
  const { runP5 } = await import('./p5.ts');
  log('P5: sequences, xseq NEXTVAL vs PostgreSQL nextval() (started by the bench)');
  rows.push(...(await runP5({ quick: Boolean(v.quick), log })));
}
if (want('P3')) {
  const { runP3 } = await import('./p3.ts');
  log('P3: the KV store replicated vs unreplicated');
  rows.push(...(await runP3({ quick: Boolean(v.quick), log })));
}

const out = join(import.meta.dirname, 'results.json');
writeFileSync(out, JSON.stringify(rows, null, 2) + '\n');
console.log();
console.table(rows.map((r) => ({ id: r.id, unit: r.unit, xseq: r.xseq, baseline: r.baseline, vs: r.baselineName, ratio: r.ratio, goal: r.goal ?? '' })));
for (const r of rows) console.log(`${r.id}: ${r.name}`);
log(`wrote ${out}`);

/**
 * P5, P5-lat, P5-peak and the three experiments of the usual
 * distributed-SQL sequences write-up: xseq's NEXTVAL against PostgreSQL's
 * nextval(), side by side in one run.
 *
 *   xseq:     nvgen (C, bench/baseline/nvgen.c) in the client namespace
 *             ─► veth ─► br0 ─► veth ─► seq (XDP: one atomic add) ─► back
 *   baseline: pgbench -M prepared `SELECT nextval(...)` ─► PostgreSQL on
 *             127.0.0.1 (throwaway data directory, default durability)
 *
 * PostgreSQL is reached over loopback only, xseq over two veth hops and a
 * bridge: the path favours the baseline. Sequences: dense (cache 1) vs
 * `CACHE 1`, blocks of 65536 handed out by the client vs `CACHE 65536`.
 * Phases alternate xseq/PostgreSQL per row so machine noise falls on both.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NsProcess, Topology } from '../netns/topology.ts';
import { startPg } from './pg.ts';
import { atLeast, atMost, type BenchRow, type Goal } from './row.ts';
import { bin, buildBenchTools, REPO_ROOT } from './tools.ts';

interface NvResult {
  calls: number;
  values: number;
  refused: number;
  unknown: number;
  lost: number;
  duplicates: number;
  elapsedNs: number;
  callsPerSec: number;
  valuesPerSec: number;
  p50Ns: number;
  p99Ns: number;
}

const CONFIG = `
sequences:
  - { name: dense, id: 1 }
  - { name: blocks, id: 2, cache: 65536 }
`;

function row(id: string, name: string, unit: string, xseq: number, baseline: number, baselineName: string, goal: Goal | null = null): BenchRow {
  return { id, name, unit, xseq: Math.round(xseq * 100) / 100, baseline: Math.round(baseline * 100) / 100, baselineName, ratio: Math.round((xseq / baseline) * 1000) / 1000, goal };
}

export async function runP5(o: { quick: boolean; log: (s: string) => void }): Promise<BenchRow[]> {
  buildBenchTools();
  const secs = o.quick ? 1 : 3;
  const log = o.log;
  const topo = await Topology.create({ receivers: 0, clients: 1, mode: 'native' });
  const bpffs = mkdtempSync(join(tmpdir(), 'xseq-bench-bpffs-'));
  const state = mkdtempSync(join(tmpdir(), 'xseq-bench-state-'));
  spawnSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  const cfg = join(state, 'agent.yaml');
  writeFileSync(cfg, CONFIG);
  let agent: NsProcess | undefined;
  const pg = await startPg();
  try {
    log(`P5: ${pg.version} on 127.0.0.1:${pg.port}; xseq agent on ${topo.ip('seq')} (native XDP)`);
    pg.psql('CREATE SEQUENCE s1 CACHE 1; CREATE SEQUENCE s65536 CACHE 65536;');
    agent = topo.spawn('seq', process.execPath, [join(REPO_ROOT, 'agent/bin/xseq-agent.js'), 'run', '--config', cfg, '--iface', topo.ifname('seq'), '--mode', 'native', '--group', '1:239.7.7.1:7500', '--stats-interval', '0', '--metrics-listen', '', '--bpffs', bpffs, '--state-dir', state], { env: { ...process.env, XSEQ_CONFIG: '' } });
    await agent.waitForLine(/"event":"ready"/, 60_000);
    const nv = (args: string[]): NvResult => {
      const out = topo.exec('cli', bin.nvgen, ['--dst', topo.ip('seq'), ...args], { timeoutMs: 600_000 });
      const r = JSON.parse(out.trim().split('\n').pop()!) as NvResult;
      if (r.duplicates || r.unknown) throw new Error(`nvgen ${args.join(' ')}: ${out}`);
      return r;
    };
    const rows: BenchRow[] = [];
    const ms = String(secs * 1000);

    for (const c of [1, 8, 32]) {
      const x = nv(['--name', 'dense', '--threads', String(c), '--duration-ms', ms]);
      const p = pg.pgbench({ sql: "SELECT nextval('s1');", clients: c, seconds: secs });
      log(`P5 dense ${c} clients: xseq ${x.callsPerSec}/s (lost ${x.lost}, refused ${x.refused}), PostgreSQL CACHE 1 ${p.tps.toFixed(0)}/s`);
      rows.push(row(`P5-dense-${c}`, `nextval calls/s, dense (cache 1), ${c} clients, C (nvgen vs pgbench)`, 'calls/s', x.callsPerSec, p.tps, 'PostgreSQL CACHE 1', c === 8 ? atLeast('ratio', 5) : null));
    }
    for (const c of [1, 8, 32]) {
      const x = nv(['--name', 'blocks', '--count', '0', '--local', '--threads', String(c), '--duration-ms', ms]);
      const p = pg.pgbench({ sql: "SELECT nextval('s65536');", clients: c, seconds: secs });
      log(`P5 cached ${c} clients: xseq ${x.callsPerSec}/s values handed out from blocks of 65536, PostgreSQL CACHE 65536 ${p.tps.toFixed(0)}/s`);
      rows.push(row(`P5-cached-${c}`, `nextval calls/s, blocks of 65536 handed out by the client, ${c} clients`, 'calls/s', x.callsPerSec, p.tps, 'PostgreSQL CACHE 65536'));
    }
    {
      const out = topo.exec('cli', process.execPath, [join(REPO_ROOT, 'sequences/bin/xseq-nextval.js'), 'bench', 'dense', '--clients', '8', '--duration', String(secs), '--server', `${topo.ip('seq')}:7400`], { timeoutMs: 120_000 });
      const x = JSON.parse(out.trim().split('\n').pop()!) as { callsPerSec: number; duplicates: number; errors: number };
      const p = pg.pgbench({ sql: "SELECT nextval('s1');", clients: 8, seconds: secs });
      log(`P5 TypeScript client, 8 concurrent calls in one process: ${x.callsPerSec}/s (errors ${x.errors}), PostgreSQL CACHE 1 ${p.tps.toFixed(0)}/s`);
      rows.push(row('P5-ts-8', 'nextval calls/s, dense, TypeScript client (one process, 8 concurrent calls)', 'calls/s', x.callsPerSec, p.tps, 'PostgreSQL CACHE 1, pgbench 8 clients'));
    }
    {
      const x = nv(['--name', 'dense', '--threads', '1', '--duration-ms', ms]);
      const p = pg.pgbench({ sql: "SELECT nextval('s1');", clients: 1, seconds: secs, latencies: true });
      const q = (a: number[], f: number) => a[Math.min(a.length - 1, Math.floor(a.length * f))]!;
      log(`P5-lat: xseq p50 ${(x.p50Ns / 1000).toFixed(1)} us p99 ${(x.p99Ns / 1000).toFixed(1)} us; PostgreSQL p50 ${(q(p.latNs, 0.5) / 1000).toFixed(1)} us p99 ${(q(p.latNs, 0.99) / 1000).toFixed(1)} us`);
      rows.push(row('P5-lat-p50', 'serial nextval latency p50 (1 client)', 'us', x.p50Ns / 1000, q(p.latNs, 0.5) / 1000, 'PostgreSQL CACHE 1', atMost('ratio', 0.5)));
      rows.push(row('P5-lat-p99', 'serial nextval latency p99 (1 client)', 'us', x.p99Ns / 1000, q(p.latNs, 0.99) / 1000, 'PostgreSQL CACHE 1'));
    }
    {
      // Peak: windows of requests in flight; the highest with zero loss.
      let best: NvResult | undefined;
      let setting = '';
      for (const [threads, window] of [[4, 64], [4, 32], [2, 32], [2, 16]] as const) {
        const x = nv(['--name', 'dense', '--threads', String(threads), '--window', String(window), '--duration-ms', ms]);
        log(`P5-peak: ${threads} threads x ${window} in flight: ${x.valuesPerSec} values/s, lost ${x.lost}, refused ${x.refused}`);
        if (x.lost === 0 && x.refused === 0 && (!best || x.valuesPerSec > best.valuesPerSec)) {
          best = x;
          setting = `${threads}x${window}`;
        }
      }
      const p = pg.pgbench({ sql: "SELECT nextval('s1');", clients: 32, seconds: secs });
      const peak = row('P5-peak', `highest dense values/s with zero loss, end to end (nvgen ${setting || 'none lossless'} in flight)`, 'values/s', best?.valuesPerSec ?? 0, p.tps, 'PostgreSQL CACHE 1, 32 clients', atLeast('xseq', 500_000));
      rows.push(best ? peak : { ...peak, failed: 'every setting lost or was refused a call' });
    }
    {
      // The write-up's three experiments.
      const serial = nv(['--name', 'dense', '--threads', '1', '--calls', '100']);
      const ps = pg.pgbench({ sql: "SELECT nextval('s1');", clients: 1, transactions: 100 });
      rows.push(row('P5-serial100', '100 serial nextval calls, total time', 'ms', serial.elapsedNs / 1e6, (100 / ps.tps) * 1000, 'PostgreSQL CACHE 1'));
      const bulk = nv(['--name', 'dense', '--threads', '1', '--calls', '1', '--count', '1000']);
      const pb = pg.pgbench({ sql: "SELECT nextval('s1') FROM generate_series(1, 1000);", clients: 1, transactions: 20 });
      rows.push(row('P5-bulk1000', '1000 values for a bulk insert (xseq: one nextvalBlock(1000); PostgreSQL: nextval() FROM generate_series)', 'ms', bulk.elapsedNs / 1e6, 1000 / pb.tps, 'PostgreSQL CACHE 1'));
      const w = nv(['--name', 'dense', '--threads', '100', '--calls', '100', '--timeout-ms', '1000']);
      const pw = pg.pgbench({ sql: "SELECT nextval('s1');", clients: 100, transactions: 100 });
      log(`P5-workers: xseq ${w.calls} values in ${(w.elapsedNs / 1e6).toFixed(0)} ms, lost (retried) ${w.lost}, refused ${w.refused}, out of order ${w.duplicates}; PostgreSQL ${pw.transactions} in ${((pw.transactions / pw.tps) * 1000).toFixed(0)} ms`);
      rows.push(row('P5-workers', '100 workers x 100 nextval each, total time (no conflicts or retries on either side)', 'ms', w.elapsedNs / 1e6, (pw.transactions / pw.tps) * 1000, 'PostgreSQL CACHE 1'));
    }
    return rows;
  } finally {
    await agent?.stop('SIGTERM');
    pg.stop();
    await topo.destroy();
    spawnSync('umount', ['-l', bpffs]);
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
}

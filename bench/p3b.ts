/**
 * P3b: what in-kernel ACK aggregation buys a client, in requests/s and
 * latency, against the same replicas answering the client directly.
 *
 *   xseq:     clients ─► seq (XDP: stamp) ─► br0 ─► r1, r2, r3
 *             r1..r3 ACK ─► seq (XDP: count, quorum incl. the leader)
 *             seq ─► client: one REPLY with the leader's result
 *   baseline: clients ─► seq (XDP: stamp) ─► br0 ─► r1, r2, r3
 *             r1..r3 ACK ─► client, which counts the same quorum itself
 *
 * One topology (3 replicas, a few closed-loop clients, native XDP) and
 * one agent serve both: group 1 aggregates (members r1..r3), group 2 only
 * stamps. Both run tools/test-replica.ts (--ack-to client for the
 * baseline) and tools/client.ts (--count-quorum 3 for the baseline), so
 * the only difference is where the ACKs go and who counts them. Phases
 * alternate (and swap order every round) so machine noise falls on both;
 * a row reports the median round.
 *
 * No process is bound to a CPU: on this 2-CPU machine clients, replicas
 * and every softirq share both, as they would not across real hosts. A
 * veth delivers what a process sends in the sender's softirq, so the
 * kernel work of an ACK (bridge, the sequencer's XDP, the REPLY) is charged
 * to the replica that sent it, and the client's own cost is what differs:
 * one REPLY per request (one wakeup) instead of three ACKs. The P3b-cpu row
 * shows that client CPU per request. What bounds both kinds here is the
 * three Node test replicas (35-50 us of CPU per packet each, kernel path
 * included), so the client's saving is a modest share of the total, and
 * other work on the machine moves single phases by 2x: read the rounds in
 * the log, not only the medians.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type NsProcess, Topology, type XdpMode } from '../netns/topology.ts';
import { type ClientSummary, histQuantile } from '../tools/client.ts';
import type { ReplicaSummary } from '../tools/test-replica.ts';
import { atLeast, below, type BenchRow, type Goal } from './row.ts';
import { REPO_ROOT } from './tools.ts';

// node --import tsx (resolved from the repository: every spawn runs there),
// not the tsx command: under load tsx kills its child 30 ms after
// forwarding SIGTERM, before a replica has printed its summary.
const TS = ['--import', 'tsx'];
const IN_REPO = { cwd: REPO_ROOT };
const AGENT = join(REPO_ROOT, 'agent', 'cli.ts');
const CLIENT = join(REPO_ROOT, 'tools', 'client.ts');
const REPLICA = join(REPO_ROOT, 'tools', 'test-replica.ts');
const SEQ_PORT = 7400;
const ACK_PORT = 7600;
const REPLICAS = ['r1', 'r2', 'r3'] as const;
const AGGREGATED = { id: 1, addr: '239.7.7.1', port: 7500 } as const;
const PLAIN = { id: 2, addr: '239.7.7.2', port: 7501 } as const;

type Kind = 'xseq' | 'baseline';

export interface P3bOptions {
  /** Closed-loop clients (default 3). */
  clients?: number;
  /** Requests each client keeps in flight (default 8: enough to keep both
   * CPUs busy, so the phases compare cost rather than idle round trips). */
  outstanding?: number;
  /** Sending time per phase, ms (default 4000; quick 2000). */
  phaseMs?: number;
  /** Leading part of each phase left out of the numbers: JIT and caches
   * (default 1000; quick 500). */
  warmupMs?: number;
  /** xseq/baseline phase pairs (default 5; quick 1). */
  rounds?: number;
  /** The agent's retransmission timeout (default 200; see runP3bDetailed). */
  rtoMs?: number;
  /** More `xseq-agent run` flags, e.g. ['--window', '16384']. */
  agentArgs?: string[];
  mode?: XdpMode;
  quick?: boolean;
  log?: (s: string) => void;
}

export interface P3bPhase {
  kind: Kind;
  round: number;
  requestsPerSec: number;
  p50Us: number;
  p99Us: number;
  clientCpuUsPerRequest: number;
  clients: ClientSummary[];
}

export interface P3bResult {
  rows: BenchRow[];
  phases: P3bPhase[];
  /** Each replica's summary over the whole run, per kind. */
  replicas: Record<Kind, ReplicaSummary[]>;
  /** The agent's last line: kernel counters, and its retransmissions (in
   * the xseq phases only; group 2 has no window). */
  kernel: Record<string, string>;
  retransmit: Record<string, number>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

async function replicaSummary(p: NsProcess): Promise<ReplicaSummary> {
  await p.stop('SIGTERM', 3000);
  const l = p.output().stdout.split('\n').find((x) => x.includes('"replicaId"') && x.includes('"distinct"'));
  if (!l) throw new Error(`no summary from the replica in ${p.role}: ${p.output().stderr.trim().slice(-500)}`);
  return JSON.parse(l) as ReplicaSummary;
}

/** One replica set per kind, started once and kept for every round: the
 * idle set waits in epoll on its own group and costs nothing. */
function startReplicas(topo: Topology, kind: Kind, budgetMs: number): NsProcess[] {
  const g = kind === 'xseq' ? AGGREGATED : PLAIN;
  return REPLICAS.map((role, i) =>
    topo.spawn(role, process.execPath, [
      ...TS,
      REPLICA,
      '--group-addr', g.addr,
      '--group-port', String(g.port),
      '--group-id', String(g.id),
      '--iface-addr', topo.ip(role),
      '--replica-id', String(i),
      '--replicas', String(REPLICAS.length),
      '--ack-port', String((kind === 'xseq' ? ACK_PORT : ACK_PORT + 10) + i),
      '--seq-addr', topo.ip('seq'),
      '--ack-to', kind === 'xseq' ? 'sequencer' : 'client',
      '--max-ms', String(budgetMs),
    ], IN_REPO),
  );
}

async function runPhase(topo: Topology, kind: Kind, round: number, o: Required<Omit<P3bOptions, 'log' | 'quick'>>): Promise<P3bPhase> {
  const g = kind === 'xseq' ? AGGREGATED : PLAIN;
  const baseline = kind === 'baseline' ? ['--count-quorum', String(REPLICAS.length), ...REPLICAS.map((r, i) => `--member=${i}:${topo.ip(r)}:${ACK_PORT + 10 + i}`)] : [];
  // Far enough ahead for every client process to have started.
  const startAt = Date.now() + 2500;
  const clients = topo.clients.map((role, i) =>
    topo.spawn(role, process.execPath, [
      ...TS,
      CLIENT,
      '--seq-addr', topo.ip('seq'),
      '--group', String(g.id),
      '--bind-addr', topo.ip(role),
      '--client-id', String(i + 1),
      // Fresh ids per phase: a stray late answer can never match.
      '--first-request-id', String(round * 10_000_000 + (kind === 'xseq' ? 0 : 5_000_000) + 1),
      '--outstanding', String(o.outstanding),
      '--duration-ms', String(o.phaseMs),
      '--warmup-ms', String(o.warmupMs),
      '--start-at', String(startAt),
      // Backpressure drops a request silently and expects the client to
      // retry; a client that waited seconds for it would measure its own
      // timeout. Giving up after 200 ms (10x the usual p99 here) and sending
      // a new request is what a retrying client costs; a slow answer that
      // comes later still counts.
      '--timeout-ms', '200',
      '--linger-ms', '200',
      '--max-ms', String(o.phaseMs + 30_000),
      ...baseline,
    ], IN_REPO),
  );
  const sums = await Promise.all(clients.map(async (c) => JSON.parse(await c.waitForLine(/"sent"/, o.phaseMs + 40_000)) as ClientSummary));
  const hists = sums.map((s) => s.latencyHist);
  const measured = sums.reduce((a, s) => a + s.measured, 0);
  return {
    kind,
    round,
    requestsPerSec: sums.reduce((a, s) => a + s.requestsPerSec, 0),
    p50Us: Math.round(histQuantile(hists, 0.5)),
    p99Us: Math.round(histQuantile(hists, 0.99)),
    clientCpuUsPerRequest: measured ? Math.round(sums.reduce((a, s) => a + s.cpuUsPerRequest * s.measured, 0) / measured) : 0,
    clients: sums,
  };
}

export async function runP3bDetailed(opts: P3bOptions = {}): Promise<P3bResult> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const o = {
    clients: opts.clients ?? 3,
    outstanding: opts.outstanding ?? 8,
    phaseMs: opts.phaseMs ?? (quick ? 2000 : 4000),
    warmupMs: opts.warmupMs ?? (quick ? 500 : 1000),
    rounds: opts.rounds ?? (quick ? 1 : 5),
    mode: opts.mode ?? 'native',
    rtoMs: opts.rtoMs ?? 200,
    agentArgs: opts.agentArgs ?? [],
  };
  log(`P3b: ${o.clients} clients x ${o.outstanding} outstanding, 3 replicas, ${o.mode} XDP, RTO ${o.rtoMs} ms${o.agentArgs.length ? `, agent ${o.agentArgs.join(' ')}` : ''}, ${o.rounds} rounds of ${o.phaseMs} ms phases (first ${o.warmupMs} ms not counted)`);
  const topo = await Topology.create({ receivers: REPLICAS.length, clients: o.clients, mode: o.mode });
  const stateDir = mkdtempSync(join(tmpdir(), 'xseq-p3b-'));
  const phases: P3bPhase[] = [];
  let kernel: Record<string, string> = {};
  let retransmit: Record<string, number> = {};
  let replicas: Record<Kind, ReplicaSummary[]> = { xseq: [], baseline: [] };
  // Replicas outlive every phase; this only bounds them if P3b is killed.
  const budgetMs = o.rounds * 2 * (o.phaseMs + 20_000) + 60_000;
  try {
    const members = REPLICAS.map((r, i) => `--member=${AGGREGATED.id}:${i}:${topo.ip(r)}:${ACK_PORT + i}`);
    const agent = topo.spawn('seq', process.execPath, [
      ...TS,
      AGENT, 'run',
      // Hermetic: no host config file, state in a directory of this run,
      // nothing left attached or pinned.
      '--config', '',
      '--state-dir', stateDir,
      '--detach-on-exit',
      '--iface', topo.ifname('seq'),
      '--mode', o.mode,
      '--port', String(SEQ_PORT),
      '--group', `${AGGREGATED.id}:${AGGREGATED.addr}:${AGGREGATED.port}`,
      '--group', `${PLAIN.id}:${PLAIN.addr}:${PLAIN.port}`,
      ...members,
      // No loss is injected here and the baseline re-sends nothing, so the
      // RTO is set far above a loaded 2-CPU VM's round trip: with the
      // default 20 ms, a replica that is merely scheduled late gets re-sent
      // everything it has not acked yet, falls further behind, and stalls
      // the group (backpressure) once it lags a window. That is a finding
      // about the retransmitter, not about aggregation; the log line after
      // the rounds shows retransmissions and backpressure drops.
      '--rto-ms', String(o.rtoMs),
      '--stats-interval', '0',
      ...o.agentArgs,
    ], IN_REPO);
    await agent.waitForLine(/"event":"ready"/, 30_000);
    const sets: Record<Kind, NsProcess[]> = { xseq: startReplicas(topo, 'xseq', budgetMs), baseline: startReplicas(topo, 'baseline', budgetMs) };
    await Promise.all([...sets.xseq, ...sets.baseline].map((r) => r.waitForLine(/"event":"listening"/, 30_000)));
    for (let round = 0; round < o.rounds; round++) {
      const order: Kind[] = round % 2 === 0 ? ['xseq', 'baseline'] : ['baseline', 'xseq'];
      for (const kind of order) {
        const p = await runPhase(topo, kind, round, o);
        phases.push(p);
        const bad = p.clients.filter((c) => c.missing || c.duplicates || c.wrongResult);
        log(
          `  round ${round + 1} ${kind}: ${p.requestsPerSec} req/s, p50 ${p.p50Us} us, p99 ${p.p99Us} us, client CPU ${p.clientCpuUsPerRequest} us/req` +
            (bad.length ? ` [${bad.map((c) => `client ${c.clientId}: missing ${c.missing}, duplicates ${c.duplicates}, wrong ${c.wrongResult}`).join('; ')}]` : ''),
        );
        // Let the last phase's stragglers (retransmissions, late ACKs) end.
        await sleep(300);
      }
    }
    replicas = { xseq: await Promise.all(sets.xseq.map(replicaSummary)), baseline: await Promise.all(sets.baseline.map(replicaSummary)) };
    await agent.stop('SIGTERM', 5000);
    const stopped = agent.output().stdout.split('\n').find((l) => l.includes('"event":"stopped"'));
    if (stopped) {
      const st = JSON.parse(stopped) as { counters: Record<string, string>; retransmit?: Record<string, number> };
      kernel = st.counters;
      retransmit = st.retransmit ?? {};
      log(
        `P3b kernel: sequenced ${kernel['sequenced']}, reply ${kernel['reply']}, drop_backpressure ${kernel['drop_backpressure']}; ` +
          `agent retransmissions ${retransmit['retransmissions'] ?? 0} (give-ups ${retransmit['giveUps'] ?? 0})`,
      );
    }
  } finally {
    await topo.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }

  const of = (kind: Kind, f: (p: P3bPhase) => number) => median(phases.filter((p) => p.kind === kind).map(f));
  const ratio = (x: number, b: number) => (b > 0 ? Number((x / b).toFixed(2)) : 0);
  const extra = o.agentArgs.length ? ` (agent ${o.agentArgs.join(' ')})` : '';
  const setup = `${o.clients} closed-loop clients x ${o.outstanding} outstanding, 3 test replicas, ${o.mode} XDP, RTO ${o.rtoMs} ms${extra}, median of ${o.rounds} rounds`;
  const baselineName = 'replicas ACK the client, which counts the quorum';
  const row = (id: string, name: string, unit: string, f: (p: P3bPhase) => number, goal: Goal | null): BenchRow => {
    const x = of('xseq', f);
    const b = of('baseline', f);
    return { id, name, unit, xseq: x, baseline: b, baselineName, ratio: ratio(x, b), goal };
  };
  const rows = [
    row('P3b', `requests/s with in-kernel ACK aggregation (one REPLY per request), ${setup}`, 'req/s', (p) => p.requestsPerSec, atLeast('ratio', 1.5)),
    row('P3b-p50', `median request latency, ${setup}`, 'us', (p) => p.p50Us, null),
    row('P3b-p99', `99th percentile request latency, ${setup}`, 'us', (p) => p.p99Us, below('ratio', 1)),
    row('P3b-cpu', `client CPU time per answered request, ${setup}`, 'us/req', (p) => p.clientCpuUsPerRequest, null),
  ];
  return { rows, phases, replicas, kernel, retransmit };
}

export async function runP3b(opts: P3bOptions = {}): Promise<BenchRow[]> {
  const r = await runP3bDetailed(opts);
  // A phase that lost or duplicated answers measured something broken.
  const bad = r.phases.flatMap((p) => p.clients.filter((c) => c.duplicates > 0 || c.wrongResult > 0).map((c) => `${p.kind} round ${p.round + 1} client ${c.clientId}`));
  if (bad.length) throw new Error(`P3b: duplicate or wrong answers in ${bad.join(', ')}`);
  return r.rows;
}

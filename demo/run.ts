// The README's demo: the replicated KV store (examples/kv) on a local
// cluster in network namespaces. xseq-agent loads the XDP sequencer on the
// sequencer host; three KV replicas (real processes, one namespace each)
// order and execute every op; a KV client load runs gets, puts and CAS.
// Then it reads every acknowledged write back, compares the replicas'
// committed logs, prints the agent's metrics and the replicas' status, and
// removes everything it created: on success, on failure and on Ctrl-C.
//
// The cluster is started exactly as the KV namespace test and bench P3
// start it (examples/kv/netns-cluster.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LoadSummary } from '../examples/kv/load.ts';
import { GROUP, KvCluster, SEQ_PORT } from '../examples/kv/netns-cluster.ts';
import { compareLogs, expectedValues, placeWrites, unreadable } from '../examples/kv/verify.ts';
import { addLinkLoss, type LossHandle } from '../netns/loss.ts';
import { Topology, type XdpMode } from '../netns/topology.ts';

const HELP = `Usage: bash scripts/demo.sh [options]
       node --import tsx demo/run.ts [options]     (setup already done)

Runs the replicated KV store (examples/kv) on a local cluster in network
namespaces: a client, the sequencer host, three replicas and a bridge that
floods the multicast. Starts xseq-agent on the sequencer host (group 1 at
${GROUP.addr}:${GROUP.port}, the three replicas as members, the default
policy), three KV replicas (examples/kv/replica.ts), and a closed-loop KV
client load (examples/kv/cli.ts load: 50% get, 40% put, 10% cas) until
--duration or --ops, whichever comes first, printing progress every 2 s.

Then it prints the load's ops, ok and latency; reads every key's last
acknowledged write back (a few shown); compares the three replicas'
committed logs and finds every acknowledged write at the log position that
certified it; prints the agent's Prometheus metrics and each replica's
status; and removes every namespace, process and mount it made (also on
failure, and on Ctrl-C, exit 130). Exit 0 only if all of that holds and no
read was stale; 1 otherwise; 2 for a bad option.

Options:
  --duration S       seconds of client load (default 15)
  --ops N            stop the load after N ops (default: no limit)
  --clients C        concurrent closed-loop clients (default 4)
  --loss PERCENT     drop this share of frames on every replica link, both
                     ways, during the load (default 0; 0..50): the agent
                     retransmits, replicas repair and fill gaps
  --mode native|generic  how the sequencer's XDP program attaches (default
                     native)
  -h, --help         this text`;

const { values: v } = (() => {
  try {
    return parseArgs({
      options: {
        mode: { type: 'string', default: 'native' },
        duration: { type: 'string', default: '15' },
        ops: { type: 'string' },
        clients: { type: 'string', default: '4' },
        loss: { type: 'string', default: '0' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`demo: ${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
})();
const usage = (msg: string): never => {
  console.error(`demo: ${msg}\n\n${HELP}`);
  process.exit(2);
};
if (v.help) {
  console.log(HELP);
  process.exit(0);
}
if (v.mode !== 'native' && v.mode !== 'generic') usage(`--mode must be native or generic, got "${v.mode}"`);
const mode = v.mode as XdpMode;
const durationS = Number(v.duration);
const ops = v.ops === undefined ? undefined : Number(v.ops);
const clients = Number(v.clients);
const loss = Number(v.loss);
if (!Number.isInteger(durationS) || durationS < 1 || durationS > 600) usage('--duration must be 1..600 (seconds)');
if (ops !== undefined && (!Number.isInteger(ops) || ops < 1 || ops > 10_000_000)) usage('--ops must be 1..10000000');
if (!Number.isInteger(clients) || clients < 1 || clients > 64) usage('--clients must be 1..64');
if (!(loss >= 0 && loss <= 50)) usage('--loss must be 0..50 (percent)');

const step = (s: string) => console.log(`[demo] ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const last = (text: string, event: string): Record<string, unknown> | null => {
  const l = text.split('\n').reverse().find((x) => x.includes(`"event":"${event}"`));
  return l ? (JSON.parse(l) as Record<string, unknown>) : null;
};

let topo: Topology | undefined;
let cluster: KvCluster | undefined;
const losses: LossHandle[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;
/** Everything this run made, in reverse: loss rules, processes, the bpffs mount, the namespaces. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const l of losses.splice(0)) {
      try {
        l.remove();
      } catch {
        /* its namespace is already gone */
      }
    }
    await cluster?.cleanup();
    await topo?.destroy();
    step('cleaned up: processes stopped, bpffs unmounted, namespaces removed');
  })();
  return cleaning;
}
// Ctrl-C reaches the children too (same process group); the Topology's
// own handler kills what is left and deletes the namespaces, and this one
// unmounts the bpffs and exits non-zero. It stays registered: with no
// listener left, the Topology's handler would re-raise the signal and the
// process would die before the unmount. A second signal exits at once.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    step(`${sig}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

let ok = false;
try {
  topo = await Topology.create({ receivers: 3, clients: 1, mode });
  const t = topo;
  const seqIp = t.ip('seq');
  step(`namespaces ${t.prefix}*: client ${t.ip('cli')}, sequencer ${seqIp}, replicas ${t.receivers.map((r) => t.ip(r)).join(' ')}; a bridge floods the multicast`);
  const c = (cluster = new KvCluster(t, {
    mode,
    dumps: true,
    replicaArgs: ['--stats-interval', '1000'],
    // The agent's defaults (policy backpressure, the default window): what
    // users run.
    agentArgs: ['--metrics-listen', `${seqIp}:9464`, '--stats-interval', '1000'],
  }));
  const agent = await c.startAgent();
  step(`xseq-agent ${agent.dataPath} the data path on ${t.ifname('seq')} (${mode} XDP): group ${GROUP.id} -> ${GROUP.addr}:${GROUP.port}, session ${agent.session}, metrics on ${seqIp}:9464, pins in ${c.bpffs}`);
  await c.startReplicas();
  const status = (i: number) => last(c.replicas[i]!.output().stdout, 'status') as { status: string; leader: boolean; view: { session: number; leaderNum: number } } | null;
  const deadline = Date.now() + 30_000;
  while (!c.replicas.every((_, i) => status(i)?.status === 'normal')) {
    if (Date.now() > deadline) throw new Error(`the replicas did not become normal: ${JSON.stringify(c.replicas.map((_, i) => status(i)))}`);
    await sleep(100);
  }
  step(`3 KV replicas running (examples/kv/replica.ts), replica ${c.replicas.findIndex((_, i) => status(i)?.leader)} leads; each ACKs to ${seqIp}:${SEQ_PORT} and talks TCP to its peers`);
  if (loss > 0) {
    for (const r of t.receivers) for (const direction of ['to', 'from'] as const) losses.push(addLinkLoss(t, r, loss, { direction }));
    step(`dropping ${loss}% of frames on every replica link, both ways`);
  }

  const limit = `${durationS} s${ops !== undefined ? ` or ${ops} ops` : ''}`;
  step(`KV client load: ${clients} closed-loop clients, get/put/cas 50/40/10, for ${limit}`);
  const load = c.spawnCli('cli', [
    'load', '--duration-ms', String(durationS * 1000), ...(ops !== undefined ? ['--ops', String(ops)] : []),
    '--clients', String(clients), '--keys', '32', '--retry-ms', '300', '--timeout-ms', '10000', '--tag', 'demo',
  ]);
  const started = Date.now();
  const progress = setInterval(() => {
    const a = last(c.agent?.output().stdout ?? '', 'counters') as { counters?: Record<string, string> } | null;
    const commits = c.replicas.map((p) => (last(p?.output().stdout ?? '', 'stats') as { committed?: number } | null)?.committed ?? 0);
    step(`progress ${Math.round((Date.now() - started) / 1000)} s: sequenced ${a?.counters?.['sequenced'] ?? '?'}, replies ${a?.counters?.['reply'] ?? '?'}, committed ${commits.join('/')}`);
  }, 2000);
  let sum: LoadSummary;
  try {
    sum = JSON.parse(await load.waitForLine(/"tag"/, durationS * 1000 + 60_000)) as LoadSummary;
  } finally {
    clearInterval(progress);
  }
  const dropped = losses.reduce((a, l) => a + l.dropped(), 0);
  for (const l of losses.splice(0)) l.remove();
  if (loss > 0) step(`loss removed: it dropped ${dropped} frames`);

  console.log(`\nload: ${sum.ops} ops done, ${sum.ok} ok, ${sum.timeouts} timed out, ${sum.errors} errors, ${sum.staleReads} stale reads`);
  console.log(`      gets ${sum.kinds.get} (${sum.kinds.notFound} not found), puts ${sum.kinds.put}, cas ${sum.kinds.cas} (${sum.kinds.casMismatch} mismatched)`);
  console.log(`      ${sum.opsPerSec} ops/s, latency p50 ${sum.p50Us} us, p99 ${sum.p99Us} us, max ${sum.maxUs} us`);

  // Every acknowledged write reads back, through the log like any op.
  const expected = expectedValues([sum]);
  const keysFile = join(c.dir, 'keys.txt');
  writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
  const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '10000']);
  if (read.status !== 0) throw new Error(`kv read failed: ${read.stderr.trim()}`);
  const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: { key: string; error: string }[] };
  const lost = unreadable(expected, got.values);
  console.log(`\nread back: ${expected.size} keys written, ${expected.size - lost.length} read back their last acknowledged write (${got.failed.length} reads failed)`);
  for (const [key, e] of [...expected].slice(0, 4)) {
    console.log(`  get ${key} -> "${got.values[key]}"   (acknowledged ${e.write.kind} at session ${e.write.session} seq ${e.write.seq})`);
  }
  for (const l of lost.slice(0, 5)) console.log(`  LOST ${l.key}: want "${l.want}", got ${JSON.stringify(l.got)}`);

  // The replicas settle on one commit point; then their logs must agree.
  const dumps = await c.settledDumps(20_000);
  const cmp = compareLogs(dumps);
  const placed = placeWrites(dumps, sum.writes);
  const gaps = cmp.gaps.length ? `; ${cmp.gaps.map((g) => `replica ${g.replica} holds slots ${g.from}..${g.to} as state (state transfer)`).join(', ')}` : '';
  if (cmp.identical) {
    console.log(`\nlogs identical: 3 replicas committed ${cmp.committed} slots, the same entry at every slot ${cmp.gaps.length ? 'two of them hold ' : ''}(${cmp.slotsHeldByAll} held by all three)${gaps}; state sha256 ${cmp.stateDigest.slice(0, 16)}...`);
  } else {
    console.log(`\nLOGS DIFFER: ${cmp.problems.join('; ')}`);
  }
  console.log(`log check: of ${sum.writes.length} acknowledged writes, ${placed.placed} sit in the committed log at the (session, seq) that certified them, ${placed.inState} only in state transferred by a replica, ${placed.misplaced} misplaced`);
  for (const m of placed.samples) console.log(`  MISPLACED ${m}`);

  const metrics = t.exec('seq', process.execPath, ['-e', `fetch('http://${seqIp}:9464/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  console.log('\nagent metrics (GET /metrics, selected):');
  const show = /^xseq_(requests_sequenced_total|replies_total|acks_total|acks_late_total|window_overwrites_total|retransmissions_total|retransmitted_seqs_total|retransmit_give_ups_total|repair_requests_total|repair_resent_messages_total|quorum_latency_seconds_(count|sum)|group_session|packets_dropped_total\{[^}]*reason="ack_stranger")/;
  for (const l of metrics.split('\n')) if (show.test(l)) console.log(`  ${l}`);
  console.log(`  quorum latency (stamp to quorum, from the histogram): ${quorumSummary(metrics)}`);

  // Status as of the log check, when all three had settled; the counters
  // from each replica's last line. They stop together: stopped one by one,
  // the last would see its leader go quiet and start a view change.
  await c.stopAgent('SIGTERM');
  await Promise.all(c.replicas.map((p) => p!.stop('SIGTERM', 10_000)));
  console.log('\nreplica  status  view(session/leader)  leader  committed  executed  keys  sequenced  retransmitted  repaired  acks');
  for (const [i, p] of c.replicas.entries()) {
    const d = dumps.find((x) => x.replicaId === i);
    const s = last(p!.output().stdout, 'stopped') as { keys: number; transport: { sequenced: number; retransmits: number; repairReplies: number; acks: number } } | null;
    if (!d || !s) {
      console.log(`${i}        (no status: ${!d ? 'no log dump' : 'no stopped line'})`);
      continue;
    }
    const leader = d.view.leaderNum % 3 === i ? 'yes' : 'no';
    console.log(
      `${String(i).padEnd(8)} ${d.status.padEnd(7)} ${`${d.view.session}/${d.view.leaderNum}`.padEnd(21)} ${leader.padEnd(7)} ${String(d.committed).padStart(9)}  ${String(d.executed).padStart(8)}  ${String(s.keys).padStart(4)}  ${String(s.transport.sequenced).padStart(9)}  ${String(s.transport.retransmits).padStart(13)}  ${String(s.transport.repairReplies).padStart(8)}  ${s.transport.acks}`,
    );
  }

  ok = lost.length === 0 && got.failed.length === 0 && placed.misplaced === 0 && sum.staleReads === 0 && sum.errors === 0 && sum.ok > 0 && cmp.identical;
  console.log(`\n${ok ? 'OK' : 'FAILED'}: ${sum.ok} ops acknowledged, ${lost.length + got.failed.length} keys without their last acknowledged write, ${placed.misplaced} writes misplaced, ${sum.staleReads} stale reads, logs ${cmp.identical ? 'identical' : 'DIFFER'}`);
} catch (e) {
  console.error(`[demo] failed: ${(e as Error).message}`);
} finally {
  await cleanup();
}
process.exit(interrupted ? 130 : ok ? 0 : 1);

/** Count, mean and the buckets p50 and p99 fall in, from the Prometheus histogram. */
function quorumSummary(text: string): string {
  const buckets: [number, number][] = [];
  let count = 0;
  let total = 0;
  for (const l of text.split('\n')) {
    const b = /^xseq_quorum_latency_seconds_bucket\{.*le="([^"]+)".*\} (\S+)$/.exec(l);
    if (b) buckets.push([b[1] === '+Inf' ? Infinity : Number(b[1]), Number(b[2])]);
    const c = /^xseq_quorum_latency_seconds_count\{.*\} (\S+)$/.exec(l);
    if (c) count += Number(c[1]);
    const s = /^xseq_quorum_latency_seconds_sum\{.*\} (\S+)$/.exec(l);
    if (s) total += Number(s[1]);
  }
  if (!count) return 'no samples';
  const us = (x: number) => (x === Infinity ? 'inf' : `${Math.round(x * 1e6)} us`);
  const q = (p: number) => buckets.find(([, n]) => n >= p * count)?.[0] ?? Infinity;
  return `${count} requests, mean ${us(total / count)}, p50 <= ${us(q(0.5))}, p99 <= ${us(q(0.99))}`;
}

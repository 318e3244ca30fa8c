// The README's demo: a local cluster in network namespaces. xseq-agent loads
// the XDP sequencer on the sequencer host; three replicas receive every
// stamped request through a bridge and ACK it; the kernel counts the
// quorum and answers the client with one REPLY carrying the leader's result.
// Prints what the client and every replica saw, the agent's Prometheus
// metrics, then tears everything down.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { addLinkLoss, type LossHandle } from '../netns/loss.ts';
import { Topology, type XdpMode } from '../netns/topology.ts';

const HELP = `Usage: scripts/demo.sh [--mode native|generic] [--count N] [--outstanding N] [--loss PERCENT]

Builds namespaces (a client, the sequencer host, three replicas, a bridge),
starts xseq-agent with the group's three members, starts three replicas that
ACK every stamped request (replica 0 leads and returns a result), and runs a
closed-loop client for --count requests (default 20000) with --outstanding
in flight (default 16). --loss drops that percentage of packets on every
replica link (default 0), so you can watch the agent retransmit. Prints the
client's and replicas' summaries and the agent's metrics, and removes
everything it created.`;

const { values: v } = parseArgs({
  options: {
    mode: { type: 'string', default: 'native' },
    count: { type: 'string', default: '20000' },
    outstanding: { type: 'string', default: '16' },
    loss: { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h' },
  },
});
const fail = (msg: string): never => {
  console.error(`demo: ${msg}\n\n${HELP}`);
  process.exit(2);
};
if (v.help) {
  console.log(HELP);
  process.exit(0);
}
if (v.mode !== 'native' && v.mode !== 'generic') fail(`--mode must be native or generic, got "${v.mode}"`);
const mode = v.mode as XdpMode;
const count = Number(v.count);
const outstanding = Number(v.outstanding);
const loss = Number(v.loss);
if (!Number.isInteger(count) || count < 1 || count > 1_000_000) fail('--count must be 1..1000000');
if (!Number.isInteger(outstanding) || outstanding < 1 || outstanding > 256) fail('--outstanding must be 1..256');
if (!(loss >= 0 && loss <= 50)) fail('--loss must be 0..50 (percent)');

const root = join(import.meta.dirname, '..');
// node --import tsx rather than the tsx command: tsx kills its child 30 ms
// after forwarding SIGTERM, before the agent has detached.
const TS = ['--import', 'tsx'];
const GROUP = '239.7.7.1';
const PORT = 7500;
const ACK_PORT = 7600;
const REPLICAS = ['r1', 'r2', 'r3'];
const step = (s: string) => console.log(`[demo] ${s}`);
const scratch = mkdtempSync(join(tmpdir(), 'xseq-demo-'));

const topo = await Topology.create({ receivers: 3, mode });
const losses: LossHandle[] = [];
let failed = false;
try {
  const seqIp = topo.ip('seq');
  step(`namespaces up: client ${topo.ip('cli')}, sequencer ${seqIp}, replicas ${REPLICAS.map((r) => topo.ip(r)).join(' ')}; a bridge floods the multicast`);
  const members = REPLICAS.flatMap((r, i) => ['--member', `1:${i}:${topo.ip(r)}:${ACK_PORT}`]);
  const agent = topo.spawn('seq', process.execPath, [
    ...TS, join(root, 'agent/cli.ts'), 'run', '--iface', topo.ifname('seq'), '--mode', mode,
    '--group', `1:${GROUP}:${PORT}`, ...members, '--metrics-listen', `${seqIp}:9464`,
    '--state-dir', join(scratch, 'state'), '--bpffs', join(scratch, 'bpffs'), '--detach-on-exit', '--stats-interval', '1000',
  ]);
  await agent.waitForLine(/"event":"ready"/, 30_000);
  step(`xseq-agent attached the sequencer to ${topo.ifname('seq')} (${mode}); group 1 -> ${GROUP}:${PORT}, members ${REPLICAS.map((r) => `${topo.ip(r)}:${ACK_PORT}`).join(', ')}, quorum 2`);

  const replicas = REPLICAS.map((r, i) =>
    topo.spawn(r, process.execPath, [
      ...TS, join(root, 'tools/test-replica.ts'), '--group-addr', GROUP, '--group-port', String(PORT), '--iface-addr', topo.ip(r),
      '--replica-id', String(i), '--seq-addr', seqIp, '--ack-port', String(ACK_PORT), '--max-ms', '300000',
    ]),
  );
  await Promise.all(replicas.map((r) => r.waitForLine(/"event":"listening"/, 30_000)));
  step('3 replicas joined the group; replica 0 leads and returns a result in its ACK');
  if (loss > 0) {
    for (const r of REPLICAS) for (const direction of ['to', 'from'] as const) losses.push(addLinkLoss(topo, r, loss, { direction }));
    step(`dropping ${loss}% of packets on every replica link, both ways`);
  }

  step(`client: ${count} requests, ${outstanding} in flight`);
  const client = topo.spawn('cli', process.execPath, [
    ...TS, join(root, 'tools/client.ts'), '--seq-addr', seqIp, '--count', String(count), '--outstanding', String(outstanding), '--timeout-ms', '3000', '--max-ms', '240000',
  ]);
  const progress = setInterval(() => {
    const line = agent.output().stdout.trim().split('\n').reverse().find((l) => l.includes('"event":"counters"'));
    if (line) {
      const c = (JSON.parse(line) as { counters: Record<string, string> }).counters;
      step(`progress: sequenced ${c['sequenced']}, replies ${c['reply']} of ${count}`);
    }
  }, 2000);
  const cs = JSON.parse(await client.waitForLine(/"requestsPerSec"/, 250_000)) as Record<string, number>;
  clearInterval(progress);
  const metrics = topo.exec('seq', process.execPath, ['-e', `fetch('http://${seqIp}:9464/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  for (const l of losses) l.remove();
  const rs = await Promise.all(
    replicas.map(async (r) => {
      await r.stop('SIGTERM', 5000);
      return JSON.parse(await r.waitForLine(/"distinct"/, 5000)) as Record<string, number>;
    }),
  );
  await agent.stop('SIGTERM', 8000);

  console.log(`\nclient: sent ${cs['sent']}, replied ${cs['replied']}, extra replies ${cs['duplicates']}, wrong results ${cs['wrongResult']}, missing ${cs['missing']}`);
  console.log(`        ${cs['requestsPerSec']} requests/s, latency p50 ${cs['p50Us']} us, p99 ${cs['p99Us']} us`);
  console.log('\nreplica  received  distinct  seq range      holes  retransmitted  repaired  acks');
  rs.forEach((s, i) =>
    console.log(`${String(i).padEnd(8)} ${String(s['received']).padStart(8)}  ${String(s['distinct']).padStart(8)}  ${`${s['minSeq']}..${s['maxSeq']}`.padEnd(13)} ${String(s['holes']).padStart(5)}  ${String(s['retransmits']).padStart(13)}  ${String(s['repaired']).padStart(8)}  ${s['acksSent']}`),
  );
  const show = /^xseq_(requests_sequenced_total|replies_total|acks_total|acks_late_total|packets_dropped_total\{[^}]*reason="(backpressure|ack_stranger)"|retransmissions_total|retransmit_give_ups_total|quorum_latency_seconds_(count|sum)|group_session|group_last_seq)/;
  console.log('\nagent metrics (GET /metrics, selected):');
  for (const l of metrics.split('\n')) if (show.test(l)) console.log(`  ${l}`);
  const exact = cs['replied'] === count && cs['duplicates'] === 0 && cs['wrongResult'] === 0 && cs['missing'] === 0;
  const complete = rs.every((s) => s['distinct'] === count && s['holes'] === 0);
  console.log(`\n${exact && complete ? 'OK' : 'MISMATCH'}: ${exact ? 'every request got exactly one reply with the leader\'s result' : 'the client did NOT get exactly one correct reply per request'}; ${complete ? `every replica holds seqs 1..${count}` : 'some replica is missing seqs'}`);
  failed = !(exact && complete);
} catch (e) {
  failed = true;
  console.error(`[demo] failed: ${(e as Error).message}`);
} finally {
  for (const l of losses) {
    try {
      l.remove();
    } catch {
      /* namespace already gone */
    }
  }
  await topo.destroy();
  rmSync(scratch, { recursive: true, force: true });
  step('namespaces removed');
}
process.exit(failed ? 1 : 0);

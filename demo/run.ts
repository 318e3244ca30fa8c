// The README's demo: a local cluster in network namespaces. A client sends
// requests to the sequencer host, whose XDP program stamps and multicasts
// them through a bridge to three receivers. Prints what every receiver got
// and the sequencer's counters, then tears everything down.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology, type XdpMode } from '../netns/topology.ts';

const HELP = `Usage: scripts/demo.sh [--mode native|generic] [--count N] [--rate PPS]

Builds namespaces (client, sequencer host, three receivers, a bridge),
attaches the XDP sequencer with xseq-agent, sends --count requests
(default 20000) at --rate per second (default 10000), prints per-receiver
counts and the sequencer's counters, and removes everything it created.`;

const { values: v } = parseArgs({
  options: {
    mode: { type: 'string', default: 'native' },
    count: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '10000' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log(HELP);
  process.exit(0);
}
if (v.mode !== 'native' && v.mode !== 'generic') {
  console.error(`--mode must be native or generic, got "${v.mode}"`);
  process.exit(2);
}
const mode = v.mode as XdpMode;
const count = Number(v.count);
const rate = Number(v.rate);
if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
  console.error('--count must be 1..1000000');
  process.exit(2);
}
if (!Number.isInteger(rate) || rate < 1 || rate > 100_000) {
  console.error('--rate must be 1..100000');
  process.exit(2);
}

const root = join(import.meta.dirname, '..');
const TSX = join(root, 'node_modules', '.bin', 'tsx');
const GROUP = '239.7.7.1';
const PORT = 7500;
const step = (s: string) => console.log(`[demo] ${s}`);

const topo = await Topology.create({ receivers: 3, mode });
let failed = false;
try {
  step(`namespaces up: client ${topo.ip('cli')}, sequencer ${topo.ip('seq')}, receivers ${['r1', 'r2', 'r3'].map((r) => topo.ip(r)).join(' ')}; bridge with multicast flooding`);
  const agent = topo.spawn('seq', TSX, [join(root, 'agent/cli.ts'), 'run', '--iface', topo.ifname('seq'), '--mode', mode, '--group', `1:${GROUP}:${PORT}`, '--session', '1', '--stats-interval', '1000']);
  await agent.waitForLine(/"event":"ready"/, 20_000);
  step(`xseq-agent attached the sequencer to ${topo.ifname('seq')} in ${mode} mode; group 1 -> ${GROUP}:${PORT}`);

  const receivers = ['r1', 'r2', 'r3'].map((r) =>
    topo.spawn(r, TSX, [join(root, 'tools/receiver.ts'), '--group', GROUP, '--port', String(PORT), '--iface-addr', topo.ip(r), '--expect', String(count), '--idle-ms', '3000', '--max-ms', '120000']),
  );
  await Promise.all(receivers.map((r) => r.waitForLine(/listening/, 20_000)));
  step(`3 receivers joined ${GROUP}; sending ${count} requests at ${rate}/s`);

  const sender = topo.spawn('cli', TSX, [join(root, 'tools/sender.ts'), '--dst', topo.ip('seq'), '--count', String(count), '--rate', String(rate), '--max-ms', '120000']);
  const progress = setInterval(async () => {
    const line = agent.output().stdout.trim().split('\n').reverse().find((l) => l.includes('"event":"counters"'));
    if (line) step(`progress: sequenced ${(JSON.parse(line) as { counters: { sequenced: string } }).counters.sequenced} of ${count}`);
  }, 1000);
  const sent = JSON.parse(await sender.waitForLine(/"sent"/, 130_000)) as { sent: number; elapsedMs: number };
  const results = await Promise.all(receivers.map(async (r) => JSON.parse(await r.waitForLine(/"digest"/, 130_000)) as Record<string, number | string>));
  clearInterval(progress);
  await agent.stop('SIGTERM', 5000);
  const stopped = JSON.parse(await agent.waitForLine(/"event":"stopped"/)) as { counters: Record<string, string> };

  step(`client sent ${sent.sent} requests in ${sent.elapsedMs} ms`);
  console.log('\nreceiver  received  distinct  seq range     holes  dups  reordered  digest');
  ['r1', 'r2', 'r3'].forEach((r, i) => {
    const s = results[i]!;
    console.log(`${r.padEnd(9)} ${String(s['received']).padStart(8)}  ${String(s['distinct']).padStart(8)}  ${`${s['minSeq']}..${s['maxSeq']}`.padEnd(12)} ${String(s['holes']).padStart(5)} ${String(s['duplicates']).padStart(5)} ${String(s['outOfOrder']).padStart(10)}  ${String(s['digest']).slice(0, 12)}`);
  });
  console.log('\nsequencer counters (summed over CPUs):');
  for (const [k, val] of Object.entries(stopped.counters)) console.log(`  ${k.padEnd(22)} ${val}`);
  const same = new Set(results.map((s) => s['digest'])).size === 1;
  const complete = results.every((s) => s['distinct'] === count && s['holes'] === 0 && s['duplicates'] === 0);
  console.log(`\n${complete && same ? 'OK' : 'MISMATCH'}: every receiver ${complete ? 'got' : 'did NOT get'} all ${count} requests as one dense sequence${same ? ', identical at all three' : '; digests differ'}`);
  failed = !(complete && same);
} catch (e) {
  failed = true;
  console.error(`[demo] failed: ${(e as Error).message}`);
} finally {
  await topo.destroy();
  step('namespaces removed');
}
process.exit(failed ? 1 : 0);

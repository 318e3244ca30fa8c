// Real packets through the attached sequencer: a client, the sequencer host,
// three receivers and a bridge, each in its own network namespace. Every
// receiver must get the same dense sequence with the same payloads, in
// native and generic mode, and two senders on two CPUs must still get
// unique, dense numbers.
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Topology, type XdpMode } from '../netns/topology.ts';
import { agentSandbox, type AgentSandbox } from './helpers/agent-sandbox.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
// node --import tsx, not the tsx command: under load tsx kills its child
// 30 ms after forwarding SIGTERM, and the agent's clean exit turns into 143.
const TS = ['--import', 'tsx'];
const AGENT = join(root, 'agent', 'cli.ts');
const GROUP_ADDR = '239.7.7.1';
const GROUP_PORT = 7500;

interface Summary {
  received: number;
  distinct: number;
  duplicates: number;
  invalid: number;
  session: number;
  minSeq: number;
  maxSeq: number;
  holes: number;
  digest: string;
}

let topo: Topology | undefined;
let box: AgentSandbox | undefined;
afterEach(async () => {
  await topo?.destroy();
  topo = undefined;
  box?.remove();
  box = undefined;
});

/** The agent leaves its data path attached on exit unless told otherwise:
 * these tests check the detach, in a sandbox of their own. */
function agentFlags(): string[] {
  box = agentSandbox();
  return ['--detach-on-exit', '--metrics-listen', '', ...box.flags];
}

async function runScenario(mode: XdpMode, senders: { cpu: number; count: number; clientId: number }[]) {
  const t = (topo = await Topology.create({ receivers: 3, clients: senders.length, mode }));
  const agent = t.spawn('seq', process.execPath, [...TS, AGENT, 'run', '--iface', t.ifname('seq'), '--mode', mode, '--group', `1:${GROUP_ADDR}:${GROUP_PORT}`, '--session', '9', '--sequencer-id', '2', '--stats-interval', '0', ...agentFlags()], { env: box!.env });
  await agent.waitForLine(/"event":"ready"/, 20_000);

  const total = senders.reduce((s, x) => s + x.count, 0);
  const receivers = ['r1', 'r2', 'r3'].map((r) =>
    t.spawn(r, process.execPath, [...TS, join(root, 'tools/receiver.ts'), '--group', GROUP_ADDR, '--port', String(GROUP_PORT), '--iface-addr', t.ip(r), '--expect', String(total), '--idle-ms', '3000', '--max-ms', '45000']),
  );
  await Promise.all(receivers.map((r) => r.waitForLine(/listening/, 20_000)));

  const clientRoles = senders.map((_, i) => (i === 0 ? 'cli' : `cli${i + 1}`));
  const sends = senders.map((s, i) =>
    t.spawn(clientRoles[i]!, 'taskset', ['-c', String(s.cpu), process.execPath, ...TS, join(root, 'tools/sender.ts'), '--dst', t.ip('seq'), '--count', String(s.count), '--rate', '4000', '--client-id', String(s.clientId), '--max-ms', '30000']),
  );
  const sent = await Promise.all(sends.map(async (p) => JSON.parse(await p.waitForLine(/"sent"/, 40_000)) as { sent: number }));
  expect(sent.map((s) => s.sent)).toEqual(senders.map((s) => s.count));

  const summaries = await Promise.all(receivers.map(async (r) => JSON.parse(await r.waitForLine(/"digest"/, 50_000)) as Summary));
  const exit = await agent.stop('SIGTERM', 5000);
  expect(exit.code).toBe(0);
  const stopped = JSON.parse(await agent.waitForLine(/"event":"stopped"/)) as { counters: Record<string, string>; lastSeq: Record<string, string>; sequencedPerCpu: string[] };
  return { t, total, summaries, stopped };
}

function expectDenseAndIdentical(total: number, summaries: Summary[]) {
  for (const s of summaries) {
    expect(s).toMatchObject({ distinct: total, duplicates: 0, invalid: 0, minSeq: 1, maxSeq: total, holes: 0, session: 9 });
  }
  expect(new Set(summaries.map((s) => s.digest)).size).toBe(1);
}

describePrivileged('the sequencer on real packets in network namespaces', () => {
  for (const mode of ['native', 'generic'] as const) {
    it(`${mode} mode: every receiver gets the same dense sequence with identical payloads`, async () => {
      const { total, summaries, stopped } = await runScenario(mode, [{ cpu: 0, count: 3000, clientId: 1 }]);
      expectDenseAndIdentical(total, summaries);
      expect(stopped.counters['sequenced']).toBe(String(total));
      expect(stopped.lastSeq['1']).toBe(String(total));
      // Detached on SIGTERM: nothing left on the interface.
      expect(topo!.exec('seq', 'ip', ['link', 'show', 'dev', topo!.ifname('seq')])).not.toMatch(/xdp/);
    });
  }

  it('two senders on two CPUs at once still get unique, dense numbers', async () => {
    const { total, summaries, stopped } = await runScenario('native', [
      { cpu: 0, count: 4000, clientId: 1 },
      { cpu: 1, count: 4000, clientId: 2 },
    ]);
    expectDenseAndIdentical(total, summaries);
    expect(stopped.counters['sequenced']).toBe(String(total));
    // Both CPUs really stamped: otherwise this proves nothing about atomicity.
    expect(stopped.sequencedPerCpu.every((n) => Number(n) > 0)).toBe(true);
  });

  it('the host stays reachable: ICMP and non-xseq UDP pass through the attached program', async () => {
    const t = (topo = await Topology.create({ receivers: 1, mode: 'native' }));
    const agent = t.spawn('seq', process.execPath, [...TS, AGENT, 'run', '--iface', t.ifname('seq'), '--mode', 'native', '--group', `1:${GROUP_ADDR}:${GROUP_PORT}`, '--stats-interval', '0', ...agentFlags()], { env: box!.env });
    await agent.waitForLine(/"event":"ready"/, 20_000);
    expect(t.exec('cli', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', t.ip('seq')])).toMatch(/3 received/);
    const server = t.spawn('seq', process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');s.on('message',m=>{console.log('got '+m);process.exit(0)});s.bind(9999,()=>console.log('bound'))`]);
    await server.waitForLine(/bound/);
    t.exec('cli', process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');s.send('plain udp',9999,'${t.ip('seq')}',()=>s.close())`]);
    expect(await server.waitForLine(/got/, 5000)).toBe('got plain udp');
    await agent.stop('SIGTERM', 5000);
    const stopped = JSON.parse(await agent.waitForLine(/"event":"stopped"/)) as { counters: Record<string, string> };
    expect(stopped.counters['rx']).toBe('0');
  });
});

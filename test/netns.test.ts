// The namespace topology every cluster test and benchmark builds on: if this
// file fails, failures elsewhere say nothing about xseq itself.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addLinkLoss } from '../netns/loss.ts';
import { cleanupStale, Topology } from '../netns/topology.ts';
import { describePrivileged } from './helpers/privileged.ts';

const GROUP = '239.7.7.1';
const GROUP_PORT = 7500;

function netnsList(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

// Node scripts run inside the namespaces with the same node binary as the
// test, so the check needs nothing beyond iproute2 (no ping, no python).
const echoServer = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(9000, () => console.log('ready'));
`;
const echoClient = (ip: string): string => `
const s = require('dgram').createSocket('udp4');
const t = setTimeout(() => { console.error('no echo'); process.exit(1); }, 3000);
s.on('message', (m) => { console.log(m.toString()); clearTimeout(t); s.close(); });
s.send('ping', 9000, '${ip}');
`;
const mcastReceiver = (ifaceIp: string): string => `
const s = require('dgram').createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m) => console.log('got ' + m.toString()));
s.bind(${GROUP_PORT}, () => { s.addMembership('${GROUP}', '${ifaceIp}'); console.log('ready'); });
`;
const mcastSender = (ifaceIp: string, tag: string, count: number): string => `
const s = require('dgram').createSocket('udp4');
s.bind(0, '${ifaceIp}', async () => {
  s.setMulticastInterface('${ifaceIp}');
  s.setMulticastTTL(1);
  for (let i = 0; i < ${count}; i++) {
    await new Promise((r) => s.send('${tag}', ${GROUP_PORT}, '${GROUP}', r));
    await new Promise((r) => setTimeout(r, 20));
  }
  s.close();
});
`;

describePrivileged('netns topology', () => {
  let topo: Topology;

  beforeAll(async () => {
    // Native mode also proves the pass program attaches to the sequencer's peer.
    topo = await Topology.create({ receivers: 3, mode: 'native' });
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('names, addresses and the bridge follow the plan', () => {
    expect(topo.prefix).toMatch(/^xs[0-9a-f]{4}-$/);
    expect(topo.receivers).toEqual(['r1', 'r2', 'r3']);
    expect(topo.ns('seq')).toBe(`${topo.prefix}seq`);
    expect(topo.ip('cli')).toBe('10.77.0.1');
    expect(topo.ip('seq')).toBe('10.77.0.2');
    expect(topo.receivers.map((r) => topo.ip(r))).toEqual(['10.77.0.11', '10.77.0.12', '10.77.0.13']);
    const mine = netnsList().filter((n) => n.startsWith(topo.prefix)).sort();
    expect(mine).toEqual(topo.roles.map((r) => topo.ns(r)).sort());

    const br = JSON.parse(topo.exec('br', 'ip', ['-d', '-j', 'link', 'show', 'br0'])) as Array<{
      operstate: string;
      linkinfo: { info_data: { mcast_snooping: number } };
    }>;
    expect(br[0]!.linkinfo.info_data.mcast_snooping).toBe(0);
    const ports = JSON.parse(topo.exec('br', 'ip', ['-j', 'link', 'show', 'master', 'br0'])) as Array<{ ifname: string }>;
    expect(ports.map((p) => p.ifname).sort()).toEqual(['cli', 'seq', 'r1', 'r2', 'r3'].map((r) => `p-${r}`).sort());

    const peer = JSON.parse(topo.exec('br', 'ip', ['-j', 'link', 'show', topo.bridgePort('seq')])) as Array<{
      xdp?: { mode: number };
    }>;
    expect(peer[0]!.xdp, 'pass program on the sequencer peer').toBeDefined();

    const routes = topo.exec('r1', 'ip', ['route', 'show', '224.0.0.0/4']);
    expect(routes).toContain(`dev ${topo.ifname('r1')}`);
  });

  it('cli reaches seq (UDP echo)', async () => {
    const server = topo.spawn('seq', process.execPath, ['-e', echoServer]);
    await server.waitForLine(/ready/);
    expect(topo.exec('cli', process.execPath, ['-e', echoClient(topo.ip('seq'))]).trim()).toBe('ping');
    await server.stop();
  });

  it('a multicast datagram from seq reaches every receiver', async () => {
    const receivers = topo.receivers.map((r) => topo.spawn(r, process.execPath, ['-e', mcastReceiver(topo.ip(r))]));
    await Promise.all(receivers.map((p) => p.waitForLine(/ready/)));
    topo.exec('seq', process.execPath, ['-e', mcastSender(topo.ip('seq'), 'hello', 3)]);
    await Promise.all(receivers.map((p) => p.waitForLine(/got hello/, 5000)));
    await Promise.all(receivers.map((p) => p.stop()));
  });

  it('link loss drops to one receiver only, and is removable', async () => {
    const receivers = topo.receivers.map((r) => topo.spawn(r, process.execPath, ['-e', mcastReceiver(topo.ip(r))]));
    await Promise.all(receivers.map((p) => p.waitForLine(/ready/)));
    const loss = addLinkLoss(topo, 'r2', 100, { udpDport: GROUP_PORT });
    try {
      topo.exec('seq', process.execPath, ['-e', mcastSender(topo.ip('seq'), 'lossy', 5)]);
      await receivers[0]!.waitForLine(/got lossy/, 5000);
      await receivers[2]!.waitForLine(/got lossy/, 5000);
      expect(loss.dropped()).toBe(5);
      expect(receivers[1]!.output().stdout).not.toContain('got lossy');
    } finally {
      loss.remove();
    }
    topo.exec('seq', process.execPath, ['-e', mcastSender(topo.ip('seq'), 'clean', 1)]);
    await receivers[1]!.waitForLine(/got clean/, 5000);
    await Promise.all(receivers.map((p) => p.stop()));
  });

  it('exec throws with stderr', () => {
    expect(() => topo.exec('cli', 'ip', ['link', 'show', 'no-such-dev'])).toThrow(/no-such-dev/);
  });

  it('cleanupStale removes a dead run and spares live ones', () => {
    // A run whose owner died: a namespace plus an owner record with a pid
    // that cannot exist (above pid_max).
    const dead = 'xsdead-';
    spawnSync('ip', ['netns', 'add', `${dead}br`]);
    mkdirSync('/run/xseq-netns', { recursive: true });
    writeFileSync(`/run/xseq-netns/${dead}`, JSON.stringify({ pid: 4_194_305, start: '1' }));
    try {
      const removed = cleanupStale();
      expect(removed).toContain(`${dead}br`);
      expect(netnsList()).not.toContain(`${dead}br`);
      expect(existsSync(`/run/xseq-netns/${dead}`)).toBe(false);
      expect(netnsList()).toContain(topo.ns('br'));
    } finally {
      spawnSync('ip', ['netns', 'del', `${dead}br`]);
    }
  });

  it('destroy kills children and leaves no namespace', async () => {
    const t = await Topology.create({ receivers: 1, clients: 2, sequencers: 2, mode: 'generic' });
    expect(t.ip('cli2')).toBe('10.77.0.102');
    expect(t.ip('seq2')).toBe('10.77.0.152');
    const sleeper = t.spawn('r1', 'sleep', ['600']);
    await t.destroy();
    const exit = await sleeper.exited;
    expect(exit.signal).toMatch(/SIGTERM|SIGKILL/);
    expect(netnsList().filter((n) => n.startsWith(t.prefix))).toEqual([]);
    expect(existsSync(`/run/xseq-netns/${t.prefix}`)).toBe(false);
  });
});

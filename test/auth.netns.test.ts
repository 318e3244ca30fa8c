// A keyed group under forgery (docs/authentication.md): the KV store on
// three replicas behind the XDP sequencer, every part holding the group
// key, while clients keep writing and a stranger namespace on the same
// bridge (in no config, holding no key) sends well-formed traffic with the
// sequencer's and the members' source addresses: SEQUENCED with the largest
// session (multicast, and unicast at each replica's group port in the live
// session far ahead of its seqs), SEQUENCED with a made-up MAC, FLUSH, ACKs
// from a member's ACK address, repair requests from a member's address, and
// REQUESTs that speak for a client id without the client key (no MAC, a
// made-up one) and a control op without the group key; the clients hold
// the client key only. Frames leave the stranger from an AF_PACKET socket (bench/build/pktgen),
// so the source addresses are whatever it writes.
//
// Checks: no replica changes view or session, nothing of the stranger is
// committed, no client op times out, every acknowledged write reads back,
// the replicas' committed logs and states agree, and each kind of forgery
// was seen and refused (the counters say where).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { BENCH_BUILD_PKTGEN } from './helpers/stranger.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { ACK_PORT, GROUP, REPAIR_PORT, SEQ_PORT } from '../examples/kv/netns-cluster.ts';
import { clientKeyOf, groupKey } from '../bpf/mac.ts';
import { encodeRepairRequest } from '../bpf/repair.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, type XseqHeader } from '../bpf/wire.ts';
import type { NsProcess, Topology } from '../netns/topology.ts';
import { buildFrame } from '../tools/frame.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const keyDir = mkdtempSync(join(tmpdir(), 'xseq-auth-key-'));
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The stranger's client id and payload marker: nothing with them may be committed. */
const STRANGER_CLIENT = 0x5354524e47n;
const MARK = Buffer.from('STRANGER-FORGED-OP');
const MCAST_MAC = '01:00:5e:07:07:01';
/** Frames per generator run, and ms between runs: ~1000 frames/s on average, in bursts
 * small enough for a veth's 256-frame ring (a larger burst drops legitimate
 * packets beside it: bandwidth, which no MAC can protect). */
const BURST = 50;

interface StatusLine {
  status: string;
  view: { leaderNum: number; session: number };
}
function statusLines(p: NsProcess): StatusLine[] {
  return p.output().stdout.split('\n').filter((l) => l.includes('"event":"status"')).map((l) => JSON.parse(l) as StatusLine);
}
function lastJson(p: NsProcess, event: string): Record<string, unknown> | null {
  const l = p.output().stdout.split('\n').filter((x) => x.includes(`"event":"${event}"`)).at(-1);
  return l ? (JSON.parse(l) as Record<string, unknown>) : null;
}
async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
function issueNo(value: string): number {
  return Number(value.slice(value.lastIndexOf('/') + 1));
}

/** Every forgery the stranger sends: a frame, and how many times. */
function forgeries(t: Topology, stranger: string, session: number): { name: string; frame: Buffer; count: number }[] {
  const seqIp = t.ip('seq');
  const me = t.mac(stranger);
  const h = (over: Partial<XseqHeader>) => ({ ...emptyHeader(), groupId: GROUP.id, clientId: STRANGER_CLIENT, requestId: 1n, ...over });
  const toGroup = (payload: Buffer) => buildFrame({ srcMac: me, dstMac: MCAST_MAC, srcIp: seqIp, dstIp: GROUP.addr, srcPort: SEQ_PORT, dstPort: GROUP.port, payload, udpChecksum: false });
  const seqd = (s: number, seq: bigint) => encodeMessage(h({ type: MsgType.SEQUENCED, session: s, seq }), MARK);
  const macd = Buffer.concat([seqd(0xffffffff, 1n), Buffer.alloc(8, 0x5a)]);
  macd.writeUInt16BE(Flags.MAC, 6);
  const out = [
    { name: 'SEQUENCED, largest session, to the group', frame: toGroup(seqd(0xffffffff, 1n)), count: 2000 },
    { name: 'SEQUENCED with a made-up MAC', frame: toGroup(macd), count: 1000 },
    { name: 'FLUSH, largest session', frame: toGroup(encodeMessage(h({ type: MsgType.FLUSH, session: 0xffffffff, seq: 1n << 40n }))), count: 1000 },
  ];
  t.receivers.forEach((r, i) => {
    // The agent's unicast re-send path, in the live session, far ahead: a gap if it were believed.
    const f = buildFrame({ srcMac: me, dstMac: t.mac(r), srcIp: seqIp, dstIp: t.ip(r), srcPort: SEQ_PORT, dstPort: GROUP.port, payload: seqd(session, 1_000_000n), udpChecksum: false });
    out.push({ name: `SEQUENCED in the live session, unicast to replica ${i}`, frame: f, count: 1000 });
  });
  const member0 = t.receivers[0]!;
  const ack = encodeMessage(h({ type: MsgType.ACK, flags: Flags.RESULT, replicaId: 0, session, view: 0x7fffffff, seq: 1n }), MARK);
  out.push({ name: "ACK from member 0's ACK address", frame: buildFrame({ srcMac: me, dstMac: t.mac('seq'), srcIp: t.ip(member0), dstIp: seqIp, srcPort: ACK_PORT, dstPort: SEQ_PORT, payload: ack, udpChecksum: false }), count: 1500 });
  // Speaking for a client id without the client key: a REQUEST with no
  // MAC, one with a made-up MAC (request id far ahead: a client-table
  // poisoning), and a control op (add sequencer 7) without the group key.
  const toSeq = (payload: Buffer) => buildFrame({ srcMac: me, dstMac: t.mac('seq'), srcIp: t.ip(stranger), dstIp: seqIp, srcPort: 40777, dstPort: SEQ_PORT, payload, udpChecksum: false });
  const req = encodeMessage(h({ type: MsgType.REQUEST, requestId: 1n << 40n }), MARK);
  const reqMac = Buffer.concat([req, Buffer.alloc(8, 0x5a)]);
  reqMac.writeUInt16BE(Flags.MAC, 6);
  out.push({ name: 'REQUEST without a MAC', frame: toSeq(req), count: 500 });
  out.push({ name: 'REQUEST with a made-up MAC', frame: toSeq(reqMac), count: 500 });
  out.push({ name: 'control op without the group key', frame: toSeq(encodeMessage(h({ type: MsgType.REQUEST, flags: Flags.CONTROL, requestId: 2n }), Buffer.from([0x48, 1, 0, 7]))), count: 200 });
  const rep = encodeRepairRequest({ groupId: GROUP.id, session, replicaId: 1, first: 1n, count: 128 });
  out.push({ name: "REPAIR_REQUEST from member 1's address", frame: buildFrame({ srcMac: me, dstMac: t.mac('seq'), srcIp: t.ip(t.receivers[1]!), dstIp: seqIp, srcPort: 40999, dstPort: REPAIR_PORT, payload: rep, udpChecksum: false }), count: 1000 });
  return out;
}

describePrivileged('a keyed group: a stranger forging sequencer and member traffic during a KV load', () => {
  it.each([
    ['user space only', false],
    ['the replica-side XDP program attached', true],
  ])('%s: no view or session change, nothing foreign committed, no timeouts, acknowledged writes read back, logs agree', async (_name, xdp) => {
    const keyFile = join(keyDir, 'group1.key');
    writeFileSync(keyFile, '3f1a9c0b7e5d2a4c6b8e0f1d3c5a7b9e\n');
    chmodSync(keyFile, 0o600);
    // What clients hold: the client key (xseq-agent client-key), not the group key.
    const clientKeyFile = join(keyDir, 'group1.client.key');
    writeFileSync(clientKeyFile, Buffer.from(clientKeyOf(groupKey(Buffer.from('3f1a9c0b7e5d2a4c6b8e0f1d3c5a7b9e', 'hex'))).bytes).toString('hex') + '\n');
    chmodSync(clientKeyFile, 0o600);
    const t = await kv.topology({ receivers: 3, clients: 2, mode: 'native' });
    const stranger = t.clients[1]!;
    const c = kv.cluster(t, {
      dumps: true,
      replicaArgs: ['--stats-interval', '1000', '--key-file', keyFile, ...(xdp ? ['--xdp', 'on'] : [])],
      agentArgs: ['--key-file', `${GROUP.id}:${keyFile}`],
    });
    const agent = await c.startAgent();
    await c.startReplicas();
    const replicas = c.replicas.map((p) => p!);
    for (const p of replicas) expect(lastJson(p, 'auth')).toMatchObject({ keyFile });

    const loadMs = 25_000;
    const load = c.spawnCli('cli', ['load', '--duration-ms', String(loadMs), '--clients', '4', '--rate', '400', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--tag', 'cli', '--client-key-file', clientKeyFile]);
    await until('every replica normal in the agent\'s session', () => replicas.every((p) => statusLines(p).at(-1)?.status === 'normal' && statusLines(p).at(-1)?.view.session === agent.session), 20_000);
    await sleep(2000);
    const before = replicas.map((p) => statusLines(p).length);

    // The attack: one forgery after the other, ~1000 frames/s, bounded in
    // count and time.
    // XSEQ_AUTH_BASELINE=1 runs the same load without the stranger, for
    // the latency figures to compare (the checks on refusals are skipped).
    const baseline = process.env['XSEQ_AUTH_BASELINE'] === '1';
    const sent = baseline ? [] : forgeries(t, stranger, agent.session);
    // Bursts of BURST frames every BURST ms, unpaced inside: pktgen's own
    // pacing spins a CPU between frames, which would measure the machine.
    for (const f of sent) {
      for (let left = f.count; left > 0; left -= BURST) {
        const g = t.spawn(stranger, BENCH_BUILD_PKTGEN, ['--ifname', t.ifname(stranger), '--frame', f.frame.toString('hex'), '--count', String(Math.min(BURST, left)), '--max-ms', '5000']);
        const e = await g.exited;
        expect(e.code, `${f.name}: ${g.output().stderr}`).toBe(0);
        await sleep(BURST);
      }
    }

    const sum = JSON.parse(await load.waitForLine(/"tag"/, loadMs + 60_000)) as LoadSummary;
    const { latencyHist: _h, writes: _w, ...brief } = sum;
    console.log(`[auth] load ${baseline ? 'without the stranger' : 'under forgery'}: ${JSON.stringify({ ...brief, unacked: sum.unacked.length })}`);
    if (sum.timeouts || sum.unacked.length) {
      // Say where the requests went before failing: the agent's kernel
      // counters (backpressure, drops) and re-send give-ups, and the replicas' state.
      const stopped = await c.stopAgent('SIGTERM');
      console.log(`[auth] on timeouts: ${JSON.stringify({ agent: stopped?.['counters'], retransmit: stopped?.['retransmit'], status: replicas.map((p) => statusLines(p).at(-1)) })}`);
    }
    expect({ timeouts: sum.timeouts, errors: sum.errors, staleReads: sum.staleReads, unacked: sum.unacked.length }).toEqual({ timeouts: 0, errors: 0, staleReads: 0, unacked: 0 });
    expect(sum.writes.length).toBeGreaterThan(200);

    // No replica changed status, view or session.
    const changes = replicas.map((p, i) => statusLines(p).slice(before[i]));
    expect(changes).toEqual([[], [], []]);

    // Every acknowledged write reads back.
    const expected = new Map<string, string>();
    for (const w of sum.writes) {
      const e = expected.get(w.key);
      if (!e || issueNo(w.value) > issueNo(e)) expected.set(w.key, w.value);
    }
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000', '--client-key-file', clientKeyFile]);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect([...expected].filter(([k, v]) => got.values[k] !== v)).toEqual([]);

    // The logs agree, in the agent's session, and hold nothing of the stranger.
    const dumps = await c.settledDumps(30_000);
    for (const d of dumps) {
      expect(d).toMatchObject({ committed: dumps[0]!.committed, executed: dumps[0]!.committed, conflicts: 0, status: 'normal' });
      expect(d.stateDigest).toBe(dumps[0]!.stateDigest);
      expect(d.view.session).toBe(agent.session);
      expect(d.gaps).toEqual([]);
      const foreign = d.entries.filter((e) => e.clientId === STRANGER_CLIENT.toString() || e.op.includes(MARK.toString('hex')));
      expect(foreign).toEqual([]);
    }

    // Each forgery reached its target and was refused there: in the
    // replica's XDP program when attached (user space then sees none), else
    // in its transport.
    const stats = replicas.map((p) => lastJson(p, 'stats') ?? {});
    const refused = stats.map((s) => ({
      user: (s['transport'] as { unauthenticated?: number } | undefined)?.unauthenticated,
      kernel: (s['xdp'] as { kernel?: { drop_bad_mac?: number } } | undefined)?.kernel?.drop_bad_mac,
    }));
    console.log(`[auth] replicas refused: ${JSON.stringify(refused)}`);
    const each = sent.filter((f) => !f.name.includes('unicast') && !f.name.startsWith('ACK') && !f.name.startsWith('REPAIR') && !f.name.startsWith('REQUEST') && !f.name.startsWith('control')).reduce((a, f) => a + f.count, 0) + (sent.find((f) => f.name.includes('unicast'))?.count ?? 0);
    for (const r of refused) expect(r).toEqual(xdp ? { user: 0, kernel: each } : { user: each, kernel: undefined });
    const stopped = await c.stopAgent('SIGTERM');
    const k = (stopped?.['counters'] ?? {}) as Record<string, string>;
    const repair = (stopped?.['repair'] ?? {}) as { unauthenticated?: number; resent?: number };
    console.log(`[auth] agent: ${JSON.stringify({ drop_bad_mac: k['drop_bad_mac'], drop_client_mac: k['drop_client_mac'], control_refused: k['control_refused'], reply: k['reply'], sequenced: k['sequenced'], repairUnauthenticated: repair.unauthenticated, repairResent: repair.resent })}`);
    expect(Number(k['drop_ack_stranger'])).toBe(0); // the source address was right: only the MAC told
    if (baseline) return;
    expect(Number(k['drop_bad_mac'])).toBe(sent.find((f) => f.name.startsWith('ACK'))!.count);
    expect(repair.unauthenticated).toBe(sent.find((f) => f.name.startsWith('REPAIR'))!.count);
    // Nobody without the client key spoke for a client id, nobody without
    // the group key sent a control op: refused at the sequencer, counted.
    expect(Number(k['drop_client_mac'])).toBe(sent.filter((f) => f.name.startsWith('REQUEST')).reduce((a, f) => a + f.count, 0));
    expect(Number(k['control_refused'])).toBe(sent.find((f) => f.name.startsWith('control'))!.count);
  }, 240_000);
});

// The sequencer-host side of Hydra on real packets, in network namespaces:
// the agent's flush timer makes the kernel send FLUSHes at about the
// configured interval, a member's solicit gets one at once and a stranger's
// none, two agents with different sequencer ids on two sequencer hosts each
// stamp their own id and aggregate their own ACKs (every REPLY comes from
// the sequencer the request went to), and a drain sends FINAL flushes,
// refuses requests and cannot be undone in the same session.
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Flags, MsgType, type XseqHeader } from '../bpf/wire.ts';
import { FINAL_FLUSH_REPEATS } from '../agent/flush-frame.ts';
import { type NsProcess, Topology, type XdpMode } from '../netns/topology.ts';
import { agentSandbox, type AgentSandbox } from './helpers/agent-sandbox.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const TS = ['--import', 'tsx'];
const AGENT = join(root, 'agent', 'cli.ts');
const PROBE = join(root, 'test', 'helpers', 'xseq-probe.ts');
const SEQ_PORT = 7400;
const ACK_PORT = 7600;
const CLI_PORT = 40000;
const GROUP = { id: 1, addr: '239.7.7.1', port: 7500 };
const TEST_MS = 90_000;

/** A probe's line as printed (bigints as strings). */
interface Rx {
  event: 'rx';
  sock: 'unicast' | 'group';
  from: string;
  at: number;
  h: Omit<XseqHeader, 'seq' | 'clockNs' | 'clientId' | 'requestId'> & { seq: string; clockNs: string; clientId: string; requestId: string };
  payload: string;
}

let topo: Topology | undefined;
const boxes: AgentSandbox[] = [];
afterEach(async () => {
  await topo?.destroy();
  topo = undefined;
  for (const b of boxes.splice(0)) b.remove();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function probe(t: Topology, role: string, o: { ack?: number; join?: boolean; port: number }): NsProcess {
  const args = [...TS, PROBE, '--bind', `${t.ip(role)}:${o.port}`];
  if (o.join) args.push('--join', `${GROUP.addr}:${GROUP.port}`);
  if (o.ack !== undefined) args.push('--ack', String(o.ack));
  t.sequencers.forEach((s, i) => args.push('--seq', `${i}=${t.ip(s)}:${SEQ_PORT}`));
  return t.spawn(role, process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
}

function received(p: NsProcess): Rx[] {
  return p
    .output()
    .stdout.split('\n')
    .filter((l) => l.startsWith('{"event":"rx"'))
    .map((l) => JSON.parse(l) as Rx);
}

function send(p: NsProcess, to: string, h: Record<string, unknown>, payload = ''): void {
  p.child.stdin!.write(JSON.stringify({ to, h, payload }) + '\n');
}

/** Polls `get` until `ok` holds or `ms` pass; returns the last value. */
async function until<T>(get: () => T, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = get();
  while (!ok(v) && Date.now() < end) {
    await sleep(50);
    v = get();
  }
  return v;
}

interface AgentOpts {
  mode: XdpMode;
  sequencerId: number;
  session: number;
  flushMs?: number;
  extra?: string[];
  box?: AgentSandbox;
  detach?: boolean;
}

function agentArgs(t: Topology, role: string, o: AgentOpts, box: AgentSandbox): string[] {
  return [
    ...TS, AGENT, 'run', ...box.flags, '--metrics-listen', '', '--iface', t.ifname(role), '--mode', o.mode, '--stats-interval', '0',
    '--session', String(o.session), '--sequencer-id', String(o.sequencerId), '--flush-interval', String(o.flushMs ?? 0),
    '--group', `${GROUP.id}:${GROUP.addr}:${GROUP.port}`,
    '--member', `${GROUP.id}:0:${t.ip('r1')}:${ACK_PORT}`, '--member', `${GROUP.id}:1:${t.ip('r2')}:${ACK_PORT + 1}`,
    ...(o.detach === false ? [] : ['--detach-on-exit']), ...(o.extra ?? []),
  ];
}

async function startAgent(t: Topology, role: string, o: AgentOpts): Promise<{ p: NsProcess; box: AgentSandbox }> {
  const box = o.box ?? agentSandbox();
  if (!o.box) boxes.push(box);
  const p = t.spawn(role, process.execPath, agentArgs(t, role, o, box), { env: box.env });
  await p.waitForLine(/"event":"ready"/, 20_000);
  return { p, box };
}

interface Stopped {
  counters: Record<string, string>;
  flush?: { injected: number; errors: number };
}
async function stopAgent(p: NsProcess): Promise<Stopped> {
  const exit = await p.stop('SIGTERM', 5000);
  expect(exit.code, p.output().stderr).toBe(0);
  return JSON.parse(await p.waitForLine(/"event":"stopped"/)) as Stopped;
}

const flushes = (rx: Rx[], sid: number) => rx.filter((m) => m.h.type === MsgType.FLUSH && m.h.sequencerId === sid);
/** Stamped messages of sequencer `sid`, retransmitted copies included (the
 * agent re-sends when an ACK is slow on a busy machine). */
const stamped = (rx: Rx[], sid: number) => rx.filter((m) => m.h.type === MsgType.SEQUENCED && m.h.sequencerId === sid);
/** The distinct seqs among them, ascending. */
const seqsOf = (rx: Rx[]) => [...new Set(rx.map((m) => Number(m.h.seq)))].sort((a, b) => a - b);
const maxClock = (rx: Rx[]) => rx.reduce((a, m) => (BigInt(m.h.clockNs) > a ? BigInt(m.h.clockNs) : a), 0n);

function request(p: NsProcess, t: Topology, seqRole: string, requestId: number): void {
  send(p, `${t.ip(seqRole)}:${SEQ_PORT}`, { type: MsgType.REQUEST, groupId: GROUP.id, clientId: '9', requestId: String(requestId) }, `op-${requestId}`);
}

function solicit(p: NsProcess, t: Topology, seqRole: string, sequencerId: number, replicaId: number): void {
  send(p, `${t.ip(seqRole)}:${SEQ_PORT}`, { type: MsgType.FLUSH_SOLICIT, groupId: GROUP.id, sequencerId, replicaId });
}

describePrivileged('Hydra on the sequencer host (namespaces)', () => {
  // Native: flushes leave by XDP_TX of a live test-run frame; generic: the
  // program builds them in a test run and a socket sends them (agent/flush.ts).
  for (const mode of ['native', 'generic'] as const) {
    it(`${mode}: periodic and solicited flushes; two sequencers stamp their own ids and aggregate their own ACKs`, async () => {
      const t = (topo = await Topology.create({ receivers: 2, clients: 1, sequencers: 2, mode }));
      const [s0, s1] = [t.sequencerRole(0), t.sequencerRole(1)];
      expect([s0, s1, t.ip(s0), t.ip(s1)]).toEqual(['seq', 'seq2', '10.77.0.2', '10.77.0.152']);
      const r1 = probe(t, 'r1', { ack: 0, join: true, port: ACK_PORT });
      const r2 = probe(t, 'r2', { ack: 1, join: true, port: ACK_PORT + 1 });
      const cli = probe(t, 'cli', { port: CLI_PORT });
      await Promise.all([r1, r2, cli].map((p) => p.waitForLine(/"event":"listening"/, 20_000)));

      const INTERVAL = 100;
      const [a, b] = await Promise.all([
        startAgent(t, s0, { mode, sequencerId: 0, session: 7, flushMs: INTERVAL }),
        startAgent(t, s1, { mode, sequencerId: 1, session: 9 }),
      ]);

      // Periodic flushes of sequencer 0: several come, each from the timer
      // (no request, no solicit), with growing clocks; sequencer 1 has its
      // timer off and sends none. How many per second is a speed, bench row
      // T-flush (bench/timers.ts); here the deadline only bounds the wait.
      const t0 = Date.now();
      const PERIODIC = 4;
      const inWindow = await until(() => flushes(received(r1), 0), (f) => f.length >= PERIODIC, 60_000);
      const WINDOW = Date.now() - t0;
      expect(inWindow.length, `periodic flushes of sequencer 0 within ${WINDOW} ms at ${INTERVAL} ms`).toBeGreaterThanOrEqual(PERIODIC);
      for (const m of inWindow) expect(m.h).toMatchObject({ groupId: GROUP.id, session: 7, seq: '0', flags: 0, payloadLen: 0 });
      expect(m0From(inWindow)).toEqual([`${t.ip(s0)}:${SEQ_PORT}`]);
      const clocks = inWindow.map((m) => BigInt(m.h.clockNs));
      clocks.slice(1).forEach((c, i) => expect(c > clocks[i]!).toBe(true));
      expect(flushes(received(r1), 1)).toEqual([]);

      // Five requests to each sequencer: each stamps its own id, session and
      // seqs 1..5, and each REPLY comes from the sequencer asked, with the
      // leader's result for that sequencer's ACK.
      for (let i = 1; i <= 5; i++) request(cli, t, s0, i);
      for (let i = 6; i <= 10; i++) request(cli, t, s1, i);
      const replies = await until(() => received(cli).filter((m) => m.h.type === MsgType.REPLY), (r) => r.length >= 10, 10_000);
      expect(replies.length).toBe(10);
      for (const r of replies) {
        const id = Number(r.h.requestId);
        const sid = id <= 5 ? 0 : 1;
        expect(r.from, `reply to request ${id}`).toBe(`${t.ip(sid === 0 ? s0 : s1)}:${SEQ_PORT}`);
        expect(r.h).toMatchObject({ sequencerId: sid, session: sid === 0 ? 7 : 9, flags: Flags.RESULT, clientId: '9' });
        expect(r.payload).toBe(`ok-${sid}`);
      }
      for (const p of [r1, r2]) {
        const rx = received(p);
        expect(seqsOf(stamped(rx, 0))).toEqual([1, 2, 3, 4, 5]);
        expect(seqsOf(stamped(rx, 1))).toEqual([1, 2, 3, 4, 5]);
        expect(new Set(stamped(rx, 0).map((m) => m.h.session))).toEqual(new Set([7]));
        expect(new Set(stamped(rx, 1).map((m) => m.h.session))).toEqual(new Set([9]));
      }

      // The next periodic flush of sequencer 0 carries seq 5 and a clock no
      // older than its last stamp.
      const after = await until(() => flushes(received(r1), 0).filter((m) => m.h.seq === '5'), (f) => f.length > 0, 3000);
      expect(after.length).toBeGreaterThan(0);
      expect(BigInt(after[0]!.h.clockNs) >= maxClock(stamped(received(r1), 0))).toBe(true);

      // A member's solicit to sequencer 1 (timer off) gets a FLUSH at once;
      // the same solicit from the client (not a member) gets none.
      const asked = Date.now();
      solicit(r1, t, s1, 1, 0);
      const got = await until(() => flushes(received(r1), 1), (f) => f.length > 0, 3000);
      expect(got.length).toBe(1);
      expect(got[0]!.h).toMatchObject({ sequencerId: 1, session: 9, seq: '5', flags: 0 });
      expect(got[0]!.from).toBe(`${t.ip(s1)}:${SEQ_PORT}`);
      expect(BigInt(got[0]!.h.clockNs) >= maxClock(stamped(received(r1), 1))).toBe(true);
      const solicitMs = got[0]!.at - asked;
      solicit(cli, t, s1, 1, 0);
      await sleep(700);
      expect(flushes(received(r1), 1).length).toBe(1);

      const [sa, sb] = await Promise.all([stopAgent(a.p), stopAgent(b.p)]);
      expect(sa.counters).toMatchObject({ sequenced: '5', reply: '5', ack_counted: '10', drop_ack_stranger: '0', drop_ack_window: '0', flush_final: '0', drop_solicit_stranger: '0' });
      expect(sb.counters).toMatchObject({ sequenced: '5', reply: '5', ack_counted: '10', drop_ack_stranger: '0', drop_ack_window: '0', flush: '1', drop_solicit_stranger: '1' });
      expect(sa.flush?.errors).toBe(0);
      expect(Number(sa.counters['flush'])).toBe(sa.flush!.injected);
      expect(sa.flush!.injected).toBeGreaterThanOrEqual(flushes(received(r1), 0).length);
      expect(sb.flush).toBeUndefined();
      console.log(`[hydra ${mode}] ${inWindow.length} flushes in ${WINDOW} ms at ${INTERVAL} ms; solicited flush after ${solicitMs} ms; sequencer 0 injected ${sa.flush!.injected}`);
    }, TEST_MS);

    it(`${mode}: drain: FINAL flushes with the last seq, requests refused, solicits answered FINAL, and no undrain in the same session`, async () => {
      const t = (topo = await Topology.create({ receivers: 2, clients: 1, sequencers: 1, mode }));
      const s0 = t.sequencerRole(0);
      const r1 = probe(t, 'r1', { ack: 0, join: true, port: ACK_PORT });
      const r2 = probe(t, 'r2', { ack: 1, join: true, port: ACK_PORT + 1 });
      const cli = probe(t, 'cli', { port: CLI_PORT });
      await Promise.all([r1, r2, cli].map((p) => p.waitForLine(/"event":"listening"/, 20_000)));

      // A running sequencer stamps three requests, then its agent stops and
      // leaves the data path pinned, as in production.
      const first = await startAgent(t, s0, { mode, sequencerId: 0, session: 11, detach: false });
      for (let i = 1; i <= 3; i++) request(cli, t, s0, i);
      const replies = await until(() => received(cli).filter((m) => m.h.type === MsgType.REPLY), (r) => r.length >= 3, 10_000);
      expect(replies.length).toBe(3);
      await stopAgent(first.p);

      // The drain: the same agent, restarted with --drain 1, adopts the data
      // path (same session) and sends its FINAL flushes.
      const drained = await startAgent(t, s0, { mode, sequencerId: 0, session: 11, box: first.box, detach: false, extra: ['--drain', '1'] });
      await drained.p.waitForLine(/"event":"drain"/, 5000);
      const finals = await until(() => flushes(received(r1), 0), (f) => f.length >= FINAL_FLUSH_REPEATS, 3000);
      expect(finals.length).toBeGreaterThanOrEqual(FINAL_FLUSH_REPEATS - 1); // one may be lost on a busy machine
      expect(finals.length).toBeLessThanOrEqual(FINAL_FLUSH_REPEATS);
      for (const f of finals) expect(f.h).toMatchObject({ flags: Flags.FINAL, seq: '3', session: 11, sequencerId: 0 });
      expect(BigInt(finals[0]!.h.clockNs) >= maxClock(stamped(received(r1), 0))).toBe(true);

      // No more stamping; a member's solicit is answered FINAL.
      request(cli, t, s0, 4);
      solicit(r2, t, s0, 0, 1);
      const more = await until(() => flushes(received(r2), 0), (f) => f.length >= finals.length + 1, 3000);
      expect(more.at(-1)!.h).toMatchObject({ flags: Flags.FINAL, seq: '3' });
      await sleep(300);
      expect(seqsOf(stamped(received(r1), 0))).toEqual([1, 2, 3]);
      expect(received(cli).filter((m) => m.h.type === MsgType.REPLY).length).toBe(3);
      const st = await stopAgent(drained.p);
      expect(st.counters).toMatchObject({ sequenced: '3', drop_draining: '1' });
      expect(Number(st.counters['flush_final'])).toBeGreaterThanOrEqual(FINAL_FLUSH_REPEATS + 1);
      expect(st.counters['flush_final']).toBe(st.counters['flush']);
      expect(st.flush).toEqual({ injected: FINAL_FLUSH_REPEATS, errors: 0 });

      // status shows the drained group, whether an agent runs or not.
      const status = t.tryExec(s0, process.execPath, [...TS, AGENT, 'status', '--iface', t.ifname(s0), '--json', ...first.box.flags], { env: first.box.env });
      expect(status.status, status.stderr).toBe(0);
      const report = JSON.parse(status.stdout) as { interfaces: Array<{ groups?: Array<{ id: number; draining?: boolean; lastSeq: string; sequencerId: number }> }> };
      expect(report.interfaces[0]!.groups).toEqual([expect.objectContaining({ id: GROUP.id, draining: true, lastSeq: '3', sequencerId: 0 })]);

      // Stamping again in the drained session is refused (replicas have let
      // this sequencer go); the message says how to come back.
      const undrain = t.spawn(s0, process.execPath, agentArgs(t, s0, { mode, sequencerId: 0, session: 11, detach: false }, first.box), { env: first.box.env });
      const exit = await undrain.exited;
      expect(exit.code, undrain.output().stdout).toBe(3);
      expect(undrain.output().stderr).toMatch(/EPIN_CONFIG[\s\S]*group 1 was drained/);

      const detach = t.tryExec(s0, process.execPath, [...TS, AGENT, 'detach', '--iface', t.ifname(s0), ...first.box.flags], { env: first.box.env });
      expect(detach.status, detach.stderr).toBe(0);
    }, TEST_MS);
  }
});

function m0From(rx: Rx[]): string[] {
  return [...new Set(rx.map((m) => m.from))];
}

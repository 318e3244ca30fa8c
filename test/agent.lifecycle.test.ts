// The agent's lifecycle against the real kernel, in network namespaces:
// the pinned data path outlives the agent (kill -9 under load loses
// nothing), a new data path is a new session, stale or mismatching pins
// are refused with the command that fixes them, and status/detach report
// and remove exactly what the agent made. Every test has its own bpffs and
// state directory (test/helpers/agent-sandbox.ts), removed even on failure.
import { mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { DEFAULT_PASS_OBJECT, type NsProcess, Topology } from '../netns/topology.ts';
import { agentSandbox, type AgentSandbox } from './helpers/agent-sandbox.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const TSX = join(root, 'node_modules', '.bin', 'tsx');
// The agent as one process (tsx registered in-process), so a SIGKILL hits
// the agent itself rather than a launcher.
const BIN = join(root, 'agent', 'bin', 'xseq-agent.js');
const GROUP = '239.7.7.1';
const PORT = 7500;
const PIN_SET = 'link xseq_groups xseq_group_seq xseq_counters xseq_events xseq_slots xseq_quorum_hist xseq_released xseq_weights xseq_mac_keys xseq_client_sources xseq_solicit_last xseq_nv_seqs xseq_nv_names xseq_nv_stats xseq_nv_counters rodata';

interface Ready {
  dataPath: 'created' | 'adopted';
  mode: string;
  modeReason: string;
  port: number;
  progId: number;
  groups: Record<string, { action: string; session: number; lastSeq: string }>;
  counters: Record<string, string>;
  metrics: string | null;
}

interface Summary {
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

async function setup(opts: { receivers: number; mode?: 'native' | 'generic' }): Promise<{ t: Topology; b: AgentSandbox }> {
  const t = (topo = await Topology.create({ receivers: opts.receivers, clients: 1, mode: opts.mode ?? 'generic' }));
  const b = (box = agentSandbox());
  return { t, b };
}

function startAgent(t: Topology, b: AgentSandbox, extra: string[] = [], iface = t.ifname('seq')): NsProcess {
  const args = ['run', '--iface', iface, '--group', `1:${GROUP}:${PORT}`, '--stats-interval', '0', '--metrics-listen', '', ...b.flags, ...extra];
  // A later --metrics-listen in `extra` wins (parseArgs keeps the last).
  return t.spawn('seq', process.execPath, [BIN, ...args], { env: b.env });
}

async function ready(p: NsProcess): Promise<Ready> {
  return JSON.parse(await p.waitForLine(/"event":"ready"/, 60_000)) as Ready;
}

/** Runs an xseq-agent command to completion in the sequencer's namespace. */
function cli(t: Topology, b: AgentSandbox, ...args: string[]) {
  const r = t.tryExec('seq', process.execPath, [BIN, ...args], { env: b.env, timeoutMs: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs a command an error message suggested, as printed. */
function suggested(t: Topology, b: AgentSandbox, command: string) {
  const [bin, ...args] = command.split(' ');
  expect(bin).toBe('xseq-agent');
  return cli(t, b, ...args);
}

interface StatusJson {
  interfaces: Array<{
    iface: string;
    state: string;
    attachedMode?: string;
    agent: { running: boolean };
    program?: { id: number; name: string };
    groups?: Array<{ id: number; session: number; lastSeq: string; members: string[] }>;
    counters?: Record<string, string>;
    problems: string[];
    foreign: Array<{ progId: number; name?: string; mode: string }>;
    fix?: string;
  }>;
  sessions: Record<string, { session: number }>;
}

function status(t: Topology, b: AgentSandbox, iface: string): { code: number | null; json: StatusJson } {
  const r = cli(t, b, 'status', '--iface', iface, '--json', ...b.flags);
  return { code: r.code, json: JSON.parse(r.out) as StatusJson };
}

async function stopped(p: NsProcess): Promise<{ dataPath: string; counters: Record<string, string>; lastSeq: Record<string, string> }> {
  const exit = await p.stop('SIGTERM', 10_000);
  expect(exit.code, p.output().stderr).toBe(0);
  return JSON.parse(await p.waitForLine(/"event":"stopped"/)) as { dataPath: string; counters: Record<string, string>; lastSeq: Record<string, string> };
}

function receivers(t: Topology, roles: string[], expectCount: number): NsProcess[] {
  return roles.map((r) =>
    t.spawn(r, TSX, [join(root, 'tools/receiver.ts'), '--group', GROUP, '--port', String(PORT), '--iface-addr', t.ip(r), '--expect', String(expectCount), '--idle-ms', '6000', '--max-ms', '120000']),
  );
}

function send(t: Topology, count: number, rate: number): NsProcess {
  return t.spawn('cli', TSX, [join(root, 'tools/sender.ts'), '--dst', t.ip('seq'), '--count', String(count), '--rate', String(rate), '--max-ms', '90000']);
}

/** A spare interface in the sequencer's namespace (a veth pair: this
 * kernel has no dummy driver); deleting it takes its peer along. */
function addIface(t: Topology, name: string): void {
  t.exec('seq', 'ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
  t.exec('seq', 'ip', ['link', 'set', name, 'up']);
  t.exec('seq', 'ip', ['link', 'set', `${name}p`, 'up']);
}

describePrivileged('xseq-agent lifecycle: pinned data path, sessions, status and detach', () => {
  it('kill -9 under load: the data path keeps stamping, the restarted agent adopts it, receivers see one dense sequence in one session', async () => {
    const { t, b } = await setup({ receivers: 3 });
    const TOTAL = 24_000;
    const first = startAgent(t, b, ['--stats-interval', '200']);
    expect(await ready(first)).toMatchObject({ dataPath: 'created', mode: 'generic', groups: { '1': { action: 'created', session: 1, lastSeq: '0' } } });

    const rs = receivers(t, ['r1', 'r2', 'r3'], TOTAL);
    await Promise.all(rs.map((r) => r.waitForLine(/listening/, 30_000)));
    const sender = send(t, TOTAL, 2000);
    // Kill once stamping is under way.
    await first.waitForLine((l) => {
      const m = /"sequenced":"(\d+)"/.exec(l);
      return l.includes('"event":"counters"') && !!m && Number(m[1]) >= 500;
    }, 60_000);
    const killed = await first.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');

    // No agent now; status reads the pins, and the data path stamps on.
    const during = status(t, b, t.ifname('seq'));
    expect(during.code).toBe(0);
    expect(during.json.interfaces[0]).toMatchObject({ state: 'attached', attachedMode: 'generic', agent: { running: false }, program: { name: 'xseq_sequencer' } });
    const seqWhileDead = BigInt(during.json.interfaces[0]!.groups![0]!.lastSeq);
    expect(seqWhileDead).toBeGreaterThanOrEqual(500n);

    const second = startAgent(t, b);
    const adopted = await ready(second);
    expect(adopted).toMatchObject({ dataPath: 'adopted', mode: 'generic', groups: { '1': { action: 'kept', session: 1 } } });
    // Counters and seqs continued from before the kill; the adoption
    // happened while requests were still arriving.
    const seqAtAdopt = BigInt(adopted.groups['1']!.lastSeq);
    expect(seqAtAdopt).toBeGreaterThan(seqWhileDead);
    expect(seqAtAdopt).toBeLessThan(BigInt(TOTAL));
    expect(BigInt(adopted.counters['sequenced']!)).toBeGreaterThanOrEqual(seqAtAdopt);

    expect((JSON.parse(await sender.waitForLine(/"sent"/, 100_000)) as { sent: number }).sent).toBe(TOTAL);
    const summaries = await Promise.all(rs.map(async (r) => JSON.parse(await r.waitForLine(/"digest"/, 120_000)) as Summary));
    for (const s of summaries) {
      expect(s).toMatchObject({ distinct: TOTAL, duplicates: 0, invalid: 0, minSeq: 1, maxSeq: TOTAL, holes: 0, session: 1 });
    }
    expect(new Set(summaries.map((s) => s.digest)).size).toBe(1);

    const end = await stopped(second);
    expect(end).toMatchObject({ dataPath: 'left attached', lastSeq: { '1': String(TOTAL) } });
    expect(end.counters['sequenced']).toBe(String(TOTAL));
    const after = status(t, b, t.ifname('seq')).json.interfaces[0]!;
    expect(after).toMatchObject({ state: 'attached', agent: { running: false } });
    expect(after.counters!['sequenced']).toBe(String(TOTAL));
  }, 300_000);

  it('detach removes exactly the pins it made, and the next run is a new session from seq 1; --replace re-creates; metrics are served', async () => {
    const { t, b } = await setup({ receivers: 1 });
    const iface = t.ifname('seq');
    const dir = join(b.bpffs, 'xseq', iface);
    const first = startAgent(t, b);
    const r1 = await ready(first);
    expect(r1).toMatchObject({ dataPath: 'created', groups: { '1': { session: 1 } } });
    expect((JSON.parse(await send(t, 50, 1000).waitForLine(/"sent"/, 60_000)) as { sent: number }).sent).toBe(50);
    expect((await stopped(first)).dataPath).toBe('left attached');
    expect(t.exec('seq', 'ip', ['link', 'show', 'dev', iface])).toMatch(/xdpgeneric/);
    expect(readdirSync(dir).sort().join(' ')).toBe(PIN_SET.split(' ').sort().join(' '));

    // While an agent runs, detach refuses unless forced.
    const running = startAgent(t, b);
    await ready(running);
    const refused = cli(t, b, 'detach', '--iface', iface, ...b.flags);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(new RegExp(`EAGENT_RUNNING: an agent \\(pid ${running.pid}\\) runs the data path of ${iface}: stop it first`));
    await stopped(running);

    const d = cli(t, b, 'detach', '--iface', iface, ...b.flags);
    expect(d.code, d.err).toBe(0);
    expect(d.out.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^detached XDP link \\d+ \\(program ${r1.progId}\\) from ${iface}: stamping stopped$`)),
      `removed pins from ${dir}: ${PIN_SET}`,
      `removed empty directories: ${dir} ${join(b.bpffs, 'xseq')}`,
    ]);
    expect(readdirSync(b.bpffs).filter((n) => !n.endsWith('.debug'))).toEqual([]); // *.debug: the kernel's own
    expect(t.exec('seq', 'ip', ['link', 'show', 'dev', iface])).not.toMatch(/xdp/);
    const again = cli(t, b, 'detach', '--iface', iface, ...b.flags);
    expect(again).toMatchObject({ code: 0, out: `nothing to detach for ${iface}: no pins in ${dir}\n` });
    const none = cli(t, b, 'status', '--iface', iface, ...b.flags);
    expect(none.code).toBe(3);
    expect(none.out).toContain(`${iface}: no data path pinned in ${dir}`);

    // A new data path: session 2, seq from 1.
    const second = startAgent(t, b, ['--metrics-listen', '127.0.0.1:9464']);
    expect(await ready(second)).toMatchObject({ dataPath: 'created', groups: { '1': { action: 'created', session: 2, lastSeq: '0' } }, metrics: '127.0.0.1:9464' });
    const [r] = receivers(t, ['r1'], 100);
    await r!.waitForLine(/listening/, 30_000);
    await send(t, 100, 1000).waitForLine(/"sent"/, 60_000);
    expect(JSON.parse(await r!.waitForLine(/"digest"/, 60_000))).toMatchObject({ session: 2, minSeq: 1, maxSeq: 100, holes: 0, distinct: 100 });
    const fetchScript = (path: string) => `fetch('http://127.0.0.1:9464${path}').then(async (r) => console.log(r.status + ' ' + (await r.text())))`;
    expect(t.exec('seq', process.execPath, ['-e', fetchScript('/healthz')])).toMatch(/^200 .*"ok":true/);
    const metrics = t.exec('seq', process.execPath, ['-e', fetchScript('/metrics')]);
    expect(metrics).toContain('xseq_group_session{sequencer="1",group="1"} 2');
    expect(metrics).toContain('xseq_group_last_seq{sequencer="1",group="1"} 100');
    await stopped(second);

    // --replace re-creates even an attached, adoptable data path.
    const third = startAgent(t, b, ['--replace']);
    expect(await ready(third)).toMatchObject({ dataPath: 'created', groups: { '1': { session: 3, lastSeq: '0' } } });
    await stopped(third);
    const s = status(t, b, iface).json;
    expect(s.interfaces[0]!.groups![0]).toMatchObject({ session: 3, lastSeq: '0' });
    expect(s.sessions['1']).toMatchObject({ session: 3 });
  }, 300_000);

  it('stale pins (interface re-created, a map missing) are refused with the command that fixes them; the fixes work', async () => {
    const { t, b } = await setup({ receivers: 0 });
    addIface(t, 'xq0');
    const dir = join(b.bpffs, 'xseq', 'xq0');
    const first = startAgent(t, b, [], 'xq0');
    await ready(first);
    await first.stop('SIGKILL');
    // The interface goes away and comes back: the pinned link is left
    // attached to nothing.
    t.exec('seq', 'ip', ['link', 'del', 'xq0']);
    addIface(t, 'xq0');

    const st = cli(t, b, 'status', '--iface', 'xq0', ...b.flags);
    expect(st.code).toBe(1);
    expect(st.out).toContain(`xq0: STALE pins in ${dir}, not a working data path:`);
    expect(st.out).toMatch(/- the pinned link \(id \d+\) is attached to no interface: xq0 was deleted or re-created since it was pinned/);
    const detachCmd = `xseq-agent detach --iface xq0 --bpffs ${b.bpffs} --state-dir ${b.stateDir}`;
    expect(st.out).toContain(`fix: ${detachCmd}`);

    const refused = startAgent(t, b, [], 'xq0');
    const exit = await refused.exited;
    expect(exit.code).toBe(3);
    const err = refused.output().stderr;
    expect(err).toMatch(/^xseq-agent: EPIN_STALE: the pinned data path of xq0 is not usable:\n {2}- the pinned link \(id \d+\) is attached to no interface: xq0 was deleted or re-created/);
    expect(err).toContain(`(found in ${dir}: xseq_groups (map), xseq_group_seq (map), xseq_counters (map), xseq_events (map), xseq_slots (map), xseq_quorum_hist (map), xseq_released (map), xseq_weights (map), xseq_mac_keys (map), xseq_client_sources (map), xseq_solicit_last (map), xseq_nv_seqs (map), xseq_nv_names (map), xseq_nv_stats (map), xseq_nv_counters (map), rodata (map), link (link))`);
    expect(err).toContain(`Remove it with \`${detachCmd}\` and start again`);
    expect(err).toMatch(/or re-create it in one step with `xseq-agent run --iface xq0 .*--replace`/);
    expect(readdirSync(dir)).toHaveLength(PIN_SET.split(' ').length); // refusing touched nothing

    // The suggested command, run as printed, clears it.
    const fixed = suggested(t, b, /Remove it with `([^`]+)`/.exec(err)![1]!);
    expect(fixed.code, fixed.err).toBe(0);
    expect(fixed.out).toMatch(/^detached XDP link \d+ \(program \d+\); it was attached to no interface any more\n/);
    const second = startAgent(t, b, [], 'xq0');
    expect(await ready(second)).toMatchObject({ dataPath: 'created', groups: { '1': { session: 2 } } });
    await second.stop('SIGKILL');

    // A partial pin set: a map pin gone.
    unlinkSync(join(dir, 'xseq_slots'));
    const partial = startAgent(t, b, [], 'xq0');
    expect((await partial.exited).code).toBe(3);
    const perr = partial.output().stderr;
    expect(perr).toMatch(/EPIN_STALE: the pinned data path of xq0 is not usable:\n {2}- maps missing: xseq_slots\n/);
    const replaceCmd = /in one step with `([^`]+)`/.exec(perr)![1]!;
    expect(replaceCmd).toBe(`xseq-agent run --iface xq0 --group 1:${GROUP}:${PORT} --stats-interval 0 --metrics-listen '' --bpffs ${b.bpffs} --state-dir ${b.stateDir} --replace`);
    const replaced = startAgent(t, b, ['--replace'], 'xq0');
    const r3 = await ready(replaced);
    expect(r3).toMatchObject({ dataPath: 'created', groups: { '1': { session: 3, lastSeq: '0' } } });
    await stopped(replaced);
    expect(status(t, b, 'xq0')).toMatchObject({ code: 0, json: { interfaces: [{ state: 'attached', problems: [] }] } });
  }, 300_000);

  it('a configuration the pinned program cannot serve is refused with the differences; group changes are adopted; a foreign XDP program is never replaced', async () => {
    const { t, b } = await setup({ receivers: 0, mode: 'native' });
    addIface(t, 'xq1');
    const first = startAgent(t, b, [], 'xq1');
    const r1 = await ready(first);
    await stopped(first);

    const bad = startAgent(t, b, ['--port', '7410', '--window', '64', '--mode', 'native'], 'xq1');
    expect((await bad.exited).code).toBe(3);
    const err = bad.output().stderr;
    expect(err).toContain(`EPIN_CONFIG: the data path pinned in ${join(b.bpffs, 'xseq', 'xq1')} is running and stamping, but cannot serve this configuration:\n`);
    expect(err).toContain('  - port: the pinned program has 7400, the configuration says 7410\n');
    expect(err).toContain('  - window.slots: the pinned program has 1024, the configuration says 64\n');
    expect(err).toContain('  - attachMode: the data path is attached in generic mode, the configuration says native\n');
    expect(err).toMatch(/re-create it with `xseq-agent run .* --replace` \(replicas see a new session\)/);
    expect(status(t, b, 'xq1').json.interfaces[0]).toMatchObject({ state: 'attached', program: { id: r1.progId } });

    // Members and quorum may change on the running data path: same session.
    const members = ['--member', '1:0:10.77.0.11:7600', '--member', '1:1:10.77.0.12:7600', '--member', '1:2:10.77.0.13:7600', '--quorum', '1:3'];
    const updated = startAgent(t, b, members, 'xq1');
    expect(await ready(updated)).toMatchObject({ dataPath: 'adopted', progId: r1.progId, groups: { '1': { action: 'updated', session: 1 } } });
    await stopped(updated);
    expect(status(t, b, 'xq1').json.interfaces[0]!.groups![0]).toMatchObject({ session: 1, members: ['10.77.0.11:7600', '10.77.0.12:7600', '10.77.0.13:7600'] });

    const replaced = startAgent(t, b, ['--port', '7410', '--replace'], 'xq1');
    expect(await ready(replaced)).toMatchObject({ dataPath: 'created', port: 7410, groups: { '1': { session: 2 } } });
    await stopped(replaced);
    const dir = join(b.bpffs, 'xseq', 'xq1');
    // A name in the pin directory that is not the agent's stays.
    mkdirSync(join(dir, 'keepme'));
    const d = cli(t, b, 'detach', '--iface', 'xq1', ...b.flags);
    expect(d.out).toContain(`removed pins from ${dir}: ${PIN_SET}\n`);
    expect(d.out).toContain(`left in ${dir} (not the agent's): keepme\n`);
    expect(readdirSync(dir)).toEqual(['keepme']);
    rmdirSync(join(dir, 'keepme'));
    expect(cli(t, b, 'detach', '--iface', 'xq1', ...b.flags).out).toBe(`removed empty directories: ${dir} ${join(b.bpffs, 'xseq')}\n`);

    // Someone else's XDP program: refused, even with --replace, and left.
    t.exec('seq', 'ip', ['link', 'set', 'dev', 'xq1', 'xdpgeneric', 'obj', DEFAULT_PASS_OBJECT, 'sec', 'xdp']);
    for (const extra of [[], ['--replace']]) {
      const p = startAgent(t, b, extra, 'xq1');
      expect((await p.exited).code).toBe(3);
      expect(p.output().stderr).toMatch(/^xseq-agent: EXDP_FOREIGN: xq1 already runs another XDP program: program '\w+' id \d+ \(generic\)\. It is not xseq's and is left alone\. .*`ip link set dev xq1 xdp off`/);
    }
    const st = status(t, b, 'xq1');
    expect(st.code).toBe(1);
    expect(st.json.interfaces[0]).toMatchObject({ state: 'none', foreign: [{ mode: 'generic' }] });
    expect(cli(t, b, 'detach', '--iface', 'xq1', ...b.flags).out).toMatch(/^nothing to detach for xq1: .*\nleft alone: XDP program \d+ '\w+' \(generic\) on xq1 is not this data path\n$/);
    expect(t.exec('seq', 'ip', ['link', 'show', 'dev', 'xq1'])).toMatch(/xdpgeneric/);
  }, 300_000);
});

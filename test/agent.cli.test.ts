// xseq-agent's command line: help that tells the truth, and one clear line
// with a stable code for every mistake.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunArgs, runConfig, UsageError } from '../agent/args.ts';
import { ConfigError } from '../agent/config.ts';
import { groupConfig } from '../agent/groups.ts';
import { clientKeyOf, groupKey } from '../bpf/mac.ts';
import { emptyHeader, encodeMessage, Flags, MsgType } from '../bpf/wire.ts';
import { Topology } from '../netns/topology.ts';
import { agentSandbox, type AgentSandbox } from './helpers/agent-sandbox.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');

/** --member flags for group 1, replica ids as given, one address each. */
function m(...rids: number[]): string[] {
  return rids.flatMap((rid, i) => ['--member', `1:${rid}:10.0.0.${11 + i}:7600`]);
}
const BIN = join(root, 'agent', 'bin', 'xseq-agent.js');

/** No config file from the host: every setting comes from the flags. */
const NO_FILE = { XSEQ_CONFIG: '' };

function agent(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...NO_FILE } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The run configuration from flags alone, as the CLI builds it. */
function config(argv: string[]) {
  return runConfig(parseRunArgs(argv)!, NO_FILE);
}

describe('xseq-agent command line', () => {
  it('--help lists the commands; each command\'s --help lists every flag it accepts', () => {
    const main = agent('--help');
    expect(main.code).toBe(0);
    expect(main.out).toMatch(/Commands:\n\s+run[\s\S]*\n\s+status[\s\S]*\n\s+detach/);
    const run = agent('run', '--help');
    expect(run.code).toBe(0);
    const flags = ['--iface', '--mode', '--port', '--group', '--session', '--sequencer-id', '--stats-interval', '--log-level'];
    flags.push('--member', '--quorum', '--window', '--windows', '--max-result', '--policy', '--rto-ms', '--retries', '--repair-port');
    flags.push('--config', '--bpffs', '--state-dir', '--metrics-listen', '--replace', '--detach-on-exit');
    flags.push('--flush-interval', '--drain');
    for (const flag of flags) {
      expect(run.out).toContain(flag);
    }
    const status = agent('status', '--help');
    expect(status.code).toBe(0);
    for (const flag of ['--iface', '--all', '--json', '--config', '--bpffs', '--state-dir']) expect(status.out).toContain(flag);
    const detach = agent('detach', '--help');
    expect(detach.code).toBe(0);
    for (const flag of ['--iface', '--force', '--config', '--bpffs', '--state-dir']) expect(detach.out).toContain(flag);
  });

  it('client-key prints the client key of a group key file (what clients seal REQUESTs with); without --key-file, or with a loose file, exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xseq-client-key-'));
    try {
      const file = join(dir, 'g.key');
      writeFileSync(file, '00112233445566778899aabbccddeeff\n', { mode: 0o600 });
      const r = agent('client-key', '--key-file', file);
      expect(r.code, r.err).toBe(0);
      expect(r.out.trim()).toBe(Buffer.from(clientKeyOf(groupKey(Buffer.from('00112233445566778899aabbccddeeff', 'hex'))).bytes).toString('hex'));
      expect(r.out.trim()).not.toBe('00112233445566778899aabbccddeeff');
      expect(agent('client-key').code).toBe(2);
      chmodSync(file, 0o644);
      const loose = agent('client-key', '--key-file', file);
      expect(loose.code).toBe(2);
      expect(loose.err).toContain('EKEY_PERMISSIONS');
      expect(agent('client-key', '--help').out).toContain('--key-file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no command prints the usage and exits 2', () => {
    const r = agent();
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/Usage: xseq-agent/);
  });

  // A usage error is one line; a configuration error is a header line and
  // one line per field, each naming the field and the flag that set it.
  const mistakes: [string, string[], RegExp, number][] = [
    ['an unknown command', ['frobnicate'], /EUSAGE: unknown command "frobnicate"/, 1],
    ['an unknown flag', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--colour'], /EUSAGE: .*--colour/, 1],
    ['a missing --iface', ['run', '--group', '1:239.1.1.1:7500'], /ECONFIG: .*\n  interface: is required/, 2],
    ['a missing --group', ['run', '--iface', 'x'], /ECONFIG: .*\n  groups: is required: at least one group/, 2],
    ['a malformed --group', ['run', '--iface', 'x', '--group', '239.1.1.1'], /EUSAGE: --group must be ID:ADDR:PORT/, 1],
    ['a unicast group address', ['run', '--iface', 'x', '--group', '1:10.0.0.1:7500'], /\n  groups\[0\]\.multicast: .*not an IPv4 multicast address \(224.*\(from --group 1:10\.0\.0\.1:7500\)/, 2],
    ['a group id out of range', ['run', '--iface', 'x', '--group', '256:239.1.1.1:7500'], /\n  groups\[0\]\.id: must be at most 255 \(from --group 256:239\.1\.1\.1:7500\)/, 2],
    ['a group given twice', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '1:239.1.1.2:7500'], /\n  groups\[1\]\.id: group 1 is configured twice \(from --group 1:239\.1\.1\.2:7500\)/, 2],
    ['a bad mode', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--mode', 'turbo'], /\n  attachMode: must be one of "native", "generic", "auto" \(from --mode turbo\)/, 2],
    ['a port out of range', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--port', '70000'], /\n  port: must be at most 65535 \(from --port 70000\)/, 2],
    ['a non-numeric session', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--session', 'abc'], /\n  session: must be a whole number 1\.\.4294967295 \(from --session abc\)/, 2],
    ['a malformed --member', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:10.0.0.1'], /EUSAGE: --member must be GROUP:RID:ADDR:PORT/, 1],
    ['member ids with a hole', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 2)], /\n  groups\[0\]\.members: member ids must be 0\.\.1, each once \(got 0, 2\) \(from --member 1:0:10\.0\.0\.11:7600, --member 1:2:10\.0\.0\.12:7600\)/, 2],
  ];
  it.each(mistakes)('%s is reported with a code, exit 2', (_name, args, msg, lines) => {
    const r = agent(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err.trim().split('\n')).toHaveLength(lines);
  });

  // The same path as above, checked in process: a spawn per case would
  // cost a second each.
  const flagMistakes: [string, string[], typeof UsageError | typeof ConfigError, RegExp][] = [
    ['a member of a group not given', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '2:0:10.0.0.1:7600'], UsageError, /--member 2:0:10.0.0.1:7600: group 2 has no --group/],
    ['a member id given twice', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 0)], ConfigError, /groups\[0\]\.members: member ids must be 0\.\.1, each once \(got 0, 0\)/],
    ['a replica id beyond 7', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:8:10.0.0.1:7600'], ConfigError, /groups\[0\]\.members\[0\]\.id: must be at most 7 \(replica id\) \(from --member 1:8:10\.0\.0\.1:7600\)/],
    ['a multicast member address', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:239.0.0.1:7600'], ConfigError, /groups\[0\]\.members\[0\]\.address: .*239\.0\.0\.1 is not a unicast IPv4 address/],
    ['two members on one address and port', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:10.0.0.1:7600', '--member', '1:1:10.0.0.1:7600'], ConfigError, /groups\[0\]\.members: replicas 0 and 1 both send from 10\.0\.0\.1:7600/],
    ['a quorum below a majority', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--quorum', '1:1'], ConfigError, /groups\[0\]\.quorum: must be 2\.\.3 for 3 members \(a majority, at most all\) \(from --quorum 1:1\)/],
    ['a quorum for a group without members', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--quorum', '1:1'], ConfigError, /groups\[0\]\.quorum: a quorum needs members \(from --quorum 1:1\)/],
    ['weights that break integrity', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--weight', '1:0:3'], ConfigError, /groups\[0\]\.members: integrity: the f = 1 heaviest members 0 \(weight 3\) hold 3 of the total weight 5.* \(from --member 1:0:10\.0\.0\.11:7600, .*--weight 1:0:3\)/],
    ['a weight for a member not given', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1), '--weight', '1:2:3'], UsageError, /--weight 1:2:3: group 1 has no member 2/],
    ['a tolerance that weights cannot meet', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--tolerate', '1:2'], ConfigError, /groups\[0\]\.f: integrity: the f = 2 heaviest .* \(from --tolerate 1:2\)/],
    ['a quorum with weights', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--quorum', '1:2', '--weight', '1:0:2'], ConfigError, /groups\[0\]\.quorum: counts ACKs and cannot be combined with member weights or f/],
    ['a quorum given twice', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--quorum', '1:2', '--quorum', '1:3'], UsageError, /--quorum 1:3: group 1 is given twice/],
    ['a window that is not a power of two', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '1000'], ConfigError, /window\.slots: must be a power of two \(from --window 1000\)/],
    ['more aggregating groups than windows', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '2:239.1.1.2:7500', ...m(0), '--member', '2:0:10.0.0.1:7600', '--windows', '1'], ConfigError, /window\.windows: 2 groups have members but only 1 windows are configured \(from --windows 1\)/],
    ['windows that would take more than 4 GiB', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '1048576', '--windows', '8'], ConfigError, /window: .*at most 4 GiB of window slots .*\(from --window 1048576, --windows 8\)/],
    ['a result cap over 256', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--max-result', '257'], ConfigError, /window\.maxResult: must be at most 256 bytes \(from --max-result 257\)/],
    ['an unknown policy', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--policy', 'drop'], ConfigError, /window\.policy: must be one of "backpressure", "overwrite" \(from --policy drop\)/],
    ['an RTO of 0', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--rto-ms', '0'], ConfigError, /retransmit\.timeoutMs: must be at least 1 \(from --rto-ms 0\)/],
    ['too many retries', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--retries', '101'], ConfigError, /retransmit\.retries: must be at most 100 \(from --retries 101\)/],
    ['a repair port out of range', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--repair-port', '65536'], ConfigError, /repair\.port: must be at most 65535 \(0 = off\) \(from --repair-port 65536\)/],
    ['the repair port on the sequencer port', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--repair-port', '7400'], ConfigError, /repair\.port: 7400 is the sequencer's port; choose another \(0 = off\) \(from --repair-port 7400\)/],
    ['an interface name that is a path', ['--iface', '../etc', '--group', '1:239.1.1.1:7500'], ConfigError, /interface: is not a valid interface name \(no "\/", ":" or spaces\) \(from --iface \.\.\/etc\)/],
    ['a flush interval over a minute', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--flush-interval', '60001'], ConfigError, /flushIntervalMs: must be at most 60000 \(0 = off\) \(from --flush-interval 60001\)/],
    ['a flush interval that is not a number', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--flush-interval', 'fast'], ConfigError, /flushIntervalMs: must be a whole number 0\.\.60000 \(0 = off\) \(from --flush-interval fast\)/],
    ['a drain of a group not given', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--drain', '2'], UsageError, /--drain 2: group 2 has no --group/],
    ['a drain that is not a group id', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--drain', 'all'], UsageError, /--drain must be a group id \(e\.g\. 1\), got "all"/],
  ];
  it.each(flagMistakes)('%s is an error naming the field and the flag', (_name, args, kind, msg) => {
    expect(() => config(args)).toThrow(kind);
    expect(() => config(args)).toThrow(msg);
  });

  it('member flags become the groups\' members, quorum and windows; defaults fill the rest', () => {
    const cfg = config(['--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '2:239.1.1.2:7501', ...m(2, 0, 1), '--quorum', '1:3']);
    expect(groupConfig(cfg.groups[0]!, cfg.sequencerId, 7)).toMatchObject({
      members: [{ addr: '10.0.0.12', port: 7600 }, { addr: '10.0.0.13', port: 7600 }, { addr: '10.0.0.11', port: 7600 }],
      quorum: 3,
      session: 7,
    });
    expect(cfg.groups[1]!.members).toEqual([]);
    expect(groupConfig(cfg.groups[1]!, cfg.sequencerId, 7).members).toBeUndefined();
    expect(cfg).toMatchObject({ attachMode: 'auto', window: { slots: 1024, windows: 4, maxResult: 256, policy: 'backpressure' }, retransmit: { timeoutMs: 20, retries: 5 }, repair: { port: 7401 } });
    const tuned = config(['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '64', '--windows', '2', '--max-result', '0', '--policy', 'overwrite', '--rto-ms', '5', '--retries', '0', '--repair-port', '0']);
    expect(tuned).toMatchObject({ window: { slots: 64, windows: 2, maxResult: 0, policy: 'overwrite' }, retransmit: { timeoutMs: 5, retries: 0 }, repair: { port: 0 } });
  });

  it('Hydra: --flush-interval (default off) and $XSEQ_FLUSH_INTERVAL_MS; --drain marks the group, which the group map then carries', () => {
    expect(config(['--iface', 'x', '--group', '1:239.1.1.1:7500']).flushIntervalMs).toBe(0);
    const cfg = config(['--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '2:239.1.1.2:7501', '--flush-interval', '5', '--drain', '2', '--sequencer-id', '3']);
    expect(cfg.flushIntervalMs).toBe(5);
    expect(cfg.groups.map((g) => g.draining)).toEqual([undefined, true]);
    expect(groupConfig(cfg.groups[0]!, cfg.sequencerId, 7)).not.toHaveProperty('draining');
    expect(groupConfig(cfg.groups[1]!, cfg.sequencerId, 7)).toMatchObject({ draining: true, sequencerId: 3 });
    const fromEnv = runConfig(parseRunArgs(['--iface', 'x', '--group', '1:239.1.1.1:7500'])!, { XSEQ_CONFIG: '', XSEQ_FLUSH_INTERVAL_MS: '2' });
    expect(fromEnv.flushIntervalMs).toBe(2);
  });
});

describe('xseq-agent run checks the host before it touches it', () => {
  let dir: string | undefined;
  afterAll(() => {
    if (!dir) return;
    // Only if the check regressed: the agent mounted a bpffs there.
    spawnSync('umount', [join(dir, 'bpffs')], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a misspelled interface is a configuration error (exit 2) naming it, before bpffs or the state directory exist', () => {
    dir = mkdtempSync(join(tmpdir(), 'xseq-preflight-'));
    const bpffs = join(dir, 'bpffs');
    const state = join(dir, 'state');
    const r = agent('run', '--iface', 'xseq-nosuch0', '--group', '1:239.1.1.1:7500', '--bpffs', bpffs, '--state-dir', state);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^xseq-agent: ECONFIG: invalid configuration/);
    expect(r.err).toMatch(/interface: there is no network interface "xseq-nosuch0"/);
    expect(existsSync(bpffs)).toBe(false);
    expect(existsSync(state)).toBe(false);
  });
});

describePrivileged('xseq-agent run against the kernel', () => {
  let topo: Topology | undefined;
  let box: AgentSandbox | undefined;
  afterAll(async () => {
    await topo?.destroy();
    box?.remove();
  });

  it('with --member it retransmits, serves repair, and logs both with the kernel counters', async () => {
    box = agentSandbox();
    const t = (topo = await Topology.create({ receivers: 1, clients: 1, mode: 'generic' }));
    const agentProc = t.spawn('seq', process.execPath, [
      BIN, 'run', '--iface', t.ifname('seq'), '--mode', 'generic', '--group', '1:239.7.7.1:7500',
      '--member', `1:0:${t.ip('r1')}:7600`, '--session', '5', '--stats-interval', '100', '--rto-ms', '20', '--retries', '2',
      '--detach-on-exit', '--metrics-listen', '', ...box!.flags,
    ], { env: box!.env });
    const ready = JSON.parse(await agentProc.waitForLine(/"event":"ready"/, 20_000)) as Record<string, unknown>;
    expect(ready).toMatchObject({ window: 1024, windows: 4, policy: 'backpressure', rtoMs: 20, retries: 2, repairPort: 7401 });
    // The start line names the build (agent/version.ts).
    expect(ready).toMatchObject({ version: (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version, commit: expect.stringMatching(/^[0-9a-f]{12}$/) });
    // agent/logger.ts: a string level and an ISO-8601 time, not pino's numbers.
    expect(ready).toMatchObject({ level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) });

    // The member never ACKs: it waits for the agent's unicast copy, then
    // asks the repair service for seqs 1..2 (only 1 exists).
    const member = t.spawn('r1', process.execPath, ['--import', 'tsx', '--input-type=module', '-e', memberScript(t.ip('seq'))], { cwd: root });
    await member.waitForLine(/"listening"/, 20_000);
    const request = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 1n, requestId: 1n }, Buffer.from('op'));
    t.exec('cli', process.execPath, ['-e', sendScript(t.ip('seq'), request)]);
    const done = JSON.parse(await member.waitForLine(/"done"/, 20_000)) as { got: { type: number; flags: number; seq: string }[]; reply: unknown };
    expect(done.got[0]).toEqual({ type: MsgType.SEQUENCED, flags: Flags.RETRANSMIT, seq: '1' });
    expect(done.got.at(-1)!.type).toBe(MsgType.REPAIR_REPLY);
    expect(done.reply).toEqual({ count: 2, resent: 1, missing: ['2'] });

    // The periodic line carries all three kinds of counters; wait for the
    // one after both tries and the give-up.
    await agentProc.waitForLine((l) => l.includes('"event":"counters"') && l.includes('"requests":1') && l.includes('"giveUps":1'), 10_000);
    const exit = await agentProc.stop('SIGTERM', 5000);
    expect(exit.code, agentProc.output().stderr).toBe(0);
    const stopped = JSON.parse(await agentProc.waitForLine(/"event":"stopped"/)) as Record<string, Record<string, unknown>>;
    expect(stopped['counters']).toMatchObject({ sequenced: '1', reply: '0' });
    expect(stopped['retransmit']).toMatchObject({ retransmissions: 2, retransmittedSeqs: 1, giveUps: 1 });
    expect(stopped['repair']).toMatchObject({ requests: 1, resent: 1, missing: 1 });
    expect(stopped['quorumHist']).toEqual({});
    await member.stop();
  });

  it('monitor streams the kernel\'s drop samples from the running agent, filtered by reason', async () => {
    const sandbox = agentSandbox();
    const t = await Topology.create({ receivers: 1, clients: 1, mode: 'generic' });
    try {
      // Defaults: metrics on 127.0.0.1:9464 of the sequencer's namespace.
      const agentProc = t.spawn('seq', process.execPath, [BIN, 'run', '--iface', t.ifname('seq'), '--mode', 'generic', '--group', '1:239.7.7.1:7500', '--detach-on-exit', ...sandbox.flags], { env: sandbox.env });
      const ready = JSON.parse(await agentProc.waitForLine(/"event":"ready"/, 20_000)) as { metrics: string };
      expect(ready.metrics).toBe('127.0.0.1:9464');
      const mon = t.spawn('seq', process.execPath, [BIN, 'monitor', '--reason', 'bad_magic', '--count', '1', '--json'], { env: { ...sandbox.env, XSEQ_CONFIG: '' } });
      await mon.waitForLine(/"monitoring":true/, 20_000);
      // An unknown group first (filtered out), then a bad magic, until the
      // monitor has one (the stream may connect after the first datagrams).
      const unknown = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 9, clientId: 1n, requestId: 1n });
      const badMagic = Buffer.from(encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 1n, requestId: 2n }));
      badMagic.writeUInt32BE(0xdeadbeef, 0);
      let line: string | undefined;
      for (let i = 0; i < 50 && !line; i++) {
        t.exec('cli', process.execPath, ['-e', sendScript(t.ip('seq'), unknown)]);
        t.exec('cli', process.execPath, ['-e', sendScript(t.ip('seq'), badMagic)]);
        line = await mon.waitForLine(/"reason"/, 500).catch(() => undefined);
      }
      expect(line, mon.output().stderr).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ reason: 'bad_magic', source: t.ip('cli'), frameLen: 8 + 64 + 14 + 20 });
      expect(mon.output().stdout).not.toMatch(/unknown_group/);
      expect((await agentProc.stop('SIGTERM', 5000)).code).toBe(0);
    } finally {
      await t.destroy();
      sandbox.remove();
    }
  });
});

/** A member of group 1 (session 5) on the group port, as a script for r1. */
function memberScript(seqIp: string): string {
  return `
    import { createSocket } from 'node:dgram';
    import { Flags, MsgType, readHeader } from ${JSON.stringify(join(root, 'bpf/wire.ts'))};
    import { decodeRepairReply, encodeRepairRequest } from ${JSON.stringify(join(root, 'bpf/repair.ts'))};
    const s = createSocket('udp4');
    // The repair service answers only a member's configured address and
    // port (7600 here), so the request leaves from that port.
    const ackPort = createSocket('udp4');
    const got = [];
    let asked = false;
    const onMessage = (m) => {
      const h = readHeader(m);
      got.push({ type: h.type, flags: h.flags, seq: String(h.seq) });
      if (h.type === MsgType.SEQUENCED && (h.flags & Flags.RETRANSMIT) && !asked) {
        asked = true;
        ackPort.send(encodeRepairRequest({ groupId: 1, session: 5, replicaId: 0, first: 1n, count: 2 }), 7401, ${JSON.stringify(seqIp)});
      }
      if (h.type === MsgType.REPAIR_REPLY) {
        const reply = decodeRepairReply(m.subarray(64));
        console.log(JSON.stringify({ event: 'done', got, reply: { ...reply, missing: reply.missing.map(String) } }));
      }
    };
    s.on('message', onMessage);
    ackPort.on('message', onMessage);
    ackPort.bind(7600, () => s.bind(7500, () => console.log(JSON.stringify({ event: 'listening' }))));
    setTimeout(() => process.exit(3), 15000);
  `;
}

function sendScript(seqIp: string, msg: Buffer): string {
  return `
    const s = require('node:dgram').createSocket('udp4');
    s.send(Buffer.from(${JSON.stringify(msg.toString('hex'))}, 'hex'), 7400, ${JSON.stringify(seqIp)}, () => s.close());
  `;
}

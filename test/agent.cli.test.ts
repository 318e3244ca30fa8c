// xseq-agent's command line: help that tells the truth, and one clear line
// with a stable code for every mistake.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunArgs, UsageError } from '../agent/args.ts';
import { emptyHeader, encodeMessage, Flags, MsgType } from '../bpf/wire.ts';
import { Topology } from '../netns/topology.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');

/** --member flags for group 1, replica ids as given, one address each. */
function m(...rids: number[]): string[] {
  return rids.flatMap((rid, i) => ['--member', `1:${rid}:10.0.0.${11 + i}:7600`]);
}
const BIN = join(root, 'agent', 'bin', 'xseq-agent.js');

function agent(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('xseq-agent command line', () => {
  it('--help lists the commands; run --help lists every flag run accepts', () => {
    const main = agent('--help');
    expect(main.code).toBe(0);
    expect(main.out).toMatch(/Commands:\n\s+run/);
    const run = agent('run', '--help');
    expect(run.code).toBe(0);
    const flags = ['--iface', '--mode', '--port', '--group', '--session', '--sequencer-id', '--stats-interval', '--log-level'];
    flags.push('--member', '--quorum', '--window', '--windows', '--max-result', '--policy', '--rto-ms', '--retries', '--repair-port');
    for (const flag of flags) {
      expect(run.out).toContain(flag);
    }
  });

  it('no command prints the usage and exits 2', () => {
    const r = agent();
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/Usage: xseq-agent/);
  });

  const mistakes: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /EUSAGE: unknown command "frobnicate"/],
    ['an unknown flag', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--colour'], /EUSAGE: .*--colour/],
    ['a missing --iface', ['run', '--group', '1:239.1.1.1:7500'], /EUSAGE: --iface is required/],
    ['a missing --group', ['run', '--iface', 'x'], /EUSAGE: at least one --group/],
    ['a malformed --group', ['run', '--iface', 'x', '--group', '239.1.1.1'], /EUSAGE: --group must be ID:ADDR:PORT/],
    ['a unicast group address', ['run', '--iface', 'x', '--group', '1:10.0.0.1:7500'], /not an IPv4 multicast address/],
    ['a group id out of range', ['run', '--iface', 'x', '--group', '256:239.1.1.1:7500'], /group id 256 is out of range: use 0..255/],
    ['a group given twice', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '1:239.1.1.2:7500'], /group 1 is given twice/],
    ['a bad mode', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--mode', 'turbo'], /--mode must be native or generic/],
    ['a port out of range', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--port', '70000'], /--port must be 1..65535/],
    ['a non-numeric session', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--session', 'abc'], /--session must be a whole number/],
    ['a malformed --member', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:10.0.0.1'], /--member must be GROUP:RID:ADDR:PORT/],
    ['member ids with a hole', ['run', '--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 2)], /group 1 has replicas 0, 2; replica ids must be 0..1 without holes \(missing 1\)/],
  ];
  it.each(mistakes)('%s is one line with a code, exit 2', (_name, args, msg) => {
    const r = agent(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  // The same path as above (a UsageError is one line, exit 2), checked in
  // process: a spawn per case would cost a second each.
  const flagMistakes: [string, string[], RegExp][] = [
    ['a member of a group not given', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '2:0:10.0.0.1:7600'], /--member 2:0:10.0.0.1:7600: group 2 has no --group/],
    ['a member id given twice', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 0)], /replica 0 of group 1 is given twice/],
    ['a replica id beyond 7', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:8:10.0.0.1:7600'], /replica id 8 is not 0..7/],
    ['a multicast member address', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:239.0.0.1:7600'], /239.0.0.1 is not a unicast IPv4 address/],
    ['two members on one address and port', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--member', '1:0:10.0.0.1:7600', '--member', '1:1:10.0.0.1:7600'], /replicas 0 and 1 of group 1 both send from 10.0.0.1:7600/],
    ['a quorum below a majority', ['--iface', 'x', '--group', '1:239.1.1.1:7500', ...m(0, 1, 2), '--quorum', '1:1'], /--quorum 1:1: quorum must be 2..3 for the 3 members of group 1/],
    ['a quorum for a group without members', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--quorum', '1:1'], /--quorum 1:1: group 1 has no --member/],
    ['a window that is not a power of two', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '1000'], /--window must be a power of two/],
    ['more aggregating groups than windows', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '2:239.1.1.2:7500', ...m(0), '--member', '2:0:10.0.0.1:7600', '--windows', '1'], /--windows 1 is fewer than the 2 groups with --member/],
    ['windows that would take more than 4 GiB', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '1048576', '--windows', '8'], /at most 4 GiB of window slots/],
    ['a result cap over 256', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--max-result', '257'], /--max-result must be 0..256/],
    ['an unknown policy', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--policy', 'drop'], /--policy must be backpressure or overwrite, got "drop"/],
    ['an RTO of 0', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--rto-ms', '0'], /--rto-ms must be 1..60000/],
    ['too many retries', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--retries', '101'], /--retries must be 0..100/],
    ['a repair port out of range', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--repair-port', '65536'], /--repair-port must be 0..65535/],
    ['the repair port on the sequencer port', ['--iface', 'x', '--group', '1:239.1.1.1:7500', '--repair-port', '7400'], /--repair-port 7400 is the sequencer's --port/],
  ];
  it.each(flagMistakes)('%s is a usage error naming the flag', (_name, args, msg) => {
    expect(() => parseRunArgs(args)).toThrow(UsageError);
    expect(() => parseRunArgs(args)).toThrow(msg);
  });

  it('member flags become the groups\' members, quorum and windows; defaults fill the rest', () => {
    const cfg = parseRunArgs(['--iface', 'x', '--group', '1:239.1.1.1:7500', '--group', '2:239.1.1.2:7501', ...m(2, 0, 1), '--quorum', '1:3'])!;
    expect(cfg.groups.get(1)).toMatchObject({
      members: [{ addr: '10.0.0.12', port: 7600 }, { addr: '10.0.0.13', port: 7600 }, { addr: '10.0.0.11', port: 7600 }],
      quorum: 3,
    });
    expect(cfg.groups.get(2)!.members).toBeUndefined();
    expect(cfg).toMatchObject({ windowSlots: 1024, windows: 4, maxResult: 256, policy: 'backpressure', rtoMs: 20, retries: 5, repairPort: 7401 });
    const tuned = parseRunArgs(['--iface', 'x', '--group', '1:239.1.1.1:7500', '--window', '64', '--windows', '2', '--max-result', '0', '--policy', 'overwrite', '--rto-ms', '5', '--retries', '0', '--repair-port', '0'])!;
    expect(tuned).toMatchObject({ windowSlots: 64, windows: 2, maxResult: 0, policy: 'overwrite', rtoMs: 5, retries: 0, repairPort: 0 });
  });
});

describePrivileged('xseq-agent run against the kernel', () => {
  let topo: Topology | undefined;
  afterAll(async () => {
    await topo?.destroy();
  });

  it('a missing interface says so and what to check', () => {
    const r = agent('run', '--iface', 'xseq-nonexistent0', '--group', '1:239.1.1.1:7500');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EBPF_NO_INTERFACE/);
    expect(r.err).toMatch(/xseq-nonexistent0/);
  });

  it('with --member it retransmits, serves repair, and logs both with the kernel counters', async () => {
    const t = (topo = await Topology.create({ receivers: 1, clients: 1, mode: 'generic' }));
    const agentProc = t.spawn('seq', process.execPath, [
      BIN, 'run', '--iface', t.ifname('seq'), '--mode', 'generic', '--group', '1:239.7.7.1:7500',
      '--member', `1:0:${t.ip('r1')}:7600`, '--session', '5', '--stats-interval', '100', '--rto-ms', '20', '--retries', '2',
    ]);
    const ready = JSON.parse(await agentProc.waitForLine(/"event":"ready"/, 20_000)) as Record<string, unknown>;
    expect(ready).toMatchObject({ window: 1024, windows: 4, policy: 'backpressure', rtoMs: 20, retries: 2, repairPort: 7401 });

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
});

/** A member of group 1 (session 5) on the group port, as a script for r1. */
function memberScript(seqIp: string): string {
  return `
    import { createSocket } from 'node:dgram';
    import { Flags, MsgType, readHeader } from ${JSON.stringify(join(root, 'bpf/wire.ts'))};
    import { decodeRepairReply, encodeRepairRequest } from ${JSON.stringify(join(root, 'bpf/repair.ts'))};
    const s = createSocket('udp4');
    const got = [];
    let asked = false;
    s.on('message', (m) => {
      const h = readHeader(m);
      got.push({ type: h.type, flags: h.flags, seq: String(h.seq) });
      if (h.type === MsgType.SEQUENCED && (h.flags & Flags.RETRANSMIT) && !asked) {
        asked = true;
        s.send(encodeRepairRequest({ groupId: 1, session: 5, replicaId: 0, first: 1n, count: 2 }), 7401, ${JSON.stringify(seqIp)});
      }
      if (h.type === MsgType.REPAIR_REPLY) {
        const reply = decodeRepairReply(m.subarray(64));
        console.log(JSON.stringify({ event: 'done', got, reply: { ...reply, missing: reply.missing.map(String) } }));
      }
    });
    s.bind(7500, () => console.log(JSON.stringify({ event: 'listening' })));
    setTimeout(() => process.exit(3), 15000);
  `;
}

function sendScript(seqIp: string, msg: Buffer): string {
  return `
    const s = require('node:dgram').createSocket('udp4');
    s.send(Buffer.from(${JSON.stringify(msg.toString('hex'))}, 'hex'), 7400, ${JSON.stringify(seqIp)}, () => s.close());
  `;
}

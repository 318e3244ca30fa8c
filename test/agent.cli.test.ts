// xseq-agent's command line: help that tells the truth, and one clear line
// with a stable code for every mistake.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
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
    for (const flag of ['--iface', '--mode', '--port', '--group', '--session', '--sequencer-id', '--stats-interval', '--log-level']) {
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
  ];
  it.each(mistakes)('%s is one line with a code, exit 2', (_name, args, msg) => {
    const r = agent(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });
});

describePrivileged('xseq-agent run against the kernel', () => {
  it('a missing interface says so and what to check', () => {
    const r = agent('run', '--iface', 'xseq-nonexistent0', '--group', '1:239.1.1.1:7500');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EBPF_NO_INTERFACE/);
    expect(r.err).toMatch(/xseq-nonexistent0/);
  });
});

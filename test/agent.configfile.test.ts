// `xseq-agent run --config FILE` through the real command line: a bad file
// exits 2 before touching the kernel, with every mistake on its own line
// naming the field (and the flag or variable that set it); file, then
// environment, then flags build one configuration.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunArgs, runConfig } from '../agent/args.ts';
import { configFileFrom } from '../agent/config.ts';

const BIN = join(import.meta.dirname, '..', 'agent', 'bin', 'xseq-agent.js');
const dir = mkdtempSync(join(tmpdir(), 'xseq-configfile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function agent(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, XSEQ_CONFIG: '', ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const VALID = `interface: eth1
groups:
  - id: 1
    multicast: 239.7.7.1:7500
    members:
      - { id: 0, address: 10.0.0.11:7600 }
      - { id: 1, address: 10.0.0.12:7600 }
      - { id: 2, address: 10.0.0.13:7600 }
`;

describe('xseq-agent run --config FILE', () => {
  it('reports every mistake of a file at once, one line each naming its field, and exits 2', () => {
    const path = file(
      'bad.yaml',
      `interface: eth1
attachMode: turbo
port: 70000
sequencerId: -1
stateDir: var/lib/xseq
statsInterval: 5
window:
  slots: 1000
  policy: drop
  maxResult: 300
retransmit:
  timeoutMs: 0
repair:
  port: http
metrics:
  listen: localhost
log:
  level: verbose
groups:
  - id: 1
    multicast: 10.0.0.1:7500
    quorum: 3
    members:
      - { id: 0, address: 10.0.0.11 }
`,
    );
    const r = agent(['run', '--config', path]);
    expect(r.code).toBe(2);
    const lines = r.err.trimEnd().split('\n');
    expect(lines[0]).toBe(`xseq-agent: ECONFIG: invalid configuration (${path}):`);
    const want = [
      '  attachMode: must be one of "native", "generic", "auto"',
      '  port: must be at most 65535',
      '  sequencerId: must be at least 0',
      '  stateDir: must be an absolute path',
      '  statsInterval: is not a known setting (check its spelling; see deploy/agent.example.yaml)',
      '  window.slots: must be a power of two',
      '  window.policy: must be one of "backpressure", "overwrite"',
      '  window.maxResult: must be at most 256 bytes',
      '  retransmit.timeoutMs: must be at least 1',
      '  repair.port: must be a whole number 0..65535 (0 = off)',
      '  metrics.listen: "localhost" is not IPV4:PORT (e.g. "127.0.0.1:9464")',
      '  log.level: must be one of "fatal", "error", "warn", "info", "debug"',
      '  groups[0].multicast: "10.0.0.1:7500": 10.0.0.1 is not an IPv4 multicast address (224.0.0.0-239.255.255.255)',
      '  groups[0].members[0].address: "10.0.0.11" is not IPV4:PORT (e.g. "10.0.0.11:7600")',
      '  groups[0].quorum: must be 1..1 for 1 members (a majority, at most all)',
    ];
    expect(lines.slice(1).sort()).toEqual([...want].sort());
  }, 120_000);

  it('checks across fields once every field is valid: duplicate groups, shared member addresses, windows, ports', () => {
    const path = file(
      'cross.json',
      JSON.stringify({
        interface: 'eth1',
        port: 7400,
        repair: { port: 7400 },
        window: { windows: 1 },
        groups: [
          { id: 1, multicast: '239.7.7.1:7500', members: [{ id: 0, address: '10.0.0.11:7600' }, { id: 1, address: '10.0.0.11:7600' }] },
          { id: 1, multicast: '239.7.7.2:7500', members: [{ id: 0, address: '10.0.0.12:7600' }] },
        ],
      }),
    );
    const r = agent(['run', '--config', path]);
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split('\n').slice(1).sort()).toEqual(
      [
        '  groups[1].id: group 1 is configured twice',
        '  window.windows: 2 groups have members but only 1 windows are configured',
        "  repair.port: 7400 is the sequencer's port; choose another (0 = off)",
        '  groups[0].members: replicas 0 and 1 both send from 10.0.0.11:7600; only one replica\'s ACKs could count',
      ].sort(),
    );
  }, 120_000);

  it('names the environment variable or flag that set a bad value over the file', () => {
    const path = file('valid.yaml', VALID);
    const env = agent(['run', '--config', path], { XSEQ_PORT: 'abc', XSEQ_ATTACH_MODE: 'fast' });
    expect(env.code).toBe(2);
    expect(env.err).toContain(`invalid configuration (${path} + XSEQ_ATTACH_MODE + XSEQ_PORT):\n`);
    expect(env.err).toContain('  port: must be a whole number 1..65535 (from XSEQ_PORT)\n');
    expect(env.err).toContain('  attachMode: must be one of "native", "generic", "auto" (from XSEQ_ATTACH_MODE)\n');
    const flags = agent(['run', '--config', path, '--quorum', '1:1', '--window', '3']);
    expect(flags.code).toBe(2);
    expect(flags.err).toContain('  groups[0].quorum: must be 2..3 for 3 members (a majority, at most all) (from --quorum 1:1)\n');
    expect(flags.err).toContain('  window.slots: must be a power of two (from --window 3)\n');
  }, 120_000);

  it('an unreadable file, broken YAML or JSON, or a file that is not a mapping, is one clear error, exit 2', () => {
    const cases: [string, RegExp][] = [
      [join(dir, 'missing.yaml'), /ECONFIG: invalid configuration \(.*missing\.yaml\):\n {2}\(top level\): cannot read the file: ENOENT/],
      [file('broken.yaml', 'interface: [eth1\n'), /\(top level\): is not valid YAML: /],
      [file('broken.json', '{"interface": "eth1",}'), /\(top level\): is not valid JSON: /],
      [file('list.yaml', '- eth1\n'), /\(top level\): must be a mapping of settings/],
    ];
    for (const [path, msg] of cases) {
      const r = agent(['run', '--config', path]);
      expect(r.code, path).toBe(2);
      expect(r.err).toMatch(msg);
    }
  }, 120_000);

  it('file, environment and flags make one configuration; group flags apply to the file\'s groups by id', () => {
    const path = file('merge.yaml', `${VALID}port: 7400\nlog:\n  level: warn\n`);
    const args = parseRunArgs(['--config', path, '--port', '7500', '--member', '1:0:10.0.0.21:7600', '--member', '1:1:10.0.0.22:7600', '--quorum', '1:2'])!;
    const cfg = runConfig(args, { XSEQ_PORT: '7450', XSEQ_LOG_LEVEL: 'debug', XSEQ_INTERFACE: 'eth2' });
    expect(cfg).toMatchObject({ configFile: path, interface: 'eth2', port: 7500, log: { level: 'debug' } });
    // --member replaced the file's three members of group 1.
    expect(cfg.groups).toEqual([
      {
        id: 1,
        multicast: '239.7.7.1:7500',
        quorum: 2,
        members: [
          { id: 0, address: '10.0.0.21:7600' },
          { id: 1, address: '10.0.0.22:7600' },
        ],
      },
    ]);
    // --group replaces the file's groups.
    const replaced = runConfig(parseRunArgs(['--config', path, '--group', '5:239.7.7.5:7505'])!, {});
    expect(replaced.groups).toEqual([{ id: 5, multicast: '239.7.7.5:7505', members: [] }]);
  });

  it('the file is --config, else $XSEQ_CONFIG (empty: none), else the default path when it exists', () => {
    const dflt = file('default.yaml', VALID);
    expect(configFileFrom('/x.yaml', { XSEQ_CONFIG: '/y.yaml' }, dflt)).toBe('/x.yaml');
    expect(configFileFrom(undefined, { XSEQ_CONFIG: '/y.yaml' }, dflt)).toBe('/y.yaml');
    expect(configFileFrom(undefined, { XSEQ_CONFIG: '' }, dflt)).toBeUndefined();
    expect(configFileFrom(undefined, {}, dflt)).toBe(dflt);
    expect(configFileFrom(undefined, {}, join(dir, 'absent.yaml'))).toBeUndefined();
  });
});

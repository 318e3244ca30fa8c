// The agent's configuration: one schema, file + env + flags, validated once;
// every mistake names the field and what is allowed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../agent/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'xseq-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const valid = () => ({
  interface: 'eth1',
  groups: [
    {
      id: 1,
      multicast: '239.7.7.1:7500',
      members: [
        { id: 0, address: '10.0.0.11:7600' },
        { id: 1, address: '10.0.0.12:7600' },
        { id: 2, address: '10.0.0.13:7600' },
      ],
    },
  ],
});

function issues(raw: unknown): string[] {
  try {
    parseConfig(raw, 'test');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}

describe('agent configuration', () => {
  it('fills in defaults for a minimal valid file', () => {
    const c = parseConfig(valid(), 'test');
    expect(c).toMatchObject({
      attachMode: 'auto', port: 7400, sequencerId: 1, stateDir: '/var/lib/xseq',
      window: { slots: 1024, windows: 4, policy: 'backpressure', maxResult: 256 },
      retransmit: { timeoutMs: 20, retries: 5 }, repair: { port: 7401 }, metrics: { listen: '127.0.0.1:9464' }, log: { level: 'info' },
    });
  });

  it('the shipped example (deploy/agent.example.yaml) is valid', () => {
    const c = loadConfig({ file: join(import.meta.dirname, '..', 'deploy', 'agent.example.yaml') });
    expect(c.groups[0]!.members).toHaveLength(3);
    expect(c.interface).toBe('eth1');
  });

  const mistakes: [string, (c: ReturnType<typeof valid> & Record<string, unknown>) => unknown, RegExp][] = [
    ['a misspelt top-level key', (c) => ({ ...c, intreface: 'eth0' }), /^intreface: is not a known setting/],
    ['a misspelt nested key', (c) => ({ ...c, window: { slot: 64 } }), /^window\.slot: is not a known setting/],
    ['no interface', ({ interface: _i, ...c }) => c, /^interface: is required/],
    ['an attach mode that does not exist', (c) => ({ ...c, attachMode: 'turbo' }), /^attachMode: must be one of "native", "generic", "auto"/],
    ['a port out of range', (c) => ({ ...c, port: 70000 }), /^port: must be at most 65535/],
    ['a port given as a string', (c) => ({ ...c, port: 'http' }), /^port: must be a whole number 1\.\.65535/],
    ['a window that is not a power of two', (c) => ({ ...c, window: { slots: 1000 } }), /^window\.slots: must be a power of two/],
    ['an unknown policy', (c) => ({ ...c, window: { policy: 'drop' } }), /^window\.policy: must be one of "backpressure", "overwrite"/],
    ['a result cap over the slot size', (c) => ({ ...c, window: { maxResult: 1000 } }), /^window\.maxResult: must be at most 256 bytes/],
    ['a unicast group address', (c) => ({ ...c, groups: [{ ...c.groups[0]!, multicast: '10.1.1.1:7500' }] }), /^groups\[0\]\.multicast: .*not an IPv4 multicast address/],
    ['a member address without a port', (c) => ({ ...c, groups: [{ ...c.groups[0]!, members: [{ id: 0, address: '10.0.0.11' }] }] }), /^groups\[0\]\.members\[0\]\.address: "10\.0\.0\.11" is not IPV4:PORT/],
    ['member ids with a hole', (c) => ({ ...c, groups: [{ ...c.groups[0]!, members: [{ id: 0, address: '10.0.0.11:1' }, { id: 2, address: '10.0.0.12:1' }] }] }), /^groups\[0\]\.members: member ids must be 0\.\.1, each once/],
    ['a quorum below a majority', (c) => ({ ...c, groups: [{ ...c.groups[0]!, quorum: 1 }] }), /^groups\[0\]\.quorum: must be 2\.\.3 for 3 members/],
    ['a group configured twice', (c) => ({ ...c, groups: [c.groups[0]!, { ...c.groups[0]! }] }), /^groups\[1\]\.id: group 1 is configured twice/],
    ['a group id out of range', (c) => ({ ...c, groups: [{ ...c.groups[0]!, id: 300 }] }), /^groups\[0\]\.id: must be at most 255/],
    ['no groups', (c) => ({ ...c, groups: [] }), /^groups: needs at least one group/],
    ['more aggregating groups than windows', (c) => ({ ...c, window: { windows: 1 }, groups: [c.groups[0]!, { ...c.groups[0]!, id: 2 }] }), /^window\.windows: 2 groups have members but only 1 windows/],
    ['a relative state directory', (c) => ({ ...c, stateDir: 'var/xseq' }), /^stateDir: must be an absolute path/],
    ['a metrics address that is not host:port', (c) => ({ ...c, metrics: { listen: 'localhost' } }), /^metrics\.listen: "localhost" is not IPV4:PORT/],
    ['a bad log level', (c) => ({ ...c, log: { level: 'verbose' } }), /^log\.level: must be one of "fatal", "error", "warn", "info", "debug"/],
  ];
  it.each(mistakes)('%s is reported with the field and what is allowed', (_name, mangle, want) => {
    const got = issues(mangle(valid() as ReturnType<typeof valid> & Record<string, unknown>));
    expect(got.some((g) => want.test(g)), `issues: ${JSON.stringify(got)}`).toBe(true);
  });

  // Weighted quorums: integrity (the f heaviest hold less than half the
  // total) and no count quorum beside weights.
  const weighted = (weights: number[], f?: number, extra: Record<string, unknown> = {}) => ({
    interface: 'eth1',
    groups: [{ id: 1, multicast: '239.7.7.1:7500', ...(f === undefined ? {} : { f }), ...extra, members: weights.map((weight, id) => ({ id, address: `10.0.0.${11 + id}:7600`, weight })) }],
  });
  const integrity: [string, unknown, string][] = [
    ['3/1/1 at the default f = 1: the heavy one alone holds 3 of 5', weighted([3, 1, 1]),
      'groups[0].members: integrity: the f = 1 heaviest members 0 (weight 3) hold 3 of the total weight 5, not less than half (2.5); if they failed the others (2) could not certify. Lower their weight, raise the others\', or lower f'],
    ['2/2/1/1/1 with f = 2: members 0 and 1 hold 4 of 7', weighted([2, 2, 1, 1, 1], 2),
      'groups[0].f: integrity: the f = 2 heaviest members 0 (weight 2), 1 (weight 2) hold 4 of the total weight 7, not less than half (3.5); if they failed the others (3) could not certify. Lower their weight, raise the others\', or lower f'],
    ['1/1 at the default f = 0 but weights 0/0', weighted([0, 0]), 'groups[0].members: every member has weight 0; no request could ever be certified'],
    ['f = 3 of 3 members', weighted([1, 1, 1], 3), 'groups[0].f: f = 3 tolerates losing all 3 members; at most 2'],
    ['a count quorum beside weights', weighted([2, 1, 1], 0, { quorum: 2 }),
      'groups[0].quorum: counts ACKs and cannot be combined with member weights or f: drop quorum (weights certify by more than half the total weight) or drop the weights and f'],
    ['a weight over 255', weighted([256, 255, 255], 0), 'groups[0].members[0].weight: must be at most 255 (voting weight)'],
    // Integrity holds (f = 0 tolerates nothing), but fewer than a majority of
    // members could certify: a view change among the others loses the write.
    ['3/1/1 with f = 0: member 0 alone would certify', weighted([3, 1, 1], 0),
      'groups[0].members: quorum intersection: the 1 heaviest members 0 (weight 3) hold 3 of the total weight 5, more than half, so they could certify a write that a view change among the other 2 (a majority by count) never hears of. Weights may make a quorum need more members, never fewer: lower the heavy members\' weight or raise the others\''],
    ['3/3/1/1/1 with f = 1: members 0 and 1 would certify', weighted([3, 3, 1, 1, 1], 1),
      'groups[0].members: quorum intersection: the 2 heaviest members 0 (weight 3), 1 (weight 3) hold 6 of the total weight 9, more than half, so they could certify a write that a view change among the other 3 (a majority by count) never hears of. Weights may make a quorum need more members, never fewer: lower the heavy members\' weight or raise the others\''],
  ];
  it.each(integrity)('weights: %s is refused with the members and the sums', (_name, raw, want) => {
    expect(issues(raw)).toEqual([want]);
  });

  const accepted: [string, unknown][] = [
    ['2/1/1 with f = 0 (member 0 and one other certify; 1 and 2 together do not)', weighted([2, 1, 1], 0)],
    ['1/1/0 with f = 0 (a zero-weight member is never waited for)', weighted([1, 1, 0], 0)],
    ['2/1/1/1 at the default f = 1 (2 of 5)', weighted([2, 1, 1, 1])],
    ['2/2/2/2/1 with f = 1 (the weights test\'s table after a reassignment)', weighted([2, 2, 2, 2, 1], 1)],
    ['no weights at all: 1 each', valid()],
  ];
  it.each(accepted)('weights: %s passes', (_name, raw) => {
    expect(() => parseConfig(raw, 'test')).not.toThrow();
  });

  it('reports every mistake at once, not only the first', () => {
    expect(issues({ ...valid(), port: 0, attachMode: 'x', colour: 1 })).toHaveLength(3);
  });

  it('reads YAML and JSON files; env overrides the file; flags override env', () => {
    const yamlFile = join(dir, 'agent.yaml');
    writeFileSync(yamlFile, 'interface: eth1\nport: 7400\nlog:\n  level: warn\ngroups:\n  - id: 1\n    multicast: 239.7.7.1:7500\n');
    const jsonFile = join(dir, 'agent.json');
    writeFileSync(jsonFile, JSON.stringify(valid()));
    expect(loadConfig({ file: jsonFile }).groups[0]!.members).toHaveLength(3);
    const c = loadConfig({ file: yamlFile, env: { XSEQ_PORT: '7500', XSEQ_LOG_LEVEL: 'debug', XSEQ_INTERFACE: 'eth2' }, flags: [{ path: ['interface'], value: 'eth3' }] });
    expect(c).toMatchObject({ interface: 'eth3', port: 7500, log: { level: 'debug' } });
  });

  it('a bad environment value is reported against its field', () => {
    expect(() => loadConfig({ env: { XSEQ_INTERFACE: 'eth0', XSEQ_PORT: 'abc' }, flags: [{ path: ['groups'], value: valid().groups }] })).toThrow(/port: must be a whole number/);
  });

  it('an unreadable or malformed file says so', () => {
    expect(() => loadConfig({ file: join(dir, 'missing.yaml') })).toThrow(/cannot read the file/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'interface: [unclosed\n');
    expect(() => loadConfig({ file: bad })).toThrow(/is not valid YAML/);
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- 1\n- 2\n');
    expect(() => loadConfig({ file: list })).toThrow(/must be a mapping of settings/);
  });
});

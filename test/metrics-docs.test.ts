// The metrics an operator reads about: every family the agent's registry
// exports has a row in deploy/README.md's table (and every row is one the
// registry has), and xseq_build_info names this build.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry, type MetricsSource } from '../agent/metrics.ts';
import { registerSequenceMetrics } from '../agent/sequence-metrics.ts';
import { NV_COUNTER_NAMES } from '../bpf/nextval.ts';
import { versionLine } from '../agent/version.ts';
import { XSEQ_HIST_BUCKETS, zeroCounters } from '../bpf/maps.ts';
import { tableUnder } from './helpers/markdown.ts';
import { parseExposition, samples } from './helpers/exposition.ts';

const root = join(import.meta.dirname, '..');

/** A source with every optional part, so the registry has every family. */
function fullSource(): MetricsSource {
  return {
    sequencerId: 1,
    groups: () => [
      { id: 1, session: 2, lastSeq: 5n, windowOccupancy: 3, windowCapacity: 1024, retransmitBacklog: 0, weights: [2, 2, 1], weightsVersion: 3, weightChanges: { ledgerVersion: 4, applied: 3, refused: 1, switches: 2 } },
    ],
    kernelCounters: () => zeroCounters(),
    quorumHistogram: () => ({ buckets: Array.from({ length: XSEQ_HIST_BUCKETS }, () => 0n), sumNs: 0n }),
    retransmitCounters: () => ({}),
    repairCounters: () => ({ refused: { NOT_MEMBER: 1 } }),
    flushCounters: () => ({}),
    pairs: () => [{ id: 1, sequencerId: 1, role: 'active', serving: true }],
    register: (r) =>
      registerSequenceMetrics(
        r,
        {
          status: () => [{ name: 'orders', id: 1, start: '1', increment: '1', cache: 1, origin: 'config', next: '6', lastValue: '5', mark: '100', durableMark: '100', calls: '5', values: '5', refused: '0' }],
          counters: () => ({ raises: 1, raiseErrors: 0, groupErrors: 0, jumps: 0 }),
        },
        { counters: () => Object.fromEntries(NV_COUNTER_NAMES.map((n) => [n, 0n])) as Record<(typeof NV_COUNTER_NAMES)[number], bigint> },
      ),
  };
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();

describe('metrics documentation', () => {
  it("deploy/README.md's table lists exactly the xseq_ families the registry exports", async () => {
    const registry = createMetricsRegistry(fullSource());
    const exported = (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('xseq_'));
    const rows = tableUnder(join(root, 'deploy/README.md'), 'Metrics');
    // A cell may name several families: `a`, `b`.
    const documented = rows.flatMap((r) => [...r['metric']!.matchAll(/`(xseq_\w+)`/g)].map((m) => m[1]!));
    expect(new Set(documented).size, 'a family documented twice').toBe(documented.length);
    expect([...documented].sort()).toEqual([...exported].sort());
  });
});

describe('versions', () => {
  it('xseq_build_info is 1 with the package version, the commit and the BPF object digest, and promtool finds nothing', async () => {
    const text = await createMetricsRegistry(fullSource()).metrics();
    const info = samples(parseExposition(text), 'xseq_build_info');
    expect(info).toHaveLength(1);
    expect(info[0]!.value).toBe(1);
    expect(info[0]!.labels).toMatchObject({ version: pkg.version, commit, node_version: process.version });
    expect(info[0]!.labels['bpf_object_sha']).toMatch(/^([0-9a-f]{16}|none)$/);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('--version of the agent, the KV replica and the KV CLI: version and commit, exit 0', () => {
    expect(versionLine('x')).toContain(`x ${pkg.version} (commit ${commit},`);
    const cmds: Array<[string, string[]]> = [
      ['xseq-agent', [join(root, 'agent/bin/xseq-agent.js'), '--version']],
      ['xseq-agent', [join(root, 'agent/bin/xseq-agent.js'), 'version']],
      ['kv-replica', ['--import', 'tsx', join(root, 'examples/kv/replica.ts'), '--version']],
      ['kv-cli', ['--import', 'tsx', join(root, 'examples/kv/cli.ts'), '--version']],
    ];
    for (const [name, args] of cmds) {
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000, cwd: root });
      expect(r.status, `${name} ${args.at(-1)}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${name} ${pkg.version.replace(/\./g, '\\.')} \\(commit ${commit}, bpf object [0-9a-f]{16}|none, node v[\\d.]+\\)\\n$`));
    }
  });
});

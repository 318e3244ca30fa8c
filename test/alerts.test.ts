// deploy/prometheus/alerts.yml: promtool accepts the rules, its unit tests
// (alerts.test.yml) pass, and every metric a rule reads is one the agent
// exports (or Prometheus' own `up`).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createMetricsRegistry } from '../agent/metrics.ts';
import { XSEQ_HIST_BUCKETS, zeroCounters } from '../bpf/maps.ts';
import { metricNames } from './helpers/dashboard.ts';

const dir = join(import.meta.dirname, '..', 'deploy', 'prometheus');
const promtool = (args: string[], cwd = dir) => spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
let scratch: string | undefined;
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface Rules {
  groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: Record<string, string> }> }>;
}

describe('alerting rules', () => {
  const rules = (parseYaml(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as Rules).groups.flatMap((g) => g.rules);

  it('promtool check rules: valid, nothing to report', () => {
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.stderr).toBe('');
  });

  it('promtool test rules: every alert fires on its case and not on the healthy series', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // Every alert has at least one case that expects it to fire.
    const tests = readFileSync(join(dir, 'alerts.test.yml'), 'utf8');
    for (const a of rules) expect(tests, a.alert).toMatch(new RegExp(`alertname: ${a.alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it('the unit tests can fail: a rule with a changed threshold fails them', () => {
    scratch = mkdtempSync(join(tmpdir(), 'xseq-alerts-'));
    copyFileSync(join(dir, 'alerts.test.yml'), join(scratch, 'alerts.test.yml'));
    writeFileSync(join(scratch, 'alerts.yml'), readFileSync(join(dir, 'alerts.yml'), 'utf8').replace('xseq_window_capacity_slots > 0.8', 'xseq_window_capacity_slots > 0.99'));
    const r = promtool(['test', 'rules', 'alerts.test.yml'], scratch);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/XseqWindowNearlyFull/);
  });

  it('the rules cover give-ups, drops, flush errors, a nearly full window, a stuck replica and a dead agent, each with a severity and a summary', () => {
    const names = rules.map((r) => r.alert);
    expect(names).toEqual(expect.arrayContaining(['XseqRetransmitGiveUps', 'XseqPacketsDropped', 'XseqBackpressureDrops', 'XseqFlushErrors', 'XseqWindowNearlyFull', 'XseqReplicaStuck', 'XseqAgentDown']));
    for (const r of rules) {
      expect(['page', 'ticket'], r.alert).toContain(r.labels.severity);
      expect(r.annotations['summary'], r.alert).toBeTruthy();
      expect(r.annotations['description'], r.alert).toBeTruthy();
    }
  });

  it('every metric a rule reads is exported by the agent', async () => {
    const registry = createMetricsRegistry({
      sequencerId: 1,
      groups: () => [{ id: 1, session: 1, lastSeq: 5n, windowOccupancy: 2, windowCapacity: 1024, retransmitBacklog: 1 }],
      kernelCounters: () => zeroCounters(),
      quorumHistogram: () => ({ buckets: Array.from({ length: XSEQ_HIST_BUCKETS }, () => 0n), sumNs: 0n }),
      retransmitCounters: () => ({}),
      repairCounters: () => ({ refused: { NOT_MEMBER: 1 } }),
      flushCounters: () => ({}),
    });
    const exported = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    exported.add('up');
    for (const r of rules) {
      const names = metricNames(r.expr);
      expect(names.length, r.alert).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${r.alert} reads ${n}`).toBe(true);
    }
  });
});

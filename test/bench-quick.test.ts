// Every bench row runs in CI, --quick: the rows come out with the ids the
// README names, finite numbers, a machine-readable goal (or none) and a
// verdict, and no measurement failed. Structure only, never speed: whether
// a goal is met is the bench's business (npm run bench -- --check), not a
// test's. The CLI itself: --check's exit code follows the rows it wrote.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readResult } from '../bench/result.ts';
import { judge, type BenchRow } from '../bench/row.ts';
import { describePrivileged } from './helpers/privileged.ts';

const REPO = join(import.meta.dirname, '..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function checkRows(rows: BenchRow[], ids: string[]): void {
  expect(rows.map((r) => r.id)).toEqual(ids);
  judge(rows);
  for (const r of rows) {
    expect(r.failed, `${r.id}: ${r.failed}`).toBeUndefined();
    expect(r.name.length, r.id).toBeGreaterThan(10);
    expect(r.unit, r.id).not.toBe('');
    expect(r.baselineName, r.id).not.toBe('');
    for (const k of ['xseq', 'baseline', 'ratio'] as const) {
      expect(Number.isFinite(r[k]), `${r.id}.${k}`).toBe(true);
      expect(r[k], `${r.id}.${k}`).toBeGreaterThanOrEqual(0);
    }
    // A zero is allowed: a quick search on a busy machine may pass no rate
    // (the generator itself falling behind); whether that is good enough
    // is the bench's --check, not this test.
    if (r.goal) {
      expect(['ratio', 'xseq']).toContain(r.goal.on);
      expect(r.goal.bounds.length).toBeGreaterThan(0);
      expect(typeof r.met, r.id).toBe('boolean');
    } else {
      expect(r.met, r.id).toBeNull();
    }
  }
}

const log = () => {};
const MIN = 60_000;

describePrivileged('bench rows, --quick', () => {
  it('P1', async () => {
    const { runP1 } = await import('../bench/p1.ts');
    checkRows(runP1({ repeat: 10_000, rounds: 1 }), ['P1', 'P1s', 'P1w', 'P1q', 'P1qw', 'P1a', 'P1f', 'P1m', 'P1mk', 'P1v', 'P1vk']);
  });

  it('P1r', async () => {
    const { runP1r } = await import('../bench/p1r.ts');
    checkRows(runP1r({ repeat: 10_000, rounds: 1 }), ['P1r', 'P1rs', 'P1rp', 'P1ro']);
  });

  it('P4', async () => {
    const { runP4 } = await import('../bench/p4.ts');
    checkRows(runP4({ messages: 20_000, rounds: 1 }), ['P4', 'P4m']);
  });

  it('T', { timeout: 3 * MIN }, async () => {
    const { runTimers } = await import('../bench/timers.ts');
    checkRows(await runTimers({ quick: true, log }), ['T-scan', 'T-flush', 'T-pace']);
  });

  it('P2', { timeout: 6 * MIN }, async () => {
    const { runP2 } = await import('../bench/p2.ts');
    checkRows(await runP2({ quick: true, log }), ['P2', 'P2-generic', 'P2b', 'P2b-generic']);
  });

  it('P2s', { timeout: 4 * MIN }, async () => {
    const { runP2s } = await import('../bench/p2s.ts');
    checkRows(await runP2s({ quick: true, log }), ['P2s', 'P2s-generic', 'P2s-busy', 'P2sb', 'P2sb-generic']);
  });

  it('P3b', { timeout: 4 * MIN }, async () => {
    const { runP3b } = await import('../bench/p3b.ts');
    checkRows(await runP3b({ quick: true, log }), ['P3b', 'P3b-p50', 'P3b-p99', 'P3b-cpu']);
  });

  it('P4b', { timeout: 4 * MIN }, async () => {
    const { runP4b } = await import('../bench/p4b.ts');
    checkRows(await runP4b({ quick: true, log }), ['P4b', 'P4b-p50']);
  });

  it('P3r', { timeout: 6 * MIN }, async () => {
    const { runP3r } = await import('../bench/p3r.ts');
    checkRows(await runP3r({ quick: true, log }), ['P3r']);
  });

  it('F1', { timeout: 4 * MIN }, async () => {
    const { runF1 } = await import('../bench/f1.ts');
    checkRows(await runF1({ quick: true, log }), ['F1', 'F1-detect', 'F1-agree', 'F1-dip']);
  });

  it('F2', { timeout: 4 * MIN }, async () => {
    const { runF2 } = await import('../bench/f2.ts');
    checkRows(await runF2({ quick: true, log }), ['F2', 'F2-detect', 'F2-agree', 'F2-dip']);
  });

  it('P6', { timeout: 6 * MIN }, async () => {
    const { runP6 } = await import('../bench/p6.ts');
    checkRows(await runP6({ quick: true, log }), ['P6', 'P6-p50', 'P6-ops']);
  });

  it('P3', { timeout: 6 * MIN }, async () => {
    const { runP3 } = await import('../bench/p3.ts');
    checkRows(await runP3({ quick: true, log }), ['P3', 'P3c', 'P3c-p99', 'P3-p50', 'P3-retx', 'P3-cpu']);
  });

  it('npm run bench -- --check: writes the run with host facts; exit 1 exactly when a row missed', { timeout: 2 * MIN }, () => {
    const out = mkdtempSync(join(tmpdir(), 'xseq-bench-'));
    dirs.push(out);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--only', 'P4,T-SCAN', '--quick', '--check', '--out', out], { cwd: REPO, encoding: 'utf8', timeout: 110_000 });
    const files = readdirSync(out);
    expect(files, r.stderr).toHaveLength(1);
    expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT\d{4}-.+\.json$/);
    const res = readResult(join(out, files[0]!));
    expect(res).toMatchObject({ version: 1, quick: true, only: ['P4', 'T-SCAN'] });
    expect(res.host.kernel).not.toBe('');
    expect(res.host.clockTicks).toBeGreaterThan(0);
    expect(res.host.loadBefore).toHaveLength(3);
    expect(res.rows.map((x) => x.id)).toEqual(['P4', 'P4m', 'T-scan']);
    const missed = res.rows.filter((x) => x.met === false);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(missed.length ? 1 : 0);
  });
});

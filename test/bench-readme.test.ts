// bench/README.md's result tables are generated from the runs kept in
// bench/results/ (bench/readme-tables.ts): a number typed by hand, or a
// kept file changed without regenerating, fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quoted, README, regenerate, renderResult } from '../bench/readme-tables.ts';
import { readResult, RESULTS_DIR } from '../bench/result.ts';

describe('bench/README.md tables', () => {
  const readme = readFileSync(README, 'utf8');

  it('quotes at least one kept run, each a full (not --quick) run with its host facts', () => {
    const files = quoted(readme);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const r = readResult(join(RESULTS_DIR, f));
      expect(r.quick, f).toBe(false);
      expect(r.host.cpuModel, f).not.toBe('');
      expect(r.host.clockTicks, f).toBeGreaterThan(0);
      expect(r.rows.length, f).toBeGreaterThan(0);
      for (const row of r.rows) expect(row.met === null || typeof row.met === 'boolean', `${f} ${row.id} met`).toBe(true);
    }
  });

  it('match the kept files exactly (regenerate: npx tsx bench/readme-tables.ts --write)', () => {
    expect(regenerate(readme)).toBe(readme);
  });

  it('a changed number in a kept file shows as a difference', () => {
    const f = quoted(readme)[0]!;
    const r = readResult(join(RESULTS_DIR, f));
    const before = renderResult(r, f);
    r.rows[0]!.xseq += 1;
    expect(renderResult(r, f)).not.toBe(before);
    expect(() => renderResult({ ...r, quick: true }, f)).toThrow(/--quick/);
  });
});

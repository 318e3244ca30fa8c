// P1's fixtures: each timed program must end on the path its row names
// (runP1 checks every run's return value and throws otherwise). Run with a
// tiny repeat so it is a correctness check of the instrument, not a timing.
import { expect, it } from 'vitest';
import { runP1 } from '../bench/p1.ts';
import { buildBenchTools } from '../bench/tools.ts';
import { describePrivileged } from './helpers/privileged.ts';

describePrivileged('bench P1', () => {
  it('every row measures the path it names (return values checked per run)', () => {
    buildBenchTools();
    const rows = runP1({ repeat: 1000, rounds: 1 });
    expect(rows.map((r) => r.id)).toEqual(['P1', 'P1s', 'P1w', 'P1q', 'P1qw', 'P1a', 'P1f', 'P1m', 'P1mk', 'P1v', 'P1vk']);
    for (const r of rows) expect(r.xseq, r.id).toBeGreaterThan(0);
  });
});

// The result tables in bench/README.md, generated from the kept runs in
// bench/results/. Each table sits between two markers naming its file:
//
//   <!-- bench-result: 2026-12-07T2250-vm.json -->
//   ...generated...
//   <!-- /bench-result -->
//
//   tsx bench/readme-tables.ts           check: exit 1 if the README differs
//   tsx bench/readme-tables.ts --write   rewrite the tables in place
//
// test/bench-readme.test.ts runs the check, so a number typed into a table
// (or a kept file changed under it) fails CI.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readResult, RESULTS_DIR, type BenchResult } from './result.ts';
import { goalText } from './row.ts';

export const README = join(import.meta.dirname, 'README.md');
const MARKED = /<!-- bench-result: ([^ ]+) -->\n[\s\S]*?<!-- \/bench-result -->/g;

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}

/** The markdown of one kept run: its host, then one line per row. */
export function renderResult(r: BenchResult, file: string): string {
  if (r.quick) throw new Error(`${file} is a --quick run: not numbers to report`);
  const h = r.host;
  const mit = Object.entries(h.mitigations);
  const vulnerable = mit.filter(([, s]) => /^Vulnerable/.test(s)).map(([k]) => k);
  const lines = [
    `Run \`${file}\` (${r.startedAt.slice(0, 16).replace('T', ' ')} UTC${r.only ? `, rows ${r.only.join(',')}` : ''}): ${h.cpuModel}, ${h.cpus} CPUs, kernel ${h.kernel}, ` +
      `clocksource ${h.clocksource}, ${h.clockTicks} ticks/s, load before ${h.loadBefore.map((x) => x.toFixed(2)).join(' ')}, ` +
      `mitigations: ${mit.length === 0 ? 'unknown' : vulnerable.length ? `vulnerable to ${vulnerable.join(', ')}` : 'none vulnerable'}.`,
    '',
    '| row | xseq | baseline | unit | ratio | goal | met |',
    '|---|---:|---:|---|---:|---|---|',
    ...r.rows.map((x) => `| ${x.id} | ${num(x.xseq)} | ${num(x.baseline)} | ${x.unit} | ${num(x.ratio)} | ${goalText(x.goal)} | ${x.failed ? 'failed' : x.met === null || x.met === undefined ? '-' : x.met ? 'yes' : 'no'} |`),
    '',
    ...r.rows.map((x) => `- ${x.id}: ${x.name}; baseline: ${x.baselineName}${x.failed ? `; failed: ${x.failed}` : ''}`),
  ];
  return lines.join('\n');
}

/** The README with every marked table generated from its kept file. */
export function regenerate(readme: string, dir = RESULTS_DIR): string {
  return readme.replace(MARKED, (_all, file: string) => `<!-- bench-result: ${file} -->\n${renderResult(readResult(join(dir, file)), file)}\n<!-- /bench-result -->`);
}

/** The kept files the README quotes. */
export function quoted(readme: string): string[] {
  return [...readme.matchAll(MARKED)].map((m) => m[1]!);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const now = readFileSync(README, 'utf8');
  const next = regenerate(now);
  if (process.argv.includes('--write')) {
    writeFileSync(README, next);
    console.log(`bench/README.md: ${quoted(now).length} table(s) generated`);
  } else if (next !== now) {
    console.error('bench/README.md differs from its kept results: run `npx tsx bench/readme-tables.ts --write`');
    process.exit(1);
  }
}

// A bench run as kept on disk: bench/results/<date>-<host>.json. The runs
// that bench/README.md quotes are kept in git, and its tables are generated
// from them (bench/readme-tables.ts), never typed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostFacts } from './host.ts';
import type { BenchRow } from './row.ts';

export const RESULTS_DIR = join(import.meta.dirname, 'results');

export interface BenchResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  /** A smoke run (--quick): not numbers to report. */
  quick: boolean;
  /** --only, upper-cased; null = every row. */
  only: string[] | null;
  host: HostFacts;
  rows: BenchRow[];
}

/** 2026-12-07T2243-hostname.json: sortable, one file per run. */
export function resultName(r: BenchResult): string {
  const t = r.startedAt.replace(/:\d\d\.\d+Z$/, '').replace(':', '');
  const host = r.host.hostname.replace(/[^A-Za-z0-9._-]/g, '_');
  return `${t}-${host}.json`;
}

export function writeResult(r: BenchResult, dir = RESULTS_DIR): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, resultName(r));
  writeFileSync(path, JSON.stringify(r, null, 2) + '\n');
  return path;
}

export function readResult(path: string): BenchResult {
  const r = JSON.parse(readFileSync(path, 'utf8')) as BenchResult;
  if (r.version !== 1 || !Array.isArray(r.rows) || !r.host) throw new Error(`${path} is not a bench result (version 1 with host and rows)`);
  return r;
}

// What build is running: the package version, the commit it was built
// from, and a digest of the BPF object it loads, for `--version`, the
// xseq_build_info metric and the `ready` log line of the agent and the KV
// replica. The commit comes from XSEQ_COMMIT, else build-info.json (written
// by the package build, where no .git exists), else `git rev-parse` in the
// checkout, else "unknown".
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
/** The object `run` loads (bpf/Makefile); its digest names the data path build. */
export const SEQUENCER_OBJECT = join(ROOT, 'bpf', 'build', 'sequencer.bpf.o');

export interface BuildInfo {
  version: string;
  commit: string;
  /** First 16 hex digits of the sequencer object's SHA-256; "none" if not built. */
  bpfObjectSha: string;
  node: string;
}

let cached: BuildInfo | undefined;

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function commitOf(): string {
  const env = process.env['XSEQ_COMMIT'];
  if (env) return env;
  const file = readJson(join(ROOT, 'build-info.json'));
  if (typeof file?.['commit'] === 'string') return file['commit'];
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

function objectSha(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
  } catch {
    return 'none';
  }
}

export function buildInfo(): BuildInfo {
  cached ??= {
    version: String(readJson(join(ROOT, 'package.json'))?.['version'] ?? 'unknown'),
    commit: commitOf(),
    bpfObjectSha: objectSha(SEQUENCER_OBJECT),
    node: process.version,
  };
  return cached;
}

/** The `--version` line of a command. */
export function versionLine(command: string): string {
  const b = buildInfo();
  return `${command} ${b.version} (commit ${b.commit}, bpf object ${b.bpfObjectSha}, node ${b.node})`;
}

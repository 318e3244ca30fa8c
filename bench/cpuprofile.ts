// Summarises V8 CPU profiles (.cpuprofile, e.g. the replicas' under
// XSEQ_KV_CPU_PROFILE=DIR, examples/kv/replica.ts): the functions with the
// most self time, as % of the busy samples (idle left out), with their
// file. With --window-ms only the busiest stretch of that length in each
// profile counts: a profile of a whole bench run is mostly setup and light
// load, the window picks the peak phase. Several files are summed.
//
//   npx tsx bench/cpuprofile.ts [--top N] [--window-ms MS] FILE.cpuprofile...
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  /** Microseconds from the previous sample (the first: from startTime). */
  timeDeltas: number[];
}

export interface SelfTime {
  fn: string;
  where: string;
  pct: number;
}

const IDLE = '(idle)';

/** Indexes [lo, hi) of the samples in the busiest `windowUs` of the profile (all when undefined). */
function busiest(p: Profile, idle: ReadonlySet<number>, windowUs: number | undefined): [number, number] {
  if (windowUs === undefined) return [0, p.samples.length];
  const at: number[] = [];
  let t = 0;
  for (const d of p.timeDeltas) at.push((t += d));
  let best: [number, number] = [0, 0];
  let bestBusy = -1;
  let busy = 0;
  for (let lo = 0, hi = 0; hi < at.length; hi++) {
    if (!idle.has(p.samples[hi]!)) busy++;
    while (at[hi]! - at[lo]! > windowUs) if (!idle.has(p.samples[lo++]!)) busy--;
    if (busy > bestBusy) [bestBusy, best] = [busy, [lo, hi + 1]];
  }
  return best;
}

/** Self time per function (name and file) over the busy samples, summed over the profiles, most first. */
export function selfTimes(profiles: readonly Profile[], windowUs?: number, root = process.cwd()): SelfTime[] {
  const by = new Map<string, number>();
  let total = 0;
  for (const p of profiles) {
    const key = new Map<number, string>();
    const idle = new Set<number>();
    for (const n of p.nodes) {
      const f = n.callFrame;
      // tsx compiles each file: its line numbers are not the source's.
      const file = f.url.startsWith('file://') ? relative(root, f.url.slice(7)) : f.url;
      key.set(n.id, `${f.functionName || '(anonymous)'}\t${file}`);
      if (f.functionName === IDLE) idle.add(n.id);
    }
    const [lo, hi] = busiest(p, idle, windowUs);
    for (let i = lo; i < hi; i++) {
      const id = p.samples[i]!;
      if (idle.has(id)) continue;
      by.set(key.get(id)!, (by.get(key.get(id)!) ?? 0) + 1);
      total++;
    }
  }
  return [...by]
    .map(([k, c]) => {
      const [fn, where] = k.split('\t') as [string, string];
      return { fn, where, pct: (100 * c) / total };
    })
    .sort((a, b) => b.pct - a.pct);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string' }, 'window-ms': { type: 'string' } }, allowPositionals: true });
  const top = Number(values.top ?? 25);
  const windowMs = values['window-ms'] === undefined ? undefined : Number(values['window-ms']);
  const rows = selfTimes(
    positionals.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Profile),
    windowMs === undefined ? undefined : windowMs * 1000,
  );
  console.log('| self % | function | where |\n|---:|---|---|');
  for (const r of rows.slice(0, top)) console.log(`| ${r.pct.toFixed(1)} | ${r.fn} | ${r.where} |`);
}

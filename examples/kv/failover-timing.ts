// Failover time and throughput dip from a KV load's completion times
// (`cli.ts load --completions`) and the wall-clock time a host was killed.
// Shared by the failover namespace tests (which print them) and the bench
// row (which reports them): neither asserts on time.
//
// resumed: the end of the first silence of at least `minStallMs` that
// starts within `searchMs` of the kill (ops in flight when the host died may
// still complete just after it; the first real stall is the failover, and a
// later one on a busy host is something else). failoverMs = resumed - kill;
// 0 when the load never stalled.
// dip: ops/s in the 2 s around the kill ([kill-1 s, kill+1 s]) against
// ops/s in the 2 s before that.
export interface FailoverTiming {
  failoverMs: number;
  /** The silence that ended at `resumed`, ms. */
  stallMs: number;
  opsPerSecBefore: number;
  opsPerSecAround: number;
  /** opsPerSecAround / opsPerSecBefore. */
  dipRatio: number;
}

/**
 * `survivorFromMs`: when it is known that nothing before it completed through
 * a survivor (a standby stamps nothing before its takeover): the load then
 * resumed at the first completion from there on, whatever the stalls.
 */
export function failoverTiming(completedAtMs: readonly number[], killAtMs: number, o: { minStallMs?: number; searchMs?: number; survivorFromMs?: number } = {}): FailoverTiming {
  const minStall = o.minStallMs ?? 100;
  const search = o.searchMs ?? 2000;
  const t = [...completedAtMs].sort((a, b) => a - b);
  let stall: { gap: number; end: number } | null = null;
  // The silence in progress at the kill starts at the last completion before it.
  let prev = t.filter((x) => x <= killAtMs).at(-1) ?? killAtMs;
  for (const x of t) {
    if (x <= killAtMs) continue;
    if (prev > killAtMs + search) break;
    if (x - prev >= minStall) {
      stall = { gap: x - prev, end: x };
      break;
    }
    prev = x;
  }
  if (o.survivorFromMs !== undefined) {
    const i = t.findIndex((x) => x >= o.survivorFromMs!);
    stall = i < 0 ? null : { gap: t[i]! - (t[i - 1] ?? killAtMs), end: t[i]! };
  }
  // Silent to the end of the record: it never resumed.
  const never = o.survivorFromMs !== undefined ? !stall : !stall && (t.at(-1) ?? -Infinity) <= killAtMs;
  const count = (from: number, to: number) => t.filter((x) => x >= from && x < to).length;
  const before = count(killAtMs - 3000, killAtMs - 1000) / 2;
  const around = count(killAtMs - 1000, killAtMs + 1000) / 2;
  return {
    failoverMs: never ? Infinity : stall ? Math.round((stall.end - killAtMs) * 10) / 10 : 0,
    stallMs: stall ? Math.round(stall.gap * 10) / 10 : 0,
    opsPerSecBefore: before,
    opsPerSecAround: around,
    dipRatio: before > 0 ? Math.round((around / before) * 1000) / 1000 : 0,
  };
}

// Checks on a history of nextval calls from many clients (tests, bench):
// no value returned twice, and real-time order: if call A returned before
// call B started, A's value is smaller (a dense sequence is linearizable).
// Times are CLOCK_MONOTONIC nanoseconds (process.hrtime.bigint()), which
// every process on one host shares.

export interface Call {
  /** Who made it (process/worker), for messages. */
  client: string;
  startNs: bigint;
  endNs: bigint;
  /** The value, or the error code. */
  value?: bigint;
  error?: string;
}

export interface HistoryReport {
  calls: number;
  values: number;
  errors: Record<string, number>;
  duplicates: Array<{ value: string; clients: string[] }>;
  /** Pairs that break real-time order (at most 10 shown). */
  orderViolations: Array<{ before: string; after: string }>;
  orderViolationCount: number;
  min?: bigint;
  max?: bigint;
}

export function checkHistory(calls: readonly Call[]): HistoryReport {
  const ok = calls.filter((c) => c.value !== undefined);
  const errors: Record<string, number> = {};
  for (const c of calls) if (c.error) errors[c.error] = (errors[c.error] ?? 0) + 1;
  const seen = new Map<bigint, string[]>();
  for (const c of ok) seen.set(c.value!, [...(seen.get(c.value!) ?? []), c.client]);
  const duplicates = [...seen].filter(([, who]) => who.length > 1).map(([v, who]) => ({ value: v.toString(), clients: who }));
  // Sweep by time: when B starts, every call that ended strictly before
  // has its value in `maxEnded`; B must be above all of them.
  const byEnd = [...ok].sort((a, b) => (a.endNs < b.endNs ? -1 : a.endNs > b.endNs ? 1 : 0));
  const byStart = [...ok].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  let i = 0;
  let maxEnded: Call | undefined;
  const orderViolations: HistoryReport['orderViolations'] = [];
  let orderViolationCount = 0;
  for (const b of byStart) {
    while (i < byEnd.length && byEnd[i]!.endNs < b.startNs) {
      const a = byEnd[i++]!;
      if (!maxEnded || a.value! > maxEnded.value!) maxEnded = a;
    }
    if (maxEnded && maxEnded.value! >= b.value!) {
      orderViolationCount++;
      if (orderViolations.length < 10) {
        orderViolations.push({ before: `${maxEnded.client} got ${maxEnded.value} ending at ${maxEnded.endNs}`, after: `${b.client} got ${b.value} starting at ${b.startNs}` });
      }
    }
  }
  const vals = ok.map((c) => c.value!);
  return {
    calls: calls.length,
    values: ok.length,
    errors,
    duplicates,
    orderViolations,
    orderViolationCount,
    ...(vals.length ? { min: vals.reduce((a, b) => (a < b ? a : b)), max: vals.reduce((a, b) => (a > b ? a : b)) } : {}),
  };
}

/** One call per line: client start end value|error. */
export function formatCalls(calls: readonly Call[]): string {
  return calls.map((c) => `${c.client} ${c.startNs} ${c.endNs} ${c.value ?? `!${c.error}`}`).join('\n');
}

export function parseCalls(text: string): Call[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [client, s, e, v] = l.split(' ');
      return { client: client!, startNs: BigInt(s!), endNs: BigInt(e!), ...(v!.startsWith('!') ? { error: v!.slice(1) } : { value: BigInt(v!) }) };
    });
}

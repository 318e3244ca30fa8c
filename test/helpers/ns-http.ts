// HTTP GET from inside a test namespace. Node cannot enter a namespace, so
// a short-lived node process does the request there (`ip netns exec`).
import type { Topology } from '../../netns/topology.ts';

export interface NsResponse {
  /** 0 when the request itself failed (refused, timed out). */
  status: number;
  body: string;
}

// One process for many URLs, one after the other: starting node in the
// namespace costs far more than a request on loopback.
const SCRIPT = `
const [timeout, ...urls] = process.argv.slice(1);
(async () => {
  const out = [];
  for (const url of urls) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(Number(timeout)) });
      out.push({ status: r.status, body: await r.text() });
    } catch (e) {
      out.push({ status: 0, body: String(e && e.cause ? e.cause : e) });
    }
  }
  process.stdout.write(JSON.stringify(out));
})();`;

export function nsGetMany(t: Topology, role: string, urls: string[], timeoutMs = 10_000): NsResponse[] {
  const r = t.tryExec(role, process.execPath, ['-e', SCRIPT, String(timeoutMs), ...urls], { timeoutMs: timeoutMs * urls.length + 20_000 });
  if (r.status !== 0) return urls.map(() => ({ status: 0, body: `node exited ${r.signal ?? r.status}: ${r.stderr.trim()}` }));
  return JSON.parse(r.stdout) as NsResponse[];
}

export function nsGet(t: Topology, role: string, url: string, timeoutMs = 10_000): NsResponse {
  return nsGetMany(t, role, [url], timeoutMs)[0]!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value other than undefined; throws
 * with the last observation after `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => T | undefined, last?: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last: ${last()}` : ''}`);
    await sleep(500);
  }
}

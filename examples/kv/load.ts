// The load generator behind `cli.ts load`: C closed-loop lanes, each one
// op at a time on its own client core and its own keys, so every key has a
// single writer whose ops execute in issue order. That makes the outcome
// checkable: a read must return the lane's last acknowledged write to that
// key, or a write issued after it that timed out (it may have executed);
// anything else is a stale read. The summary lists every acknowledged
// write, so a checker can read them all back afterwards.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, type KvClient } from './client.ts';
import { type HistJson, LatencyHist } from './latency.ts';
import type { Op } from './ops.ts';

export interface LoadOptions {
  /** Lanes run at once (at most the client's lanes). */
  concurrency: number;
  /** Stop after this many ops in total... */
  ops?: number;
  /** ...or after this long (whichever comes first; one is required). */
  durationMs?: number;
  /** Ops finished before this much time has passed are not measured (JIT, caches). */
  warmupMs?: number;
  /** Start at this wall-clock time (ms), so several processes start together. */
  startAt?: number;
  /** Keys per lane (default 64). */
  keys?: number;
  /** Relative weights of get, put, cas (default 50, 40, 10). */
  mix?: [number, number, number];
  /** Ops per second of all lanes together (default 0: closed loop, as fast as answers come). */
  rate?: number;
  /** Key prefix, unique per run (default random). */
  tag: string;
  /** Bytes of each written value, at least what `tag/lane/n` takes (default 0: just that). */
  valueSize?: number;
  /** Keep every acknowledged write in the summary (default true). */
  recordWrites?: boolean;
  /** Keep when each answered op completed (wall clock, ms), for failover timing (default false). */
  recordCompletions?: boolean;
}

export interface Write {
  key: string;
  value: string;
  kind: 'put' | 'cas';
  session: number;
  seq: number;
}

export interface LoadSummary {
  tag: string;
  concurrency: number;
  /** Ops finished (answered or failed). */
  ops: number;
  ok: number;
  timeouts: number;
  /** Ops that failed otherwise (e.g. a malformed answer). */
  errors: number;
  kinds: { get: number; put: number; cas: number; casMismatch: number; notFound: number };
  /** Reads that returned a value the lane could not have been answered. */
  staleReads: number;
  staleSamples: { key: string; got: string | null; want: string[] }[];
  durationMs: number;
  /** Answered ops per second over the measured part of the run. */
  opsPerSec: number;
  measured: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  maxUs: number;
  latencyHist: HistJson;
  /** Acknowledged writes, in the order each lane issued them. */
  writes: Write[];
  /** The first few ETIMEDOUT messages (which sequencers each op tried, how often). */
  timeoutSamples?: string[];
  /** Writes that timed out: they may or may not have executed. */
  unacked: { key: string; value: string; kind: 'put' | 'cas' }[];
  clientIds: string[];
  /** Each lane's last request id, in clientIds order: no committed entry of
   * that client id may carry a higher one (tools/stranger.ts impersonates). */
  lastRequestIds: string[];
  /** recordCompletions: when each answered op completed, wall-clock ms (0.1 ms steps), in completion order. */
  completedAtMs?: number[];
}

/** What a lane knows about one of its keys. */
interface KeyState {
  /** The last acknowledged value (null: known absent). */
  acked: string | null;
  /** Values of writes issued after it that timed out. */
  maybe: string[];
}

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const dec = (b: Uint8Array) => Buffer.from(b).toString('utf8');

export async function runLoad(client: KvClient, o: LoadOptions): Promise<LoadSummary> {
  if (o.ops === undefined && o.durationMs === undefined) throw new RangeError('load: give ops or durationMs');
  const lanes = Math.min(o.concurrency, client.lanes);
  const keys = o.keys ?? 64;
  const [wg, wp, wc] = o.mix ?? [50, 40, 10];
  const wsum = wg + wp + wc;
  if (!(wsum > 0)) throw new RangeError('load: the mix has no weight');
  const recordWrites = o.recordWrites ?? true;
  if (o.startAt) await sleep(Math.max(0, o.startAt - Date.now()));

  const hist = new LatencyHist();
  const s: LoadSummary = {
    tag: o.tag,
    concurrency: lanes,
    ops: 0,
    ok: 0,
    timeouts: 0,
    errors: 0,
    kinds: { get: 0, put: 0, cas: 0, casMismatch: 0, notFound: 0 },
    staleReads: 0,
    staleSamples: [],
    durationMs: 0,
    opsPerSec: 0,
    measured: 0,
    p50Us: 0,
    p90Us: 0,
    p99Us: 0,
    meanUs: 0,
    maxUs: 0,
    latencyHist: [],
    writes: [],
    unacked: [],
    clientIds: client.clientIds.map(String),
    lastRequestIds: [],
    ...(o.recordCompletions ? { completedAtMs: [] } : {}),
  };
  const t0 = performance.now();
  const warm = t0 + (o.warmupMs ?? 0);
  const end = o.durationMs === undefined ? Infinity : t0 + o.durationMs;
  let issued = 0;
  let measuredUntil = warm;
  const more = () => performance.now() < end && (o.ops === undefined || issued < o.ops);

  // Paced lanes start their k-th op no earlier than k * interval after the
  // start, so the rate holds without bunching; a late lane catches up.
  const intervalMs = o.rate ? (lanes * 1000) / o.rate : 0;
  const lane = async (l: number): Promise<void> => {
    const known = new Map<string, KeyState>();
    let n = 0;
    const laneStart = t0 + (intervalMs * l) / lanes;
    while (more()) {
      if (intervalMs) {
        const wait = laneStart + n * intervalMs - performance.now();
        if (wait > 0) await sleep(wait);
        if (!more()) break;
      }
      issued++;
      const key = `${o.tag}/${l}/${Math.floor(Math.random() * keys)}`;
      const ks = known.get(key);
      const r = Math.random() * wsum;
      const id = `${o.tag}/${l}/${n++}`;
      // Padding goes in front: the issue counter stays last.
      const value = id.length < (o.valueSize ?? 0) ? 'x'.repeat(o.valueSize! - id.length) + id : id;
      const op: Op =
        r < wg
          ? { kind: 'get', key: enc(key) }
          : r < wg + wp
            ? { kind: 'put', key: enc(key), value: enc(value) }
            : { kind: 'cas', key: enc(key), expected: ks && ks.acked !== null ? enc(ks.acked) : null, value: enc(value) };
      const started = performance.now();
      try {
        const a = await client.execute(op, l);
        const done = performance.now();
        s.ok++;
        if (s.completedAtMs) s.completedAtMs.push(Math.round((performance.timeOrigin + done) * 10) / 10);
        if (started >= warm && done <= end) {
          hist.record((done - started) * 1000);
          s.measured++;
          measuredUntil = Math.max(measuredUntil, done);
        }
        s.kinds[op.kind]++;
        const res = a.result;
        if (op.kind === 'get') {
          const got = res.status === 'found' ? dec(res.value) : null;
          if (res.status === 'not-found') s.kinds.notFound++;
          // A key this lane never wrote may hold nothing; one it wrote must
          // read as the last acked write or a later one that timed out.
          const want = ks ? [ks.acked, ...ks.maybe] : [null];
          if (!want.includes(got)) {
            s.staleReads++;
            if (s.staleSamples.length < 1000) s.staleSamples.push({ key, got, want: want.map(String) });
          }
          if (ks || got !== null) known.set(key, { acked: got, maybe: [] });
        } else if (res.status === 'ok') {
          known.set(key, { acked: value, maybe: [] });
          if (recordWrites) s.writes.push({ key, value, kind: op.kind, session: a.cert?.session ?? 0, seq: a.cert?.seq ?? 0 });
        } else if (res.status === 'mismatch') {
          s.kinds.casMismatch++;
          known.set(key, { acked: res.current ? dec(res.current) : null, maybe: [] });
        } else {
          s.errors++;
        }
      } catch (e) {
        if (!(e instanceof ClientError)) {
          s.errors++;
          continue;
        }
        if (e.code !== 'ETIMEDOUT') throw e;
        s.timeouts++;
        if ((s.timeoutSamples ??= []).length < 10) s.timeoutSamples.push(`${op.kind} ${key}: ${e.message}`);
        if (op.kind !== 'get') {
          s.unacked.push({ key, value, kind: op.kind });
          const st = known.get(key) ?? { acked: null, maybe: [] };
          st.maybe.push(value);
          known.set(key, st);
        }
      } finally {
        s.ops++;
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)));

  const t1 = performance.now();
  s.durationMs = Math.round(t1 - t0);
  const window = (o.durationMs === undefined ? measuredUntil : Math.min(end, t1)) - warm;
  s.opsPerSec = window > 0 ? Math.round((s.measured / window) * 1000) : 0;
  const h = hist.toJSON();
  s.latencyHist = h;
  s.p50Us = Math.round(LatencyHist.quantile([h], 0.5));
  s.p90Us = Math.round(LatencyHist.quantile([h], 0.9));
  s.p99Us = Math.round(LatencyHist.quantile([h], 0.99));
  s.meanUs = Math.round(hist.meanUs);
  s.maxUs = Math.round(hist.maxUs);
  s.lastRequestIds = client.lastRequestIds().map(String);
  return s;
}

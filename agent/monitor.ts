// Live drop samples: what the XDP program dropped, from whom, as it
// happens (like `cilium monitor`). The kernel posts a sample per drop to the
// xseq_events ring buffer; the running agent is its one consumer (a second
// reader would take samples from the agent's log), so the agent fans them
// out: GET /drops on its metrics address streams them as JSON lines, and
// `xseq-agent monitor` reads that stream, filters and prints it.
//
// Bounded: at most MAX_WATCHERS streams at once, each at most `rate`
// samples per second (default 100, at most 10000); what is over the rate is
// counted and reported in the stream as {"suppressed": n} once a second.
import { get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { DropEvent } from '../bpf/maps.ts';
import { COUNTER_NAMES } from '../bpf/maps.ts';
import { parseArgs } from 'node:util';
import { UsageError } from './args.ts';
import { configFileFrom, readRawConfig } from './config.ts';

/** The agent could not be reached or refused the stream. */
export class MonitorError extends Error {
  override readonly name = 'MonitorError';
  readonly code = 'EMONITOR';
}

export const MAX_WATCHERS = 4;
export const DEFAULT_RATE = 100;
export const MAX_RATE = 10_000;

/** The drop reasons a filter may name: the drop_* counters, without "drop_". */
export const DROP_REASONS: readonly string[] = COUNTER_NAMES.filter((n) => n.startsWith('drop_')).map((n) => n.slice('drop_'.length));

export interface DropFilter {
  reasons?: ReadonlySet<string>;
  /** Source IPv4 address. */
  source?: string;
}

export interface DropSample {
  /** ISO-8601 time the agent read the sample. */
  time: string;
  reason: string;
  source: string;
  sport: number;
  frameLen: number;
}

export function sampleOf(ev: DropEvent, now = new Date()): DropSample {
  return { time: now.toISOString(), reason: ev.reason.replace(/^drop_/, ''), source: ev.saddr, sport: ev.sport, frameLen: ev.frameLen };
}

export function matches(s: DropSample, f: DropFilter): boolean {
  return (!f.reasons || f.reasons.has(s.reason)) && (!f.source || f.source === s.source);
}

/** Parses ?reason=a,b&source=IP&rate=N of a /drops request. */
export function filterFromQuery(q: URLSearchParams): { filter: DropFilter; rate: number } {
  const reasons = q.get('reason');
  const rate = q.get('rate') === null ? DEFAULT_RATE : Number(q.get('rate'));
  if (!Number.isInteger(rate) || rate < 1 || rate > MAX_RATE) throw new RangeError(`rate must be 1..${MAX_RATE}`);
  const filter: DropFilter = {};
  if (reasons) {
    const list = reasons.split(',');
    const bad = list.filter((r) => !DROP_REASONS.includes(r));
    if (bad.length) throw new RangeError(`unknown reason ${bad.join(', ')}; reasons: ${DROP_REASONS.join(', ')}`);
    filter.reasons = new Set(list);
  }
  const source = q.get('source');
  if (source) filter.source = source;
  return { filter, rate };
}

interface Watcher {
  filter: DropFilter;
  rate: number;
  sent: number;
  suppressed: number;
  write(line: string): void;
}

/** The agent's fan-out of drop samples to /drops streams. */
export class DropFeed {
  readonly #watchers = new Set<Watcher>();
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => this.#second(), 1000);
    this.#timer.unref();
  }

  get watchers(): number {
    return this.#watchers.size;
  }

  publish(ev: DropEvent): void {
    if (this.#watchers.size === 0) return;
    const s = sampleOf(ev);
    for (const w of this.#watchers) {
      if (!matches(s, w.filter)) continue;
      if (w.sent < w.rate) {
        w.sent++;
        w.write(`${JSON.stringify(s)}\n`);
      } else {
        w.suppressed++;
      }
    }
  }

  #second(): void {
    for (const w of this.#watchers) {
      if (w.suppressed) w.write(`${JSON.stringify({ suppressed: w.suppressed })}\n`);
      w.sent = w.suppressed = 0;
    }
  }

  /** Serves GET /drops; returns false for any other path. */
  route(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname !== '/drops') return false;
    let parsed: ReturnType<typeof filterFromQuery>;
    try {
      parsed = filterFromQuery(url.searchParams);
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${(e as Error).message}\n`);
      return true;
    }
    if (this.#watchers.size >= MAX_WATCHERS) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`already ${MAX_WATCHERS} monitors; stop one\n`);
      return true;
    }
    // A stream lives as long as the client listens: no request timeout.
    req.socket.setTimeout(0);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.write(`${JSON.stringify({ monitoring: true, rate: parsed.rate, reasons: parsed.filter.reasons ? [...parsed.filter.reasons] : 'all', source: parsed.filter.source ?? 'any' })}\n`);
    const w: Watcher = { ...parsed, sent: 0, suppressed: 0, write: (l) => res.write(l) };
    this.#watchers.add(w);
    res.on('close', () => this.#watchers.delete(w));
    return true;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#watchers.clear();
  }
}

export interface MonitorArgs {
  listen: string;
  reasons?: string[];
  source?: string;
  rate: number;
  json: boolean;
  count?: number;
}

/** A sample as one line of text. */
export function textLine(s: DropSample): string {
  return `${s.time}  ${s.reason.padEnd(16)} ${s.source}:${s.sport}  ${s.frameLen} bytes`;
}

/**
 * `xseq-agent monitor`: streams the running agent's drop samples until
 * SIGINT/SIGTERM or --count samples; resolves with the exit status.
 */
export function runMonitor(a: MonitorArgs, out: (line: string) => void = (l) => console.log(l)): Promise<number> {
  const q = new URLSearchParams({ rate: String(a.rate) });
  if (a.reasons?.length) q.set('reason', a.reasons.join(','));
  if (a.source) q.set('source', a.source);
  const url = `http://${a.listen}/drops?${q}`;
  return new Promise((resolve, reject) => {
    let seen = 0;
    let buf = '';
    const req = get(url, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(new MonitorError(`the agent at ${a.listen} refused: ${res.statusCode} ${body.trim()}`)));
        return;
      }
      const stop = (code: number) => {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
        req.destroy();
        resolve(code);
      };
      const onSig = () => stop(0);
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const o = JSON.parse(line) as Partial<DropSample> & { suppressed?: number; monitoring?: boolean };
          if (o.monitoring) {
            if (a.json) out(line);
            else out(`# monitoring drops at ${a.listen} (reasons: ${a.reasons?.join(',') ?? 'all'}, source: ${a.source ?? 'any'}, at most ${a.rate}/s); Ctrl-C stops`);
            continue;
          }
          if (o.suppressed !== undefined) out(a.json ? line : `# ${o.suppressed} more samples over ${a.rate}/s not shown`);
          else {
            out(a.json ? line : textLine(o as DropSample));
            if (a.count !== undefined && ++seen >= a.count) return stop(0);
          }
        }
      });
      res.on('end', () => stop(1));
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new MonitorError(`cannot reach the agent at ${a.listen} (${e.code ?? e.message}): is it running, with metrics.listen there? (--listen, or --config)`)),
    );
  });
}

/** `monitor` options; null for --help. */
export function parseMonitorArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): MonitorArgs | null {
  let v;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      options: {
        listen: { type: 'string' },
        config: { type: 'string' },
        reason: { type: 'string', multiple: true },
        source: { type: 'string' },
        rate: { type: 'string' },
        count: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (v.help) return null;
  const reasons = (v.reason ?? []).flatMap((r) => r.split(','));
  const bad = reasons.filter((r) => !DROP_REASONS.includes(r));
  if (bad.length) throw new UsageError(`--reason ${bad.join(', ')}: not a drop reason; reasons: ${DROP_REASONS.join(', ')}`);
  if (v.source !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(v.source)) throw new UsageError(`--source ${v.source}: not an IPv4 address`);
  const int = (s: string | undefined, name: string, min: number, max: number): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < min || n > max) throw new UsageError(`--${name} must be ${min}..${max}, got "${s}"`);
    return n;
  };
  // Where the agent serves: --listen, else its config's metrics.listen.
  let listen = v.listen;
  if (listen === undefined) {
    const file = configFileFrom(v.config, env);
    const raw = readRawConfig({ ...(file ? { file } : {}), env }).raw as { metrics?: { listen?: unknown } };
    listen = typeof raw.metrics?.listen === 'string' ? raw.metrics.listen : '127.0.0.1:9464';
  }
  if (listen === '') throw new UsageError('the agent serves no metrics (metrics.listen is ""), so there is no drop stream to monitor');
  const count = int(v.count, 'count', 1, 1_000_000_000);
  return {
    listen,
    ...(reasons.length ? { reasons } : {}),
    ...(v.source ? { source: v.source } : {}),
    rate: int(v.rate, 'rate', 1, MAX_RATE) ?? DEFAULT_RATE,
    json: v.json === true,
    ...(count !== undefined ? { count } : {}),
  };
}

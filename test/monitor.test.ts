// `xseq-agent monitor` and the agent's /drops stream (agent/monitor.ts):
// filters by reason and source, JSON or text, a rate limit per stream that
// reports what it held back, a bound on streams, clear errors.
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../agent/metrics.ts';
import { DropFeed, MAX_WATCHERS, parseMonitorArgs } from '../agent/monitor.ts';
import { startMetricsServer } from '../agent/metrics.ts';
import { UsageError } from '../agent/args.ts';
import { type DropEvent, XSEQ_HIST_BUCKETS, zeroCounters } from '../bpf/maps.ts';

const BIN = join(import.meta.dirname, '..', 'agent', 'bin', 'xseq-agent.js');
const ev = (reason: DropEvent['reason'], saddr: string, sport = 4000, frameLen = 60): DropEvent => ({ reason, saddr, sport, frameLen });

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Runs the CLI; resolves with its exit code and output. */
function monitor(args: string[]): { done: Promise<{ code: number | null; out: string; err: string }> } {
  const p = spawn(process.execPath, [BIN, 'monitor', ...args], { env: { ...process.env, XSEQ_CONFIG: '' } });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { done: new Promise((resolve) => p.on('close', (code) => resolve({ code, out, err }))) };
}

/** Opens a raw /drops stream; lines arrive in `lines`. */
function stream(addr: string, query: string) {
  const lines: string[] = [];
  let status = 0;
  let body = '';
  const req = get(`http://${addr}/drops${query}`, (res) => {
    status = res.statusCode ?? 0;
    res.on('data', (d: Buffer) => {
      body += d.toString();
      const parts = body.split('\n');
      body = parts.pop()!;
      lines.push(...parts);
    });
  });
  req.on('error', () => {});
  return { lines, status: () => status, close: () => req.destroy() };
}

describe('xseq-agent monitor', () => {
  const feed = new DropFeed();
  let srv: { address: string; close(): Promise<void> };
  beforeAll(async () => {
    const registry = createMetricsRegistry({
      sequencerId: 1,
      groups: () => [],
      kernelCounters: () => zeroCounters(),
      quorumHistogram: () => ({ buckets: Array.from({ length: XSEQ_HIST_BUCKETS }, () => 0n), sumNs: 0n }),
    });
    srv = await startMetricsServer('127.0.0.1:0', registry, () => ({ ok: true, detail: {} }), (req, res) => feed.route(req, res));
  });
  afterAll(async () => {
    feed.close();
    await srv.close();
  });

  it('--reason and --json: only that reason, one JSON object per sample, stops after --count', async () => {
    const m = monitor(['--listen', srv.address, '--reason', 'bad_magic', '--count', '2', '--json']);
    await until('the monitor to connect', () => feed.watchers === 1);
    feed.publish(ev('drop_ack_stranger', '10.0.0.9'));
    feed.publish(ev('drop_bad_magic', '10.0.0.7', 5555, 99));
    feed.publish(ev('drop_bad_magic', '10.0.0.8'));
    const r = await m.done;
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.shift()).toEqual({ monitoring: true, rate: 100, reasons: ['bad_magic'], source: 'any' });
    expect(lines).toEqual([
      { time: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/), reason: 'bad_magic', source: '10.0.0.7', sport: 5555, frameLen: 99 },
      { time: expect.any(String), reason: 'bad_magic', source: '10.0.0.8', sport: 4000, frameLen: 60 },
    ]);
    await until('the stream to close', () => feed.watchers === 0);
  });

  it('--source in text: one readable line per sample from that address', async () => {
    const m = monitor(['--listen', srv.address, '--source', '10.0.0.8', '--count', '1']);
    await until('the monitor to connect', () => feed.watchers === 1);
    feed.publish(ev('drop_unknown_group', '10.0.0.7'));
    feed.publish(ev('drop_ack_stranger', '10.0.0.8', 7600, 136));
    const r = await m.done;
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^# monitoring drops at 127\.0\.0\.1:\d+ \(reasons: all, source: 10\.0\.0\.8, at most 100\/s\)/);
    expect(lines.slice(1)).toEqual([expect.stringMatching(/^\S+Z {2}ack_stranger {5}10\.0\.0\.8:7600 {2}136 bytes$/)]);
  });

  it('each stream gets at most its rate per second and is told how many it missed; at most 4 streams', async () => {
    const s = stream(srv.address, '?rate=2');
    await until('the stream', () => feed.watchers === 1);
    for (let i = 0; i < 5; i++) feed.publish(ev('drop_truncated', `10.0.1.${i}`));
    await until('the suppressed count', () => s.lines.some((l) => l.includes('suppressed')));
    const objs = s.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objs[0]).toMatchObject({ monitoring: true, rate: 2 });
    expect(objs.filter((o) => o['reason'] === 'truncated').map((o) => o['source'])).toEqual(['10.0.1.0', '10.0.1.1']);
    expect(objs.find((o) => 'suppressed' in o)).toEqual({ suppressed: 3 });

    const more = Array.from({ length: MAX_WATCHERS - 1 }, () => stream(srv.address, ''));
    await until('four streams', () => feed.watchers === MAX_WATCHERS);
    const fifth = stream(srv.address, '');
    await until('the refusal', () => fifth.status() !== 0);
    expect(fifth.status()).toBe(503);
    for (const x of [s, ...more, fifth]) x.close();
    await until('every stream closed', () => feed.watchers === 0);
  });

  it('mistakes: an unknown reason or a bad rate is a usage error (exit 2); no agent is EMONITOR (exit 1)', async () => {
    expect(() => parseMonitorArgs(['--listen', '127.0.0.1:1', '--reason', 'bogus'])).toThrow(UsageError);
    expect(() => parseMonitorArgs(['--listen', '127.0.0.1:1', '--rate', '0'])).toThrow(/--rate must be 1\.\.10000/);
    const bad = await monitor(['--listen', srv.address, '--reason', 'bogus']).done;
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^xseq-agent: EUSAGE: --reason bogus: not a drop reason/);
    const none = await monitor(['--listen', '127.0.0.1:1']).done;
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^xseq-agent: EMONITOR: cannot reach the agent at 127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  });
});

// The flush timer (agent/flush.ts) against a stand-in program: which test
// run it asks for in each mode, that every failure is counted and logged
// (rate-limited, never silent), that generic mode sends exactly the FLUSH
// the program built to the address the program wrote, and the FINAL burst
// of a draining group. The real kernel path is test/hydra.netns.test.ts.
import type { Socket } from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FINAL_FLUSH_REPEATS, FINAL_FLUSH_SPACING_MS } from '../agent/flush-frame.ts';
import { FlushTimer, type FlushOptions } from '../agent/flush.ts';
import type { Log } from '../agent/log.ts';
import { BpfError, BPF_F_TEST_XDP_LIVE_FRAMES, type BpfProgram, type TestRunOptions, type TestRunResult } from '../bpf/libbpf/index.ts';
import { emptyHeader, encodeMessage, MsgType, readHeader, XSEQ_REPLICA_AGENT } from '../bpf/wire.ts';
import { buildFrame } from '../tools/frame.ts';

const ADDRESS = { mac: '02:00:00:00:00:02', addr: '10.77.0.2' };

function recorder(): Log & { lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A program whose test runs are recorded and answered by `answer`. */
function fakeProgram(answer: (o: TestRunOptions) => TestRunResult): BpfProgram & { runs: TestRunOptions[] } {
  const runs: TestRunOptions[] = [];
  return { runs, testRun: (o: TestRunOptions) => (runs.push(o), answer(o)) } as unknown as BpfProgram & { runs: TestRunOptions[] };
}

function opts(over: Partial<FlushOptions>): FlushOptions {
  return {
    iface: 'x-seq', ifindex: 7, port: 7400, intervalMs: 0, log: recorder(), transmit: { kind: 'xdp' }, address: ADDRESS,
    groups: [{ id: 1, sequencerId: 2, session: 41, draining: false }, { id: 3, sequencerId: 2, session: 42, draining: true }],
    ...over,
  };
}

describe('the flush timer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("native: one live-frames run per group per tick, the agent's solicit, ingress = the interface", () => {
    const prog = fakeProgram(() => ({ retval: 0, data: new Uint8Array(0), durationNs: 0 }));
    const t = new FlushTimer(prog, opts({ intervalMs: 5, groups: [{ id: 1, sequencerId: 2, session: 41, draining: false }] }));
    t.start();
    vi.advanceTimersByTime(50);
    t.stop();
    vi.advanceTimersByTime(50);
    expect(prog.runs).toHaveLength(10);
    const r = prog.runs[0]!;
    expect(r).toMatchObject({ repeat: 1, flags: BPF_F_TEST_XDP_LIVE_FRAMES, ctx: { ingressIfindex: 7 } });
    expect(readHeader(r.data, 42)).toMatchObject({ type: MsgType.FLUSH_SOLICIT, groupId: 1, sequencerId: 2, replicaId: XSEQ_REPLICA_AGENT, session: 41 });
    expect(t.counters()).toEqual({ injected: 10, errors: 0 });
  });

  it('a draining group gets its FINAL burst at start, spaced, even with the timer off', () => {
    const prog = fakeProgram(() => ({ retval: 0, data: new Uint8Array(0), durationNs: 0 }));
    const t = new FlushTimer(prog, opts({}));
    t.start();
    vi.advanceTimersByTime(FINAL_FLUSH_SPACING_MS * (FINAL_FLUSH_REPEATS + 2));
    t.stop();
    expect(prog.runs.map((r) => readHeader(r.data, 42).groupId)).toEqual(Array(FINAL_FLUSH_REPEATS).fill(3));
  });

  it('every failed run is counted; the log says which group and why, at most 5 lines a second plus a summary', () => {
    const log = recorder();
    const prog = fakeProgram(() => {
      throw new BpfError('EBPF_SYSCALL', 'testRun: ENXIO');
    });
    const t = new FlushTimer(prog, opts({ log, intervalMs: 10, groups: [{ id: 1, sequencerId: 2, session: 41, draining: false }] }));
    t.start();
    vi.advanceTimersByTime(1010);
    t.stop(); // reports what the last second suppressed
    expect(t.counters()).toEqual({ injected: 0, errors: 101 });
    const errors = log.lines.filter((l) => l.level === 'error');
    expect(errors[0]).toMatchObject({ obj: { event: 'flush', code: 'EBPF_SYSCALL', group: 1 }, msg: 'flush of group 1 failed: testRun: ENXIO' });
    expect(errors.length).toBeLessThanOrEqual(5 * 3); // 1010 ms touch at most three seconds
    expect(log.lines.find((l) => l.level === 'warn')?.obj).toMatchObject({ event: 'flush', suppressed: expect.any(Number) });
    const suppressed = log.lines.filter((l) => l.level === 'warn').reduce((a, l) => a + (l.obj['suppressed'] as number), 0);
    expect(errors.length + suppressed).toBe(101);
  });

  it('generic: a plain test run, and the FLUSH the program built goes to the address and port it wrote', () => {
    const sent: Array<{ msg: Buffer; port: number; addr: string }> = [];
    const socket = { send: (msg: Buffer, port: number, addr: string) => void sent.push({ msg: Buffer.from(msg), port, addr }) } as unknown as Socket;
    const flush = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH, groupId: 1, sequencerId: 2, session: 41, seq: 9n, clockNs: 123n });
    const out = buildFrame({ srcIp: '10.77.0.2', dstIp: '239.7.7.1', srcPort: 7400, dstPort: 7500, payload: flush });
    let verdict = 3;
    const prog = fakeProgram(() => ({ retval: verdict, data: out, durationNs: 0 }));
    const log = recorder();
    const t = new FlushTimer(prog, opts({ log, transmit: { kind: 'socket', socket }, groups: [{ id: 1, sequencerId: 2, session: 41, draining: false }] }));
    expect(t.flushGroup(1)).toBe(true);
    expect(prog.runs[0]).not.toHaveProperty('flags');
    expect(prog.runs[0]).not.toHaveProperty('ctx');
    expect(sent).toEqual([{ msg: flush, port: 7500, addr: '239.7.7.1' }]);
    // The program refusing the solicit (a drop) is an error, not a send.
    verdict = 1;
    expect(t.flushGroup(1)).toBe(false);
    expect(sent).toHaveLength(1);
    expect(t.counters()).toEqual({ injected: 2, errors: 1 });
    expect(log.lines.at(-1)).toMatchObject({ level: 'error', obj: { code: 'EFLUSH_REFUSED', group: 1 } });
  });
});

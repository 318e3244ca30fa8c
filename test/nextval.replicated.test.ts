// Replicated durability of sequence marks (agent/replicated-raise.ts with
// agent/sequences.ts): two sequencer hosts' sequence services, each with its
// own state directory and in-memory kernel table, over ONE group that
// applies reservations with the replicas' own table
// (replica/sequence-marks.ts), in the order they arrive. The checks: a
// kernel mark is stored only after the group certified the range; a
// replacement host with no state starts exactly at the group's mark, above
// every value the first host handed out; a host that comes back after
// another served jumps past it; on one host the values stay dense.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { KernelSequence } from '../bpf/sequences.ts';
import { MarkStore, type SequenceDef } from '../agent/marks.ts';
import { type SequenceKernel, SequenceService } from '../agent/sequences.ts';
import type { MarkReserver } from '../agent/replicated-raise.ts';
import { encodeMarkResult, SequenceMarks } from '../replica/sequence-marks.ts';
import { GroupMarks } from '../agent/group-marks.ts';
import type { SlotView } from '../bpf/maps.ts';
import { MsgType } from '../bpf/wire.ts';

type Event = { host: string; op: 'certified'; name: string; mark: bigint; prev: bigint } | { host: string; op: 'kernel-mark'; mark: bigint };

class Kernel implements SequenceKernel {
  seqs = new Map<number, KernelSequence>();
  names_ = new Map<string, number>();
  constructor(
    readonly host: string,
    readonly events: Event[],
  ) {}
  read(id: number): KernelSequence {
    return { ...(this.seqs.get(id) ?? { id, next: 0n, mark: 0n, increment: 0n, cache: 0, enabled: false }) };
  }
  names() {
    return new Map(this.names_);
  }
  create(id: number, name: string, v: { next: bigint; mark: bigint; increment: bigint; cache: number }) {
    this.events.push({ host: this.host, op: 'kernel-mark', mark: v.mark });
    this.seqs.set(id, { id, ...v, enabled: true });
    this.names_.set(name, id);
  }
  disable(id: number, name?: string) {
    if (name) this.names_.delete(name);
    this.seqs.get(id)!.enabled = false;
  }
  enable(id: number) {
    this.seqs.get(id)!.enabled = true;
  }
  setNext(id: number, next: bigint) {
    this.seqs.get(id)!.next = next;
  }
  forget(id: number) {
    this.seqs.delete(id);
  }
  setMark(id: number, mark: bigint) {
    this.events.push({ host: this.host, op: 'kernel-mark', mark });
    this.seqs.get(id)!.mark = mark;
  }
  stats() {
    return { calls: 0n, values: 0n, refused: 0n };
  }
  /** The XDP program's dense call: one value, or refused at the mark. */
  take(id: number): bigint | 'refused' {
    const s = this.seqs.get(id)!;
    if (!s.enabled || s.next + s.increment > s.mark) return 'refused';
    const v = s.next;
    s.next += s.increment;
    return v;
  }
}

/** The replica group as the hosts see it: certified reservations in arrival order. */
class Group {
  readonly table = new SequenceMarks();
  up = true;
  /** Hosts that do not stamp the group (a waiting standby). */
  readonly notServing = new Set<string>();
  reserverFor(host: string, events: Event[]): MarkReserver {
    return {
      serves: () => !this.notServing.has(host),
      reserve: async (_g, name, mark) => {
        await Promise.resolve();
        if (!this.up) throw Object.assign(new Error('no quorum'), { code: 'EMARK_GROUP' });
        const prev = this.table.reserve({ name, mark });
        events.push({ host, op: 'certified', name, mark, prev });
        return { prev, mark };
      },
    };
  }
}

const DEF: SequenceDef = { name: 'orders', id: 1, start: 1n, increment: 1n, cache: 1, markAhead: 100n, origin: 'config', group: 1, replicated: true };

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function host(name: string, group: Group, events: Event[], kernel = new Kernel(name, events)) {
  const dir = mkdtempSync(join(tmpdir(), `xseq-repl-${name}-`));
  dirs.push(dir);
  const svc = new SequenceService(kernel, new MarkStore(dir), undefined, { reserver: group.reserverFor(name, events) });
  return { svc, kernel, dir };
}

/** Takes n dense values on a host, raising the mark whenever the kernel refuses (as the 10 ms tick would). */
async function take(h: ReturnType<typeof host>, n: number): Promise<bigint[]> {
  const out: bigint[] = [];
  let stuck = 0;
  while (out.length < n) {
    const v = h.kernel.take(DEF.id);
    if (v !== 'refused') {
      out.push(v);
      stuck = 0;
      continue;
    }
    await h.svc.raise();
    if (++stuck > 20) throw new Error(`${h.kernel.host}: refused after 20 raises`);
  }
  return out;
}

describe('replicated sequence marks', () => {
  it('a fresh host is refused until the group certifies its first range; then values are dense across raises', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    expect(a.kernel.take(DEF.id)).toBe('refused'); // mark = next: nothing reserved yet
    const vs = await take(a, 450);
    expect(vs).toEqual(Array.from({ length: 450 }, (_, i) => BigInt(i + 1))); // no gap on one host
    expect(g.table.get('orders')).toBeGreaterThan(450n);
  });

  it('every kernel mark above the start is stored only after the group certified it as this host\'s range', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    await take(a, 350);
    let owned = 1n; // the start: an empty range
    for (const e of events) {
      if (e.op === 'certified') {
        // Ours when nobody reserved past our current end (only one host here).
        expect(e.prev).toBeLessThanOrEqual(owned);
        owned = e.mark;
      } else expect(e.mark).toBeLessThanOrEqual(owned);
    }
    expect(events.filter((e) => e.op === 'certified').length).toBeGreaterThan(3);
  });

  it('a replacement host without state starts at the group mark, above every value the lost host handed out; the gap is exactly up to that mark', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    const fromA = await take(a, 230);
    const groupMark = g.table.get('orders');
    // Host a is gone with its disk: host b has a new state directory and kernel.
    const b = host('b', g, events);
    b.svc.load();
    await b.svc.reconcile([DEF]);
    const fromB = await take(b, 300);
    expect(fromB[0]).toBe(groupMark);
    expect(fromB).toEqual(Array.from({ length: 300 }, (_, i) => groupMark + BigInt(i))); // dense after the jump
    expect(Math.max(...fromA.map(Number))).toBeLessThan(Number(fromB[0]));
    expect(b.svc.counters().jumps).toBe(1);
  });

  it('the old host coming back with its data path (adopted) finishes its own range, then jumps past the other host: no value twice', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    const a1 = await take(a, 120);
    const b = host('b', g, events);
    b.svc.load();
    await b.svc.reconcile([DEF]);
    const b1 = await take(b, 250);
    // a's kernel still holds its range: it hands out the rest of it, then must reserve.
    const a2 = await take(a, 200);
    const all = [...a1, ...b1, ...a2];
    expect(new Set(all).size).toBe(all.length);
    expect(a.svc.counters().jumps).toBe(1);
    // b, serving again, is pushed past a's new range in turn.
    const b2 = await take(b, 200);
    const all2 = [...all, ...b2];
    expect(new Set(all2).size).toBe(all2.length);
  });

  it('while the group cannot certify, the kernel keeps refusing at its old mark and the file is not rewritten every tick', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    await take(a, 60);
    g.up = false;
    const mark = a.kernel.read(DEF.id).mark;
    while (a.kernel.take(DEF.id) !== 'refused');
    for (let i = 0; i < 5; i++) expect(await a.svc.raise()).toBe(0);
    expect(a.kernel.read(DEF.id).mark).toBe(mark);
    expect(a.svc.counters().groupErrors).toBe(5);
    g.up = true;
    expect(await a.svc.raise()).toBe(1);
    expect(a.kernel.take(DEF.id)).toBe(mark); // dense: continues at the old mark
  });

  it('a standby that does not stamp the group refuses quietly (no reservation, no error) until it takes over, then starts above the active', async () => {
    const events: Event[] = [];
    const g = new Group();
    const a = host('a', g, events);
    a.svc.load();
    await a.svc.reconcile([DEF]);
    g.notServing.add('b');
    const b = host('b', g, events);
    b.svc.load();
    await b.svc.reconcile([DEF]);
    const fromA = await take(a, 150);
    for (let i = 0; i < 5; i++) expect(await b.svc.raise()).toBe(0);
    expect(b.kernel.take(DEF.id)).toBe('refused');
    expect(b.svc.counters()).toMatchObject({ groupErrors: 0, raises: 0 });
    expect(events.some((e) => e.host === 'b' && e.op === 'certified')).toBe(false);
    g.notServing.delete('b'); // the takeover
    const fromB = await take(b, 50);
    expect(fromB[0]).toBe(g.table.get('orders') - 100n); // the active's last reserved mark, then b's range above it
    expect(Number(fromB[0])).toBeGreaterThan(Math.max(...fromA.map(Number)));
  });
});

describe('GroupMarks (the agent side of a reservation)', () => {
  /** A data path whose program stamps seqs 1, 2, ... and whose slots the test certifies by hand. */
  function fakeDataPath() {
    let seq = 0n;
    const sent: bigint[] = [];
    const slots = new Map<bigint, { replied: boolean; result?: Uint8Array }>();
    /** The previous mark the group certifies a new op with at once (undefined: never). */
    let answer: bigint | undefined;
    const dp = {
      program: {
        testRun: ({ data }: { data: Uint8Array }) => {
          const out = Buffer.from(data);
          seq++;
          out[L4 + 5] = MsgType.SEQUENCED;
          out.writeBigUInt64BE(seq, L4 + 24);
          out.writeUInt32BE(7, L4 + 16);
          slots.set(seq, answer === undefined ? { replied: false } : { replied: true, result: encodeMarkResult(answer) });
          return { retval: 3, data: out, durationNs: 0 };
        },
      },
      slot: (_id: number, s: bigint) => {
        const v = slots.get(s);
        return v ? ({ seq: s, session: 7, replied: v.replied, result: v.result } as unknown as SlotView) : undefined;
      },
      serves: () => true,
    };
    const socket = { send: (b: Uint8Array) => void sent.push(Buffer.from(b).readBigUInt64BE(24)) };
    const certify = (s: bigint, prev: bigint) => slots.set(s, { replied: true, result: encodeMarkResult(prev) });
    return { dp, socket, sent, certify, answerWith: (prev: bigint) => (answer = prev) };
  }
  const L4 = 42;

  it('a reservation not certified in time stays pending: the next raise waits on it instead of sending a second one (which would look foreign)', async () => {
    const f = fakeDataPath();
    const g = new GroupMarks(f.dp, { mac: '02:00:00:00:00:02', addr: '10.0.0.2', port: 7400, socket: f.socket as never, timeoutMs: 30 });
    await expect(g.reserve(1, 'orders', 2001n)).rejects.toMatchObject({ code: 'EMARK_GROUP' });
    expect(f.sent).toEqual([1n]);
    f.certify(1n, 0n); // certified late
    expect(await g.reserve(1, 'orders', 2500n)).toEqual({ prev: 0n, mark: 2001n });
    expect(f.sent).toEqual([1n]); // nothing new was sent
    f.answerWith(2001n);
    expect(await g.reserve(1, 'orders', 2500n)).toEqual({ prev: 2001n, mark: 2500n });
    expect(f.sent).toEqual([1n, 2n]);
    expect(g.counters).toMatchObject({ reserved: 2, failed: 1 });
  });
});

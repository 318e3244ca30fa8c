// The durable mark: file (fsync'ed) first, kernel second. These tests run the
// sequence service over a recording file system and an in-memory kernel
// table; the first two fail if raise() ever stores a mark in the kernel
// before a file holding it is fsync'ed, or stores one when the fsync failed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KernelSequence } from '../bpf/sequences.ts';
import { parseConfig } from '../agent/config.ts';
import { type DurableFs, MARKS_FILE, MarkStore, realFs, type SequenceDef } from '../agent/marks.ts';
import { defOf, type SequenceKernel, SequenceService } from '../agent/sequences.ts';

type Event = { op: 'fsync-file'; marks: Record<string, bigint> } | { op: 'fsync-dir' } | { op: 'rename' } | { op: 'kernel-mark'; id: number; mark: bigint };

class FakeKernel implements SequenceKernel {
  seqs = new Map<number, KernelSequence>();
  names_ = new Map<string, number>();
  constructor(readonly events: Event[]) {}
  read(id: number): KernelSequence {
    return { ...(this.seqs.get(id) ?? { id, next: 0n, mark: 0n, increment: 0n, cache: 0, enabled: false }) };
  }
  names() {
    return new Map(this.names_);
  }
  create(id: number, name: string, v: { next: bigint; mark: bigint; increment: bigint; cache: number }) {
    this.events.push({ op: 'kernel-mark', id, mark: v.mark });
    this.seqs.set(id, { id, ...v, enabled: true });
    this.names_.set(name, id);
  }
  disable(id: number, name?: string) {
    if (name) this.names_.delete(name);
    const s = this.seqs.get(id);
    if (s) s.enabled = false;
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
    this.events.push({ op: 'kernel-mark', id, mark });
    this.seqs.get(id)!.mark = mark;
  }
  stats() {
    return { calls: 0n, values: 0n, refused: 0n };
  }
  /** What the XDP program does for a block of n. */
  take(id: number, n = 1n): bigint | 'refused' {
    const s = this.seqs.get(id)!;
    const span = n * s.increment;
    if (s.next + span > s.mark) return 'refused';
    const first = s.next;
    s.next += span;
    return first;
  }
}

/** Real files, with every durability step recorded, and a switch that makes fsync fail. */
function recordingFs(events: Event[], failFsync: { on: boolean }): DurableFs {
  const paths = new Map<number, string>();
  return {
    ...realFs,
    openSync(p, f) {
      const fd = realFs.openSync(p, f);
      paths.set(fd, p);
      return fd;
    },
    fsyncSync(fd) {
      if (failFsync.on) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      realFs.fsyncSync(fd);
      const p = paths.get(fd)!;
      if (p.endsWith('.tmp')) {
        const doc = JSON.parse(readFileSync(p, 'utf8')) as { sequences: Array<{ name: string; mark: string }> };
        events.push({ op: 'fsync-file', marks: Object.fromEntries(doc.sequences.map((s) => [s.name, BigInt(s.mark)])) });
      } else events.push({ op: 'fsync-dir' });
    },
    renameSync(a, b) {
      realFs.renameSync(a, b);
      events.push({ op: 'rename' });
    },
  };
}

/** Every kernel mark must follow a completed commit (file fsync, rename,
 * dir fsync) whose file holds at least that mark for the sequence. */
function checkOrder(events: Event[], nameOf: (id: number) => string): void {
  let durable: Record<string, bigint> = {};
  let pending: Record<string, bigint> | undefined;
  let renamed = false;
  for (const e of events) {
    if (e.op === 'fsync-file') {
      pending = e.marks;
      renamed = false;
    } else if (e.op === 'rename') renamed = true;
    else if (e.op === 'fsync-dir' && pending && renamed) {
      durable = pending;
      pending = undefined;
    } else if (e.op === 'kernel-mark') {
      const d = durable[nameOf(e.id)];
      expect(d, `kernel mark ${e.mark} of ${nameOf(e.id)} raised before any durable file held it`).toBeDefined();
      expect(d! >= e.mark, `kernel mark ${e.mark} of ${nameOf(e.id)} above the durable ${d}`).toBe(true);
    }
  }
}

const def = (over: Partial<SequenceDef> = {}): SequenceDef => ({ name: 'orders', id: 1, start: 1n, increment: 1n, cache: 1, markAhead: 100n, origin: 'config', ...over });

describe('sequence marks: fsync before raise', () => {
  let dir: string;
  let events: Event[];
  let failFsync: { on: boolean };
  let kernel: FakeKernel;
  let svc: SequenceService;
  const names = (id: number) => ({ 1: 'orders', 2: 'events' })[id] ?? '?';

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xseq-marks-'));
    events = [];
    failFsync = { on: false };
    kernel = new FakeKernel(events);
    svc = new SequenceService(kernel, new MarkStore(dir, recordingFs(events, failFsync)));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('every kernel mark, at start and on every raise, follows an fsync of a file holding it', async () => {
    await svc.reconcile([def(), def({ name: 'events', id: 2, cache: 10, markAhead: 1000n })]);
    expect(kernel.read(1)).toMatchObject({ next: 1n, mark: 101n, enabled: true });
    let raised = 0;
    for (let i = 0; i < 1000; i++) {
      const v = kernel.take(1);
      expect(v).not.toBe('refused');
      kernel.take(2, 10n);
      raised += await svc.raise();
    }
    expect(raised).toBeGreaterThan(10);
    checkOrder(events, names);
    expect(events.filter((e) => e.op === 'kernel-mark').length).toBeGreaterThan(10);
  });

  it('a failed fsync leaves the kernel mark where it was: the kernel refuses at it, nothing is handed out beyond the file', async () => {
    await svc.reconcile([def()]);
    for (let i = 0; i < 60; i++) kernel.take(1); // next 61: within half of markAhead of 101
    failFsync.on = true;
    expect(await svc.raise()).toBe(0);
    expect(kernel.read(1).mark).toBe(101n);
    expect(svc.counters().raiseErrors).toBe(1);
    let refused = 0;
    for (let i = 0; i < 100; i++) if (kernel.take(1) === 'refused') refused++;
    expect(refused).toBe(60); // 61..100 went out, below the durable 101
    const file = JSON.parse(readFileSync(join(dir, MARKS_FILE), 'utf8')) as { sequences: Array<{ mark: string }> };
    expect(BigInt(file.sequences[0]!.mark)).toBe(101n);
    failFsync.on = false;
    expect(await svc.raise()).toBe(1);
    expect(kernel.take(1)).toBe(101n);
    checkOrder(events, names);
  });

  it('a new data path (reboot, --replace) continues at the durable mark, above every value handed out', async () => {
    await svc.reconcile([def()]);
    const given: bigint[] = [];
    for (let i = 0; i < 70; i++) given.push(kernel.take(1) as bigint);
    await svc.raise();
    const mark = kernel.read(1).mark;
    // Power cut: the kernel is gone; a new one starts from the file.
    const k2 = new FakeKernel([]);
    const svc2 = new SequenceService(k2, new MarkStore(dir).load());
    await svc2.reconcile([def()]);
    expect(k2.read(1).next).toBe(mark);
    expect(k2.take(1)).toBe(mark);
    expect(Math.max(...given.map(Number))).toBeLessThan(Number(mark));
  });

  it('an adopted data path (agent restart) keeps the kernel counter: no gap', async () => {
    await svc.reconcile([def()]);
    for (let i = 0; i < 30; i++) kernel.take(1);
    const svc2 = new SequenceService(kernel, new MarkStore(dir, recordingFs(events, failFsync)).load());
    await svc2.reconcile([def()]);
    expect(kernel.take(1)).toBe(31n);
    checkOrder(events, names);
  });

  it('create, setval and drop at run time; taken names and ids and unknown names are refused with ESEQUENCE', async () => {
    await svc.reconcile([def()]);
    const s = await svc.create(def({ name: 'invoices', id: 7, start: 1000n, origin: 'runtime' }));
    expect(s).toMatchObject({ name: 'invoices', next: '1000', lastValue: null, durableMark: '1100' });
    await expect(svc.create(def({ name: 'invoices', id: 8 }))).rejects.toMatchObject({ code: 'ESEQUENCE', message: /exists/ });
    await expect(svc.create(def({ name: 'x', id: 7 }))).rejects.toMatchObject({ code: 'ESEQUENCE', message: /id 7 is used by "invoices"/ });
    await expect(svc.create(def({ name: 'bad name', id: 9 }))).rejects.toMatchObject({ code: 'ESEQUENCE', message: /^name "bad name"/ });
    await expect(svc.create(def({ name: 'y', id: 9, cache: 0 }))).rejects.toMatchObject({ message: /^cache 0/ });
    expect(kernel.take(7)).toBe(1000n);
    const after = await svc.setval('invoices', 5000n);
    expect(after).toMatchObject({ next: '5001', durableMark: '5101' });
    expect(kernel.take(7)).toBe(5001n);
    await svc.drop('invoices');
    expect(kernel.names().has('invoices')).toBe(false);
    await expect(svc.drop('invoices')).rejects.toMatchObject({ message: /no sequence "invoices"/ });
    await expect(svc.setval('nosuch', 1n)).rejects.toMatchObject({ message: /no sequence/ });
    checkOrder(events, (id) => ({ 1: 'orders', 7: 'invoices' })[id] ?? '?');
  });

  it('a run-time sequence survives a restart; a config sequence removed from the config is dropped', async () => {
    await svc.reconcile([def(), def({ name: 'events', id: 2 })]);
    await svc.create(def({ name: 'invoices', id: 7, origin: 'runtime' }));
    const svc2 = new SequenceService(kernel, new MarkStore(dir).load());
    await svc2.reconcile([def()]);
    expect([...kernel.names().keys()].sort()).toEqual(['invoices', 'orders']);
    expect(svc2.status().map((s) => s.name).sort()).toEqual(['invoices', 'orders']);
  });

  it('a sequence whose id changed in the config continues above its durable mark (the name is its identity)', async () => {
    await svc.reconcile([def()]);
    for (let i = 0; i < 40; i++) kernel.take(1);
    const mark = kernel.read(1).mark;
    const svc2 = new SequenceService(kernel, new MarkStore(dir, recordingFs(events, failFsync)).load());
    await svc2.reconcile([def({ id: 5 })]);
    expect(kernel.names().get('orders')).toBe(5);
    expect(kernel.take(5)).toBe(mark);
    checkOrder(events, (id) => (id === 1 || id === 5 ? 'orders' : '?'));
  });

  it('marks stop at 2^63-1: the kernel then refuses rather than wrap', async () => {
    const top = (1n << 63n) - 1n;
    await svc.reconcile([def({ start: (1n << 61n), markAhead: 1n << 62n })]);
    expect(kernel.read(1).mark).toBe((1n << 61n) + (1n << 62n));
    kernel.seqs.get(1)!.next = top - 10n;
    await svc.raise();
    expect(kernel.read(1).mark).toBe(top);
  });

  it('a damaged marks file stops the agent (ESTATE) rather than guess a mark', () => {
    writeFileSync(join(dir, MARKS_FILE), '{"version":1,"sequences":[{"name":"orders","mark":"x"');
    expect(() => new MarkStore(dir).load()).toThrow(expect.objectContaining({ code: 'ESTATE', message: expect.stringMatching(/damaged/) }));
  });
});

describe('sequences in the agent config', () => {
  const base = { interface: 'eth1', groups: [{ id: 1, multicast: '239.7.7.1:7500' }] };
  const issues = (raw: unknown) => {
    try {
      parseConfig(raw, 'test');
      return [];
    } catch (e) {
      return (e as { issues: Array<{ path: string; message: string }> }).issues.map((i) => `${i.path}: ${i.message}`);
    }
  };

  it('defaults: start 1, increment 1, cache 1, the mark 262144 blocks ahead', () => {
    const c = parseConfig({ ...base, sequences: [{ name: 'orders', id: 1 }, { name: 'ev', id: 2, cache: 64 }] }, 'test');
    expect(c.sequences[0]).toEqual({ name: 'orders', id: 1, start: 1, increment: 1, cache: 1, replicated: false });
    expect(defOf(c.sequences[1]!)).toMatchObject({ cache: 64, markAhead: 262144n * 64n, origin: 'config' });
    expect(c.sequenceControl.listen).toBe('127.0.0.1:9465');
  });

  it.each([
    [{ name: 'has space', id: 1 }, /^sequences\[0\]\.name: must be 1\.\.32 characters/],
    [{ name: 'a', id: 1024 }, /^sequences\[0\]\.id: must be at most 1023/],
    [{ name: 'a', id: 1, cache: 0 }, /^sequences\[0\]\.cache: must be at least 1/],
    [{ name: 'a', id: 1, cache: 2 ** 21 }, /^sequences\[0\]\.cache: must be at most 1048576 \(values per block\)/],
    [{ name: 'a', id: 1, increment: 0 }, /^sequences\[0\]\.increment: must be at least 1/],
    [{ name: 'a', id: 1, start: -1 }, /^sequences\[0\]\.start: must be at least 0/],
    [{ name: 'a', id: 1, cache: 10, markAhead: 5 }, /^sequences\[0\]\.markAhead: must be at least one block/],
    [{ name: 'a', id: 1, colour: 'red' }, /^sequences\[0\]\.colour: is not a known setting/],
    [{ name: 'a', id: 1, group: 9 }, /^sequences\[0\]\.group: 9 is not a configured group \(groups: 1\)/],
    [{ name: 'a', id: 1, replicated: true }, /^sequences\[0\]\.replicated: needs group/],
    [{ name: 'a', id: 1, group: 1, replicated: true }, /^sequences\[0\]\.replicated: group 1 has no members/],
    [{ name: 'a', id: 1, replicated: 'yes' }, /^sequences\[0\]\.replicated: must be true or false/],
  ])('%j is reported with its field', (q, want) => {
    const got = issues({ ...base, sequences: [q] });
    expect(got.some((g) => want.test(g)), JSON.stringify(got)).toBe(true);
  });

  it('a name or id used twice is reported at the second one', () => {
    const got = issues({ ...base, sequences: [{ name: 'a', id: 1 }, { name: 'a', id: 1 }] });
    expect(got).toEqual(expect.arrayContaining(['sequences[1].name: "a" is also sequences[0]', 'sequences[1].id: 1 is also the id of sequences[0]']));
  });
});

// The sequence service of the agent: keeps each sequence's durable mark
// ahead of its counter (file first, fsync, then the kernel: agent/marks.ts),
// and creates, drops and sets sequences at start (from the config and the
// marks file) and at run time.
//
// Power-cut reasoning, the one rule: a mark is stored in the kernel only
// after MarkStore.commit() returned for a file holding a mark at least as
// high. So the file's mark is always >= the kernel's, which bounds every
// value handed out; a data path created from the file starts at its mark.
import type { KernelSequence } from '../bpf/sequences.ts';
import { NV_NAME_RE, NV_VALUE_MAX, XSEQ_NV_MAX_COUNT, XSEQ_NV_MAX_SEQS } from '../bpf/nextval.ts';
import { AgentError } from './errors.ts';
import type { Log } from './log.ts';
import type { MarkStore, SequenceDef, SequenceRecord } from './marks.ts';
import { type MarkReserver, raiseReplicated } from './replicated-raise.ts';

/** What the service needs of the kernel table (bpf/sequences.ts). */
export interface SequenceKernel {
  read(id: number): KernelSequence;
  names(): Map<string, number>;
  create(id: number, name: string, v: { next: bigint; mark: bigint; increment: bigint; cache: number; keyedGroup?: number | undefined }): void;
  disable(id: number, name?: string): void;
  enable(id: number): void;
  setNext(id: number, next: bigint): void;
  forget(id: number): void;
  setMark(id: number, mark: bigint): void;
  stats(id: number): { calls: bigint; values: bigint; refused: bigint };
}

/** Blocks of `cache` values the mark runs ahead by default. */
export const DEFAULT_AHEAD_BLOCKS = 262_144n;
/** How often the agent checks how close each counter is to its mark. */
export const DEFAULT_MARK_TICK_MS = 10;
/** A NEXTVAL runs for microseconds; after this a disabled sequence has
 * none in flight (the XDP program runs under RCU, never sleeps). */
const QUIESCE_MS = 20;

/** Marks stop at the largest value: the kernel then refuses instead of wrapping. */
function capped(mark: bigint): bigint {
  return mark > NV_VALUE_MAX ? NV_VALUE_MAX : mark;
}

export function defaultAhead(cache: number, increment: bigint): bigint {
  return DEFAULT_AHEAD_BLOCKS * BigInt(cache) * increment;
}

/** A configured sequence (agent/config.ts) as the service's definition. */
export function defOf(q: { name: string; id: number; start: number; increment: number; cache: number; markAhead?: number | undefined; group?: number | undefined; replicated?: boolean | undefined }): SequenceDef {
  const increment = BigInt(q.increment);
  return {
    name: q.name,
    id: q.id,
    start: BigInt(q.start),
    increment,
    cache: q.cache,
    markAhead: q.markAhead !== undefined ? BigInt(q.markAhead) : defaultAhead(q.cache, increment),
    origin: 'config',
    ...(q.group !== undefined ? { group: q.group } : {}),
    ...(q.replicated ? { replicated: true } : {}),
  };
}

export interface SequenceServiceOptions {
  /** Whether group `id` has a key: its sequences then answer only NEXTVALs MAC'd under it. */
  keyed?: (group: number) => boolean;
  /** The configured group ids: a sequence may only belong to one of them. */
  groups?: ReadonlySet<number>;
  /** Reserves marks of replicated sequences through their group (agent/group-marks.ts). */
  reserver?: MarkReserver;
}

/** How often a failing group reservation is logged at most. */
const GROUP_ERROR_LOG_MS = 5000;

export interface SequenceStatus {
  name: string;
  id: number;
  start: string;
  increment: string;
  cache: number;
  origin: 'config' | 'runtime';
  /** Next value the kernel hands out. */
  next: string;
  /** Last value handed out (null before the first). */
  lastValue: string | null;
  /** The kernel's mark and the file's (file >= kernel, always). */
  mark: string;
  durableMark: string;
  calls: string;
  values: string;
  refused: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fail(message: string): never {
  throw new AgentError('ESEQUENCE', message);
}

/** Checks a definition; the messages name the field. */
export function checkDef(d: SequenceDef): void {
  if (!NV_NAME_RE.test(d.name)) fail(`name "${d.name}": 1..32 characters of A-Z a-z 0-9 _ . -`);
  if (!Number.isInteger(d.id) || d.id < 0 || d.id >= XSEQ_NV_MAX_SEQS) fail(`id ${d.id}: must be 0..${XSEQ_NV_MAX_SEQS - 1}`);
  if (d.increment < 1n || d.increment > 0x7fffffffn) fail(`increment ${d.increment}: must be 1..2147483647`);
  if (!Number.isInteger(d.cache) || d.cache < 1 || d.cache > XSEQ_NV_MAX_COUNT) fail(`cache ${d.cache}: must be 1..${XSEQ_NV_MAX_COUNT}`);
  if (d.start < 0n || d.start >= NV_VALUE_MAX / 2n) fail(`start ${d.start}: must be 0..${NV_VALUE_MAX / 2n - 1n}`);
  if (d.markAhead < BigInt(d.cache) * d.increment) fail(`markAhead ${d.markAhead}: must be at least one block (cache x increment = ${BigInt(d.cache) * d.increment})`);
}

export class SequenceService {
  readonly #k: SequenceKernel;
  readonly #store: MarkStore;
  readonly #log: Log | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** One change at a time: create/drop/setval/raise never interleave. */
  #busy: Promise<unknown> = Promise.resolve();
  #raises = 0;
  #raiseErrors = 0;
  readonly #keyed: (group: number) => boolean;
  readonly #groups: ReadonlySet<number> | undefined;
  #reserver: MarkReserver | undefined;
  #raising = false;
  #groupErrors = 0;
  #groupErrorLoggedAt = -Infinity;
  #jumps = 0;

  constructor(kernel: SequenceKernel, store: MarkStore, log?: Log, opts: SequenceServiceOptions = {}) {
    this.#k = kernel;
    this.#store = store;
    this.#log = log;
    this.#keyed = opts.keyed ?? (() => false);
    this.#groups = opts.groups;
    this.#reserver = opts.reserver;
  }

  /** The group reservations, once the data path can send them (before reconcile). */
  setReserver(r: MarkReserver): void {
    this.#reserver = r;
  }

  /** The keyed group a sequence's NEXTVALs need a MAC of (undefined: none). */
  #keyedGroup(d: SequenceDef): number | undefined {
    return d.group !== undefined && this.#keyed(d.group) ? d.group : undefined;
  }

  /** Reads the marks file (throws ESTATE when it is damaged). */
  load(): void {
    this.#store.load();
  }

  /** Serializes an operation after every earlier one. */
  #serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const p = this.#busy.then(fn);
    this.#busy = p.catch(() => undefined);
    return p;
  }

  /**
   * At start: the configured sequences, plus the run-time ones of the
   * file, are made to exist in the kernel; the rest are dropped. A
   * sequence the kernel still has (adopted data path) keeps its counter;
   * one it lacks (new data path: reboot, --replace, re-created interface)
   * starts at the file's mark, above everything ever handed out.
   */
  async reconcile(configured: readonly SequenceDef[]): Promise<void> {
    return this.#serial(async () => {
      const want = new Map<string, SequenceDef>();
      for (const r of this.#store.all()) if (r.origin === 'runtime') want.set(r.name, r);
      for (const d of configured) want.set(d.name, d);
      const ids = new Map<number, string>();
      for (const d of want.values()) {
        checkDef(d);
        const other = ids.get(d.id);
        if (other !== undefined) fail(`id ${d.id} is used by "${other}" and "${d.name}"`);
        ids.set(d.id, d.name);
      }
      const inKernel = this.#k.names();
      // Gone from the config (or dropped while the agent was away).
      const dropped = [...inKernel].filter(([name, id]) => want.get(name)?.id !== id);
      for (const [name, id] of dropped) this.#k.disable(id, name);
      if (dropped.length) await sleep(QUIESCE_MS);
      for (const [, id] of dropped) this.#k.forget(id);
      const plan = [...want.values()].map((d) => {
        // The name is what clients know: a record of it (even under another
        // id, or another start) bounds every value it ever handed out.
        const fromFile = this.#store.get(d.name);
        const adopted = inKernel.get(d.name) === d.id ? this.#k.read(d.id) : undefined;
        const next = adopted ? adopted.next : fromFile ? fromFile.mark : d.start;
        // Never below the kernel's current mark: the file must stay >= it.
        const ahead = capped(next + d.markAhead);
        const mark = adopted && adopted.mark > ahead ? adopted.mark : ahead;
        const recreate = !adopted || !adopted.enabled || adopted.increment !== d.increment || adopted.cache !== d.cache || adopted.keyedGroup !== this.#keyedGroup(d);
        // Replicated: the kernel gets only a range the group certified as
        // ours (replicated-raise.ts). An adopted data path's range is; a new
        // one starts empty (mark = next: refused until the first raise).
        const kernelMark = d.replicated ? (adopted ? adopted.mark : next) : mark;
        return { rec: { ...d, mark } as SequenceRecord, next, adopted: adopted !== undefined, recreate, kernelMark };
      });
      const remove = this.#store.all().filter((r) => !want.has(r.name)).map((r) => r.name);
      this.#store.commit(
        plan.map((p) => p.rec),
        remove,
      ); // durable first ...
      for (const p of plan) {
        const r = p.rec;
        if (!p.recreate) {
          if (!r.replicated) this.#k.setMark(r.id, r.mark); // ... then the kernel
          continue;
        }
        let next = p.next;
        if (p.adopted) {
          // Changed increment or cache: stop it, let in-flight calls end,
          // continue from where the counter is now (still below r.mark).
          this.#k.disable(r.id);
          await sleep(QUIESCE_MS);
          next = this.#k.read(r.id).next;
        }
        this.#k.create(r.id, r.name, { next, mark: p.kernelMark < next ? next : p.kernelMark, increment: r.increment, cache: r.cache, keyedGroup: this.#keyedGroup(r) });
      }
      const records = plan.map((p) => p.rec);
      this.#log?.info(
        { event: 'sequences', sequences: records.map((r) => ({ name: r.name, id: r.id, next: this.#k.read(r.id).next.toString(), mark: r.mark.toString() })), dropped: dropped.map(([n]) => n) },
        `${records.length} sequences ready${dropped.length ? `, ${dropped.length} dropped` : ''}`,
      );
    });
  }

  /**
   * Raises every mark whose counter came within half of markAhead: one
   * fsync'ed file write for all of them, then the kernel stores. Returns
   * how many were raised.
   */
  raise(): Promise<number> {
    return this.#serial(async () => {
      const due: SequenceRecord[] = [];
      const stored = new Map<string, bigint>();
      for (const r of this.#store.all()) {
        const k = this.#k.read(r.id);
        if (!k.enabled) continue;
        // A standby waiting for its group: refused until it takes over.
        if (r.replicated && this.#reserver && !this.#reserver.serves(r.group!)) continue;
        const want = capped(k.next + r.markAhead);
        const target = want > r.mark ? want : r.mark;
        stored.set(r.name, r.mark);
        if (k.mark - k.next < r.markAhead / 2n && target > k.mark) due.push({ ...r, mark: target });
      }
      if (!due.length) return 0;
      // A replicated target may already be in the file (its reservation failed last tick).
      const grown = due.filter((r) => r.mark > stored.get(r.name)!);
      try {
        if (grown.length) this.#store.commit(grown); // durable first ...
      } catch (e) {
        this.#raiseErrors++;
        this.#log?.error({ event: 'mark', code: 'ESTATE', err: (e as Error).message }, 'could not make the sequence marks durable: the kernel keeps the old marks and refuses at them');
        return 0;
      }
      let raised = 0;
      for (const r of due) {
        if (!r.replicated) {
          this.#k.setMark(r.id, r.mark); // ... then the kernel
          raised++;
          continue;
        }
        // ... then the group, then the kernel.
        try {
          if (!this.#reserver) throw new Error('no group reservations on this agent');
          const out = await raiseReplicated(this.#k, this.#reserver, r, (rec) => this.#store.commit([rec]), capped, this.#log);
          if (out.jumpedTo !== undefined) this.#jumps++;
          raised++;
        } catch (e) {
          this.#groupErrors++;
          if (performance.now() - this.#groupErrorLoggedAt >= GROUP_ERROR_LOG_MS) {
            this.#groupErrorLoggedAt = performance.now();
            this.#log?.warn(
              { event: 'mark', code: (e as { code?: string }).code ?? 'EMARK_GROUP', sequence: r.name, group: r.group, errors: this.#groupErrors, err: (e as Error).message },
              `sequence ${r.name}: the mark is not raised until group ${r.group} certifies it; the kernel refuses at ${this.#k.read(r.id).mark}: ${(e as Error).message}`,
            );
          }
        }
      }
      this.#raises += raised;
      return raised;
    });
  }

  start(tickMs = DEFAULT_MARK_TICK_MS): void {
    // One raise at a time: a group reservation can take a while, and ticks
    // queued behind it would only repeat it.
    this.#timer = setInterval(() => {
      if (this.#raising) return;
      this.#raising = true;
      void this.raise().finally(() => (this.#raising = false));
    }, tickMs);
  }

  stop(): Promise<unknown> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    return this.#busy;
  }

  create(d: SequenceDef): Promise<SequenceStatus> {
    return this.#serial(() => {
      checkDef(d);
      if (d.group !== undefined && this.#groups && !this.#groups.has(d.group)) fail(`group ${d.group}: not a configured group`);
      if (d.replicated) fail('replicated: only sequences of the config file replicate their mark');
      if (this.#store.get(d.name)) fail(`name "${d.name}" exists: drop it first`);
      const taken = this.#store.all().find((r) => r.id === d.id);
      if (taken) fail(`id ${d.id} is used by "${taken.name}"`);
      const rec: SequenceRecord = { ...d, mark: capped(d.start + d.markAhead) };
      this.#store.commit([rec]);
      this.#k.create(d.id, d.name, { next: d.start, mark: rec.mark, increment: d.increment, cache: d.cache, keyedGroup: this.#keyedGroup(d) });
      this.#log?.info({ event: 'sequence', op: 'create', name: d.name, id: d.id }, `sequence ${d.name} created`);
      return this.#statusOf(rec);
    });
  }

  drop(name: string): Promise<void> {
    return this.#serial(async () => {
      const r = this.#store.get(name) ?? fail(`no sequence "${name}"`);
      this.#k.disable(r.id, r.name);
      await sleep(QUIESCE_MS);
      this.#k.forget(r.id);
      this.#store.commit([], [name]);
      this.#log?.info({ event: 'sequence', op: 'drop', name, id: r.id }, `sequence ${name} dropped`);
    });
  }

  /** As PostgreSQL's setval(name, value): the next value handed out is
   * value + increment. Going back makes values repeat: the caller's call. */
  setval(name: string, value: bigint): Promise<SequenceStatus> {
    return this.#serial(async () => {
      const r = this.#store.get(name) ?? fail(`no sequence "${name}"`);
      const next = value + r.increment;
      if (value < 0n || next + r.markAhead > NV_VALUE_MAX) fail(`value ${value}: must be 0..${NV_VALUE_MAX - r.markAhead - r.increment}`);
      this.#k.disable(r.id);
      await sleep(QUIESCE_MS);
      const rec = { ...r, mark: next + r.markAhead };
      try {
        this.#store.commit([rec]);
      } catch (e) {
        this.#k.enable(r.id);
        throw e;
      }
      this.#k.setNext(r.id, next);
      // Replicated: refused until the group certifies a range from here (a
      // value below the group's mark continues above it instead).
      this.#k.setMark(r.id, r.replicated ? next : rec.mark);
      this.#k.enable(r.id);
      this.#log?.info({ event: 'sequence', op: 'setval', name, value: value.toString() }, `sequence ${name} set: next value ${next}`);
      return this.#statusOf(rec);
    });
  }

  #statusOf(r: SequenceRecord): SequenceStatus {
    const k = this.#k.read(r.id);
    const s = this.#k.stats(r.id);
    return {
      name: r.name,
      id: r.id,
      start: r.start.toString(),
      increment: r.increment.toString(),
      cache: r.cache,
      origin: r.origin,
      next: k.next.toString(),
      lastValue: k.next > r.start ? (k.next - r.increment).toString() : null,
      mark: k.mark.toString(),
      durableMark: r.mark.toString(),
      calls: s.calls.toString(),
      values: s.values.toString(),
      refused: s.refused.toString(),
    };
  }

  status(): SequenceStatus[] {
    return this.#store.all().map((r) => this.#statusOf(r));
  }

  counters(): { raises: number; raiseErrors: number; groupErrors: number; jumps: number } {
    return { raises: this.#raises, raiseErrors: this.#raiseErrors, groupErrors: this.#groupErrors, jumps: this.#jumps };
  }
}

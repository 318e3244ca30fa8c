// The durable marks of the sequences: <stateDir>/sequences.json. The kernel
// hands out only values below a sequence's mark, and the agent raises that
// mark in the kernel only AFTER the file holding it is on disk: written to a
// temporary file, fsync'ed, renamed over the old one, and the directory
// fsync'ed. After any crash (agent, host, power) the file's mark is above
// every value ever handed out, so a new data path starts there.
//
// The file also keeps each sequence's definition, so sequences created at
// run time (not in the config) survive restarts.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from './errors.ts';

export const MARKS_FILE = 'sequences.json';

export interface SequenceDef {
  name: string;
  id: number;
  start: bigint;
  increment: bigint;
  cache: number;
  /** Values the mark is kept ahead of the counter (a crash gaps at most this many). */
  markAhead: bigint;
  /** Where it came from: the config file, or a create through the agent. */
  origin: 'config' | 'runtime';
  /** The group it belongs to: its key authenticates NEXTVAL (docs/authentication.md). */
  group?: number | undefined;
  /** The mark is committed through the group's total order before it is raised. */
  replicated?: boolean | undefined;
}

export interface SequenceRecord extends SequenceDef {
  /** Durable mark: every value handed out is below it. */
  mark: bigint;
}

/** The file-system calls the store makes, in the order that makes it durable.
 * Tests substitute them to record that order or to fail one. */
export interface DurableFs {
  openSync(path: string, flags: string): number;
  writeSync(fd: number, data: string): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  readFileSync(path: string, enc: 'utf8'): string;
}

export const realFs: DurableFs = {
  openSync: (p, f) => openSync(p, f),
  writeSync: (fd, d) => writeSync(fd, d),
  fsyncSync: (fd) => fsyncSync(fd),
  closeSync: (fd) => closeSync(fd),
  renameSync: (a, b) => renameSync(a, b),
  readFileSync: (p, e) => readFileSync(p, e),
};

interface FileShape {
  version: 1;
  sequences: Array<Partial<Record<keyof SequenceRecord, string | number | boolean>>>;
}

export class MarkStore {
  readonly path: string;
  readonly #dir: string;
  readonly #fs: DurableFs;
  #records = new Map<string, SequenceRecord>();

  constructor(stateDir: string, fs: DurableFs = realFs) {
    this.#dir = stateDir;
    this.path = join(stateDir, MARKS_FILE);
    this.#fs = fs;
  }

  /** Reads the file; a missing file is an empty store. */
  load(): this {
    let text: string;
    try {
      text = this.#fs.readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return this;
      throw new AgentError('ESTATE', `cannot read ${this.path}: ${(e as Error).message}`);
    }
    try {
      const doc = JSON.parse(text) as FileShape;
      if (doc.version !== 1 || !Array.isArray(doc.sequences)) throw new Error('not a version 1 sequences file');
      for (const r of doc.sequences) {
        const rec: SequenceRecord = {
          name: String(r.name),
          id: Number(r.id),
          start: BigInt(r.start as string),
          increment: BigInt(r.increment as string),
          cache: Number(r.cache),
          markAhead: BigInt(r.markAhead as string),
          origin: r.origin === 'runtime' ? 'runtime' : 'config',
          mark: BigInt(r.mark as string),
          ...(r.group !== undefined ? { group: Number(r.group) } : {}),
          ...(r.replicated === true ? { replicated: true } : {}),
        };
        this.#records.set(rec.name, rec);
      }
    } catch (e) {
      // Refusing to start is the only safe answer: guessing a mark could
      // hand out a value twice.
      throw new AgentError('ESTATE', `${this.path} is damaged (${(e as Error).message}); it holds the durable marks of the sequences: restore it, or remove it only if every sequence may restart from its start value`);
    }
    return this;
  }

  get(name: string): SequenceRecord | undefined {
    const r = this.#records.get(name);
    return r && { ...r };
  }

  all(): SequenceRecord[] {
    return [...this.#records.values()].map((r) => ({ ...r }));
  }

  /**
   * Replaces the records (`set`) and removes names (`remove`), then makes
   * the file durable. Returns only once fsync of the file and of its
   * directory succeeded; throws otherwise, and the in-memory records stay
   * as they were, so a caller that raises a kernel mark after this call
   * never raises one that is not on disk.
   */
  commit(set: readonly SequenceRecord[], remove: readonly string[] = []): void {
    const next = new Map(this.#records);
    for (const n of remove) next.delete(n);
    for (const r of set) next.set(r.name, { ...r });
    const doc: FileShape = {
      version: 1,
      sequences: [...next.values()].map((r) => ({
        name: r.name,
        id: r.id,
        start: r.start.toString(),
        increment: r.increment.toString(),
        cache: r.cache,
        markAhead: r.markAhead.toString(),
        origin: r.origin,
        mark: r.mark.toString(),
        ...(r.group !== undefined ? { group: r.group } : {}),
        ...(r.replicated ? { replicated: true } : {}),
      })),
    };
    const tmp = `${this.path}.tmp`;
    const fd = this.#fs.openSync(tmp, 'w');
    try {
      this.#fs.writeSync(fd, `${JSON.stringify(doc, null, 1)}\n`);
      this.#fs.fsyncSync(fd);
    } finally {
      this.#fs.closeSync(fd);
    }
    this.#fs.renameSync(tmp, this.path);
    const dfd = this.#fs.openSync(this.#dir, 'r');
    try {
      this.#fs.fsyncSync(dfd);
    } finally {
      this.#fs.closeSync(dfd);
    }
    this.#records = next;
  }
}

// The KV replica's log dump (SIGUSR2, examples/kv/committed-log.ts
// writeDump): the same JSON as the one-piece dump, written whole or not at
// all, and in chunks that give the event loop back between them, so a
// replica with a long log keeps answering its peers and the sequencer while
// it dumps (a leader that blocked for the whole dump was timed out by its
// followers). Structural, not timed: the test counts turns of the event
// loop that ran while the dump was in progress.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CommittedLog, DUMP_CHUNK } from '../examples/kv/committed-log.ts';
import type { LogEntry, Replica } from '../replica/index.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Just what CommittedLog reads of a replica: a log of n committed entries. */
function fakeReplica(n: number) {
  const entries = new Map<number, LogEntry>();
  for (let s = 1; s <= n; s++) {
    entries.set(s, { slot: s, session: 3, seq: s, noop: s % 97 === 0, clientId: BigInt(s % 7), requestId: BigInt(s), op: Buffer.from(`put k${s % 128} v${s}`) });
  }
  const r = { id: 1, committed: n, exec: { executed: n }, view: { leaderNum: 0, session: 3 }, status: 'normal', log: { firstSlot: 1, lastSlot: n, get: (s: number) => entries.get(s) } };
  return r as unknown as Replica & { committed: number };
}

describe('the committed log dump', () => {
  it('streams the same JSON as the one-piece dump, yielding to the event loop between chunks', async () => {
    const n = 10 * DUMP_CHUNK + 123;
    const r = fakeReplica(n);
    const log = new CommittedLog(r);
    log.catchUp();
    const dir = mkdtempSync(join(tmpdir(), 'xseq-dump-'));
    dirs.push(dir);
    const path = join(dir, 'log.json');

    let done = false;
    let chunks = 0;
    let turnsDuring = 0;
    const writing = log.writeDump(path, 'digest-1', () => chunks++).then((d) => {
      done = true;
      return d;
    });
    // Other work (a replica's sockets and timers) gets turns meanwhile.
    while (!done) {
      await yieldLoop();
      if (!done) turnsDuring++;
    }
    const d = await writing;
    expect(d).toEqual({ committed: n, executed: n, entries: n, gaps: 0 });
    expect(chunks).toBe(Math.ceil(n / DUMP_CHUNK));
    expect(turnsDuring).toBeGreaterThanOrEqual(chunks);
    expect(readFileSync(path, 'utf8')).toBe(JSON.stringify(log.dump('digest-1')));
    expect(readdirSync(dir)).toEqual(['log.json']); // no temp file left
  });

  it('is the log of the moment it started: entries committed meanwhile wait for the next dump', async () => {
    const r = fakeReplica(3 * DUMP_CHUNK);
    (r as { committed: number }).committed = 2 * DUMP_CHUNK;
    const log = new CommittedLog(r);
    log.catchUp();
    const dir = mkdtempSync(join(tmpdir(), 'xseq-dump-'));
    dirs.push(dir);
    const path = join(dir, 'log.json');
    const writing = log.writeDump(path, 'd', () => {
      (r as { committed: number }).committed = 3 * DUMP_CHUNK;
      log.catchUp();
    });
    expect(await writing).toMatchObject({ committed: 2 * DUMP_CHUNK, entries: 2 * DUMP_CHUNK });
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { committed: number; entries: unknown[] };
    expect(parsed.committed).toBe(2 * DUMP_CHUNK);
    expect(parsed.entries).toHaveLength(2 * DUMP_CHUNK);
  });
});

// The committed log as this replica saw it, for the debug dump: the
// replica itself keeps only about two sync intervals of log (checkpoints
// replace the rest), so the entries are copied out as they commit. Run
// catchUp() after every event: a commit drops entries only up to the
// previous checkpoint, so nothing committed is truncated before it is seen.
//
// Slots the replica never held in its log are recorded as gaps: a replica
// that recovered by state transfer (or installed a newer checkpoint in a
// view change) has the state of those slots, not their entries.
//
// writeDump() streams it to a file in chunks, yielding to the event loop
// between them: a replica with 100k+ entries must go on answering its
// peers and the sequencer while it dumps, or its followers time it out.
import { open, rename, rm } from 'node:fs/promises';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { LogEntry, Replica } from '../../replica/index.ts';

/** Entries serialized per turn of the event loop. */
export const DUMP_CHUNK = 2_000;

export interface DumpedEntry {
  slot: number;
  session: number;
  seq: number;
  noop: boolean;
  clientId: string;
  requestId: string;
  op: string;
  /** Hydra: the sequencer whose stream the entry merged from, and its effective clock (ns). */
  sequencerId?: number;
  clock?: number;
  /** Hydra: the stamping sequencer's own session and seq (a rejoined sequencer has several sessions), and whether the replicas ended that session here. */
  streamSession?: number;
  streamSeq?: number;
  end?: true;
  /** Hydra: a group control op (op = its encoding, replica/hydra.ts), not a KV op. */
  control?: true;
}

export interface CommittedLogDump {
  replicaId: number;
  /** Commit point and executed point when dumped. */
  committed: number;
  executed: number;
  view: { leaderNum: number; session: number };
  status: string;
  /** Slot ranges committed here without the entries (state transfer). */
  gaps: { from: number; to: number }[];
  /** Committed slots whose entry later read differently: must stay 0. */
  conflicts: number;
  /** Application state digest after `executed`. */
  stateDigest: string;
  entries: DumpedEntry[];
}

export class CommittedLog {
  private readonly entries: LogEntry[] = [];
  private readonly gaps: { from: number; to: number }[] = [];
  private recorded = 0;
  private conflicts = 0;

  constructor(private readonly replica: Replica) {}

  catchUp(): void {
    const r = this.replica;
    const first = r.log.firstSlot;
    if (r.committed <= this.recorded) return;
    if (first > this.recorded + 1) {
      const to = Math.min(first - 1, r.committed);
      this.gaps.push({ from: this.recorded + 1, to });
      this.recorded = to;
    }
    for (let s = this.recorded + 1; s <= r.committed; s++) {
      const e = r.log.get(s);
      if (!e) throw new Error(`committed slot ${s} is not in the log (first ${first}, last ${r.log.lastSlot})`);
      this.entries.push(e);
    }
    this.recorded = r.committed;
    // Committed entries never change: re-read the newest few still in the
    // log, cheaply, as a running check of that promise.
    for (let i = this.entries.length - 1, n = 0; i >= 0 && n < 4; i--, n++) {
      const e = this.entries[i]!;
      const now = r.log.get(e.slot);
      if (!now) break;
      if (now !== e && (now.noop !== e.noop || now.clientId !== e.clientId || now.requestId !== e.requestId || now.seq !== e.seq)) this.conflicts++;
    }
  }

  dump(stateDigest: string): CommittedLogDump {
    return { ...this.head(stateDigest), entries: this.entries.map(dumpedEntry) };
  }

  /** Everything but the entries, as of now. */
  private head(stateDigest: string): Omit<CommittedLogDump, 'entries'> {
    const r = this.replica;
    return {
      replicaId: r.id,
      committed: r.committed,
      executed: r.exec.executed,
      view: { leaderNum: r.view.leaderNum, session: r.view.session },
      status: r.status,
      gaps: this.gaps.map((g) => ({ ...g })),
      conflicts: this.conflicts,
      stateDigest,
    };
  }

  /**
   * Writes the dump of this moment (the same JSON as dump()) to `path`,
   * whole or not at all (a temp file, then rename), DUMP_CHUNK entries per
   * turn of the event loop. Entries committed meanwhile are not in it: the
   * list is append-only, so the first `n` are exactly this moment's.
   * Resolves with the dump's size; `onChunk` is told after each chunk (tests).
   */
  async writeDump(path: string, stateDigest: string, onChunk?: () => void): Promise<{ committed: number; executed: number; entries: number; gaps: number }> {
    const head = this.head(stateDigest);
    const n = this.entries.length;
    const tmp = `${path}.tmp${process.pid}`;
    const f = await open(tmp, 'w');
    try {
      const json = JSON.stringify(head);
      await f.write(`${json.slice(0, -1)},"entries":[`);
      for (let i = 0; i < n; i += DUMP_CHUNK) {
        const part = this.entries.slice(i, Math.min(n, i + DUMP_CHUNK)).map((e) => JSON.stringify(dumpedEntry(e)));
        await f.write((i > 0 ? ',' : '') + part.join(','));
        onChunk?.();
        await yieldLoop();
      }
      await f.write(']}');
      await f.close();
      await rename(tmp, path);
    } catch (e) {
      await f.close().catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
    return { committed: head.committed, executed: head.executed, entries: n, gaps: head.gaps.length };
  }
}

function dumpedEntry(e: LogEntry): DumpedEntry {
  return {
    slot: e.slot,
    session: e.session,
    seq: e.seq,
    noop: e.noop,
    clientId: e.clientId.toString(),
    requestId: e.requestId.toString(),
    op: Buffer.from(e.op).toString('hex'),
    ...(e.src ? { sequencerId: e.src.sid, clock: e.src.clock, streamSession: e.src.session, streamSeq: e.src.seq } : {}),
    ...(e.src?.end ? { end: true as const } : {}),
    ...(e.control ? { control: true as const } : {}),
  };
}

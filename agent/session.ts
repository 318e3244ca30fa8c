// Session numbers that outlive the data path: <stateDir>/sessions.json holds
// the last session each group was stamped with. A new data path (a fresh
// load) takes the next one, so replicas see every sequencer restart as a new
// session and run a view change; an adopted data path keeps its session.
//
// The file is replaced whole (temp file, fsync, rename, fsync of the
// directory): after a crash it holds either the old or the new content,
// never a torn one, and a session handed out is on disk before the data
// path that stamps it exists.
//
// Sessions are serial numbers (replica/view.ts sessionCmp): the one after
// 0xffffffff is 1 (0 means "none yet" to a replica), so the store never
// runs out. Replicas move to a new session only a bounded step past the
// last one they heard (replica/udp/sources.ts); the store records the last
// session that stamped anything and refuses to hand out one further than
// that bound past it, rather than one the replicas would ignore.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SESSION_BOUND } from '../replica/udp/sources.ts';
import { sessionCmp } from '../replica/view.ts';
import { AgentError } from './errors.ts';

export const SESSIONS_FILE = 'sessions.json';
const MAX_SESSION = 0xffffffff;
/** How far past the last session that stamped anything a new one may be: the replicas' default bound. */
export const SESSION_STEP_MAX = DEFAULT_SESSION_BOUND;

/** The session after `s`, past 0xffffffff to 1 (0 is never handed out). */
export function sessionAfter(s: number): number {
  return s >= MAX_SESSION ? 1 : s + 1;
}

export interface GroupSession {
  session: number;
  /** Interface of the data path that stamps (or stamped) it. */
  interface: string;
  /** 'created' when a fresh load took it, 'adopted' when a restart kept it. */
  dataPath: 'created' | 'adopted';
  /** Last seq seen by the agent (at start or stop), as a decimal string. */
  lastSeq?: string;
  /** The last session of this group that stamped anything (lastSeq > 0): replicas have heard it. */
  stamped?: number;
  updatedAt: string;
}

interface SessionsDoc {
  version: 1;
  groups: Record<string, GroupSession>;
}

export class SessionStore {
  readonly path: string;
  #doc: SessionsDoc;

  private constructor(
    readonly dir: string,
    doc: SessionsDoc,
  ) {
    this.path = join(dir, SESSIONS_FILE);
    this.#doc = doc;
  }

  /** Reads <dir>/sessions.json; a missing file is an empty store. */
  static open(dir: string): SessionStore {
    const path = join(dir, SESSIONS_FILE);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new SessionStore(dir, { version: 1, groups: {} });
      throw new AgentError('ESTATE', `cannot read ${path}: ${(e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      // Guessing would risk handing out a session replicas already saw.
      throw new AgentError(
        'ESTATE',
        `${path} is not valid JSON (${(e as Error).message}); it holds the last session of every group, so fix it by hand ` +
          `(the largest session any replica saw, per group) rather than deleting it`,
      );
    }
    const d = doc as Partial<SessionsDoc>;
    if (!d || d.version !== 1 || typeof d.groups !== 'object' || d.groups === null) {
      throw new AgentError('ESTATE', `${path} is not an xseq sessions file (expected {"version":1,"groups":{...}})`);
    }
    for (const [id, g] of Object.entries(d.groups)) {
      if (!Number.isInteger(g?.session) || g.session < 0 || g.session > MAX_SESSION) {
        throw new AgentError('ESTATE', `${path}: group ${id} has no valid session (${JSON.stringify(g)})`);
      }
    }
    return new SessionStore(dir, d as SessionsDoc);
  }

  get(group: number): GroupSession | undefined {
    return this.#doc.groups[String(group)];
  }

  all(): Record<string, GroupSession> {
    return structuredClone(this.#doc.groups);
  }

  /** The session a new data path gives `group`: one more than any it had
   * here or (`atLeast`) anywhere else we know of. */
  next(group: number, atLeast = 0): number {
    const had = this.get(group);
    const recorded = had?.session ?? 0;
    const next = sessionAfter(sessionCmp(atLeast, recorded) > 0 ? atLeast : recorded);
    const stamped = had?.stamped;
    if (stamped !== undefined && stamped !== 0 && (next - stamped) >>> 0 > SESSION_STEP_MAX) {
      throw new AgentError(
        'ESTATE',
        `group ${group}: session ${next} would be ${(next - stamped) >>> 0} past ${stamped}, the last one that stamped anything; ` +
          `replicas move at most ${SESSION_STEP_MAX} sessions ahead (sessionBound), so they would ignore it. ` +
          `Set \`session\` (--session) to one within ${SESSION_STEP_MAX} past the session the replicas are in`,
      );
    }
    return next;
  }

  set(group: number, entry: Omit<GroupSession, 'updatedAt'>): void {
    const prev = this.get(group);
    const stamped = entry.lastSeq !== undefined && entry.lastSeq !== '0' ? entry.session : (entry.stamped ?? prev?.stamped);
    this.#doc.groups[String(group)] = { ...entry, ...(stamped !== undefined ? { stamped } : {}), updatedAt: new Date().toISOString() };
  }

  /** Writes the store durably (see the top of this file). */
  save(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      const tmp = `${this.path}.tmp-${process.pid}`;
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(this.#doc, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        renameSync(tmp, this.path);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      const dirFd = openSync(this.dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (e) {
      if (e instanceof AgentError) throw e;
      throw new AgentError('ESTATE', `cannot write ${this.path}: ${(e as Error).message} (set \`stateDir\` to a writable directory)`);
    }
  }
}

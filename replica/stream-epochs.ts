// A sequencer's life in a merged log, as log entries: a stream (sequencer,
// session) ends at an "end" no-op the leader appends when the replicas
// remove it, and a later session of the same sequencer id starts at a
// "start" no-op (seq 0 of the new session). Both are appended by a leader
// to the log a view change merged (hydra-failover.ts starts that view
// change), so the agreement is the view change's: the quorum's VIEW_CHANGEs
// fix what of the stream any replica may have delivered, the end goes right
// after it, and every replica installs the same log from START_VIEW. Being
// log entries, they travel with every later view change, sync and state
// transfer, and the stream's position (stream-positions.ts cursorsAt) says
// which session a sequencer is in and whether it ended: the view records
// one session per sequencer.
import type { LogEntry, LogState, StreamPos } from './messages.ts';
import { sessionCmp } from './view.ts';

const NO_OP = new Uint8Array(0);

/** What a leader wants done to one sequencer when it next merges a view. */
export interface Reconfig {
  readonly sid: number;
  /** End this session of it (a dead or replaced sequencer). */
  readonly end?: number;
  /** Then start this newer session of it (a rejoin under the same id). */
  readonly start?: number;
}

/** The smallest clock above x (clocks are doubles: +1 is lost at TAI magnitudes). */
export function clockAbove(x: number): number {
  if (!Number.isFinite(x)) return x === -Infinity ? 0 : x;
  const y = x + 1;
  return y > x ? y : x + Math.abs(x) * Number.EPSILON;
}

/** Each sequencer's last position in a log state (its last entry, else the checkpoint). */
export function positionsOf(st: LogState): Map<number, StreamPos> {
  const out = new Map<number, StreamPos>();
  for (let i = st.entries.length - 1; i >= 0; i--) {
    const src = st.entries[i]!.src;
    if (src && !out.has(src.sid)) out.set(src.sid, src);
  }
  for (const p of st.checkpoint.streams ?? []) if (!out.has(p.sid)) out.set(p.sid, p);
  return out;
}

/** The clock of a log state's last merged position. */
function endClock(st: LogState): number {
  const last = st.entries[st.entries.length - 1]?.src;
  if (last) return last.clock;
  let c = -Infinity;
  for (const p of st.checkpoint.streams ?? []) if (p.seq > 0 && p.clock > c) c = p.clock;
  return c;
}

/**
 * The log a leader starts its view with: `st` (the view change's merge)
 * plus, per plan, the end of the named session right after the last seq of
 * it the merge holds, and the start of the named newer session. A plan
 * that no longer applies (the session ended already, or is not the one the
 * log holds) adds nothing: a stale removal never ends a rejoined stream.
 */
export function appendReconfig(
  st: LogState,
  plans: Iterable<Reconfig>,
  /** Where the end goes, after the stream's last merged position (a seam for the simulation's mutants). */
  endAt: (last: StreamPos) => number = (last) => last.seq + 1,
): { state: LogState; ended: StreamPos[]; started: StreamPos[] } {
  const pos = positionsOf(st);
  const entries = [...st.entries];
  let clock = endClock(st);
  let slot = st.checkpoint.slot + entries.length;
  const session = entries.length ? entries[entries.length - 1]!.session : st.checkpoint.session;
  const ended: StreamPos[] = [];
  const started: StreamPos[] = [];
  const push = (src: StreamPos): void => {
    slot++;
    entries.push({ slot, session, seq: slot, noop: true, clientId: 0n, requestId: 0n, op: NO_OP, src });
    pos.set(src.sid, src);
    clock = src.clock;
  };
  for (const p of plans) {
    let at = pos.get(p.sid);
    // Nothing of it merged yet (or only its "add" floor): it ends before seq 1.
    if (p.end !== undefined && (!at || (at.session <= 0 && at.seq === 0))) at = { sid: p.sid, session: p.end, seq: 0, clock: at?.clock ?? -Infinity, raw: -Infinity };
    if (p.end !== undefined && at && at.session === p.end && !at.end) {
      const c = clockAbove(Math.max(clock, at.clock));
      push({ sid: p.sid, session: p.end, seq: endAt(at), clock: c, raw: c, end: true });
      ended.push(pos.get(p.sid)!);
      at = pos.get(p.sid);
    }
    if (p.start !== undefined && at?.end && sessionCmp(p.start, at.session) > 0) {
      const c = clockAbove(Math.max(clock, at.clock));
      push({ sid: p.sid, session: p.start, seq: 0, clock: c, raw: c });
      started.push(pos.get(p.sid)!);
    }
  }
  if (!ended.length && !started.length) return { state: st, ended, started };
  return { state: { ...st, entries }, ended, started };
}

/** A start entry: seq 0 of a session, the stream's floor in clock. */
export function isStart(src: StreamPos | undefined): boolean {
  return !!src && src.seq === 0;
}

/** The entry is a stream's end or start marker (no request, never ACKed). */
export function isMarker(e: LogEntry): boolean {
  return e.noop && !!e.src && (e.src.end === true || e.src.seq === 0);
}

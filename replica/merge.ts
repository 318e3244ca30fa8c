// The log of a new view, from the VIEW_CHANGE messages of a quorum.
//
// Only logs from the latest normal view count: every log that was normal in
// that view is the leader's log of that view with, at most, a request where
// the leader had already committed a no-op (the follower had not heard the
// GAP_COMMIT yet). So per slot: a no-op if any of them has one, else the
// request. Logs have no holes, so every slot up to the longest end is held
// by someone. The newest checkpoint of the quorum is a committed prefix and
// replaces the entries it covers.
import { addedSequencer } from './control-op.ts';
import type { Checkpoint, LogEntry, LogState, StreamPos, ViewChangeMsg } from './messages.ts';
import { sessionCmp, viewCmp, viewEq, type ViewId } from './view.ts';

export function latestNormalView(msgs: readonly ViewChangeMsg[]): ViewId {
  let v = msgs[0]!.lastNormalView;
  for (const m of msgs) if (viewCmp(m.lastNormalView, v) > 0) v = m.lastNormalView;
  return v;
}

export function mergeViewChanges(msgs: readonly ViewChangeMsg[]): LogState {
  if (msgs.length === 0) throw new Error('merge: no VIEW_CHANGE messages');
  let checkpoint: Checkpoint = msgs[0]!.state.checkpoint;
  let committed = 0;
  for (const m of msgs) {
    if (m.state.checkpoint.slot > checkpoint.slot) checkpoint = m.state.checkpoint;
    committed = Math.max(committed, m.state.committed);
  }
  const latest = latestNormalView(msgs);
  const logs = msgs.filter((m) => viewEq(m.lastNormalView, latest)).map((m) => m.state);
  let end = checkpoint.slot;
  for (const s of logs) {
    const last = s.entries.length ? s.entries[s.entries.length - 1]!.slot : s.checkpoint.slot;
    end = Math.max(end, last);
  }
  const entries: LogEntry[] = [];
  for (let slot = checkpoint.slot + 1; slot <= end; slot++) {
    let pick: LogEntry | undefined;
    for (const s of logs) {
      const e = s.entries[slot - s.checkpoint.slot - 1];
      if (!e) continue;
      if (e.noop) {
        pick = e;
        break;
      }
      pick ??= e;
    }
    if (!pick) throw new Error(`merge: no log of view ${latest.leaderNum}/${latest.session} holds slot ${slot}`);
    entries.push(pick);
  }
  return { checkpoint, entries, committed: Math.max(committed, checkpoint.slot) };
}

/** The sequencer an "add" control op names (control-op.ts; -1 for any other op). */
function decodeAddSid(op: Uint8Array): number {
  return addedSequencer(op) ?? -1;
}

/**
 * Hydra: the log of a new view when entries come from several sequencers.
 * Logs of one view may place a no-op differently (a follower that had not
 * heard it merged the request), so the union is taken per stream position
 * (sequencer, seq), not per slot: the committed prefix as it is, then per
 * stream everything any log of the latest normal view holds after it (a
 * no-op wins), merged again in (effective clock, sequencer id, seq) order.
 */
export function mergeStreamViewChanges(msgs: readonly ViewChangeMsg[]): LogState {
  let checkpoint: Checkpoint = msgs[0]!.state.checkpoint;
  let base = msgs[0]!.state;
  for (const m of msgs) {
    if (m.state.checkpoint.slot > checkpoint.slot) checkpoint = m.state.checkpoint;
    if (m.state.committed > base.committed) base = m.state;
  }
  const committed = Math.max(base.committed, checkpoint.slot);
  const cursor = new Map<number, StreamPos>();
  for (const p of checkpoint.streams ?? []) cursor.set(p.sid, p);
  const entries: LogEntry[] = [];
  for (let slot = checkpoint.slot + 1; slot <= committed; slot++) {
    const e = base.entries[slot - base.checkpoint.slot - 1];
    if (!e) throw new Error(`merge: the log with the highest commit point lacks slot ${slot}`);
    entries.push(e);
    if (e.src) cursor.set(e.src.sid, e.src);
    if (e.control && !e.noop && !cursor.has(decodeAddSid(e.op))) {
      const sid = decodeAddSid(e.op);
      cursor.set(sid, { sid, session: -1, seq: 0, clock: e.src!.clock + 1, raw: -Infinity });
    }
  }
  const latest = latestNormalView(msgs);
  // Per sequencer, per session, per seq: a sequencer that rejoined under
  // its id has entries of two sessions (stream-epochs.ts).
  const union = new Map<number, Map<number, Map<number, LogEntry>>>();
  let session = checkpoint.session;
  for (const m of msgs) {
    if (!viewEq(m.lastNormalView, latest)) continue;
    for (const e of [...m.state.entries, ...(m.held ?? [])]) {
      if (e.slot > 0) session = e.session;
      const src = e.src;
      if (!src) continue;
      const at = cursor.get(src.sid);
      if (at && src.session === at.session && (src.seq <= at.seq || at.end)) continue;
      let bySession = union.get(src.sid);
      if (!bySession) union.set(src.sid, (bySession = new Map()));
      let u = bySession.get(src.session);
      if (!u) bySession.set(src.session, (u = new Map()));
      const had = u.get(src.seq);
      // A no-op wins; a logged copy of it over a held one (keyOf below).
      if (!had || (e.noop && (!had.noop || (had.slot === 0 && e.slot > 0)))) u.set(src.seq, e);
    }
  }
  // Each stream: contiguous from its cursor, through an end (nothing of
  // that session after it), then a start of a newer session and on from
  // its seq 1. Effective clocks are computed as the merge goes, so a
  // sequencer added by a control op in this very union starts at that
  // op's clock + 1 and waits for it.
  const streams: { sid: number; items: LogEntry[]; i: number; eff: number; gated: boolean }[] = [];
  const addedHere = new Set<number>();
  for (const bySession of union.values()) for (const u of bySession.values()) for (const e of u.values()) if (e.control && !e.noop) addedHere.add(decodeAddSid(e.op));
  for (const [sid, bySession] of union) {
    const at = cursor.get(sid);
    const items = chainOf(bySession, at);
    streams.push({ sid, items, i: 0, eff: at ? at.clock : -Infinity, gated: !at && addedHere.has(sid) });
  }
  streams.sort((a, b) => a.sid - b.sid);
  const byId = new Map(streams.map((s) => [s.sid, s]));
  // A no-op's clock is a leader's decision, not a stamp: one decided by an
  // older leader may sort below what this log already holds, so it moves up
  // to just past the log's end (the new view decides it again, and every
  // replica adopts this log). A request can never sort there: a replica
  // merged past it only on a frontier its stamp cannot be below.
  // "Below" is strictly below in (clock, sequencer id) order: a no-op that
  // ties the log's end at a higher or the same sequencer id (the same id:
  // its clock is eff(s, q-1), the previous entry of its own stream) already
  // sorts after it, and may have been committed at that clock by the old
  // view, where delivery never moves it (hydra.ts); moving it would commit
  // the same no-op at two clocks (hydra-random seed 1182).
  let lastClock = -Infinity;
  let lastSid = -Infinity;
  if (entries.length) {
    const src = entries[entries.length - 1]!.src;
    if (src) [lastClock, lastSid] = [src.clock, src.sid];
  } else {
    for (const p of checkpoint.streams ?? []) {
      if (p.seq > 0 && (p.clock > lastClock || (p.clock === lastClock && p.sid > lastSid))) [lastClock, lastSid] = [p.clock, p.sid];
    }
  }
  const keyOf = (s: (typeof streams)[number]): number => {
    const e = s.items[s.i]!;
    const k = Math.max(e.src!.raw, s.eff);
    if (!e.noop) return k;
    if (k < lastClock || (k === lastClock && s.sid < lastSid)) return lastClock + 1;
    // A no-op no log of the quorum holds (only a VIEW_CHANGE's held
    // decisions): never committed anywhere, and its clock (the deciding
    // leader's frontier) may be above what other streams have resolved, so
    // here it would claim they can send nothing below it. Decided again
    // right after the log's end, like one that sorted below it.
    if (e.slot === 0 && k > lastClock) return Math.max(s.eff, s.sid > lastSid ? lastClock : lastClock + 1);
    return k;
  };
  for (;;) {
    let best: (typeof streams)[number] | null = null;
    let bc = 0;
    for (const s of streams) {
      if (s.gated || s.i >= s.items.length) continue;
      const c = keyOf(s);
      if (!best || c < bc) {
        best = s;
        bc = c;
      }
    }
    if (!best) break;
    const e = best.items[best.i++]!;
    best.eff = bc;
    lastClock = bc;
    lastSid = best.sid;
    const slot = checkpoint.slot + entries.length + 1;
    entries.push({ ...e, slot, session, seq: slot, src: { ...e.src!, clock: bc, raw: e.noop ? bc : e.src!.raw } });
    if (e.control && !e.noop) {
      const added = byId.get(decodeAddSid(e.op));
      if (added?.gated) {
        added.gated = false;
        added.eff = bc + 1;
      }
    }
  }
  return { checkpoint, entries, committed };
}

/** One sequencer's entries in merge order: its sessions chained by end and start markers. */
function chainOf(bySession: Map<number, Map<number, LogEntry>>, at: StreamPos | undefined): LogEntry[] {
  const items: LogEntry[] = [];
  let sess: number;
  let q: number;
  let ended = !!at?.end;
  if (at && at.session >= 0) {
    sess = at.session;
    q = at.seq + 1;
  } else {
    // No session known yet: the oldest one here that is not a rejoin.
    const first = [...bySession.keys()].filter((k) => !bySession.get(k)!.has(0)).sort(sessionCmp)[0];
    if (first === undefined) return items;
    sess = first;
    q = 1;
  }
  for (;;) {
    const u = bySession.get(sess);
    while (!ended && u?.has(q)) {
      const e = u.get(q++)!;
      items.push(e);
      if (e.src!.end) ended = true;
    }
    if (!ended) return items;
    // Ended: a start of a newer session, if a leader appended one.
    let next: number | undefined;
    for (const [k, v] of bySession) if (sessionCmp(k, sess) > 0 && v.has(0) && (next === undefined || sessionCmp(k, next) < 0)) next = k;
    if (next === undefined) return items;
    sess = next;
    items.push(bySession.get(sess)!.get(0)!);
    q = 1;
    ended = false;
  }
}

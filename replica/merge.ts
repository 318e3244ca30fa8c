// The log of a new view, from the VIEW_CHANGE messages of a quorum.
//
// Only logs from the latest normal view count: every log that was normal in
// that view is the leader's log of that view with, at most, a request where
// the leader had already committed a no-op (the follower had not heard the
// GAP_COMMIT yet). So per slot: a no-op if any of them has one, else the
// request. Logs have no holes, so every slot up to the longest end is held
// by someone. The newest checkpoint of the quorum is a committed prefix and
// replaces the entries it covers.
import type { Checkpoint, LogEntry, LogState, ViewChangeMsg } from './messages.ts';
import { viewCmp, viewEq, type ViewId } from './view.ts';

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

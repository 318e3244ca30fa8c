// Gap agreement of a merged group, keyed by (sequencer, session, seq):
// the leader's side answers GAP_FIND and counts GAP_COMMIT_REPLYs, a
// follower takes the leader's GAP_RECV and GAP_COMMIT. A follower told of
// a no-op for something it already merged re-merges its unexecuted
// suffix (followers execute only the committed prefix). Messages keyed by
// log slot (a one-sequencer replica's) are not ours: ignored unseen.
import type { EngineHost } from './intake.ts';
import type { GapCommitMsg, GapCommitReplyMsg, GapFindMsg, GapRecvMsg, LogEntry, SequencedMsg, StreamKey, StreamPos } from './messages.ts';
import { keyAfter, streamEntry } from './stream-positions.ts';
import type { Stream } from './stream.ts';

/** What of the merge (hydra.ts) gap agreement drives. */
export interface GapCore {
  readonly host: EngineHost;
  readonly stats: { remerges: number };
  stream(sid: number): Stream | undefined;
  advance(s: Stream): void;
  pump(): void;
  checkGap(s: Stream): void;
  onSequenced(m: SequencedMsg): void;
  resync(keepNoops: boolean, old: readonly LogEntry[], noop?: StreamKey, noopClock?: number): void;
}

export function onGapCommitReply(H: GapCore, m: GapCommitReplyMsg): void {
  const h = H.host;
  const k = m.stream;
  if (!k || !h.admit(m) || !h.normal() || !h.amLeader()) return;
  const s = H.stream(k.sid);
  if (!s || k.session !== s.session) return;
  s.quorum.ack(m.from, (p) => p.seq === k.seq);
}

export function onGapFind(H: GapCore, m: GapFindMsg): void {
  const h = H.host;
  if (!m.stream || !h.admit(m) || !h.normal() || !h.amLeader()) return;
  const k = m.stream;
  const s = H.stream(k.sid);
  if (!s || k.session !== s.session) return;
  const reply = (entry: LogEntry): void => h.transport.sendToReplica(m.from, { type: 'GAP_RECV', from: h.id, view: h.view, entry });
  const slot = s.slotOf(k.seq);
  const logged = slot !== undefined ? h.log.get(slot) : undefined;
  if (logged?.src && logged.src.sid === k.sid && logged.src.seq === k.seq) return reply(logged);
  const pos = (raw: number): StreamPos => ({ sid: s.sid, session: s.session, seq: k.seq, clock: raw, raw });
  const nc = s.noops.get(k.seq) ?? (s.pendingNoop?.seq === k.seq ? s.pendingNoop.clock : undefined);
  if (nc !== undefined) return reply(streamEntry(pos(nc), null));
  const m2 = s.buf.get(k.seq);
  if (m2) return reply(streamEntry(pos(m2.clock ?? 0), m2));
  if (k.seq < s.next) return; // merged and already truncated here: the follower catches up by sync
  h.transport.sendToReplica(m.from, { type: 'GAP_DROP', from: h.id, view: h.view, slot: 0, stream: k });
  // A drop notification from a peer: the leader runs the ladder for it too.
  if (k.seq > s.known) s.known = k.seq;
  H.checkGap(s);
}

export function onGapRecv(H: GapCore, m: GapRecvMsg): void {
  const h = H.host;
  const src = m.entry.src;
  if (!src || !h.admit(m) || !h.normal() || h.amLeader()) return;
  h.heardFromLeader();
  if (m.entry.noop) return followerNoop(H, src, src.raw);
  const e = m.entry;
  H.onSequenced({ type: 'SEQUENCED', session: src.session, seq: src.seq, clientId: e.clientId, requestId: e.requestId, op: e.op, retransmit: true, sequencerId: src.sid, clock: src.raw, ...(e.control ? { control: true } : {}) });
}

export function onGapCommit(H: GapCore, m: GapCommitMsg): void {
  const h = H.host;
  if (!m.stream || !h.admit(m) || !h.normal() || h.amLeader()) return;
  h.heardFromLeader();
  followerNoop(H, m.stream, m.clock ?? -Infinity);
}

/** Follower: the leader decided (sid, seq) is a no-op sorting at `clock`. */
function followerNoop(H: GapCore, k: StreamKey, clock: number): void {
  const h = H.host;
  const s = H.stream(k.sid);
  if (!s || k.session !== s.session) return;
  const ack = (): void => h.toLeader({ type: 'GAP_COMMIT_REPLY', from: h.id, view: h.view, slot: 0, stream: k });
  if (k.seq >= s.next) {
    s.buf.delete(k.seq);
    const had = s.noops.has(k.seq);
    s.noops.set(k.seq, clock);
    s.recap();
    // Merged on a frontier the no-op now lowers: merge that suffix again.
    const bound = clock > s.eff ? clock : s.eff;
    let cut = h.log.lastSlot;
    while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, bound, k.sid, k.seq)) cut--;
    if (!had && cut < h.log.lastSlot) {
      const tail = h.log.truncateAfter(cut);
      H.stats.remerges++;
      H.resync(true, tail);
      return ack();
    }
    if (k.seq === s.next) {
      H.advance(s);
      H.pump();
    }
    H.checkGap(s);
    return ack();
  }
  // Resolved already. Waiting in the queue, or merged into the unexecuted suffix: re-merge.
  const slot = s.slotOf(k.seq);
  const e = slot !== undefined ? h.log.get(slot) : undefined;
  if (e?.src && e.src.sid === k.sid && e.src.seq === k.seq) {
    if (e.noop) return ack();
    if (slot! <= h.committed) return; // cannot happen while the leader lacks it; never touch the committed prefix
    let cut = slot! - 1;
    while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, clock, k.sid, k.seq)) cut--;
    const tail = h.log.truncateAfter(cut);
    H.stats.remerges++;
    H.resync(true, tail, k, clock);
    return ack();
  }
  if (slot === undefined || slot < h.log.firstSlot) {
    // In the queue: un-resolve from that seq on and resolve again with the no-op.
    let cut = h.log.lastSlot;
    while (cut > h.committed && cut >= h.log.firstSlot && keyAfter(h.log.get(cut)!.src, clock, k.sid, k.seq)) cut--;
    H.resync(true, h.log.truncateAfter(cut), k, clock);
    return ack();
  }
}

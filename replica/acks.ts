// What a replica ACKs, as wire messages. Under the default policy
// (backpressure) a window slot in the sequencer frees only once every member
// ACKed its seq (or the agent released it after a quorum with the leader),
// so every replica answers every copy of a seq it has settled:
//
// - a request it logged: followers plainly, the leader with its result
//   (ackOf);
// - a seq it settled without holding that request any more: one below its
//   checkpoint (truncated: committed, but whether as this request or as a
//   no-op is no longer known), or one gap agreement turned into a no-op
//   (settledAck). Followers ACK it plainly; the leader with a stale mark,
//   never a result: the request of a no-op'd seq may have executed at its
//   retry's seq, and a result here would certify a position it never had.
//   The kernel turns the quorum into a REPLY flagged STALE (nothing
//   executed at this position), which clients do not take as their answer;
//   the client re-sends (same request id) and a later seq answers it, from
//   the client table if it had executed.
//
// A settled ACK is an ordinary ACK on the wire: the aggregator takes it
// only from the member's configured address and port, and with a group key
// only with a valid MAC (docs/authentication.md). Whoever could forge it
// could forge any ACK, and it can never carry a result into a REPLY.
import { STALE_MARK } from './executor.ts';
import type { AckMsg, LogEntry, SequencedMsg } from './messages.ts';

/** The ACK of a logged entry; result: the leader's (STALE_MARK for a stale request id), null for a follower. */
export function ackOf(e: LogEntry, leaderNum: number, replicaId: number, result: Uint8Array | null): AckMsg {
  const src = e.src;
  const stale = result === STALE_MARK ? { stale: true } : {};
  // Hydra: the ACK names the stream position, for the sequencer that stamped it.
  if (src) return { type: 'ACK', session: src.session, seq: src.seq, leaderNum, replicaId, clientId: e.clientId, requestId: e.requestId, result, sequencerId: src.sid, ...stale };
  return { type: 'ACK', session: e.session, seq: e.seq, leaderNum, replicaId, clientId: e.clientId, requestId: e.requestId, result, ...stale };
}

/**
 * The ACK of a re-sent copy `m` of a seq settled here without its request
 * (truncated, or a no-op by agreement): see the top of this file. `sid`:
 * the stream's sequencer (Hydra), undefined with one sequencer.
 */
export function settledAck(m: SequencedMsg, leaderNum: number, replicaId: number, leader: boolean, sid: number | undefined): AckMsg {
  const base = { type: 'ACK', session: m.session, seq: m.seq, leaderNum, replicaId, clientId: m.clientId, requestId: m.requestId } as const;
  const who = sid === undefined ? {} : { sequencerId: sid };
  return leader ? { ...base, result: STALE_MARK, stale: true, ...who } : { ...base, result: null, ...who };
}

// The default policy never stalls a group on a seq nobody will ever ACK.
// Under backpressure a window slot frees only once every member ACKed its
// seq, so each scenario below makes one seq that a replica has settled
// without holding its request, loses that replica's first ACK of it, and
// runs a workload more than a window long through a backpressure
// sequencer: the agent's re-sent copies reach a replica that holds the seq
//   (a) truncated below its checkpoint (one sequencer; the leader),
//   (b) as a no-op by gap agreement (one sequencer; the leader),
//   (c) truncated, in a Hydra group,
//   (d) as a no-op, in a Hydra group.
// Without a settled ACK (replica/acks.ts) that replica stays silent, the slot
// waits for good, and one window later that sequencer refuses every request
// (one sequencer: the workload never finishes; Hydra: it never stamps past
// that window, its clients finishing through the other sequencer). With it, the leader's settled ACK is a stale mark
// (never a result: the request executed at its retry's seq, and a REPLY here
// would certify a position it never had), and the client's own retry is
// what answers it.
import { describe, expect, it } from 'vitest';
import type { AckMsg, ReplyMsg } from '../../replica/messages.ts';
import { harness, quiesce, type Harness, type Sent } from './helpers.ts';

const W = 128;
const OPS = 3 * W;
/** The agent's first re-send comes long after the leader truncated what it re-sends (sync: 2 ms). */
const RETRANSMIT_US = 10_000;
const SEQ = 3;

function run(sequencers: 1 | 2): Harness {
  return harness({ clients: 2, windowSlots: W, policy: 'backpressure', retransmitUs: RETRANSMIT_US, clientRetryUs: 3_000, ...(sequencers > 1 ? { sequencers } : {}) });
}

const isSeq = (s: Sent, type: string, sid: number): boolean => s.msg.type === type && s.msg['seq'] === SEQ && (s.msg['sequencerId'] ?? 0) === sid;

/** The leader's (replica 0's) ACKs of sequencer sid's SEQ, and the REPLYs for it. */
function answers(h: Harness, sid: number): { leaderAcks: AckMsg[]; replies: ReplyMsg[] } {
  const leaderAcks = h.sent.filter((s) => isSeq(s, 'ACK', sid) && s.from === 0).map((s) => s.msg as unknown as AckMsg);
  const replies = h.sent.filter((s) => isSeq(s, 'REPLY', sid)).map((s) => s.msg as unknown as ReplyMsg);
  return { leaderAcks, replies };
}

/** Runs the workload to the end: every op certified, the window never stalled. */
function finish(h: Harness): void {
  for (const q of h.c.sequencers) expect(q.stats.stamped).toBeLessThan(OPS * 2);
  h.c.startWorkload(OPS / 2);
  quiesce(h);
  expect(h.c.certified).toHaveLength(OPS);
  // Each sequencer took SEQ's slot again: a window later it was free.
  // (Hydra clients would otherwise finish through the other sequencer.)
  for (const q of h.c.sequencers) expect(q.lastStamped, `sequencer ${q.id} stamped past seq ${W + SEQ}`).toBeGreaterThan(W + SEQ);
}

/**
 * Whether the leader held SEQ only as settled (below its checkpoint) when
 * the agent's first re-send of it arrived: the scenario is about a copy of
 * a seq the leader truncated, not one it still holds.
 */
function truncatedAtResend(h: Harness, sid: number): boolean[] {
  const seen: boolean[] = [];
  h.hold(
    (s) => isSeq(s, 'SEQUENCED', sid) && s.to === 0 && s.msg['retransmit'] === true && seen.length === 0,
    0,
    (s) => {
      const r = h.c.replicas[0]!;
      seen.push(r.hydra ? r.hydra.stream(sid)!.placeOf(SEQ, r.log.firstSlot) === 'truncated' : r.log.firstSlot > SEQ);
      r.receive(s.msg as never);
    },
  );
  return seen;
}

describe('a seq the leader truncated before its ACK got through', () => {
  for (const k of [1, 2] as const) {
    it(`${k === 1 ? 'one sequencer' : 'Hydra'}: its re-sent copy is ACKed as settled (stale mark), the window frees, the workload finishes`, () => {
      const h = run(k);
      // The leader's first ACK of SEQ is lost; every re-send of it comes after a checkpoint covered it.
      h.drop((s) => isSeq(s, 'ACK', 0) && s.from === 0 && s.msg['stale'] !== true);
      const seen = truncatedAtResend(h, 0);
      finish(h);
      expect(seen).toEqual([true]);
      const { leaderAcks, replies } = answers(h, 0);
      expect(leaderAcks.at(-1)).toMatchObject({ stale: true, result: new Uint8Array(0) });
      // The only REPLY for SEQ is the stale one: the client got its answer at its retry's seq.
      expect(replies.map((r) => r.stale === true)).toEqual([true]);
    });
  }
});

describe('a seq gap agreement turned into a no-op while the agent still holds it', () => {
  for (const k of [1, 2] as const) {
    it(`${k === 1 ? 'one sequencer' : 'Hydra'}: the leader ACKs its re-sent copy as settled, the window frees, the workload finishes`, () => {
      const h = run(k);
      // The leader never gets SEQ, and its repair requests go unanswered:
      // it decides a no-op while the agent (backpressure) still holds the
      // copy and re-sends it to the leader, the one member that never acked.
      h.drop((s) => isSeq(s, 'SEQUENCED', 0) && s.to === 0 && s.msg['retransmit'] === false);
      h.drop((s) => s.msg.type === 'REPAIR_REQUEST' && s.from === 0 && (s.msg['sequencerId'] ?? 0) === 0, 10);
      finish(h);
      expect(h.count('GAP_COMMIT')).toBeGreaterThan(0);
      const { leaderAcks, replies } = answers(h, 0);
      expect(leaderAcks.length).toBeGreaterThan(0);
      for (const a of leaderAcks) expect(a).toMatchObject({ stale: true, result: new Uint8Array(0) });
      for (const r of replies) expect(r.stale).toBe(true);
      // Every replica holds that seq as a no-op (or committed it as one, then truncated).
      for (const app of h.c.apps) expect(app.history.length).toBe(OPS);
    });
  }
});

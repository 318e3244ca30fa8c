// What the default policy (backpressure) needs from replicas: every slot of
// the sequencer's window completes, because every replica that logs a
// request ACKs it, whatever reaches it first, and the leader answers a
// replayed request id from the client table (the cached result, or a stale
// mark) instead of staying silent. A slot no member ever acks would hold the
// window for good.
import { describe, expect, it } from 'vitest';
import type { AckMsg, ReplyMsg, RequestMsg, SequencedMsg } from '../../replica/messages.ts';
import { CLIENT_NODE_BASE } from '../../replica/sim/cluster.ts';
import { HistoryApp } from '../../replica/sim/history-app.ts';
import { harness, quiesce, type Harness } from './helpers.ts';

/** ACKs of (session, seq) by replica id, and the REPLYs for it. */
function answersFor(h: Harness, seq: number): { acks: Map<number, AckMsg[]>; replies: ReplyMsg[] } {
  const acks = new Map<number, AckMsg[]>();
  const replies: ReplyMsg[] = [];
  for (const s of h.sent) {
    const m = s.msg as unknown as AckMsg | ReplyMsg;
    if (m.seq !== seq) continue;
    if (m.type === 'ACK') acks.set(m.replicaId, [...(acks.get(m.replicaId) ?? []), m]);
    if (m.type === 'REPLY') replies.push(m);
  }
  return { acks, replies };
}

function replay(h: Harness, clientId: bigint, requestId: bigint): number {
  const req: RequestMsg = { type: 'REQUEST', clientId, requestId, op: HistoryApp.op(Number(clientId), Number(requestId)) };
  h.c.sequencer.onRequest(req, CLIENT_NODE_BASE + Number(clientId) - 1);
  return h.c.sequencer.stats.stamped;
}

/** Lets the replayed messages play out (quiesce alone returns at once: the cluster was converged). */
function playOut(h: Harness): void {
  h.c.runFor(500_000);
  quiesce(h);
}

describe('replayed requests under the default policy', () => {
  it('a stale request id: the leader ACKs a stale mark, every replica acks, one REPLY (stale), nothing executes', () => {
    const h = harness();
    h.c.startWorkload(4);
    quiesce(h);
    const seq = replay(h, 1n, 2n); // client 1 has executed up to request 4
    playOut(h);
    const { acks, replies } = answersFor(h, seq);
    expect([...acks.keys()].sort()).toEqual([0, 1, 2]);
    const lead = acks.get(0)!;
    expect(lead[0]).toMatchObject({ stale: true, result: new Uint8Array(0) });
    for (const r of [1, 2]) expect(acks.get(r)![0]!.result).toBeNull();
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ stale: true, requestId: 2n, result: new Uint8Array(0) });
    // Every member acked at once: the agent had nothing to re-send.
    expect(h.c.sequencer.stats.retransmits).toBe(0);
    for (const app of h.c.apps) expect(app.history.length).toBe(4);
    // The client, already past request 2, ignores the stale answer.
    expect(h.c.certified.filter((c) => c.clientId === 1n)).toHaveLength(4);
  });

  it("a replay of the client's latest request id: answered with the cached result, not executed again", () => {
    const h = harness();
    h.c.startWorkload(3);
    quiesce(h);
    const first = h.sent.find((s) => s.msg.type === 'REPLY' && s.msg['requestId'] === 3n)!.msg as unknown as ReplyMsg;
    const seq = replay(h, 1n, 3n);
    playOut(h);
    const { acks, replies } = answersFor(h, seq);
    expect([...acks.keys()].sort()).toEqual([0, 1, 2]);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.stale).toBeUndefined();
    expect(replies[0]!.result).toEqual(first.result);
    expect(h.c.sequencer.stats.retransmits).toBe(0);
    for (const app of h.c.apps) expect(app.history.length).toBe(3);
  });

  it('many replays: each costs one stamped slot, no execution and no re-send', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(5);
    quiesce(h);
    const before = h.c.sequencer.stats.stamped;
    for (let i = 0; i < 50; i++) replay(h, BigInt(1 + (i % 2)), BigInt(1 + (i % 5)));
    playOut(h);
    expect(h.c.sequencer.stats.stamped - before).toBe(50);
    expect(h.c.sequencer.stats.replies).toBe(h.c.sequencer.stats.stamped);
    expect(h.c.sequencer.stats.retransmits).toBe(0);
    for (const app of h.c.apps) expect(app.history.length).toBe(10);
  });
});

describe('a seq committed as a no-op', () => {
  it('a re-sent copy of it: the leader ACKs a stale mark, followers ACK it, so its window slot can complete', () => {
    // Gap agreement: the leader never got seq 3 and the agent's copy is
    // gone, so the leader commits a no-op there (gap-agreement.test.ts).
    const h = harness();
    h.drop((x) => x.msg.type === 'SEQUENCED' && x.msg['seq'] === 3 && x.to === 0);
    const orig = h.c.sequencer.onRequest.bind(h.c.sequencer);
    h.c.sequencer.onRequest = (r, node) => {
      const v = orig(r, node);
      h.c.sequencer.forget(3);
      return v;
    };
    h.c.startWorkload(10);
    // Until every replica holds the no-op (before a checkpoint truncates it).
    expect(h.c.runUntil(() => h.c.replicas.every((r) => r!.log.get(3)?.noop === true), 1_000_000)).toBe(true);
    // The agent (still holding it, under backpressure) re-sends seq 3.
    const copy = h.sent.find((x) => x.msg.type === 'SEQUENCED' && x.msg['seq'] === 3)!.msg as unknown as SequencedMsg;
    const mark = h.sent.length;
    for (const r of h.c.replicas) r!.receive({ ...copy, retransmit: true });
    const acks = h.sent.slice(mark).map((x) => x.msg as unknown as AckMsg).filter((m) => m.type === 'ACK' && m.seq === 3);
    expect(acks.map((a) => a.replicaId).sort()).toEqual([0, 1, 2]);
    expect(acks.find((a) => a.replicaId === 0)).toMatchObject({ stale: true, result: new Uint8Array(0) });
    for (const a of acks.filter((x) => x.replicaId !== 0)) expect(a.result).toBeNull();
    quiesce(h);
    for (const app of h.c.apps) expect(app.history.length).toBe(10); // executed once, at the retry's seq
  });
});

describe('cold start: the first messages reach replicas before their view change into the sequencer session', () => {
  it('replicas created in session 0: every member ACKs the first requests (logged via START_VIEW) without a re-send', () => {
    // The agent's session is 1; replicas start in 0 (they learn it from
    // the traffic). The first SEQUENCED starts the view change, and the
    // leader's START_VIEW brings the followers the first requests.
    const h = harness({ clients: 4, replicaSession: 0 });
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.c.certified).toHaveLength(20);
    const stamped = h.c.sequencer.stats.stamped;
    for (let seq = 1; seq <= stamped; seq++) {
      const { acks } = answersFor(h, seq);
      expect([...acks.keys()].sort(), `seq ${seq}`).toEqual([0, 1, 2]);
    }
    expect(h.c.sequencer.stats.retransmits).toBe(0);
  });
});

// The replica's side of the replica-side XDP program: drop notifications
// (the kernel's gap events) start the repair from the kernel's range once
// the reorder wait is over, even before a later seq reached user space,
// and stale or covered ones change nothing; and the replica tells its
// transport what it holds (ReplicaTransport.delivered) after every event
// that moved its log's end.
import { describe, expect, it } from 'vitest';
import type { AckMsg, PeerMsg, RepairRequestMsg, SequencedMsg } from '../../replica/messages.ts';
import { Replica } from '../../replica/replica.ts';
import { HistoryApp } from '../../replica/sim/history-app.ts';
import { EventQueue } from '../../replica/sim/event-queue.ts';
import type { ReplicaTransport } from '../../replica/transport.ts';

const SESSION = 4;
const WAIT = 500; // reorderWaitUs

function follower() {
  const q = new EventQueue();
  const repairs: RepairRequestMsg[] = [];
  const acks: AckMsg[] = [];
  const delivered: [number, number][] = [];
  const transport: ReplicaTransport = {
    sendToReplica: (_to: number, _m: PeerMsg) => {},
    sendAck: (m) => acks.push(m),
    sendRepairRequest: (m) => repairs.push(m),
    delivered: (session, seq) => delivered.push([session, seq]),
  };
  const r = new Replica({ id: 1, n: 3, app: new HistoryApp(), transport, scheduler: q.scheduler(), session: SESSION, config: { reorderWaitUs: WAIT, leaderTimeoutUs: 10_000_000 } });
  const seq = (n: number): SequencedMsg => ({ type: 'SEQUENCED', session: SESSION, seq: n, clientId: 7n, requestId: BigInt(n), op: HistoryApp.op(7, n), retransmit: false });
  const runFor = (us: number) => {
    let done = false;
    q.after(us, () => void (done = true));
    while (!done && q.step());
  };
  return { q, r, repairs, acks, delivered, seq, runFor };
}

describe('drop notifications and delivered reports', () => {
  it('a notified gap is repaired for exactly its range after the reorder wait, before any later seq arrived', () => {
    const f = follower();
    for (let n = 1; n <= 3; n++) f.r.receive(f.seq(n));
    f.r.receive({ type: 'DROP_NOTIFICATION', session: SESSION, from: 4, to: 9 });
    f.runFor(WAIT - 1);
    expect(f.repairs).toEqual([]); // maybe only reordered: wait first
    f.runFor(2);
    expect(f.repairs).toEqual([{ type: 'REPAIR_REQUEST', session: SESSION, replicaId: 1, first: 4, count: 6 }]);
  });

  it('a seq of the range that arrived late ends the repaired run before it', () => {
    const f = follower();
    for (let n = 1; n <= 3; n++) f.r.receive(f.seq(n));
    f.r.receive({ type: 'DROP_NOTIFICATION', session: SESSION, from: 4, to: 9 });
    f.r.receive(f.seq(7));
    f.runFor(WAIT + 1);
    expect(f.repairs).toEqual([{ type: 'REPAIR_REQUEST', session: SESSION, replicaId: 1, first: 4, count: 3 }]);
  });

  it('late packets that fill the notified range cancel the repair; other sessions and covered ranges are ignored', () => {
    const f = follower();
    f.r.receive(f.seq(1));
    f.r.receive({ type: 'DROP_NOTIFICATION', session: SESSION, from: 2, to: 3 });
    f.r.receive(f.seq(2));
    f.r.receive(f.seq(3));
    f.r.receive({ type: 'DROP_NOTIFICATION', session: SESSION + 1, from: 4, to: 8 });
    f.r.receive({ type: 'DROP_NOTIFICATION', session: SESSION, from: 1, to: 3 });
    f.runFor(10 * WAIT);
    expect(f.repairs).toEqual([]);
    expect(f.r.nextSeq()).toBe(4);
  });

  it('tells the transport what it holds, once per change', () => {
    const f = follower();
    expect(f.delivered).toEqual([[SESSION, 0]]);
    f.r.receive(f.seq(1));
    f.r.receive(f.seq(1)); // a duplicate moves nothing
    f.r.receive(f.seq(3)); // buffered, not delivered
    f.r.receive(f.seq(2));
    expect(f.delivered).toEqual([[SESSION, 0], [SESSION, 1], [SESSION, 3]]);
    // A newer session: the replica starts a view change and holds nothing of it.
    f.r.receive({ ...f.seq(1), session: SESSION + 1 });
    expect(f.delivered.at(-1)).toEqual([SESSION + 1, 0]);
  });

  it('several sequencers: each stream reports its own position, and a notification goes to the stream it names', () => {
    const q = new EventQueue();
    const repairs: RepairRequestMsg[] = [];
    const delivered: [number, number, number | undefined][] = [];
    const transport: ReplicaTransport = {
      sendToReplica: () => {},
      sendAck: () => {},
      sendRepairRequest: (m) => repairs.push(m),
      sendFlushSolicit: () => {},
      delivered: (session, seq, sid) => delivered.push([session, seq, sid]),
    };
    const r = new Replica({ id: 1, n: 3, app: new HistoryApp(), transport, scheduler: q.scheduler(), sequencers: [0, 1], config: { reorderWaitUs: WAIT, leaderTimeoutUs: 10_000_000 } });
    const s = (sid: number, session: number, n: number, clock: number): SequencedMsg => ({ type: 'SEQUENCED', session, seq: n, clientId: BigInt(10 + sid), requestId: BigInt(n), op: HistoryApp.op(10 + sid, n), retransmit: false, sequencerId: sid, clock });
    r.receive(s(0, 5, 1, 100));
    r.receive(s(1, 8, 1, 150));
    r.receive(s(1, 8, 2, 160));
    // Resolved prefixes, per stream, each with its own session (nothing merged yet: 1's clocks wait for 0's frontier).
    expect(delivered).toEqual([[5, 1, 0], [8, 1, 1], [8, 2, 1]]);
    r.receive({ type: 'DROP_NOTIFICATION', sequencerId: 1, session: 8, from: 3, to: 6 });
    r.receive({ type: 'DROP_NOTIFICATION', sequencerId: 0, session: 7, from: 2, to: 9 }); // not stream 0's session
    r.receive({ type: 'DROP_NOTIFICATION', session: 5, from: 2, to: 9 }); // names no sequencer
    let done = false;
    q.after(WAIT + 1, () => void (done = true));
    while (!done && q.step());
    expect(repairs).toEqual([{ type: 'REPAIR_REQUEST', sequencerId: 1, session: 8, replicaId: 1, first: 3, count: 4 }]);
  });
});

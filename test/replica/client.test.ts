// The client core on its own: certification rules, retries with the same
// request id, one request in flight, and a clear error at the deadline.
import { describe, expect, it } from 'vitest';
import { Client, ClientError } from '../../replica/client.ts';
import type { AckMsg, RequestMsg } from '../../replica/messages.ts';
import { EventQueue } from '../../replica/sim/event-queue.ts';
import { harness } from './helpers.ts';

function rig(aggregated: boolean, n = 3) {
  const q = new EventQueue();
  const sent: RequestMsg[] = [];
  const client = new Client({ clientId: 7n, n, aggregated, scheduler: q.scheduler(), transport: { sendRequest: (m) => sent.push(m) }, retryUs: 1_000, deadlineUs: 10_000 });
  const ack = (replicaId: number, leaderNum: number, result: Uint8Array | null, seq = 5, requestId = 1n): AckMsg => ({ type: 'ACK', session: 1, seq, leaderNum, replicaId, clientId: 7n, requestId, result });
  return { q, sent, client, ack };
}

describe('client', () => {
  it('retries with the same request id and fails with ETIMEDOUT at the deadline', () => {
    const { q, sent, client } = rig(true);
    let err: ClientError | null = null;
    client.submit(new Uint8Array([1]), (e) => (err = e));
    while (q.step() && q.now < 20_000);
    expect(err).toBeInstanceOf(ClientError);
    expect(err!.code).toBe('ETIMEDOUT');
    expect(err!.message).toBe('request 1 of client 7 not certified within 10000 us (10 attempts; sequencer 0: 10)');
    expect(err!.attempts).toEqual([{ sequencerId: 0, attempts: 10 }]);
    expect(sent.length).toBe(10);
    expect(new Set(sent.map((m) => m.requestId))).toEqual(new Set([1n]));
  });

  it('invoke() rejects with the same error', async () => {
    const { q, client } = rig(true);
    const p = client.invoke(new Uint8Array([1]));
    while (q.step() && q.now < 20_000);
    await expect(p).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('without aggregation: f+1 matching ACKs with the leader certify; followers alone do not', () => {
    const { client, ack } = rig(false, 5);
    let got: Uint8Array | null = null;
    client.submit(new Uint8Array([1]), (_e, r) => (got = r));
    const res = new Uint8Array([42]);
    client.receive(ack(1, 0, null));
    client.receive(ack(2, 0, null));
    client.receive(ack(3, 0, null));
    expect(got).toBeNull(); // three followers, no leader
    client.receive(ack(0, 0, res, 6)); // the leader, but for another seq
    expect(got).toBeNull();
    client.receive(ack(0, 0, res));
    expect(got).toEqual(res);
  });

  it('without aggregation: ACKs of different views do not add up', () => {
    const { client, ack } = rig(false);
    let got: Uint8Array | null = null;
    client.submit(new Uint8Array([1]), (_e, r) => (got = r));
    client.receive(ack(1, 0, null));
    client.receive(ack(1, 1, new Uint8Array([1]))); // leader of view 1, alone in it
    expect(got).toBeNull();
    client.receive(ack(2, 1, null));
    expect(got).toEqual(new Uint8Array([1]));
  });

  it('one request in flight: the next waits, gets the next id, and replies to old ids are ignored', () => {
    const { sent, client } = rig(true);
    const done: number[] = [];
    client.submit(new Uint8Array([1]), () => done.push(1));
    client.submit(new Uint8Array([2]), () => done.push(2));
    expect(sent.map((m) => m.requestId)).toEqual([1n]);
    const reply = (requestId: bigint) => client.receive({ type: 'REPLY', session: 1, seq: 1, leaderNum: 0, replicaId: 0, clientId: 7n, requestId, result: new Uint8Array() });
    reply(1n);
    expect(sent.map((m) => m.requestId)).toEqual([1n, 2n]);
    reply(1n);
    expect(done).toEqual([1]);
    reply(2n);
    expect(done).toEqual([1, 2]);
  });

  it('a STALE REPLY for the request in flight is not its answer: re-sent (same id) after 1 ms, not a retry interval later', () => {
    const q = new EventQueue();
    const sent: { id: bigint; at: number }[] = [];
    const client = new Client({ clientId: 7n, n: 3, aggregated: true, scheduler: q.scheduler(), transport: { sendRequest: (m) => sent.push({ id: m.requestId, at: q.now }) }, retryUs: 50_000, deadlineUs: 1e9 });
    let got: Uint8Array | null = null;
    client.submit(new Uint8Array([1]), (_e, r) => (got = r));
    const reply = (seq: number, stale: boolean) =>
      client.receive({ type: 'REPLY', session: 1, seq, leaderNum: 0, replicaId: 0, clientId: 7n, requestId: 1n, result: new Uint8Array(stale ? 0 : 1), ...(stale ? { stale } : {}) });
    // Seq 5 settled without this request (a no-op, or truncated at the leader: replica/acks.ts).
    reply(5, true);
    expect(got).toBeNull();
    while (sent.length < 2 && q.step());
    expect(sent).toEqual([{ id: 1n, at: 0 }, { id: 1n, at: 1_000 }]);
    reply(6, true); // its re-send settled the same way: the pause doubles
    while (sent.length < 3 && q.step());
    expect(sent[2]).toEqual({ id: 1n, at: 3_000 });
    reply(7, false);
    expect(got).toEqual(new Uint8Array(1));
  });

  it('against a cluster with every replica cut off, the request times out', () => {
    const h = harness({ clientDeadlineUs: 50_000 });
    for (let i = 0; i < 3; i++) h.c.isolate(i);
    h.c.startWorkload(1);
    h.c.runFor(60_000);
    expect(h.c.failures.map((e) => e.code)).toEqual(['ETIMEDOUT']);
  });
});

// The client core with several sequencers (Hydra, issue 5), in virtual
// time against fake sequencers that answer (or drop) each attempt: which
// sequencer each attempt goes to under both policies, fail over on a
// timeout, avoidance for the back-off and fail back after it, the deadline
// error's contents, duplicate replies, and the f+1 rule without
// aggregation when retries went through different sequencers.
import { describe, expect, it } from 'vitest';
import { Client, ClientError, type SequencerPolicy } from '../../replica/client.ts';
import { fnv1a32, sequencerForKey } from '../../replica/key-hash.ts';
import type { AckMsg, ReplyMsg, RequestMsg } from '../../replica/messages.ts';
import { EventQueue } from '../../replica/sim/event-queue.ts';

const RETRY = 1_000;
const BACKOFF = 20_000;
const ANSWER_US = 100;

interface Attempt {
  at: number;
  to: number;
  requestId: bigint;
}

/**
 * k fake sequencers; an alive one answers every request with a REPLY after
 * ANSWER_US (seq = its own counter, so stamps of different sequencers look
 * like Hydra's), a dead one drops it.
 */
function rig(o: { k: number; policy?: SequencerPolicy; deadlineUs?: number; ids?: number[]; answer?: boolean }) {
  const q = new EventQueue();
  const ids = o.ids ?? Array.from({ length: o.k }, (_, i) => i);
  const alive = new Map(ids.map((id) => [id, true]));
  const stamped = new Map(ids.map((id) => [id, 0]));
  const attempts: Attempt[] = [];
  const replies: { m: ReplyMsg; from: number }[] = [];
  let client: Client;
  const sendRequest = (m: RequestMsg, to: number) => {
    attempts.push({ at: q.now, to, requestId: m.requestId });
    if (!alive.get(to) || o.answer === false) return;
    const seq = stamped.get(to)! + 1;
    stamped.set(to, seq);
    const r: ReplyMsg = { type: 'REPLY', session: 1, seq, leaderNum: 0, replicaId: 0, clientId: m.clientId, requestId: m.requestId, result: new Uint8Array([to]), sequencerId: to };
    q.after(ANSWER_US, () => {
      replies.push({ m: r, from: to });
      client.receive(r, to);
    });
  };
  client = new Client({
    clientId: 9n,
    n: 3,
    aggregated: true,
    scheduler: q.scheduler(),
    transport: { sendRequest },
    sequencers: ids,
    ...(o.policy ? { policy: o.policy } : {}),
    retryUs: RETRY,
    deadlineUs: o.deadlineUs ?? 1e9,
    backoffUs: BACKOFF,
  });
  const results: { err: ClientError | null; result: Uint8Array | null; at: number }[] = [];
  /** Submits one request and runs until it completes. */
  const one = (key?: string) => {
    const before = results.length;
    client.submit(new Uint8Array([1]), (err, result) => results.push({ err, result, at: q.now }), key === undefined ? {} : { key });
    while (results.length === before && q.step());
    return results[before]!;
  };
  return { q, client, alive, attempts, replies, results, one };
}

const spread = (a: Attempt[]) => a.map((x) => x.to);

describe('client with several sequencers', () => {
  it('failover (active + standby): every request to the active; on its death to the standby, and it stays there', () => {
    const r = rig({ k: 2, policy: 'failover' });
    for (let i = 0; i < 4; i++) expect(r.one().err).toBeNull();
    expect(spread(r.attempts)).toEqual([0, 0, 0, 0]);
    r.alive.set(0, false);
    expect(r.one().result).toEqual(new Uint8Array([1]));
    expect(spread(r.attempts.slice(4))).toEqual([0, 1]);
    // The active comes back (say, its old data path, which the replicas now
    // drop): the client stays with the standby that answered, back-off over or not.
    r.alive.set(0, true);
    let woke = false;
    r.q.after(BACKOFF * 20, () => (woke = true));
    while (!woke && r.q.step());
    for (let i = 0; i < 4; i++) expect(r.one().result).toEqual(new Uint8Array([1]));
    expect(spread(r.attempts.slice(6))).toEqual([1, 1, 1, 1]);
    // The standby dies in turn: back to the first.
    r.alive.set(1, false);
    expect(r.one().result).toEqual(new Uint8Array([0]));
    expect(spread(r.attempts.slice(10))).toEqual([1, 0]);
  });

  it('failover: a standby that refuses the first request (it takes over on it) gets the retry, not the dead active', () => {
    const r = rig({ k: 2, policy: 'failover' });
    expect(r.one().err).toBeNull();
    r.alive.set(0, false);
    // The standby drops the first request that reaches it, then serves.
    r.alive.set(1, false);
    let knocked = false;
    const sent = r.attempts.length;
    const watch = () => {
      if (!knocked && r.attempts.length > sent + 1) {
        knocked = true;
        r.alive.set(1, true);
      }
    };
    r.client.submit(new Uint8Array([1]), (err, result) => r.results.push({ err, result, at: r.q.now }));
    while (r.results.length < 2 && r.q.step()) watch();
    expect(r.results[1]!.result).toEqual(new Uint8Array([1]));
    // Active (dead), standby (refused), standby again: not back to the active.
    expect(spread(r.attempts.slice(sent))).toEqual([0, 1, 1]);
  });

  it('failover: refusals by a waiting standby while the active lives never make it avoided when the active dies', () => {
    const r = rig({ k: 2, policy: 'failover', deadlineUs: 1e9 });
    expect(r.one().err).toBeNull();
    // The active is slow for a while (its answers lost) and the standby refuses: many failures at both.
    r.alive.set(0, false);
    r.alive.set(1, false);
    let done = false;
    r.client.submit(new Uint8Array([1]), () => (done = true));
    let woke = false;
    r.q.after(BACKOFF * 10, () => (woke = true));
    while (!woke && r.q.step());
    const before = r.attempts.length;
    // Sticky, next, next, sticky, next, next, ...
    expect(spread(r.attempts.slice(1, 7))).toEqual([0, 1, 1, 0, 1, 1]);
    // The active dies for good; the standby takes over: the next attempt at it succeeds.
    r.alive.set(1, true);
    while (!done && r.q.step());
    expect(r.attempts.length - before).toBeLessThanOrEqual(2);
  });

  it('round-robin: consecutive requests go to each sequencer in turn', () => {
    const r = rig({ k: 3 });
    for (let i = 0; i < 9; i++) expect(r.one().err).toBeNull();
    expect(spread(r.attempts)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(r.attempts.map((a) => a.requestId)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    expect(r.client.health().map((h) => h.attempts)).toEqual([3, 3, 3]);
  });

  it('round-robin uses the configured ids, not positions', () => {
    const r = rig({ k: 3, ids: [4, 9, 2] });
    for (let i = 0; i < 4; i++) r.one();
    expect(spread(r.attempts)).toEqual([4, 9, 2, 4]);
  });

  it('key: FNV-1a 32 (documented vectors) picks the sequencer, the same one every time', () => {
    // Published FNV-1a 32-bit test vectors: any implementation must agree.
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(fnv1a32(new Uint8Array(Buffer.from('foobar')))).toBe(0xbf9cf968);
    const r = rig({ k: 3, policy: 'key' });
    const keys = Array.from({ length: 30 }, (_, i) => `user:${i}`);
    for (const round of [0, 1])
      for (const key of keys) {
        r.one(key);
        expect(r.attempts.at(-1)!.to, `${key}, round ${round}`).toBe(fnv1a32(key) % 3);
      }
    // The hash spreads: every sequencer gets some of the 30 keys.
    expect(new Set(keys.map((k) => sequencerForKey(k, 3)))).toEqual(new Set([0, 1, 2]));
  });

  it('key policy without a key goes round-robin', () => {
    const r = rig({ k: 2, policy: 'key' });
    r.one();
    r.one();
    r.one('a'); // 0xe40c292c % 2 = 0
    r.one();
    expect(spread(r.attempts)).toEqual([0, 1, 0, 0]);
  });

  it('fail over: a sequencer that drops everything costs one timeout, then is avoided for the back-off', () => {
    const r = rig({ k: 3 });
    r.alive.set(1, false);
    r.one(); // -> 0
    const second = r.one(); // -> 1 (dropped), after RETRY -> 2
    expect(second.err).toBeNull();
    expect(second.result).toEqual(new Uint8Array([2]));
    expect(r.attempts.slice(1).map((a) => [a.to, a.requestId, a.at - r.attempts[1]!.at])).toEqual([
      [1, 2n, 0],
      [2, 2n, RETRY], // the same request id, to the next sequencer
    ]);
    const h1 = r.client.health()[1]!;
    expect(h1).toMatchObject({ failures: 1, lastFailedAt: r.attempts[2]!.at, avoidUntil: r.attempts[2]!.at + BACKOFF });
    // Within the back-off nobody goes to 1, and nothing else times out.
    const from = r.attempts.length;
    while (r.q.now < h1.avoidUntil - 2 * ANSWER_US) expect(r.one().err).toBeNull();
    const during = spread(r.attempts.slice(from));
    expect(during.length).toBeGreaterThan(10);
    expect(during).not.toContain(1);
    expect(r.attempts.slice(from).every((a, i, all) => i === 0 || a.requestId !== all[i - 1]!.requestId)).toBe(true);
  });

  it('fail back: after the back-off the sequencer is probed; a dead one is avoided twice as long, a revived one is used again', () => {
    const r = rig({ k: 2 });
    r.alive.set(1, false);
    r.one(); // 0
    r.one(); // 1 times out, then 0
    const firstFail = r.client.health()[1]!.lastFailedAt;
    while (r.q.now < firstFail + BACKOFF) r.one();
    r.one(); // may still be 0 by rotation
    r.one();
    const probes = r.attempts.filter((a) => a.to === 1);
    expect(probes.length).toBe(2);
    expect(probes[1]!.at).toBeGreaterThanOrEqual(firstFail + BACKOFF);
    const h = r.client.health()[1]!;
    expect(h.failures).toBe(2);
    expect(h.avoidUntil - h.lastFailedAt).toBe(2 * BACKOFF);

    r.alive.set(1, true);
    while (r.q.now < h.avoidUntil) r.one();
    r.one();
    r.one();
    const after = r.attempts.filter((a) => a.at >= h.avoidUntil);
    expect(spread(after)).toContain(1);
    expect(r.client.health()[1]).toMatchObject({ failures: 0, avoidUntil: -Infinity });
    // Healthy again: plain alternation, no more timeouts.
    const from = r.attempts.length;
    for (let i = 0; i < 6; i++) r.one();
    const tail = spread(r.attempts.slice(from));
    expect(tail.filter((x) => x === 0).length).toBe(3);
    expect(tail.filter((x) => x === 1).length).toBe(3);
  });

  it('when every sequencer is avoided it still tries, least recently failed first, instead of failing early', () => {
    const r = rig({ k: 3, deadlineUs: 10 * RETRY + 1 });
    for (const id of [0, 1, 2]) r.alive.set(id, false);
    r.client.submit(new Uint8Array([1]), () => {});
    // Revive 1 once all three have failed once.
    while (r.attempts.length < 3 && r.q.step());
    expect(spread(r.attempts)).toEqual([0, 1, 2]);
    r.alive.set(0, true);
    while (r.q.step() && r.replies.length === 0);
    // After 2 failed, all are avoided; the least recently failed is 0.
    expect(spread(r.attempts)).toEqual([0, 1, 2, 0]);
    expect(r.replies.map((x) => x.from)).toEqual([0]);
    expect(r.client.inFlight).toBeNull();
  });

  it('after the deadline: ETIMEDOUT saying how many attempts went to which sequencer', () => {
    const r = rig({ k: 3, ids: [0, 1, 5], deadlineUs: 7 * RETRY + 1, answer: false });
    const got = r.one();
    expect(got.err).toBeInstanceOf(ClientError);
    expect(got.err!.code).toBe('ETIMEDOUT');
    expect(got.at).toBe(7 * RETRY + 1);
    expect(spread(r.attempts)).toEqual([0, 1, 5, 0, 1, 5, 0, 1]);
    expect(got.err!.attempts).toEqual([
      { sequencerId: 0, attempts: 3 },
      { sequencerId: 1, attempts: 3 },
      { sequencerId: 5, attempts: 2 },
    ]);
    expect(got.err!.message).toBe('request 1 of client 9 not certified within 7001 us (8 attempts; sequencer 0: 3, sequencer 1: 3, sequencer 5: 2)');
    expect(new Set(r.attempts.map((a) => a.requestId))).toEqual(new Set([1n]));
  });

  it('a reply is accepted from any sequencer; duplicates (from both stamps of a retry) complete it once', () => {
    const r = rig({ k: 2 });
    // Sequencer 0 is slow, not dead: its answer comes after the retry went to 1.
    const q = r.q;
    const done: bigint[] = [];
    const held: ReplyMsg[] = [];
    const c = new Client({
      clientId: 3n,
      n: 3,
      aggregated: true,
      scheduler: q.scheduler(),
      sequencers: [0, 1],
      retryUs: RETRY,
      deadlineUs: 1e9,
      transport: {
        sendRequest: (m, to) => held.push({ type: 'REPLY', session: 1, seq: held.length + 1, leaderNum: 0, replicaId: 0, clientId: m.clientId, requestId: m.requestId, result: new Uint8Array([to]), sequencerId: to }),
      },
    });
    const results: Uint8Array[] = [];
    c.submit(new Uint8Array([1]), (e, res, cert) => {
      expect(e).toBeNull();
      results.push(res!);
      done.push(cert!.requestId);
    });
    while (held.length < 2 && q.step());
    expect(held.map((h) => h.sequencerId)).toEqual([0, 1]);
    c.receive(held[0]!, 0); // the slow first stamp answers first: accepted
    c.receive(held[1]!, 1); // the retry's answer: a duplicate, ignored
    c.receive(held[0]!, 0);
    expect(done).toEqual([1n]);
    expect(results).toEqual([new Uint8Array([0])]);
    // The answer credits the sequencer it came from: 0 is healthy again.
    expect(c.health()[0]).toMatchObject({ failures: 0 });
    // A stale duplicate does not complete the next request.
    c.submit(new Uint8Array([2]), (_e, _r, cert) => done.push(cert!.requestId));
    c.receive(held[1]!, 1);
    expect(done).toEqual([1n]);
  });
});

describe('client without aggregation: f+1 matching ACKs including the leader', () => {
  function acks(n = 3) {
    const q = new EventQueue();
    const sent: { m: RequestMsg; to: number }[] = [];
    const c = new Client({ clientId: 7n, n, aggregated: false, scheduler: q.scheduler(), sequencers: [0, 1], retryUs: RETRY, deadlineUs: 1e9, transport: { sendRequest: (m, to) => sent.push({ m, to }) } });
    let got: Uint8Array | null = null;
    let calls = 0;
    c.submit(new Uint8Array([1]), (_e, r) => {
      calls++;
      got = r;
    });
    const ack = (replicaId: number, o: Partial<AckMsg> = {}): AckMsg => ({ type: 'ACK', session: 1, seq: 5, leaderNum: 0, replicaId, clientId: 7n, requestId: 1n, result: replicaId === 0 ? new Uint8Array([42]) : null, sequencerId: 0, ...o });
    return { q, c, sent, ack, got: () => got, calls: () => calls };
  }

  it('a follower and the leader for the same stamp certify (n=3)', () => {
    const t = acks();
    t.c.receive(t.ack(1));
    expect(t.got()).toBeNull();
    t.c.receive(t.ack(0));
    expect(t.got()).toEqual(new Uint8Array([42]));
    t.c.receive(t.ack(2)); // late, ignored
    expect(t.calls()).toBe(1);
  });

  it('the same replica twice is one vote; two followers without the leader do not certify', () => {
    const t = acks();
    t.c.receive(t.ack(1));
    t.c.receive(t.ack(1));
    t.c.receive(t.ack(2));
    expect(t.got()).toBeNull();
    t.c.receive(t.ack(0, { result: null })); // leader without a result: not certified
    expect(t.got()).toBeNull();
  });

  it('ACKs for the two stamps of a retried request (one per sequencer) do not add up, even at the same seq', () => {
    const t = acks();
    while (t.sent.length < 2 && t.q.step());
    expect(t.sent.map((s) => [s.to, s.m.requestId])).toEqual([
      [0, 1n],
      [1, 1n],
    ]);
    t.c.receive(t.ack(1, { sequencerId: 0 }));
    t.c.receive(t.ack(0, { sequencerId: 1 })); // the leader, but for sequencer 1's stamp
    expect(t.got()).toBeNull();
    t.c.receive(t.ack(2, { sequencerId: 1 }));
    expect(t.got()).toEqual(new Uint8Array([42]));
  });

  it('a mismatching ACK (other seq, other view, other request) does not count', () => {
    const t = acks();
    t.c.receive(t.ack(0));
    t.c.receive(t.ack(1, { seq: 6 }));
    t.c.receive(t.ack(2, { leaderNum: 3 }));
    t.c.receive(t.ack(1, { session: 2 }));
    t.c.receive(t.ack(2, { requestId: 2n }));
    t.c.receive(t.ack(1, { clientId: 8n }));
    expect(t.got()).toBeNull();
    t.c.receive(t.ack(2));
    expect(t.got()).toEqual(new Uint8Array([42]));
  });

  it('n=5 needs three, the leader among them', () => {
    const t = acks(5);
    t.c.receive(t.ack(3));
    t.c.receive(t.ack(4));
    t.c.receive(t.ack(0));
    expect(t.got()).toEqual(new Uint8Array([42]));
  });
});

// Aggregation off, on real sockets (loopback): three real replicas
// (Replica + UdpReplicaTransport with acksTo 'client') behind a stand-in
// sequencer that stamps REQUESTs the way bpf/sequencer.h does (type, session,
// seq; everything else, the reply address included, passes through) and
// sends each replica its copy. The client names its address in the REQUEST
// (reply-to.ts) and certifies on f+1 matching ACKs including the leader's.
// Bounded: the replicas' leader timeout is far beyond the test, every wait
// has a deadline, and everything is closed after each test.
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../bpf/wire.ts';
import type { Application } from '../../replica/app.ts';
import { Client, ClientError } from '../../replica/client.ts';
import { RealTimeScheduler, UdpClientTransport, type HostPort } from '../../replica/udp/index.ts';
import { GROUP_ID, HOST, loopbackGroup } from '../helpers/loopback-group.ts';
import { replyToOf, ReplyToTable, setReplyTo } from '../../replica/udp/reply-to.ts';
import { requestToWire } from '../../replica/wire-map.ts';


/** Answers op bytes with [ops executed before it, ...op]: results show their position. */
class CountingApp implements Application {
  n = 0;
  execute(op: Uint8Array): Uint8Array {
    return new Uint8Array([this.n++, ...op]);
  }
  snapshot(): Uint8Array {
    return new Uint8Array([this.n]);
  }
  restore(s: Uint8Array): void {
    this.n = s[0] ?? 0;
  }
}

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of closers.splice(0).reverse()) await f();
});

async function directClient(sequencer: HostPort, clientId: bigint, deadlineUs: number) {
  const t = await UdpClientTransport.open({ sequencer, groupId: GROUP_ID, bindAddress: HOST, directAcks: true });
  closers.push(() => t.close());
  const c = new Client({ clientId, n: 3, aggregated: false, scheduler: new RealTimeScheduler(), transport: t, retryUs: 200_000, deadlineUs });
  t.register(c);
  closers.push(() => c.close());
  return { t, c };
}

describe('reply address in the REQUEST header', () => {
  it('round-trips through view and replica_id; zero means none', () => {
    const b = setReplyTo(requestToWire({ type: 'REQUEST', clientId: 1n, requestId: 2n, op: new Uint8Array([3]) }, { groupId: 1 }), { host: '10.1.2.254', port: 40_001 });
    const d = decodeMessage(b);
    expect(d.ok && d.message.header.view).toBe(0x0a0102fe);
    expect(d.ok && replyToOf(d.message.header)).toEqual({ host: '10.1.2.254', port: 40_001 });
    expect(d.ok && d.message.header.clientId).toBe(1n);
    expect(replyToOf({ view: 0, replicaId: 0 })).toBeNull();
    expect(() => setReplyTo(Buffer.alloc(64), { host: 'host', port: 1 })).toThrow(/not an IPv4 literal/);
  });

  it('the table keeps the latest address per client and forgets the least recently heard from', () => {
    const t = new ReplyToTable(2);
    t.note(1n, { host: '10.0.0.1', port: 1 });
    t.note(2n, { host: '10.0.0.2', port: 2 });
    t.note(1n, { host: '10.0.0.1', port: 9 }); // 1 heard again: 2 is now the oldest
    t.note(3n, { host: '10.0.0.3', port: 3 });
    expect([t.get(1n), t.get(2n), t.get(3n), t.size]).toEqual([{ host: '10.0.0.1', port: 9 }, undefined, { host: '10.0.0.3', port: 3 }, 2]);
  });
});

describe('aggregation off over UDP: replicas ACK the client, f+1 including the leader certify', () => {
  it('each request is certified by the replicas\' own ACKs, results in order', async () => {
    const g = await loopbackGroup(() => new CountingApp(), closers);
    const { t, c } = await directClient(g.sequencer, 77n, 10_000_000);
    expect(t.replyTo).toEqual({ host: HOST, port: t.address.port });
    const r1 = await c.invoke(new Uint8Array([9]));
    const r2 = await c.invoke(new Uint8Array([8]));
    expect([...r1, ...r2]).toEqual([0, 9, 1, 8]);
    const k = t.counters();
    expect(k.replies).toBe(0);
    expect(k.acks).toBeGreaterThanOrEqual(4); // at least f+1 per request
    expect(g.transports.map((x) => x.counters().acksNoAddress)).toEqual([0, 0, 0]);
  }, 20_000);

  it('without the leader the followers\' ACKs do not certify: ETIMEDOUT though they arrived', async () => {
    const g = await loopbackGroup(() => new CountingApp(), closers);
    g.deliverTo.delete(0); // the leader (view 0) never sees the request
    const { t, c } = await directClient(g.sequencer, 78n, 800_000);
    const err = (await c.invoke(new Uint8Array([1])).catch((e: unknown) => e)) as ClientError;
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe('ETIMEDOUT');
    expect(t.counters().acks).toBeGreaterThanOrEqual(2); // both followers answered, more than once
    expect(g.transports[0]!.counters().sequenced).toBe(0);
  }, 20_000);

  it('a REQUEST that names no reply address gets no ACK (counted), and a later one that does is answered', async () => {
    const g = await loopbackGroup(() => new CountingApp(), closers);
    const plain = await UdpClientTransport.open({ sequencer: g.sequencer, groupId: GROUP_ID, bindAddress: HOST, connect: false });
    closers.push(() => plain.close());
    plain.sendRequest({ type: 'REQUEST', clientId: 79n, requestId: 1n, op: new Uint8Array([5]) });
    const until = Date.now() + 5000;
    while (g.transports.reduce((a, x) => a + x.counters().acksNoAddress, 0) < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(g.transports.map((x) => x.counters().acksNoAddress)).toEqual([1, 1, 1]);
    expect(plain.counters().acks).toBe(0);
    const { c } = await directClient(g.sequencer, 80n, 10_000_000);
    expect([...(await c.invoke(new Uint8Array([6])))]).toEqual([1, 6]);
  }, 20_000);
});

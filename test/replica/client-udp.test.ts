// The client on real sockets (loopback): fake sequencers are plain UDP
// sockets that answer a REQUEST with a REPLY, or stay silent. Shows fail
// over with real sockets, REPLYs accepted only from a group's sequencer
// addresses, several groups on one client socket, and the single-address
// form still connected. Bounded: every wait has a deadline of a few seconds.
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType } from '../../bpf/wire.ts';
import { encodeErrorPayload, ErrorCode } from '../../bpf/repair.ts';
import { Client, ClientError } from '../../replica/client.ts';
import type { ClientTransport } from '../../replica/transport.ts';
import { RealTimeScheduler, UdpClientTransport, type SequencerAddr } from '../../replica/udp/index.ts';

interface FakeSequencer {
  readonly sock: Socket;
  readonly addr: SequencerAddr;
  /** REQUESTs received: group, client, request id. */
  readonly got: { groupId: number; clientId: bigint; requestId: bigint }[];
  /** Header flags of each REQUEST, in order. */
  readonly flags: number[];
  answer: boolean;
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

/** A sequencer stand-in on 127.0.0.1: answers each REQUEST with a REPLY whose result is "g<group>/s<id>". */
async function fakeSequencer(id: number, answer: boolean): Promise<FakeSequencer> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const f: FakeSequencer = { sock, addr: { id, host: '127.0.0.1', port: sock.address().port }, got: [], flags: [], answer };
  sock.on('message', (b, rinfo) => {
    const d = decodeMessage(b);
    if (!d.ok || d.message.header.type !== MsgType.REQUEST) return;
    const h = d.message.header;
    f.got.push({ groupId: h.groupId, clientId: h.clientId, requestId: h.requestId });
    f.flags.push(h.flags);
    if (!f.answer) return;
    const reply = encodeMessage({ ...h, type: MsgType.REPLY, sequencerId: id, session: 1, seq: BigInt(f.got.length) }, Buffer.from(`g${h.groupId}/s${id}`));
    sock.send(reply, rinfo.port, rinfo.address);
  });
  open.push({ close: () => new Promise<void>((r) => sock.close(() => r())) });
  return f;
}

async function transport(o: Parameters<typeof UdpClientTransport.open>[0]): Promise<UdpClientTransport> {
  const t = await UdpClientTransport.open({ bindAddress: '127.0.0.1', ...o });
  open.push(t);
  return t;
}

function client(clientId: bigint, sequencers: number[], t: ClientTransport, o: { retryUs?: number; deadlineUs?: number; backoffUs?: number } = {}): Client {
  const c = new Client({ clientId, n: 3, aggregated: true, scheduler: new RealTimeScheduler(), transport: t, sequencers, retryUs: o.retryUs ?? 300_000, deadlineUs: o.deadlineUs ?? 3_000_000, backoffUs: o.backoffUs ?? 60_000_000 });
  open.push(c);
  return c;
}

const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('client over UDP with several sequencers', () => {
  it('fails over from a silent sequencer with the same request id, then avoids it', async () => {
    const silent = await fakeSequencer(0, false);
    const live = await fakeSequencer(1, true);
    const t = await transport({ sequencers: [silent.addr, live.addr], groupId: 4 });
    const c = client(11n, t.sequencerIds, t);
    t.register(c);
    const results: string[] = [];
    for (let i = 0; i < 6; i++) results.push(text(await c.invoke(new Uint8Array([i]))));
    expect(results).toEqual(Array(6).fill('g4/s1'));
    // Only the first request tried the silent one; its retry (same id) went to 1.
    expect(silent.got).toEqual([{ groupId: 4, clientId: 11n, requestId: 1n }]);
    expect(live.got.map((g) => g.requestId)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    expect(c.health().map((h) => h.failures)).toEqual([1, 0]);
    const k = t.counters();
    expect(k.sequencers).toEqual({ '4:0': { requests: 1, replies: 0 }, '4:1': { requests: 6, replies: 6 } });
    expect(k).toMatchObject({ requests: 7, replies: 6, strangers: 0 });
  });

  it('a control request carries XSEQ_F_CONTROL, on its retry through the next sequencer too; other requests do not', async () => {
    const silent = await fakeSequencer(0, false);
    const live = await fakeSequencer(1, true);
    const t = await transport({ sequencers: [silent.addr, live.addr], groupId: 4 });
    const c = client(12n, t.sequencerIds, t);
    t.register(c);
    expect(text(await c.invoke(new Uint8Array([0x48, 1, 0, 2]), { control: true }))).toBe('g4/s1');
    expect(text(await c.invoke(new Uint8Array([1])))).toBe('g4/s1');
    expect(silent.flags).toEqual([Flags.CONTROL]);
    expect(live.flags).toEqual([Flags.CONTROL, 0]);
    expect(live.got.map((g) => g.requestId)).toEqual([1n, 2n]);
  });

  it('ERROR BUSY (backpressure): re-sent with the same request id to the same sequencer, soon, no failure counted', async () => {
    const s = await fakeSequencer(0, true);
    // The fake refuses each request's first two tries with BUSY, as the
    // sequencer's XDP program does while its window is full.
    let refusals = 0;
    s.sock.removeAllListeners('message');
    s.sock.on('message', (b, rinfo) => {
      const d = decodeMessage(b);
      if (!d.ok || d.message.header.type !== MsgType.REQUEST) return;
      const h = d.message.header;
      s.got.push({ groupId: h.groupId, clientId: h.clientId, requestId: h.requestId });
      if (s.got.filter((g) => g.requestId === h.requestId).length <= 2) {
        refusals++;
        return void s.sock.send(encodeMessage({ ...h, type: MsgType.ERROR, sequencerId: 0 }, encodeErrorPayload(ErrorCode.BUSY, '')), rinfo.port, rinfo.address);
      }
      s.sock.send(encodeMessage({ ...h, type: MsgType.REPLY, flags: Flags.RESULT, session: 1, seq: BigInt(s.got.length) }, Buffer.from('ok')), rinfo.port, rinfo.address);
    });
    const t = await transport({ sequencers: [s.addr], groupId: 2 });
    // A retry interval far beyond the test: only BUSY can make it re-send.
    const c = client(5n, t.sequencerIds, t, { retryUs: 60_000_000, deadlineUs: 10_000_000 });
    t.register(c);
    for (let i = 0; i < 3; i++) expect(text(await c.invoke(new Uint8Array([i])))).toBe('ok');
    expect(s.got.map((g) => g.requestId)).toEqual([1n, 1n, 1n, 2n, 2n, 2n, 3n, 3n, 3n]);
    expect(refusals).toBe(6);
    expect(t.counters()).toMatchObject({ busy: 6, replies: 3, strangers: 0 });
    expect(c.health()[0]!.failures).toBe(0);
  });

  it('a REPLY from an address that is not one of the sequencers is not accepted', async () => {
    const s0 = await fakeSequencer(0, false);
    const s1 = await fakeSequencer(1, false);
    const stranger = await fakeSequencer(7, false);
    const t = await transport({ sequencers: [s0.addr, s1.addr], groupId: 4 });
    const c = client(12n, t.sequencerIds, t, { retryUs: 1_000_000 });
    t.register(c);
    const p = c.invoke(new Uint8Array([1]));
    const forged = encodeMessage({ ...emptyHeader(), type: MsgType.REPLY, groupId: 4, clientId: 12n, requestId: 1n }, Buffer.from('forged'));
    stranger.sock.send(forged, t.address.port, t.address.host);
    const until = Date.now() + 3000;
    while (t.counters().strangers === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(t.counters().strangers).toBe(1);
    expect(c.inFlight).toBe(1n);
    // The same datagram from sequencer 1's address completes the request.
    s1.sock.send(forged, t.address.port, t.address.host);
    expect(text(await p)).toBe('forged');
    expect(t.counters().sequencers['4:1']!.replies).toBe(1);
  });

  it('a clear error at the deadline when every sequencer is silent', async () => {
    const s0 = await fakeSequencer(0, false);
    const s1 = await fakeSequencer(3, false);
    const t = await transport({ sequencers: [s0.addr, s1.addr], groupId: 4 });
    const c = client(13n, t.sequencerIds, t, { retryUs: 40_000, deadlineUs: 200_000 });
    t.register(c);
    const err = (await c.invoke(new Uint8Array([1])).catch((e: unknown) => e)) as ClientError;
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe('ETIMEDOUT');
    // What the transport sent (synchronously counted; the fakes may not have read the last one yet).
    const k = t.counters().sequencers;
    const n0 = k['4:0']!.requests;
    const n3 = k['4:3']!.requests;
    expect(err.attempts).toEqual([
      { sequencerId: 0, attempts: n0 },
      { sequencerId: 3, attempts: n3 },
    ]);
    expect(n0 + n3).toBeGreaterThanOrEqual(2);
    expect(n0 - n3).toBeGreaterThanOrEqual(0); // alternating, starting at 0
    expect(n0 - n3).toBeLessThanOrEqual(1);
    expect(err.message).toBe(`request 1 of client 13 not certified within 200000 us (${n0 + n3} attempts; sequencer 0: ${n0}, sequencer 3: ${n3})`);
  });

  it('several groups on one socket: answers routed by (group, client id)', async () => {
    const a = await fakeSequencer(0, true);
    const b0 = await fakeSequencer(0, false);
    const b1 = await fakeSequencer(1, true);
    const t = await transport({ sequencers: [a.addr], groupId: 1, connect: false });
    const g2 = t.group(2, [b0.addr, b1.addr]);
    // The same client id in both groups: the groups' client tables are separate.
    const c1 = client(5n, t.sequencerIds, t);
    const c2 = client(5n, g2.sequencerIds, g2);
    t.register(c1);
    g2.register(c2);
    const [r1, r2] = await Promise.all([c1.invoke(new Uint8Array([1])), c2.invoke(new Uint8Array([2]))]);
    expect([text(r1), text(r2)]).toEqual(['g1/s0', 'g2/s1']);
    expect(a.got.map((g) => g.groupId)).toEqual([1]);
    expect(b0.got.map((g) => g.groupId)).toEqual([2]);
    expect(b1.got.map((g) => g.groupId)).toEqual([2]);
    expect(() => t.group(2, [b1.addr])).toThrow(/already open with other sequencers/);
  });

  it('the single-address form is sequencer 0 on a connected socket, which cannot take other groups elsewhere', async () => {
    const s = await fakeSequencer(0, true);
    const other = await fakeSequencer(0, true);
    const t = await transport({ sequencer: { host: s.addr.host, port: s.addr.port }, groupId: 9 });
    expect(t.sequencerIds).toEqual([0]);
    const c = client(21n, [0], t);
    t.register(c);
    expect(text(await c.invoke(new Uint8Array([1])))).toBe('g9/s0');
    // Another group through the same sequencer works; elsewhere needs connect: false.
    expect(t.group(10, [s.addr]).groupId).toBe(10);
    expect(() => t.group(11, [other.addr])).toThrow(/connect: false/);
    await expect(UdpClientTransport.open({ sequencers: [s.addr, { ...other.addr, id: 1 }], groupId: 1, connect: true })).rejects.toThrow(/exactly one sequencer/);
    await expect(UdpClientTransport.open({ sequencers: [s.addr, other.addr], groupId: 1 })).rejects.toThrow(/id 0 appears twice/);
    await expect(UdpClientTransport.open({ sequencers: [{ id: 0, host: 'localhost', port: 1 }], groupId: 1 })).rejects.toThrow(/not an IPv4 literal/);
  });
});

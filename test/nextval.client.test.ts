// The sequence client against a scripted sequencer on loopback (a UDP socket
// that answers NEXTVAL the way the XDP program does, or drops, delays,
// refuses): the local cache, retries that take fresh values and ignore late
// replies, and each typed error.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { checkMac, groupKey, seal } from '../bpf/mac.ts';
import { encodeNvReplyPayload, NV_REQ, NvStatus } from '../bpf/nextval.ts';
import { emptyHeader, encodeMessage, MsgType, readHeader, XSEQ_HDR_LEN } from '../bpf/wire.ts';
import { NextvalClient, NextvalTimeoutError, RefusedAtMarkError, UnknownSequenceError } from '../sequences/client.ts';

type Answer = 'ok' | 'drop' | 'unknown' | 'refused' | { delayMs: number };

interface Fake {
  port: number;
  requests: Array<{ name: string; count: number; requestId: bigint }>;
  script: Answer[];
  next: bigint;
  cache: number;
  close(): void;
}

async function fakeSequencer(cache = 1): Promise<Fake> {
  const s: Socket = createSocket('udp4');
  const f: Fake = { port: 0, requests: [], script: [], next: 1n, cache, close: () => s.close() };
  s.on('message', (msg: Buffer, from: RemoteInfo) => {
    const h = readHeader(msg);
    const p = msg.subarray(XSEQ_HDR_LEN);
    const name = p.subarray(NV_REQ.name, p.indexOf(0, NV_REQ.name) < 0 ? undefined : p.indexOf(0, NV_REQ.name)).toString();
    const count = p.readUInt32BE(NV_REQ.count) || f.cache;
    f.requests.push({ name, count, requestId: h.requestId });
    const a = f.script.shift() ?? 'ok';
    const reply = (status: number, first = 0n, n = 0) =>
      encodeMessage({ ...h, type: MsgType.NEXTVAL_REPLY }, encodeNvReplyPayload({ first, count: n, increment: 1, mark: 1000n, seqId: 1, status }));
    // Values are taken when the request arrives, as in the kernel: a
    // dropped or delayed reply still used them.
    const first = f.next;
    if (a === 'ok' || a === 'drop' || typeof a === 'object') f.next += BigInt(count);
    if (a === 'drop') return;
    let out: Buffer;
    if (a === 'unknown') out = reply(NvStatus.UNKNOWN);
    else if (a === 'refused') out = reply(NvStatus.REFUSED);
    else out = reply(NvStatus.OK, first, count);
    const send = () => s.send(out, from.port, from.address);
    if (typeof a === 'object') setTimeout(send, a.delayMs);
    else send();
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  f.port = s.address().port;
  return f;
}

let closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers) c();
  closers = [];
});

// Generous by default: only the tests about timeouts depend on them, and
// a loaded machine must not turn a normal reply into a retry.
async function setup(cache = 1, timeoutMs = 1000) {
  const f = await fakeSequencer(cache);
  const c = await NextvalClient.open({ server: `127.0.0.1:${f.port}`, timeoutMs, attempts: 3 });
  closers.push(() => c.close(), () => f.close());
  return { f, c };
}

describe('NextvalClient', () => {
  it('dense: one request per value; nextvalBlock asks for n values in one', async () => {
    const { f, c } = await setup();
    expect([await c.nextval('orders'), await c.nextval('orders')]).toEqual([1n, 2n]);
    expect(await c.nextvalBlock('orders', 10)).toEqual({ first: 3n, count: 10, increment: 1n });
    expect(f.requests.map((r) => [r.name, r.count])).toEqual([['orders', 1], ['orders', 1], ['orders', 10]]);
  });

  it('cache > 1: one request per block, the rest handed out locally in order', async () => {
    const { f, c } = await setup(4);
    const got = [];
    for (let i = 0; i < 9; i++) got.push(await c.nextval('events'));
    expect(got).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    expect(f.requests).toHaveLength(3);
    expect(c.cachedValues('events')).toBe(3);
  });

  it('a lost reply: the retry is a new request and gets a fresh value; the lost one is never handed out', async () => {
    const { f, c } = await setup(1, 200);
    f.script = ['drop'];
    const v = await c.nextval('orders');
    expect(v > 1n).toBe(true); // 1 went into the lost reply
    expect(f.requests.length).toBeGreaterThanOrEqual(2);
    expect(new Set(f.requests.map((r) => r.requestId)).size).toBe(f.requests.length);
    expect(c.retries).toBeGreaterThanOrEqual(1);
  });

  it('a late reply is ignored: its value is not handed out, by this call or a later one', async () => {
    const { f, c } = await setup(1, 200);
    f.script = [{ delayMs: 1500 }];
    const v = await c.nextval('orders');
    expect(v > 1n).toBe(true);
    await new Promise((r) => setTimeout(r, 1600));
    expect(c.lateReplies).toBeGreaterThanOrEqual(1);
    const w = await c.nextval('orders');
    expect(w > v).toBe(true);
  });

  it('typed errors: unknown at once, refused after every attempt, timeout when nothing answers', async () => {
    const { f, c } = await setup();
    f.script = ['unknown'];
    await expect(c.nextval('nosuch')).rejects.toBeInstanceOf(UnknownSequenceError);
    expect(f.requests).toHaveLength(1);
    f.script = ['refused', 'refused', 'refused'];
    await expect(c.nextval('orders')).rejects.toMatchObject({ code: 'EREFUSED_AT_MARK', mark: 1000n });
    f.script = ['refused', 'ok'];
    expect(typeof (await c.nextval('orders'))).toBe('bigint'); // the agent caught up
    f.script = ['drop', 'drop', 'drop'];
    await expect(c.nextval('orders')).rejects.toMatchObject({ code: 'ETIMEOUT', message: /after 3 attempts \(1000 ms each\)/ });
    expect(NextvalTimeoutError.name).toBe('NextvalTimeoutError');
    await expect(c.nextvalBlock('orders', 0)).rejects.toMatchObject({ code: 'EARGUMENT' });
    expect(RefusedAtMarkError.name).toBe('RefusedAtMarkError');
  });

  it('no sequencer at the address (ICMP port unreachable): retries, then a timeout, never a crash', async () => {
    const f = await fakeSequencer();
    const port = f.port;
    f.close();
    const c = await NextvalClient.open({ server: `127.0.0.1:${port}`, timeoutMs: 50, attempts: 2 });
    closers.push(() => c.close());
    await expect(c.nextval('orders')).rejects.toBeInstanceOf(NextvalTimeoutError);
    expect(c.socketErrors).toBeGreaterThan(0);
  });
});

// A keyed client (docs/authentication.md, "NEXTVAL"): its requests carry the
// group and a MAC, and a reply counts only under the key, so a forged reply
// (say, a value someone else already has) is never handed out.
describe('keyed NEXTVAL client', () => {
  const KEY = groupKey(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
  const OTHER = groupKey(Buffer.alloc(16, 7));

  async function keyedFake(replyKey: typeof KEY | null, forgeFirst: boolean) {
    const s: Socket = createSocket('udp4');
    const seen: Array<{ groupId: number; mac: string }> = [];
    let next = 100n;
    s.on('message', (msg: Buffer, from: RemoteInfo) => {
      const h = readHeader(msg);
      seen.push({ groupId: h.groupId, mac: checkMac(msg, KEY) });
      const body = (first: bigint) => encodeMessage({ ...h, flags: 0, type: MsgType.NEXTVAL_REPLY }, encodeNvReplyPayload({ first, count: 1, increment: 1, mark: 1000n, seqId: 1, status: NvStatus.OK }));
      // A forger that saw the request answers first, unsealed and with another key.
      if (forgeFirst) {
        s.send(body(1n), from.port, from.address);
        s.send(seal(body(2n), OTHER), from.port, from.address);
      }
      const real = body(next++);
      s.send(replyKey ? seal(real, replyKey) : real, from.port, from.address);
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    closers.push(() => s.close());
    return { port: s.address().port, seen };
  }

  it('seals each request for its group and takes only the sealed reply, never a forged one', async () => {
    const f = await keyedFake(KEY, true);
    const c = await NextvalClient.open({ server: `127.0.0.1:${f.port}`, group: 5, key: KEY, timeoutMs: 1000 });
    closers.push(() => c.close());
    expect([await c.nextval('orders'), await c.nextval('orders')]).toEqual([100n, 101n]);
    expect(f.seen).toEqual([
      { groupId: 5, mac: 'ok' },
      { groupId: 5, mac: 'ok' },
    ]);
    expect(c.unauthenticatedReplies).toBe(4);
  });

  it('times out rather than believe an unsealed reply', async () => {
    const f = await keyedFake(null, false);
    const c = await NextvalClient.open({ server: `127.0.0.1:${f.port}`, group: 5, key: KEY, timeoutMs: 50, attempts: 2 });
    closers.push(() => c.close());
    await expect(c.nextval('orders')).rejects.toBeInstanceOf(NextvalTimeoutError);
    expect(c.unauthenticatedReplies).toBe(2);
  });
});

// An active/standby pair (replicated sequences): an attempt that timed out
// or was refused at the mark goes to the other host next.
describe('client of a sequencer pair', () => {
  it('fails over to the standby after a timeout, and after a refusal, and stays where values come from', async () => {
    const active = await fakeSequencer();
    const standby = await fakeSequencer();
    closers.push(() => active.close(), () => standby.close());
    standby.next = 5000n;
    const c = await NextvalClient.open({ server: `127.0.0.1:${active.port}`, standby: `127.0.0.1:${standby.port}`, timeoutMs: 1000 });
    closers.push(() => c.close());
    expect(await c.nextval('orders')).toBe(1n);
    active.script.push('drop'); // the active host dies
    expect(await c.nextval('orders')).toBe(5000n);
    expect(await c.nextval('orders')).toBe(5001n); // stays on the host that answered
    expect(c.switches).toBe(1);
    standby.script.push('refused'); // the standby refuses at its mark: back to the active
    expect(await c.nextval('orders')).toBe(3n); // the active burnt 2 for the dropped reply
    expect(c.switches).toBe(2);
    expect(active.requests.length).toBe(3);
    expect(standby.requests.length).toBe(3);
  });
});

// The group port's source checks (replica/udp/sources.ts) on real sockets
// on loopback: SEQUENCED and FLUSH count only from the configured
// sequencer's exact address and port, a session may move only a bounded
// step ahead, and sessions wrap past 0xffffffff (replica/view.ts).
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpReplicaTransport } from '../../replica/udp/index.ts';
import { DEFAULT_SESSION_BOUND, SequencerSources } from '../../replica/udp/sources.ts';
import { sessionCmp, viewCmp, viewJoin, viewLeq } from '../../replica/view.ts';
import { sequencedToWire } from '../../replica/wire-map.ts';
import type { ReplicaInbound } from '../../replica/messages.ts';

const HOST = '127.0.0.1';
const GROUP_ID = 6;

function bound(port = 0): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((resolve) => s.bind(port, HOST, () => resolve(s)));
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

describe('sessions as serial numbers', () => {
  it.each([
    [2, 1, 1],
    [1, 0xffffffff, 1], // the step past the largest session
    [0xffffffff, 1, -1],
    [1, 0, 1], // 0 is "none yet": before everything
    [0, 0xffffffff, -1],
    [0x80000000, 1, 1], // 2^31 - 1 ahead: the farthest "after"
    [0x80000001, 1, -1], // 2^31 ahead: past the horizon
    [0x7fffffff, 0x7fffffff, 0],
  ])('sessionCmp(%i, %i) has the sign %i', (a, b, sign) => {
    expect(Math.sign(sessionCmp(a, b))).toBe(sign);
  });

  it('views order and join across the wrap', () => {
    const old = { leaderNum: 3, session: 0xffffffff };
    const next = { leaderNum: 3, session: 1 };
    expect(viewLeq(old, next)).toBe(true);
    expect(viewLeq(next, old)).toBe(false);
    expect(viewCmp(next, old)).toBeGreaterThan(0);
    expect(viewJoin(old, { leaderNum: 4, session: 2 })).toEqual({ leaderNum: 4, session: 2 });
    expect(viewJoin({ leaderNum: 5, session: 0xfffffffe }, next)).toEqual({ leaderNum: 5, session: 1 });
  });
});

describe('SequencerSources', () => {
  const seq = { id: 0, sequencer: { host: '10.0.0.1', port: 7400 } };

  it('takes the first session heard, then steps up to the bound ahead, wrapping', () => {
    const s = new SequencerSources([seq], 16);
    expect(s.admit('10.0.0.1', 7400, 0xfffffff0)).toBe(true);
    expect(s.admit('10.0.0.1', 7400, 0xfffffff0 + 17)).toBe(false); // 17 ahead
    expect(s.admit('10.0.0.1', 7400, 5)).toBe(false); // 21 ahead, across the wrap
    expect(s.admit('10.0.0.1', 7400, 0xffffffff)).toBe(true);
    expect(s.admit('10.0.0.1', 7400, 3)).toBe(true); // 4 ahead of 0xffffffff
    expect(s.admit('10.0.0.1', 7400, 0xfffffff0)).toBe(true); // older: the replica ignores it
    expect(s.admit('10.0.0.1', 7400, 19)).toBe(true);
    expect(s.c).toEqual({ strangers: 0, sessionJumps: 2 });
  });

  it('refuses every other address or port, whatever the session', () => {
    const s = new SequencerSources([seq]);
    expect(s.admit('10.0.0.1', 7401, 1)).toBe(false);
    expect(s.admit('10.0.0.9', 7400, 1)).toBe(false);
    expect(s.admit('10.0.0.1', 7400, 1)).toBe(true);
    expect(s.c).toEqual({ strangers: 2, sessionJumps: 0 });
    expect(() => new SequencerSources([seq], 0x80000000)).toThrow(/sessionBound/);
    expect(DEFAULT_SESSION_BOUND).toBeLessThan(0x80000000);
  });
});

describe('UDP replica transport: who may send SEQUENCED', () => {
  it('delivers the sequencer\'s, and drops a stranger\'s, a wrong port\'s and a session jump', async () => {
    const sequencer = await bound();
    const samehost = await bound(); // the sequencer host, another port
    const stranger = await bound();
    const groupPort = (await bound().then((s) => (open.push(s), s))).address().port;
    open.pop()!.close();
    open.push(sequencer, samehost, stranger);
    const t = await UdpReplicaTransport.open({
      groupId: GROUP_ID,
      group: { host: '239.77.0.2', port: groupPort },
      member: { host: HOST, port: 0 },
      sequencer: { host: HOST, port: sequencer.address().port },
      repair: null,
      self: 0,
      peers: [{ host: HOST, port: 0 }],
      sessionBound: 8,
    });
    open.push(t);
    const got: ReplicaInbound[] = [];
    t.attach((m) => got.push(m));
    const msg = (session: number, seq: number) =>
      sequencedToWire({ type: 'SEQUENCED', session, seq, clientId: 9n, requestId: BigInt(seq), op: new Uint8Array([seq]), retransmit: false }, { groupId: GROUP_ID });
    const send = (s: Socket, session: number, seq: number) => new Promise<void>((r) => s.send(msg(session, seq), groupPort, HOST, () => r()));

    await send(stranger, 0xffffffff, 1);
    await send(samehost, 0xffffffff, 2);
    await send(sequencer, 3, 3);
    await send(sequencer, 12, 4); // 9 ahead of 3
    await send(sequencer, 0xffffffff, 5); // before 3 across the wrap: passed on, the replica ignores it
    await send(sequencer, 11, 6); // 8 ahead
    await send(stranger, 11, 7);
    const deadline = Date.now() + 2_000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    expect(got.map((m) => (m.type === 'SEQUENCED' ? [m.session, m.seq] : m.type))).toEqual([
      [3, 3],
      [0xffffffff, 5],
      [11, 6],
    ]);
    expect(t.counters().sources).toEqual({ strangers: 3, sessionJumps: 1 });
  });
});

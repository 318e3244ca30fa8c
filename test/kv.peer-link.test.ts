// The TCP slow path between replicas (replica/udp/peer-link.ts) on
// loopback, three replicas at 127.0.0.1-3: messages arrive whole and in
// order, large ones included; a peer that is down costs dropped messages,
// never an exception, and is reached again once it is back; a connection
// claiming to be a replica from another address, or sending garbage, is
// cut off without delivering anything.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogState, PeerMsg } from '../replica/messages.ts';
import type { HostPort } from '../replica/udp/addr.ts';
import { encodePeerFrame } from '../replica/udp/peer-codec.ts';
import { PeerLink } from '../replica/udp/peer-link.ts';

const GROUP = 1;
const view = { leaderNum: 0, session: 1 };
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

let links: PeerLink[] = [];
afterEach(async () => {
  await Promise.all(links.map((l) => l.close()));
  links = [];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

/** Three links on free ports; the shared address list is filled in once all are bound. */
async function mesh(): Promise<{ peers: HostPort[]; got: PeerMsg[][]; links: PeerLink[]; start: (i: number) => Promise<PeerLink> }> {
  const peers: HostPort[] = HOSTS.map((host) => ({ host, port: 0 }));
  const got: PeerMsg[][] = HOSTS.map(() => []);
  const start = async (i: number) => {
    const l = await PeerLink.listen({ self: i, groupId: GROUP, peers, onMessage: (m) => got[i]!.push(m), redialMs: 50 });
    peers[i] = { host: HOSTS[i]!, port: l.port };
    links[i] = l;
    return l;
  };
  for (let i = 0; i < HOSTS.length; i++) await start(i);
  return { peers, got, links, start };
}

describe('replica peer link (TCP)', () => {
  it('delivers in order, from the right sender, a 4 MB state among small messages', async () => {
    const m = await mesh();
    const big: LogState = {
      checkpoint: { slot: 0, session: 0, seq: 0, app: new Uint8Array(4 << 20).fill(7), clients: [] },
      entries: [],
      committed: 0,
    };
    const sent: PeerMsg[] = [];
    for (let k = 1; k <= 200; k++) {
      const msg: PeerMsg = k === 100 ? { type: 'START_VIEW', from: 0, view, state: big } : { type: 'SYNC_COMMIT', from: 0, view, syncPoint: k };
      sent.push(msg);
      m.links[0]!.send(1, msg);
      m.links[0]!.send(2, msg);
    }
    await until(() => m.got[1]!.length === 200 && m.got[2]!.length === 200);
    for (const r of [1, 2]) {
      expect(m.got[r]!.map((x) => x.type === 'SYNC_COMMIT' ? x.syncPoint : -1)).toEqual(sent.map((x) => (x.type === 'SYNC_COMMIT' ? x.syncPoint : -1)));
      const sv = m.got[r]![99] as Extract<PeerMsg, { type: 'START_VIEW' }>;
      expect(sv.state.checkpoint.app.length).toBe(4 << 20);
      expect(sv.state.checkpoint.app.every((b) => b === 7)).toBe(true);
    }
    expect(m.got[0]).toEqual([]);
    expect(m.links[0]!.counters().sent['SYNC_COMMIT']).toBe(398);
  });

  it('a peer that is down costs messages, not errors, and is reached again once back', async () => {
    const m = await mesh();
    m.links[0]!.send(2, { type: 'SYNC_REPLY', from: 0, view, syncPoint: 1 });
    await until(() => m.got[2]!.length === 1);
    const port = m.peers[2]!.port;
    await m.links[2]!.close();
    await sleep(100);
    for (let k = 2; k < 50; k++) {
      m.links[0]!.send(2, { type: 'SYNC_REPLY', from: 0, view, syncPoint: k });
      await sleep(5);
    }
    expect(m.links[0]!.counters().dropped).toBeGreaterThan(0);
    // Back on the same address: a later send dials again.
    m.peers[2] = { host: HOSTS[2]!, port };
    const back = await PeerLink.listen({ self: 2, groupId: GROUP, peers: m.peers, onMessage: (x) => m.got[2]!.push(x) });
    links[2] = back;
    const before = m.got[2]!.length;
    for (let k = 0; k < 40 && m.got[2]!.length === before; k++) {
      m.links[0]!.send(2, { type: 'SYNC_REPLY', from: 0, view, syncPoint: 1000 + k });
      await sleep(25);
    }
    expect(m.got[2]!.length).toBeGreaterThan(before);
    expect(m.got[2]!.at(-1)).toMatchObject({ type: 'SYNC_REPLY', from: 0 });
  });

  it('frames claiming a replica from another address, or garbage, are cut off unseen', async () => {
    const m = await mesh();
    const target = m.peers[2]!;
    const raw = (local: string, bytes: Uint8Array) =>
      new Promise<void>((resolve) => {
        const s = connect({ host: target.host, port: target.port, localAddress: local }, () => s.write(bytes));
        s.on('close', () => resolve());
        s.on('error', () => {});
        setTimeout(() => s.destroy(), 2000);
      });
    // Replica 1 lives at 127.0.0.2; this comes from 127.0.0.1.
    await raw('127.0.0.1', encodePeerFrame({ type: 'VIEW_CHANGE_REQUEST', from: 1, view: { leaderNum: 9, session: 9 } }, GROUP));
    // The right address, but not xseq at all.
    await raw('127.0.0.2', new Uint8Array(64).fill(0x41));
    // The right address and group, claiming to be the receiver itself.
    await raw('127.0.0.3', encodePeerFrame({ type: 'VIEW_CHANGE_REQUEST', from: 2, view }, GROUP));
    // No peer's address at all: closed at accept, before a byte is read.
    await raw('127.0.0.9', new Uint8Array(0));
    expect(m.links[2]!.counters().rejected).toBe(4);
    expect(m.got[2]).toEqual([]);
    // The real replica 1 still gets through.
    m.links[1]!.send(2, { type: 'VIEW_CHANGE_REQUEST', from: 1, view });
    await until(() => m.got[2]!.length === 1);
  });

  it('sending to an address where nothing listens never throws', async () => {
    const peers: HostPort[] = [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 1 }];
    const l = await PeerLink.listen({ self: 0, groupId: GROUP, peers, onMessage: () => {}, redialMs: 10 });
    links.push(l);
    for (let k = 0; k < 20; k++) {
      l.send(1, { type: 'SYNC_COMMIT', from: 0, view, syncPoint: k });
      await sleep(5);
    }
    await sleep(50);
    expect(l.counters().dials).toBeGreaterThan(1);
  });
});

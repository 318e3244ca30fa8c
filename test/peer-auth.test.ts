// The peer links with a group key (replica/udp/peer-auth.ts), on loopback:
// keyed replicas talk, a 4 MB frame included; a keyless or wrong-key
// sender, a stranger connecting from a member's address with well-formed
// frames, and a replayed recording of a whole authentic connection are all
// cut off without delivering anything.
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { groupKey, type GroupKey } from '../bpf/mac.ts';
import type { LogState, PeerMsg } from '../replica/messages.ts';
import type { HostPort } from '../replica/udp/addr.ts';
import { peerMac, peerMacOk, PEER_NONCE_LEN } from '../replica/udp/peer-auth.ts';
import { encodePeerFrame } from '../replica/udp/peer-codec.ts';
import { PeerLink } from '../replica/udp/peer-link.ts';

const GROUP = 1;
const view = { leaderNum: 0, session: 1 };
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const KEY = groupKey(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
const OTHER = groupKey(Buffer.from('00112233445566778899aabbccddeefe', 'hex'));

let links: PeerLink[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  await Promise.all(links.map((l) => l.close()));
  links = [];
  for (const c of closers.splice(0)) c();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

/** Three links; `keys[i]` is replica i's key. */
async function mesh(keys: (GroupKey | null)[]) {
  const peers: HostPort[] = HOSTS.map((host) => ({ host, port: 0 }));
  const got: PeerMsg[][] = HOSTS.map(() => []);
  for (let i = 0; i < HOSTS.length; i++) {
    const l = await PeerLink.listen({ self: i, groupId: GROUP, peers, onMessage: (m) => got[i]!.push(m), redialMs: 20, key: keys[i] ?? null });
    peers[i] = { host: HOSTS[i]!, port: l.port };
    links[i] = l;
  }
  return { peers, got, links };
}

describe('peer links with a group key', () => {
  it('keyed replicas exchange messages in order, a 4 MB state among them', async () => {
    const m = await mesh([KEY, KEY, KEY]);
    const big: LogState = { checkpoint: { slot: 0, session: 0, seq: 0, app: new Uint8Array(4 << 20).fill(7), clients: [] }, entries: [], committed: 0 };
    for (let k = 1; k <= 50; k++) m.links[0]!.send(1, k === 25 ? { type: 'START_VIEW', from: 0, view, state: big } : { type: 'SYNC_COMMIT', from: 0, view, syncPoint: k });
    m.links[2]!.send(1, { type: 'SYNC_REPLY', from: 2, view, syncPoint: 9 });
    await until(() => m.got[1]!.length === 51);
    expect(m.got[1]!.filter((x) => x.type === 'SYNC_COMMIT').map((x) => (x as { syncPoint: number }).syncPoint)).toEqual([...Array(50).keys()].map((k) => k + 1).filter((k) => k !== 25));
    expect(m.links[1]!.counters()).toMatchObject({ rejected: 0, unauthenticated: 0 });
  });

  it.each([
    ['no key', null],
    ['another key', OTHER],
  ])('a sender with %s is cut off; nothing is delivered', async (_name, senderKey) => {
    const m = await mesh([senderKey, KEY, KEY]);
    // Without a key the frames carry no trailer: the next frame's first
    // bytes are taken for the first one's MAC, which fails.
    m.links[0]!.send(1, { type: 'SYNC_COMMIT', from: 0, view, syncPoint: 1 });
    m.links[0]!.send(1, { type: 'SYNC_COMMIT', from: 0, view, syncPoint: 2 });
    await until(() => m.links[1]!.counters().rejected >= 1);
    await sleep(50);
    expect(m.got[1]).toEqual([]);
    expect(m.links[1]!.counters().unauthenticated).toBe(1);
  });

  it("a stranger on a member's address with well-formed frames (no key) is cut off", async () => {
    const m = await mesh([KEY, KEY, KEY]);
    const s = connect({ host: m.peers[1]!.host, port: m.peers[1]!.port, localAddress: HOSTS[0] });
    closers.push(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    s.write(encodePeerFrame({ type: 'START_VIEW', from: 0, view: { leaderNum: 0xffffffff, session: 0xffffffff }, state: { checkpoint: { slot: 0, session: 0, seq: 0, app: new Uint8Array(0), clients: [] }, entries: [], committed: 0 } }, GROUP));
    s.write(Buffer.alloc(16)); // a zero "MAC"
    await until(() => m.links[1]!.counters().rejected >= 1);
    expect(m.got[1]).toEqual([]);
  });

  it('a recorded authentic connection replayed later is cut off at its first frame (a new nonce)', async () => {
    // Record what replica 0 sends to a fake replica 1 that plays the acceptor's part.
    const recorded: Buffer[] = [];
    const fake = createServer((s: Socket) => {
      s.write(Buffer.alloc(PEER_NONCE_LEN, 0xab));
      s.on('data', (b: Buffer) => recorded.push(b));
    });
    closers.push(() => fake.close());
    await new Promise<void>((r) => fake.listen({ host: HOSTS[1], port: 0 }, () => r()));
    const peers: HostPort[] = [{ host: HOSTS[0]!, port: 0 }, { host: HOSTS[1]!, port: (fake.address() as { port: number }).port }, { host: HOSTS[2]!, port: 0 }];
    const sender = await PeerLink.listen({ self: 0, groupId: GROUP, peers, onMessage: () => {}, key: KEY });
    links.push(sender);
    sender.send(1, { type: 'SYNC_COMMIT', from: 0, view, syncPoint: 7 });
    await until(() => Buffer.concat(recorded).length > 64);
    const tape = Buffer.concat(recorded);
    // The tape is authentic under the fake's nonce...
    expect(peerMacOk(KEY, Buffer.alloc(PEER_NONCE_LEN, 0xab), 0n, tape.subarray(0, 64), tape.subarray(64, tape.length - 16), tape.subarray(tape.length - 16))).toBe(true);
    // ...and worthless against a real replica, which picks its own.
    const m = await mesh([KEY, KEY, KEY]);
    const s = connect({ host: m.peers[1]!.host, port: m.peers[1]!.port, localAddress: HOSTS[0] });
    closers.push(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    s.write(tape);
    await until(() => m.links[1]!.counters().rejected >= 1);
    expect(m.got[1]).toEqual([]);
    expect(m.links[1]!.counters().unauthenticated).toBe(1);
  });

  it('the MAC binds the nonce, the frame number and every byte', () => {
    const frame = encodePeerFrame({ type: 'SYNC_COMMIT', from: 0, view, syncPoint: 3 }, GROUP);
    const nonce = Buffer.alloc(PEER_NONCE_LEN, 1);
    const mac = peerMac(KEY, nonce, 5n, frame);
    expect(peerMacOk(KEY, nonce, 5n, frame.subarray(0, 64), frame.subarray(64), mac)).toBe(true);
    expect(peerMacOk(KEY, nonce, 6n, frame.subarray(0, 64), frame.subarray(64), mac)).toBe(false);
    expect(peerMacOk(KEY, Buffer.alloc(PEER_NONCE_LEN, 2), 5n, frame.subarray(0, 64), frame.subarray(64), mac)).toBe(false);
    expect(peerMacOk(OTHER, nonce, 5n, frame.subarray(0, 64), frame.subarray(64), mac)).toBe(false);
    const flipped = Buffer.from(frame);
    flipped[flipped.length - 1]! ^= 1;
    expect(peerMacOk(KEY, nonce, 5n, flipped.subarray(0, 64), flipped.subarray(64), mac)).toBe(false);
  });
});

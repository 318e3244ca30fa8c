// A stranger on the LAN (docs/trust-model.md): a host in no configuration
// that sends whatever it likes to every xseq port. Run in the topology's
// stranger namespace (netns/topology.ts, role x) during a KV load; it prints
// one JSON line of what it sent.
//
//   forge   the named attacks: SEQUENCED with the largest and with random
//           sessions, FLUSH (FINAL too), also from the sequencer's
//           address on another port; FLUSH_SOLICIT, ACKs and repair
//           requests from a member's address (--spoof) on another port,
//           peer frames on the TCP port claiming a
//           replica, REQUEST replays of SEQUENCED it overheard, and
//           REQUESTs that impersonate overheard client ids with request ids
//           ahead of theirs (which would make the real client's next
//           requests stale or duplicates, were client ids not bound).
//   fuzz    --count datagrams from a corpus of valid ones (random bytes,
//           truncated, bit-flipped, length-lying, type-swapped; overheard
//           ones keep the client ids they carry), to every UDP port and
//           as frames on the peer TCP port, then the impersonations above,
//           from --seed (a failing seed replays exactly the same
//           datagrams).
//
// It never sends from a configured sequencer's or member's exact address
// AND port: that forgery is what only a key (auth) stops. To send from
// another host's address it adds that address to its own interface for
// the phase that needs it (a local address is unreachable as a
// destination meanwhile, so phases to and from it never mix).
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { encodeRepairReply, encodeRepairRequest, encodeError, ErrorCode } from '../bpf/repair.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, XSEQ_HDR_LEN, type XseqHeader } from '../bpf/wire.ts';
import { Prng } from '../replica/sim/prng.ts';
import { encodePeerFrame } from '../replica/udp/peer-codec.ts';

const { values: v } = parseArgs({
  options: {
    mode: { type: 'string' },
    seq: { type: 'string' },
    'seq-port': { type: 'string', default: '7400' },
    'repair-port': { type: 'string', default: '7401' },
    group: { type: 'string', default: '1' },
    mcast: { type: 'string' },
    'group-port': { type: 'string', default: '7500' },
    replicas: { type: 'string' },
    'ack-port': { type: 'string', default: '7600' },
    'peer-port': { type: 'string', default: '7700' },
    self: { type: 'string' },
    iface: { type: 'string' },
    spoof: { type: 'string', default: '' },
    seed: { type: 'string' },
    count: { type: 'string', default: '20000' },
    'replay-ms': { type: 'string', default: '3000' },
    'only-replay': { type: 'boolean', default: false },
    'no-replays': { type: 'boolean', default: false },
  },
});
if (!v.mode || !v.seq || !v.mcast || !v.replicas || !v.self || !v.iface) {
  console.error('usage: stranger.ts --mode forge|fuzz --seq IP --mcast ADDR --replicas IP,IP,.. --self IP --iface IF [--spoof IP,..] [--seed N] [--count N]');
  process.exit(2);
}
const GROUP = Number(v.group);
const SEQ = v.seq;
const SEQ_PORT = Number(v['seq-port']);
const REPAIR_PORT = Number(v['repair-port']);
const GROUP_PORT = Number(v['group-port']);
const MCAST = v.mcast;
const REPLICAS = v.replicas.split(',');
const ACK_PORT = Number(v['ack-port']);
const PEER_PORT = Number(v['peer-port']);
const SELF = v.self;
const SPOOF = v.spoof ? v.spoof.split(',') : [];
const IFACE = v.iface;

/** Runs `phase` with `addrs` added to this host's interface, sockets bound to each; removes them after. */
async function fromAddresses<T>(addrs: readonly string[], phase: (socks: Socket[]) => Promise<T>): Promise<T> {
  const ip = (op: 'add' | 'del', a: string) => spawnSync('ip', ['addr', op, `${a}/32`, 'dev', IFACE], { stdio: 'ignore' });
  for (const a of addrs) ip('add', a);
  const socks: Socket[] = [];
  try {
    for (const a of addrs) socks.push(await socketFrom(a));
    return await phase(socks);
  } finally {
    for (const s of socks) s.close();
    for (const a of addrs) ip('del', a);
  }
}
/** Marks what this stranger forged: no committed entry may carry it. */
export const STRANGER_CLIENT = 0x5354_5241_4e47_4552n; // "STRANGER"

const sent: Record<string, number> = {};
const count = (k: string, n = 1) => (sent[k] = (sent[k] ?? 0) + n);

async function socketFrom(addr: string, port = 0): Promise<Socket> {
  const s = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.bind({ address: addr, port }, () => res());
  });
  s.on('error', () => {}); // ICMP unreachable for a spoofed source: expected
  s.on('message', () => count('answers received'));
  return s;
}

function send(s: Socket, b: Uint8Array, port: number, host: string): Promise<void> {
  return new Promise((res) => s.send(b, port, host, () => res()));
}

/** Pauses every `every` sends so a burst never overflows a socket buffer (a flood is not the point: content is). */
let paced = 0;
async function pace(every = 64): Promise<void> {
  if (++paced % every === 0) await new Promise((r) => setTimeout(r, 2));
}

function header(over: Partial<XseqHeader>): Omit<XseqHeader, 'payloadLen'> {
  return { ...emptyHeader(), groupId: GROUP, clientId: STRANGER_CLIENT, ...over };
}

// ---- overheard traffic ------------------------------------------------------------

/** Joins the group and keeps what it overhears: the live session, seqs and requests. */
async function overhear(): Promise<{ sock: Socket; heard: Buffer[]; session: () => number; lastSeq: () => bigint }> {
  const s = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((res) => s.bind(GROUP_PORT, () => res()));
  s.addMembership(MCAST, SELF);
  const heard: Buffer[] = [];
  let session = 0;
  let lastSeq = 0n;
  s.on('message', (b) => {
    const d = decodeMessage(b);
    if (!d.ok || d.message.header.type !== MsgType.SEQUENCED) return;
    session = d.message.header.session;
    if (d.message.header.seq > lastSeq) lastSeq = d.message.header.seq;
    if (heard.length < 5000) heard.push(Buffer.from(b));
  });
  return { sock: s, heard, session: () => session, lastSeq: () => lastSeq };
}

/** Waits for 64 overheard messages (at most 10 s): the corpus then has the same shape whatever the timing. */
async function heardSome(ear: { heard: Buffer[] }): Promise<void> {
  for (let i = 0; i < 100 && ear.heard.length < 64; i++) await new Promise((r) => setTimeout(r, 100));
}

/**
 * REQUESTs under each overheard client id (at most 32 ids) with request ids
 * ahead of the highest heard for it (+1, +2, +1000, 2^63), each carrying
 * the overheard op: were they stamped, the real client's next requests
 * would be answered from them (as duplicates) or as stale, and it would
 * stall. Without a key the sequencer binds a client id to its first source
 * (drop_client_source); with one it needs the client key (drop_client_mac).
 */
function impersonations(heard: Buffer[]): Buffer[] {
  const latest = new Map<bigint, { requestId: bigint; b: Buffer }>();
  for (const b of heard) {
    const d = decodeMessage(b);
    if (!d.ok || d.message.header.clientId === STRANGER_CLIENT) continue;
    const h = d.message.header;
    const cur = latest.get(h.clientId);
    if (!cur || h.requestId > cur.requestId) latest.set(h.clientId, { requestId: h.requestId, b });
  }
  const out: Buffer[] = [];
  for (const { requestId, b } of [...latest.values()].slice(0, 32)) {
    const req = asRequest(b);
    for (const ahead of [1n, 2n, 1000n]) {
      const x = Buffer.from(req);
      x.writeBigUInt64BE(requestId + ahead, 48);
      out.push(x);
    }
    const x = Buffer.from(req);
    x.writeBigUInt64BE(1n << 63n, 48);
    out.push(x);
  }
  return out;
}

/** Sends the impersonations from this host's own address and from every member's (other ports). */
async function impersonate(own: Socket, heard: Buffer[]): Promise<void> {
  const reqs = impersonations(heard);
  for (const b of reqs) {
    await send(own, b, SEQ_PORT, SEQ);
    await pace();
  }
  count('impersonated requests', reqs.length);
  await fromAddresses(SPOOF, async (socks) => {
    for (const s of socks) {
      for (const b of reqs) {
        await send(s, b, SEQ_PORT, SEQ);
        await pace();
      }
      count('impersonated requests (member address)', reqs.length);
    }
  });
}

/** A SEQUENCED as overheard, turned back into the REQUEST that made it. */
function asRequest(b: Buffer): Buffer {
  const h = decodeMessage(b);
  if (!h.ok) return b;
  const m = h.message;
  return encodeMessage({ ...m.header, type: MsgType.REQUEST, flags: m.header.flags & Flags.CONTROL, session: 0, seq: 0n, clockNs: 0n, sequencerId: 0 }, m.payload);
}

// ---- forge ----------------------------------------------------------------------------

async function forge(): Promise<void> {
  const ear = await overhear();
  const own = await socketFrom(SELF);
  const ownSeqPort = await socketFrom(SELF, SEQ_PORT); // the sequencer's port, the wrong address
  await heardSome(ear);
  const session = ear.session();
  const seq = ear.lastSeq();
  if (!v['only-replay']) await forgeries(own, ownSeqPort, session, seq);
  if (!v['only-replay']) await impersonate(own, ear.heard);
  // Replays of overheard requests to the sequencer, for a while.
  const until = Date.now() + Number(v['replay-ms']);
  let i = 0;
  while (Date.now() < until && ear.heard.length) {
    await send(own, asRequest(ear.heard[i++ % ear.heard.length]!), SEQ_PORT, SEQ);
    count('replayed requests');
    if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 200));
  for (const s of [own, ownSeqPort, ear.sock]) s.close();
  console.log(JSON.stringify({ mode: 'forge', session, lastSeq: seq.toString(), heard: ear.heard.length, sent }));
}

async function forgeries(own: Socket, ownSeqPort: Socket, session: number, seq: bigint): Promise<void> {
  const targets = [...REPLICAS.map((h) => [h, GROUP_PORT] as const), [MCAST, GROUP_PORT] as const];
  const rnd = new Prng(Number(v.seed ?? 1));
  const payload = Buffer.from('stranger-op');

  // SEQUENCED: the largest session, random ones, and the live session at seqs ahead.
  const sessions = [0xffffffff, session + 1, session + 2, ...Array.from({ length: 16 }, () => rnd.int(1, 0xffffffff))];
  const toReplicas = async (from: Socket) => {
    for (const [host, port] of targets) {
      for (const s of sessions) {
        await send(from, encodeMessage(header({ type: MsgType.SEQUENCED, session: s, seq: 1n, sequencerId: 0, requestId: 1n }), payload), port, host);
        count('sequenced');
        await pace();
      }
      for (let k = 1n; k <= 20n; k++) {
        await send(from, encodeMessage(header({ type: MsgType.SEQUENCED, session, seq: seq + k, requestId: k, flags: k % 2n ? Flags.RETRANSMIT : 0 }), payload), port, host);
        count('sequenced (live session)');
      }
      // FLUSH, FINAL or not, of the largest and the live session.
      for (const s of [0xffffffff, session, session + 1]) {
        for (const flags of [0, Flags.FINAL]) {
          await send(from, encodeMessage(header({ type: MsgType.FLUSH, session: s, seq: seq + 1000n, clockNs: 1n << 62n, flags })), port, host);
          count('flush');
        }
      }
    }
  };
  await toReplicas(own);
  await toReplicas(ownSeqPort);
  // The sequencer's own address, another port.
  await fromAddresses([SEQ], async ([s]) => toReplicas(s!));

  // To the sequencer: ACKs of live seqs (the leader's, with a result, too),
  // FLUSH_SOLICITs, from here and from members' addresses on other ports.
  const toSequencer = async (from: Socket) => {
    for (let k = 0n; k < 200n; k++) {
      const s = seq > k ? seq - k : 1n;
      for (let rid = 0; rid < REPLICAS.length; rid++) {
        await send(from, encodeMessage(header({ type: MsgType.ACK, session, seq: s, replicaId: rid, view: 0, flags: rid === 0 ? Flags.RESULT : 0 }), rid === 0 ? Buffer.from('forged result') : Buffer.alloc(0)), SEQ_PORT, SEQ);
        count('ack');
        await pace();
      }
    }
    for (let rid = 0; rid < REPLICAS.length; rid++) {
      await send(from, encodeMessage(header({ type: MsgType.FLUSH_SOLICIT, session, replicaId: rid })), SEQ_PORT, SEQ);
      count('flush_solicit');
    }
    // Repair requests: a member's id from the wrong port (or the wrong address), and answers nobody asked for.
    for (let rid = 0; rid < REPLICAS.length; rid++) {
      await send(from, encodeRepairRequest({ groupId: GROUP, session, replicaId: rid, first: seq > 100n ? seq - 100n : 1n, count: 128 }), REPAIR_PORT, SEQ);
      await send(from, encodeError({ groupId: GROUP, session, replicaId: rid }, ErrorCode.BAD_REQUEST, 'ping'), REPAIR_PORT, SEQ);
      count('repair', 2);
    }
  };
  await toSequencer(own);
  // The members' addresses, other ports.
  await fromAddresses(SPOOF, async (socks) => {
    for (const s of socks) await toSequencer(s);
  });
  // Repair answers and ACK-port traffic to the replicas themselves.
  for (const [i, host] of REPLICAS.entries()) {
    await send(own, encodeRepairReply({ groupId: GROUP, session, replicaId: i, first: seq, sequencerId: 0 }, { count: 128, resent: 0, missing: Array.from({ length: 128 }, (_, k) => seq + BigInt(k)) }), ACK_PORT + i, host);
    await send(own, encodeMessage(header({ type: MsgType.SEQUENCED, session: 0xffffffff, seq: 1n })), ACK_PORT + i, host);
    count('to ack ports', 2);
  }

  // Peer TCP: frames claiming each replica, from here.
  for (const host of REPLICAS) {
    for (let from = 0; from < REPLICAS.length; from++) {
      await tcpSend(host, [
        encodePeerFrame({ type: 'VIEW_CHANGE_REQUEST', from, view: { leaderNum: 1_000_000, session: 0xffffffff } }, GROUP),
        encodePeerFrame({ type: 'VIEW_CHANGE_REQUEST', from, view: { leaderNum: 7, session: 1 } }, GROUP),
        new Uint8Array(64).fill(0x41),
      ]);
      count('peer frames', 3);
    }
  }
}

/** Opens a TCP connection and writes the frames; resolves when it closes (or after 1 s). */
function tcpSend(host: string, frames: Uint8Array[]): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host, port: PEER_PORT, localAddress: SELF }, () => {
      for (const f of frames) s.write(f);
    });
    const t = setTimeout(() => s.destroy(), 1000);
    s.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    s.on('error', () => {});
  });
}

// ---- fuzz -------------------------------------------------------------------------------

/** Valid datagrams of every type, for the live session, to mutate. */
function corpus(session: number, seq: bigint, heard: Buffer[]): Buffer[] {
  const h = (o: Partial<XseqHeader>) => header({ session, seq, ...o });
  const out: Buffer[] = [
    encodeMessage(h({ type: MsgType.REQUEST, session: 0, seq: 0n, requestId: 1n }), Buffer.from('op')),
    encodeMessage(h({ type: MsgType.SEQUENCED, requestId: 2n }), Buffer.from('op')),
    encodeMessage(h({ type: MsgType.SEQUENCED, session: 0xffffffff, requestId: 3n }), Buffer.from('op')),
    encodeMessage(h({ type: MsgType.ACK, replicaId: 0, flags: Flags.RESULT }), Buffer.from('r')),
    encodeMessage(h({ type: MsgType.ACK, replicaId: 1 })),
    encodeMessage(h({ type: MsgType.FLUSH, clockNs: 1n << 60n })),
    encodeMessage(h({ type: MsgType.FLUSH, flags: Flags.FINAL })),
    encodeMessage(h({ type: MsgType.FLUSH_SOLICIT, replicaId: 2 })),
    encodeRepairRequest({ groupId: GROUP, session, replicaId: 1, first: seq, count: 128 }),
    encodeRepairReply({ groupId: GROUP, session, replicaId: 1, first: seq, sequencerId: 0 }, { count: 2, resent: 1, missing: [seq] }),
    encodeError({ groupId: GROUP, session, replicaId: 1 }, ErrorCode.NOT_MEMBER, 'x'),
    Buffer.from(encodePeerFrame({ type: 'VIEW_CHANGE_REQUEST', from: 1, view: { leaderNum: 3, session } }, GROUP)),
  ];
  // Overheard SEQUENCED as they are, and turned back into REQUESTs: replays.
  return [...out, ...heard.slice(0, 64), ...(v['no-replays'] ? [] : heard.slice(0, 64).map(asRequest))];
}

/**
 * A mutated overheard datagram keeps the client id it carries (whatever
 * its type: a mutation may turn it into a REQUEST, or flip its request id
 * up): the stranger impersonates the clients it overheard, which the
 * client-id binding (no key) or the client key must stop
 * (docs/trust-model.md, "Client ids").
 */
function mutate(r: Prng, base: Buffer): Buffer {
  const b = Buffer.from(base);
  const mutation = r.int(0, 6);
  switch (mutation) {
    case 0: // random bytes, random length
      return Buffer.from(Array.from({ length: r.int(0, 1500) }, () => r.int(0, 255)));
    case 1: // truncated
      return b.subarray(0, r.int(0, b.length));
    case 2: // bit flips
      for (let k = r.int(1, 8); k > 0; k--) {
        const i = r.int(0, b.length - 1);
        b[i]! ^= 1 << r.int(0, 7);
      }
      return b;
    case 3: // a lying payload_len
      if (b.length >= XSEQ_HDR_LEN) b.writeUInt32BE(r.pick([0, 1, 1400, 1401, 0xffffffff, r.int(0, 0xffffffff)]), 56);
      return b;
    case 4: // another type, flags, group, session
      if (b.length >= XSEQ_HDR_LEN) {
        b[5] = r.int(0, 30);
        b.writeUInt16BE(r.int(0, 0xffff), 6);
        if (r.chance(0.3)) b.writeUInt32BE(r.int(0, 300), 8);
        if (r.chance(0.5)) b.writeUInt32BE(r.int(0, 0xffffffff), 16);
      }
      return b;
    case 5: // extended with junk
      return Buffer.concat([b, Buffer.from(Array.from({ length: r.int(1, 200) }, () => r.int(0, 255)))]);
    default: // as is (a replay)
      return b;
  }
}

async function fuzz(): Promise<void> {
  const seed = Number(v.seed ?? 1);
  const n = Number(v.count);
  const r = new Prng(seed);
  const ear = await overhear();
  await heardSome(ear);
  const base = corpus(ear.session(), ear.lastSeq(), ear.heard);
  const own = await socketFrom(SELF);
  const ownSeqPort = await socketFrom(SELF, SEQ_PORT);
  const froms = [own, ownSeqPort];
  const udpTargets: [string, number, string][] = [
    [SEQ, SEQ_PORT, 'sequencer'],
    [SEQ, REPAIR_PORT, 'repair'],
    [MCAST, GROUP_PORT, 'group (multicast)'],
    ...REPLICAS.flatMap((h, i): [string, number, string][] => [
      [h, GROUP_PORT, 'group'],
      [h, ACK_PORT + i, 'ack port'],
    ]),
  ];
  const tcpFrames: Uint8Array[][] = REPLICAS.map(() => []);
  // 70% from this host's own address (to every port, some as TCP frames),
  // 15% from the members' addresses to the sequencer host, 15% from the
  // sequencer's address to the replicas; every choice from the seed.
  const own70 = Math.round(n * 0.7);
  const spoof15 = Math.round(n * 0.15);
  for (let k = 0; k < own70; k++) {
    const d = mutate(r, r.pick(base));
    if (r.chance(0.02)) {
      tcpFrames[r.int(0, REPLICAS.length - 1)]!.push(d);
      count('peer tcp');
      continue;
    }
    const [host, port, name] = r.pick(udpTargets);
    await send(r.pick(froms), d, port, host);
    count(name);
    await pace(32);
  }
  const seqTargets = udpTargets.filter(([h]) => h === SEQ);
  await fromAddresses(SPOOF, async (socks) => {
    for (let k = 0; k < spoof15; k++) {
      const [host, port, name] = r.pick(seqTargets);
      await send(r.pick(socks), mutate(r, r.pick(base)), port, host);
      count(`${name} (member address)`);
      await pace(32);
    }
  });
  const replicaTargets = udpTargets.filter(([h]) => h !== SEQ);
  await fromAddresses([SEQ], async ([s]) => {
    for (let k = own70 + spoof15; k < n; k++) {
      const [host, port, name] = r.pick(replicaTargets);
      await send(s!, mutate(r, r.pick(base)), port, host);
      count(`${name} (sequencer address)`);
      await pace(32);
    }
  });
  for (const [i, frames] of tcpFrames.entries()) {
    // A few connections per replica, each with a handful of frames.
    for (let k = 0; k < frames.length; k += 8) await tcpSend(REPLICAS[i]!, frames.slice(k, k + 8));
  }
  if (n > 0) await impersonate(own, ear.heard);
  for (const s of [...froms, ear.sock]) s.close();
  console.log(JSON.stringify({ mode: 'fuzz', seed, count: n, corpus: base.length, sent }));
}

if (v.mode === 'forge') await forge();
else if (v.mode === 'fuzz') await fuzz();
else {
  console.error(`stranger.ts: unknown --mode ${v.mode}`);
  process.exit(2);
}

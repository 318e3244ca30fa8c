// A small xseq endpoint for namespace tests of the Hydra side: prints every
// xseq message it receives as one JSON line, sends what its stdin asks,
// and, as a replica, ACKs every SEQUENCED to the sequencer that stamped it
// (by sequencer id, --seq ID=ADDR:PORT), the leader (replica 0) with a
// result. Not a replica: no ordering, no slow path; just the wire.
//
//   --bind ADDR:PORT        unicast socket (ACKs, solicits, requests go out of it)
//   --join GROUP:PORT       also receive the group's multicast on ADDR
//   --ack RID               ACK every SEQUENCED as replica RID (view 0)
//   --seq ID=ADDR:PORT      where sequencer ID takes ACKs (repeat)
// stdin lines: {"to":"ADDR:PORT","h":{header fields; seq/clientId/... as strings}}
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, type XseqHeader } from '../../bpf/wire.ts';

const { values: v } = parseArgs({
  options: {
    bind: { type: 'string' },
    join: { type: 'string' },
    ack: { type: 'string' },
    seq: { type: 'string', multiple: true },
  },
});
const split = (s: string): [string, number] => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
};
const [addr, port] = split(v.bind!);
const seqs = new Map<number, [string, number]>((v.seq ?? []).map((s) => {
  const [id, a] = s.split('=');
  return [Number(id), split(a!)];
}));
const rid = v.ack === undefined ? undefined : Number(v.ack);

const out = (o: object) => process.stdout.write(JSON.stringify(o, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) + '\n');

function onMessage(sock: string, buf: Buffer, r: RemoteInfo): void {
  const d = decodeMessage(buf);
  if (!d.ok) {
    out({ event: 'bad', sock, from: `${r.address}:${r.port}`, code: d.error.code });
    return;
  }
  const h = d.message.header;
  out({ event: 'rx', sock, from: `${r.address}:${r.port}`, at: Date.now(), h, payload: Buffer.from(d.message.payload).toString('latin1') });
  // Retransmissions too: the agent re-sends when an ACK was slow or lost,
  // and a second ACK is only a duplicate to the kernel.
  if (rid !== undefined && h.type === MsgType.SEQUENCED) {
    const to = seqs.get(h.sequencerId);
    if (!to) return;
    const result = rid === 0 ? Buffer.from(`ok-${h.sequencerId}`) : Buffer.alloc(0);
    const ack = encodeMessage({ ...emptyHeader(), type: MsgType.ACK, flags: rid === 0 ? Flags.RESULT : 0, groupId: h.groupId, sequencerId: h.sequencerId, replicaId: rid, session: h.session, view: 0, seq: h.seq }, result);
    uni.send(ack, to[1], to[0]);
  }
}

function bindSocket(s: Socket, p: number, a?: string): Promise<void> {
  return new Promise((res, rej) => {
    s.once('error', rej);
    s.bind({ port: p, ...(a ? { address: a } : {}), exclusive: true }, () => res());
  });
}

const uni = createSocket({ type: 'udp4', reuseAddr: true });
uni.on('message', (b, r) => onMessage('unicast', b, r));
await bindSocket(uni, port, addr);
let group: Socket | undefined;
if (v.join) {
  const [gaddr, gport] = split(v.join);
  group = createSocket({ type: 'udp4', reuseAddr: true });
  group.on('message', (b, r) => onMessage('group', b, r));
  await bindSocket(group, gport);
  group.addMembership(gaddr, addr);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const { to, h, payload } = JSON.parse(line) as { to: string; h: Record<string, unknown>; payload?: string };
  const hdr = { ...emptyHeader() } as XseqHeader & Record<string, unknown>;
  for (const [k, x] of Object.entries(h)) hdr[k] = typeof (emptyHeader() as unknown as Record<string, unknown>)[k] === 'bigint' ? BigInt(x as string) : x;
  const [a, p] = split(to);
  uni.send(encodeMessage(hdr, Buffer.from(payload ?? '')), p, a, (e) => {
    if (e) out({ event: 'send-error', err: e.message });
  });
});

const stop = () => {
  uni.close();
  group?.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
out({ event: 'listening', addr, port });

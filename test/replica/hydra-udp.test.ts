// The Hydra side of the UDP replica transport on real loopback sockets (no
// namespaces, no BPF): with several sequencers an ACK goes to the sequencer
// that stamped, a FLUSH_SOLICIT to the sequencer asked, a repair request to
// that sequencer's agent whose answer comes back tagged with it, and FLUSH
// and SEQUENCED from the group reach the replica with sequencer and clock.
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeRepairReply } from '../../bpf/repair.ts';
import { decodeMessage, MsgType, type XseqHeader } from '../../bpf/wire.ts';
import type { ReplicaInbound } from '../../replica/messages.ts';
import { UdpReplicaTransport } from '../../replica/udp/replica-transport.ts';
import { flushToWire, sequencedToWire } from '../../replica/wire-map.ts';

const HOST = '127.0.0.1';
const base = 20_000 + (process.pid % 20_000);
const GROUP_ID = 9;

function udp(port: number): Promise<{ sock: Socket; next: () => Promise<XseqHeader>; from: () => number }> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const queue: XseqHeader[] = [];
    const waiters: ((h: XseqHeader) => void)[] = [];
    let lastFrom = 0;
    sock.on('message', (b, rinfo) => {
      lastFrom = rinfo.port;
      const d = decodeMessage(b);
      if (!d.ok) return;
      const w = waiters.shift();
      if (w) w(d.message.header);
      else queue.push(d.message.header);
    });
    sock.once('error', reject);
    sock.bind(port, HOST, () =>
      resolve({
        sock,
        from: () => lastFrom,
        next: () => new Promise((res, rej) => {
          const q = queue.shift();
          if (q) return res(q);
          const t = setTimeout(() => rej(new Error(`nothing on port ${port} within 2 s`)), 2_000);
          waiters.push((h) => (clearTimeout(t), res(h)));
        }),
      }),
    );
  });
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

describe('UDP replica transport with several sequencers', () => {
  it('routes ACKs, solicits and repairs by sequencer id, and delivers FLUSH and stamped SEQUENCED', async () => {
    const seq0 = await udp(base + 1);
    const seq1 = await udp(base + 2);
    const agent1 = await udp(base + 3);
    open.push({ close: () => [seq0, seq1, agent1].forEach((s) => s.sock.close()) });
    const t = await UdpReplicaTransport.open({
      groupId: GROUP_ID,
      group: { host: '239.77.0.1', port: base + 4 },
      member: { host: HOST, port: base + 5 },
      sequencer: { host: HOST, port: base + 1 },
      repair: null,
      sequencers: [
        { id: 0, sequencer: { host: HOST, port: base + 1 }, repair: null },
        { id: 1, sequencer: { host: HOST, port: base + 2 }, repair: { host: HOST, port: base + 3 } },
      ],
      self: 0,
      peers: [{ host: HOST, port: base + 6 }],
    });
    open.push(t);
    const got: ReplicaInbound[] = [];
    t.attach((m) => got.push(m));

    t.sendAck({ type: 'ACK', session: 4, seq: 17, leaderNum: 0, replicaId: 0, clientId: 1n, requestId: 2n, result: null, sequencerId: 1 });
    expect(await seq1.next()).toMatchObject({ type: MsgType.ACK, sequencerId: 1, session: 4, seq: 17n, groupId: GROUP_ID });
    t.sendFlushSolicit({ type: 'FLUSH_SOLICIT', sequencerId: 0, replicaId: 0, session: 4 });
    expect(await seq0.next()).toMatchObject({ type: MsgType.FLUSH_SOLICIT, sequencerId: 0, replicaId: 0, session: 4 });

    t.sendRepairRequest({ type: 'REPAIR_REQUEST', sequencerId: 1, session: 4, replicaId: 0, first: 17, count: 2 });
    expect(await agent1.next()).toMatchObject({ type: MsgType.REPAIR_REQUEST, seq: 17n, session: 4 });
    // The agent answers the request's source; the header says sequencer 0,
    // but the socket it arrives on is sequencer 1's agent's, and that counts.
    agent1.sock.send(encodeRepairReply({ groupId: GROUP_ID, session: 4, replicaId: 0, first: 17n, sequencerId: 0 }, { count: 2, resent: 1, missing: [18n] }), agent1.from(), HOST);

    // Group traffic (unicast to the group port, as the agent's retransmissions
    // are), from sequencer 1's address and port: only a configured sequencer
    // speaks, and only for its own stream.
    const flush = flushToWire({ type: 'FLUSH', sequencerId: 1, session: 4, seq: 20, clock: 5e9, final: false }, { groupId: GROUP_ID });
    const stamped = sequencedToWire({ type: 'SEQUENCED', session: 4, seq: 21, clientId: 1n, requestId: 3n, op: new Uint8Array([7]), retransmit: false }, { groupId: GROUP_ID, sequencerId: 1, clockNs: 6_000_000_000n });
    const g = createSocket('udp4');
    open.push({ close: () => g.close() });
    g.send(flush, base + 4, HOST); // a stranger
    seq0.sock.send(stamped, base + 4, HOST); // sequencer 0 speaking for sequencer 1
    seq1.sock.send(flush, base + 4, HOST);
    seq1.sock.send(stamped, base + 4, HOST);
    const deadline = Date.now() + 2_000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(got).toContainEqual({ type: 'FLUSH', sequencerId: 1, session: 4, seq: 20, clock: 5e9, final: false });
    expect(got.find((m) => m.type === 'SEQUENCED')).toMatchObject({ sequencerId: 1, seq: 21, clock: 6e9 });
    expect(got.find((m) => m.type === 'REPAIR_REPLY')).toEqual({ type: 'REPAIR_REPLY', session: 4, first: 17, count: 2, missing: [18], sequencerId: 1 });
    expect(t.counters()).toMatchObject({ acks: 1, solicits: 1, repairRequests: 1, flushes: 1, sequenced: 1, sources: { strangers: 2, sessionJumps: 0 } });
  });
});

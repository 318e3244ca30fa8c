// The UDP replica transport of a one-sequencer group with a standby, on real
// loopback sockets (no namespaces, no BPF): ACKs and repair requests of a
// session go to the host whose sequencer id stamped it; a session not seen
// yet is the active's; the standby's session is delivered as one sequencer's
// (no Hydra merge). Plus the route's bounded memory.
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage, MsgType, type XseqHeader } from '../../bpf/wire.ts';
import type { ReplicaInbound } from '../../replica/messages.ts';
import { UdpReplicaTransport } from '../../replica/udp/replica-transport.ts';
import { StandbyRoute } from '../../replica/udp/standby-route.ts';
import { sequencedToWire } from '../../replica/wire-map.ts';

const HOST = '127.0.0.1';
const base = 21_000 + (process.pid % 20_000);
const GROUP_ID = 9;

function udp(port: number): Promise<{ sock: Socket; got: XseqHeader[] }> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const got: XseqHeader[] = [];
    sock.on('message', (b) => {
      const d = decodeMessage(b);
      if (d.ok) got.push(d.message.header);
    });
    sock.once('error', reject);
    sock.bind(port, HOST, () => resolve({ sock, got }));
  });
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within 2 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

describe('UDP replica transport with a standby', () => {
  it('ACKs and repairs go to whichever of the pair stamped the session', async () => {
    const [active, activeAgent, standby, standbyAgent] = await Promise.all([udp(base + 1), udp(base + 2), udp(base + 3), udp(base + 4)]);
    open.push({ close: () => [active, activeAgent, standby, standbyAgent].forEach((s) => s.sock.close()) });
    const t = await UdpReplicaTransport.open({
      groupId: GROUP_ID,
      group: { host: '239.77.0.2', port: base + 5 },
      member: { host: HOST, port: base + 6 },
      sequencer: { host: HOST, port: base + 1 },
      repair: { host: HOST, port: base + 2 },
      sequencers: [{ id: 0, sequencer: { host: HOST, port: base + 1 }, repair: { host: HOST, port: base + 2 } }],
      standby: { id: 1, sequencer: { host: HOST, port: base + 3 }, repair: { host: HOST, port: base + 4 } },
      self: 0,
      peers: [{ host: HOST, port: base + 7 }],
    });
    open.push(t);
    const got: ReplicaInbound[] = [];
    t.attach((m) => got.push(m));
    const ack = (session: number, seq: number) => t.sendAck({ type: 'ACK', session, seq, leaderNum: 0, replicaId: 0, clientId: 1n, requestId: BigInt(seq), result: null });

    // Nothing seen yet: the active's.
    ack(10, 1);
    await until('ACK at the active', () => active.got.length === 1);
    // Session 10 stamped by the active (id 0), 11 by the standby (id 1).
    // From each sequencer's own address and port: the group socket takes stamps from nobody else (sources.ts).
    const stamp = (session: number, seq: number, sid: number) =>
      (sid === 1 ? standby : active).sock.send(sequencedToWire({ type: 'SEQUENCED', session, seq, clientId: 1n, requestId: BigInt(seq), op: new Uint8Array([7]), retransmit: false }, { groupId: GROUP_ID, sequencerId: sid, clockNs: 0n }), base + 5, HOST);
    stamp(10, 2, 0);
    stamp(11, 1, 1);
    await until('both SEQUENCED', () => got.filter((m) => m.type === 'SEQUENCED').length === 2);
    // One sequencer's messages: no Hydra fields.
    expect(got.find((m) => m.type === 'SEQUENCED' && m.session === 11)).not.toHaveProperty('clock');
    ack(11, 1);
    ack(10, 2);
    t.sendRepairRequest({ type: 'REPAIR_REQUEST', session: 11, replicaId: 0, first: 2, count: 1 });
    t.sendRepairRequest({ type: 'REPAIR_REQUEST', session: 10, replicaId: 0, first: 3, count: 1 });
    expect(t.counters().sources.strangers).toBe(0);
    await until('the ACKs and repair requests', () => active.got.length === 2 && standby.got.length === 1 && standbyAgent.got.length === 1 && activeAgent.got.length === 1);
    expect(standby.got).toMatchObject([{ type: MsgType.ACK, session: 11, seq: 1n }]);
    expect(active.got).toMatchObject([{ type: MsgType.ACK, session: 10, seq: 1n }, { type: MsgType.ACK, session: 10, seq: 2n }]);
    expect(standbyAgent.got).toMatchObject([{ type: MsgType.REPAIR_REQUEST, session: 11, seq: 2n }]);
    expect(activeAgent.got).toMatchObject([{ type: MsgType.REPAIR_REQUEST, session: 10, seq: 3n }]);
  });

  it('the route remembers the newest sessions only, and follows a session to the id that stamps it', () => {
    const r = new StandbyRoute(1);
    for (let s = 1; s <= 20; s++) r.note(s, s % 2);
    expect(r.isStandby(19)).toBe(true);
    expect(r.isStandby(20)).toBe(false);
    // Forgotten: the active's by default.
    expect(r.isStandby(3)).toBe(false);
    expect(r.isStandby(13)).toBe(true);
    r.note(20, 1);
    expect(r.isStandby(20)).toBe(true);
  });
});

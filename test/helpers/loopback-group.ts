// Three real replicas (Replica + UdpReplicaTransport with acksTo 'client')
// on loopback behind a stand-in sequencer that stamps REQUESTs the way
// bpf/sequencer.h does (type, session, seq; everything else, the reply
// address included, passes through) and sends each replica its copy by
// unicast to its own group port (no multicast leaves the test). The
// replicas' leader timeout is far beyond any test, so the view stays 0.
import { createSocket, type Socket } from 'node:dgram';
import { createServer } from 'node:net';
import { decodeMessage, encodeMessage, MsgType } from '../../bpf/wire.ts';
import type { Application } from '../../replica/app.ts';
import { Replica } from '../../replica/replica.ts';
import { RealTimeScheduler, UdpReplicaTransport, type HostPort } from '../../replica/udp/index.ts';

export const GROUP_ID = 4;
export const HOST = '127.0.0.1';

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const p = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return p;
}

/** The group; `deliverTo` says which replicas get SEQUENCED copies. Closers run in reverse order. */
export async function loopbackGroup(app: () => Application, closers: (() => unknown)[]) {
  const seqSock: Socket = createSocket('udp4');
  await new Promise<void>((r) => seqSock.bind(0, HOST, r));
  closers.push(() => new Promise<void>((r) => seqSock.close(() => r())));
  const sequencer: HostPort = { host: HOST, port: seqSock.address().port };
  const groupPorts = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
  const peers = [{ host: HOST, port: await freeTcpPort() }, { host: HOST, port: await freeTcpPort() }, { host: HOST, port: await freeTcpPort() }];
  const deliverTo = new Set([0, 1, 2]);
  let seq = 0;
  seqSock.on('message', (b) => {
    const d = decodeMessage(b);
    if (!d.ok || d.message.header.type !== MsgType.REQUEST) return;
    const stamped = encodeMessage({ ...d.message.header, type: MsgType.SEQUENCED, session: 1, seq: BigInt(++seq) }, d.message.payload);
    for (const i of deliverTo) seqSock.send(stamped, groupPorts[i]!, HOST);
  });
  const transports: UdpReplicaTransport[] = [];
  const replicas: Replica[] = [];
  for (let i = 0; i < 3; i++) {
    const t = await UdpReplicaTransport.open({
      groupId: GROUP_ID,
      group: { host: '239.77.1.1', port: groupPorts[i]! },
      member: { host: HOST, port: 0 },
      sequencer,
      repair: null,
      self: i,
      peers,
      acksTo: 'client',
    });
    const r = new Replica({ id: i, n: 3, app: app(), transport: t, scheduler: new RealTimeScheduler(), session: 1, config: { leaderTimeoutUs: 600_000_000, viewChangeRetryUs: 600_000_000 } });
    t.attach((m) => r.receive(m));
    closers.push(async () => {
      r.stop();
      await t.close();
    });
    transports.push(t);
    replicas.push(r);
  }
  return { sequencer, deliverTo, transports, replicas };
}


// ClientTransport on a UDP socket: REQUESTs go to the sequencer host, which
// stamps and multicasts them; the answer comes back to the same socket as
// the aggregator's one REPLY (type 4), or, with aggregation off, as the
// replicas' ACKs. Many Client cores (one request in flight each) can share
// one socket: answers are routed by client id.
import { createSocket, type Socket } from 'node:dgram';
import { decodeMessage, MsgType } from '../../bpf/wire.ts';
import type { Client } from '../client.ts';
import type { RequestMsg } from '../messages.ts';
import type { ClientTransport } from '../transport.ts';
import { ackFromWire, replyFromWire, requestToWire } from '../wire-map.ts';
import type { HostPort } from './addr.ts';

export interface UdpClientOptions {
  /** The sequencer host's xseq port (or, for an unreplicated baseline, the server). */
  sequencer: HostPort;
  groupId: number;
  /** Local address to send from (default any). */
  bindAddress?: string;
  /** Local port (default any). */
  bindPort?: number;
  /**
   * Connect the socket to the sequencer (default true): sends skip the
   * per-datagram address lookup, and the kernel drops datagrams from
   * anyone else. Set false when replicas answer the client themselves
   * (aggregation off): their ACKs come from their own addresses.
   */
  connect?: boolean;
}

export interface UdpClientCounters {
  requests: number;
  replies: number;
  acks: number;
  /** Datagrams that answer no registered client, or are not answers. */
  ignored: number;
  sendErrors: number;
}

export class UdpClientTransport implements ClientTransport {
  private readonly clients = new Map<bigint, Client>();
  private readonly c: UdpClientCounters = { requests: 0, replies: 0, acks: 0, ignored: 0, sendErrors: 0 };
  private readonly onSent = (err: Error | null): void => {
    if (err) this.c.sendErrors++;
  };

  private constructor(
    private readonly o: UdpClientOptions,
    private readonly sock: Socket,
  ) {
    sock.on('message', (b) => this.onDatagram(b));
    sock.on('error', () => this.c.sendErrors++);
  }

  static async open(o: UdpClientOptions): Promise<UdpClientTransport> {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    const step = (f: (done: () => void) => void) =>
      new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        f(() => {
          sock.off('error', reject);
          resolve();
        });
      });
    try {
      await step((done) => sock.bind({ port: o.bindPort ?? 0, ...(o.bindAddress ? { address: o.bindAddress } : {}) }, done));
      if (o.connect ?? true) await step((done) => sock.connect(o.sequencer.port, o.sequencer.host, done));
    } catch (e) {
      sock.close();
      throw e;
    }
    return new UdpClientTransport(o, sock);
  }

  /** The local address answers come back to. */
  get address(): HostPort {
    const a = this.sock.address();
    return { host: a.address, port: a.port };
  }

  /** Routes answers for c.clientId to c. */
  register(c: Client): void {
    this.clients.set(c.clientId, c);
  }

  unregister(c: Client): void {
    if (this.clients.get(c.clientId) === c) this.clients.delete(c.clientId);
  }

  counters(): UdpClientCounters {
    return { ...this.c };
  }

  sendRequest(msg: RequestMsg): void {
    this.c.requests++;
    const b = requestToWire(msg, { groupId: this.o.groupId });
    if (this.o.connect ?? true) this.sock.send(b, this.onSent);
    else this.sock.send(b, this.o.sequencer.port, this.o.sequencer.host, this.onSent);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }

  private onDatagram(buf: Buffer): void {
    const d = decodeMessage(buf);
    if (!d.ok || d.message.header.groupId !== this.o.groupId) {
      this.c.ignored++;
      return;
    }
    const t = d.message.header.type;
    const m = t === MsgType.REPLY ? replyFromWire(d.message) : t === MsgType.ACK ? ackFromWire(d.message) : null;
    const client = m && this.clients.get(m.clientId);
    if (!m || !client) {
      this.c.ignored++;
      return;
    }
    if (m.type === 'REPLY') this.c.replies++;
    else this.c.acks++;
    client.receive(m);
  }
}

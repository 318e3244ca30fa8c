// ClientTransport on a UDP socket: REQUESTs go to the sequencer host the
// client core chose, which stamps and multicasts them; the answer comes back
// to the same socket as an aggregator's one REPLY (type 4), or, with
// aggregation off, as the replicas' ACKs. Many Client cores (one request in
// flight each) can share one socket, also across groups: answers are routed
// by (group id, client id).
//
// Several sequencers (Hydra): the socket is then left unconnected, and a
// REPLY counts only if it comes from one of its group's sequencer
// addresses (the one a connected socket would have enforced); that
// sequencer's id goes to the core, which credits it as healthy. ACKs
// (aggregation off) come from replicas' own addresses and are accepted from
// any source, like a connect: false socket always did.
import { createSocket, type Socket } from 'node:dgram';
import { decodeError, ErrorCode } from '../../bpf/repair.ts';
import { type GroupKey, seal } from '../../bpf/mac.ts';
import { decodeMessage, MsgType, type XseqHeader } from '../../bpf/wire.ts';
import type { Client } from '../client.ts';
import type { RequestMsg } from '../messages.ts';
import type { ClientTransport } from '../transport.ts';
import { ackFromWire, replyFromWire, requestToWire } from '../wire-map.ts';
import { formatHostPort, isIpv4, type HostPort } from './addr.ts';
import { localAddressToward, setReplyTo } from './reply-to.ts';

/** One of a group's sequencers: its id (0..N-1) and xseq address. */
export interface SequencerAddr extends HostPort {
  readonly id: number;
}

export interface UdpClientOptions {
  /** The group's sequencers (IPv4 literals). Give this or `sequencer`. */
  sequencers?: readonly SequencerAddr[];
  /**
   * The single-sequencer form: sequencer id 0 at this address (or, for an
   * unreplicated baseline, the server).
   */
  sequencer?: HostPort;
  groupId: number;
  /** Local address to send from (default any). */
  bindAddress?: string;
  /** Local port (default any). */
  bindPort?: number;
  /**
   * Connect the socket to the sequencer (default: true with exactly one
   * sequencer, and only possible then): sends skip the per-datagram address
   * lookup, and the kernel drops datagrams from anyone else. Set false when
   * replicas answer the client themselves (aggregation off): their ACKs
   * come from their own addresses.
   */
  connect?: boolean;
  /**
   * Aggregation off: name this socket's address in every REQUEST so the
   * replicas ACK it directly (reply-to.ts). Implies an unconnected socket.
   */
  directAcks?: boolean;
  /**
   * The IPv4 address replicas answer when directAcks is on (default: the
   * bind address, or the source address of the route to the first sequencer).
   */
  replyAddress?: string;
  /**
   * A keyed group's client key (bpf/mac.ts clientKeyOf; `xseq-agent
   * client-key` prints it): every REQUEST is sealed with it, which the
   * sequencer requires of a keyed group, so that only key holders can
   * speak for a client id. Absent: REQUESTs go unsealed (a group without a
   * key).
   */
  clientKey?: GroupKey;
  /**
   * The group key itself, for control ops (XSEQ_F_CONTROL), which a keyed
   * group's sequencer accepts only sealed with it. Only operator tools
   * hold it.
   */
  groupKey?: GroupKey;
}

export interface UdpClientCounters {
  requests: number;
  replies: number;
  acks: number;
  /** Datagrams that answer no registered client, or are not answers. */
  ignored: number;
  /** REPLYs (and BUSYs) from an address that is not one of their group's sequencers. */
  strangers: number;
  /** ERROR BUSY answers: requests refused by backpressure, re-sent. */
  busy: number;
  /** ERROR UNAUTHORIZED answers (a control op not authenticated). */
  unauthorized: number;
  sendErrors: number;
  /** Per "group:sequencer id": requests sent to it and REPLYs from it. */
  sequencers: Record<string, { requests: number; replies: number }>;
}

interface GroupState {
  readonly groupId: number;
  readonly seqs: Map<number, HostPort>;
  /** "ip:port" -> sequencer id. */
  readonly bySource: Map<string, number>;
  readonly clients: Map<bigint, Client>;
}

/** Validates a sequencer list: non-empty, unique ids 0..65535, IPv4 literals. */
export function checkSequencers(list: readonly SequencerAddr[], what = 'sequencers'): void {
  if (list.length === 0) throw new RangeError(`${what}: at least one sequencer`);
  const ids = new Set<number>();
  for (const s of list) {
    if (!Number.isInteger(s.id) || s.id < 0 || s.id > 0xffff) throw new RangeError(`${what}: id ${s.id} is not 0..65535`);
    if (ids.has(s.id)) throw new RangeError(`${what}: id ${s.id} appears twice`);
    ids.add(s.id);
    if (!isIpv4(s.host)) throw new RangeError(`${what}: sequencer ${s.id} address "${s.host}" is not an IPv4 literal`);
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new RangeError(`${what}: sequencer ${s.id} port ${s.port} is not 1..65535`);
  }
}

/** A group's view of the shared socket: what its Client cores send through. */
export class UdpGroupChannel implements ClientTransport {
  constructor(
    private readonly t: UdpClientTransport,
    private readonly g: GroupState,
  ) {}

  get groupId(): number {
    return this.g.groupId;
  }

  /** The group's sequencer ids, in configured order (Client's `sequencers`). */
  get sequencerIds(): number[] {
    return [...this.g.seqs.keys()];
  }

  sendRequest(msg: RequestMsg, sequencerId: number): void {
    this.t.sendTo(this.g, msg, sequencerId);
  }

  /** Routes this group's answers for c.clientId to c. */
  register(c: Client): void {
    this.g.clients.set(c.clientId, c);
  }

  unregister(c: Client): void {
    if (this.g.clients.get(c.clientId) === c) this.g.clients.delete(c.clientId);
  }
}

export class UdpClientTransport implements ClientTransport {
  private readonly groups = new Map<number, GroupState>();
  private readonly main: UdpGroupChannel;
  private readonly c: UdpClientCounters = { requests: 0, replies: 0, acks: 0, ignored: 0, strangers: 0, busy: 0, unauthorized: 0, sendErrors: 0, sequencers: {} };
  private readonly onSent = (err: Error | null): void => {
    if (err) this.c.sendErrors++;
  };

  private constructor(
    o: UdpClientOptions,
    list: readonly SequencerAddr[],
    private readonly sock: Socket,
    /** The one address the socket is connected to, if it is. */
    private readonly connectedTo: HostPort | null,
    /** directAcks: where replicas send their ACKs (this socket). */
    readonly replyTo: HostPort | null,
    private readonly keys: { client?: GroupKey | undefined; group?: GroupKey | undefined } = {},
  ) {
    this.main = this.group(o.groupId, list);
    sock.on('message', (b, rinfo) => this.onDatagram(b, `${rinfo.address}:${rinfo.port}`));
    sock.on('error', () => this.c.sendErrors++);
  }

  /** The sequencer list an options object describes (the single-address form is id 0). */
  static sequencerList(o: Pick<UdpClientOptions, 'sequencer' | 'sequencers'>): SequencerAddr[] {
    if (o.sequencers && o.sequencer) throw new RangeError('give sequencer or sequencers, not both');
    const list = o.sequencers ? [...o.sequencers] : o.sequencer ? [{ id: 0, host: o.sequencer.host, port: o.sequencer.port }] : [];
    checkSequencers(list);
    return list;
  }

  static async open(o: UdpClientOptions): Promise<UdpClientTransport> {
    const list = UdpClientTransport.sequencerList(o);
    const connect = o.connect ?? (list.length === 1 && !o.directAcks);
    if (connect && list.length !== 1) throw new RangeError(`connect: true needs exactly one sequencer, got ${list.length}`);
    if (connect && o.directAcks) throw new RangeError('directAcks: replicas answer from their own addresses; the socket cannot be connected');
    if (o.replyAddress !== undefined && !isIpv4(o.replyAddress)) throw new RangeError(`replyAddress "${o.replyAddress}" is not an IPv4 literal`);
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
      if (connect) await step((done) => sock.connect(list[0]!.port, list[0]!.host, done));
      let replyTo: HostPort | null = null;
      if (o.directAcks) {
        const bound = o.bindAddress && o.bindAddress !== '0.0.0.0' ? o.bindAddress : undefined;
        replyTo = { host: o.replyAddress ?? bound ?? (await localAddressToward(list[0]!)), port: sock.address().port };
      }
      return new UdpClientTransport(o, list, sock, connect ? list[0]! : null, replyTo, { client: o.clientKey, group: o.groupKey });
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  /** The local address answers come back to. */
  get address(): HostPort {
    const a = this.sock.address();
    return { host: a.address, port: a.port };
  }

  /** The group given at open(). */
  get defaultGroup(): UdpGroupChannel {
    return this.main;
  }

  /**
   * Another group on this socket (or the same one again: its channel). A
   * connected socket only reaches its one sequencer, so a group there must
   * use exactly that address.
   */
  group(groupId: number, sequencers: readonly SequencerAddr[]): UdpGroupChannel {
    if (!Number.isInteger(groupId) || groupId < 0 || groupId > 0xffffffff) throw new RangeError(`group id ${groupId} is not a u32`);
    checkSequencers(sequencers, `group ${groupId} sequencers`);
    const key = (a: HostPort) => `${a.host}:${a.port}`;
    if (this.connectedTo && sequencers.some((s) => key(s) !== key(this.connectedTo!)))
      throw new RangeError(`group ${groupId}: the socket is connected to ${formatHostPort(this.connectedTo)}; open it with connect: false to reach other sequencers`);
    const old = this.groups.get(groupId);
    if (old) {
      const same = old.seqs.size === sequencers.length && sequencers.every((s) => old.seqs.has(s.id) && key(old.seqs.get(s.id)!) === key(s));
      if (!same) throw new RangeError(`group ${groupId} is already open with other sequencers`);
      return new UdpGroupChannel(this, old);
    }
    const g: GroupState = { groupId, seqs: new Map(), bySource: new Map(), clients: new Map() };
    for (const s of sequencers) {
      g.seqs.set(s.id, { host: s.host, port: s.port });
      g.bySource.set(key(s), s.id);
      this.c.sequencers[`${groupId}:${s.id}`] = { requests: 0, replies: 0 };
    }
    this.groups.set(groupId, g);
    return new UdpGroupChannel(this, g);
  }

  /** The default group's sequencer ids, in configured order. */
  get sequencerIds(): number[] {
    return this.main.sequencerIds;
  }

  /** Routes the default group's answers for c.clientId to c. */
  register(c: Client): void {
    this.main.register(c);
  }

  unregister(c: Client): void {
    this.main.unregister(c);
  }

  counters(): UdpClientCounters {
    const sequencers: UdpClientCounters['sequencers'] = {};
    for (const [k, v] of Object.entries(this.c.sequencers)) sequencers[k] = { ...v };
    return { ...this.c, sequencers };
  }

  /** To the default group's sequencer `sequencerId` (default: its first). */
  sendRequest(msg: RequestMsg, sequencerId?: number): void {
    const g = this.groups.get(this.main.groupId)!;
    this.sendTo(g, msg, sequencerId ?? g.seqs.keys().next().value!);
  }

  /** @internal UdpGroupChannel's send. */
  sendTo(g: GroupState, msg: RequestMsg, sequencerId: number): void {
    const to = g.seqs.get(sequencerId);
    if (!to) throw new RangeError(`group ${g.groupId} has no sequencer ${sequencerId}`);
    this.c.requests++;
    this.c.sequencers[`${g.groupId}:${sequencerId}`]!.requests++;
    const plain = requestToWire(msg, { groupId: g.groupId });
    if (this.replyTo) setReplyTo(plain, this.replyTo);
    // Sealed last: the MAC covers the reply address too.
    const key = msg.control ? this.keys.group : this.keys.client;
    const b = key ? seal(plain, key) : plain;
    if (this.connectedTo) this.sock.send(b, this.onSent);
    else this.sock.send(b, to.port, to.host, this.onSent);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }

  private onDatagram(buf: Buffer, source: string): void {
    const d = decodeMessage(buf);
    const g = d.ok ? this.groups.get(d.message.header.groupId) : undefined;
    if (!d.ok || !g) {
      this.c.ignored++;
      return;
    }
    const t = d.message.header.type;
    if (t === MsgType.ERROR) return this.onError(d.message.header, d.message.payload, source, g);
    const m = t === MsgType.REPLY ? replyFromWire(d.message) : t === MsgType.ACK ? ackFromWire(d.message) : null;
    const client = m && g.clients.get(m.clientId);
    if (!m || !client) {
      this.c.ignored++;
      return;
    }
    if (m.type === 'ACK') {
      this.c.acks++;
      return client.receive(m);
    }
    const from = g.bySource.get(source);
    if (from === undefined) {
      this.c.strangers++;
      return;
    }
    this.c.replies++;
    this.c.sequencers[`${g.groupId}:${from}`]!.replies++;
    client.receive(m, from);
  }

  /** ERROR BUSY from one of the group's sequencers: its client re-sends
   * (Client.busy); ERROR UNAUTHORIZED: its control op fails (Client.unauthorized). */
  private onError(h: XseqHeader, payload: Uint8Array, source: string, g: GroupState): void {
    const client = g.clients.get(h.clientId);
    const code = decodeError(payload)?.code;
    if (!client || (code !== ErrorCode.BUSY && code !== ErrorCode.UNAUTHORIZED)) {
      this.c.ignored++;
      return;
    }
    if (!g.bySource.has(source)) {
      this.c.strangers++;
      return;
    }
    if (code === ErrorCode.UNAUTHORIZED) {
      this.c.unauthorized++;
      return client.unauthorized(h.requestId);
    }
    this.c.busy++;
    client.busy(h.requestId);
  }
}

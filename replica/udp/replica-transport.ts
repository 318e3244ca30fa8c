// ReplicaTransport on real sockets.
//
//   group socket  0.0.0.0:<group port>, joined to the group on the member's
//                 interface address: the sequencer's multicast and the
//                 agent's unicast retransmissions (member address : group
//                 port) both land here. SEQUENCED and FLUSH count only from
//                 a configured sequencer's address:port and within a bound
//                 of its last session (sources.ts).
//   ACK socket    bound to exactly <member address>:<member port>, the
//                 address the agent configured for this replica id (the
//                 kernel drops ACKs from any other source as strangers),
//                 and connected to the sequencer's xseq port: a connected
//                 send skips the per-datagram address lookup of an
//                 unconnected one, on the path every request takes.
//   repair socket bound to the member address and ACK port too (the agent
//                 answers only a member's exact address:port, as its
//                 kernel counts only such ACKs) and connected to the
//                 agent's repair service, so only the service's answers
//                 (re-sent SEQUENCED, REPAIR_REPLY, ERROR) reach it; the
//                 kernel gives each connected socket its own peer's
//                 datagrams.
//   peer link     TCP between replicas for the slow path (peer-link.ts).
//   XDP           optional (replica/xdp/): the kernel drops what the
//                 replica would discard (older sessions, delivered seqs) and
//                 posts gap events, delivered here as DROP_NOTIFICATIONs.
//   key           optional group key (docs/authentication.md): with one,
//                 every datagram on the group and repair sockets must carry
//                 a valid MAC or it is dropped here, before decoding, so the
//                 replica core sees only authenticated sequencer traffic;
//                 ACKs and repair requests leave sealed, peer frames are
//                 MAC'ed per connection (peer-link.ts). The XDP program, when
//                 attached, checks SEQUENCED and FLUSH already in the kernel.
import { encodeWeightsReport, type WeightsReport } from '../../bpf/weights-report.ts';
import { createSocket, type Socket } from 'node:dgram';
import type { GapEvent, RxCounters, RxKey, RxState } from '../../bpf/replica-maps.ts';
import { decodeMessage, HEADER_LAYOUT, MsgType, XSEQ_HDR_LEN, type XseqMessage } from '../../bpf/wire.ts';
import type { AckMsg, FlushSolicitMsg, SequencedMsg, PeerMsg, RepairRequestMsg, ReplicaInbound } from '../messages.ts';
import type { ReplicaTransport } from '../transport.ts';
import { ackDatagram, flushFromWire, flushSolicitToWire, hydraSequencedFromWire, repairErrorFromWire, repairReplyFromWire, repairRequestToWire, sequencedFromDatagram, sequencedFromWire } from '../wire-map.ts';
import type { HostPort } from './addr.ts';
import type { ReplicaXdp } from '../xdp/replica-xdp.ts';
import { checkMac, type GroupKey, sealInPlace, seal } from '../../bpf/mac.ts';
import { XSEQ_MAC_LEN } from '../../bpf/wire.ts';
import { PeerLink, type PeerLinkCounters } from './peer-link.ts';
import { SequencerSources, type SourceCounters } from './sources.ts';
import { replyToOf, ReplyToTable } from './reply-to.ts';
import { StandbyRoute } from './standby-route.ts';

export interface UdpReplicaOptions {
  groupId: number;
  /** The group's multicast address and the UDP port replicas receive on. */
  group: HostPort;
  /** The member address and ACK source port the agent was configured with. */
  member: HostPort;
  /** Where ACKs go: the sequencer host's xseq port. */
  sequencer: HostPort;
  /** The agent's repair service; null: no repair, gaps go to the leader at once. */
  repair: HostPort | null;
  /**
   * Hydra: every sequencer of the group by id (its xseq address:port and
   * its agent's repair service). Two or more: ACKs go to the sequencer that
   * stamped (by sequencer_id), repair requests to that sequencer's agent,
   * FLUSH_SOLICIT to that sequencer, FLUSH from the group is delivered.
   * Absent or one: `sequencer` and `repair` above, as before.
   */
  sequencers?: readonly HydraSequencer[];
  /**
   * One sequencer (no Hydra): its standby on another host (agent
   * groups[].role standby), with its own sequencer id. ACKs and repair
   * requests of a session the standby stamped go to it (standby-route.ts);
   * everything else to `sequencer`/`repair`. The ACK socket is then not
   * connected.
   */
  standby?: HydraSequencer;
  /** This replica's id, and every replica's slow-path address by id. */
  self: number;
  peers: readonly HostPort[];
  /** SO_RCVBUF of the group socket (default 8 MiB): bursts must not overflow it. */
  recvBufferBytes?: number;
  /**
   * Zero bytes of payload on ACKs without a result (followers'), default 0.
   * The aggregator rewrites the ACK that completes a quorum into the REPLY
   * in place; when that is a follower's empty ACK it must grow the packet
   * by the leader's result, and on veth in native XDP mode that growth
   * fails for some packets: the REPLY is lost and the request waits for the
   * client's retry (replica/README.md, "The UDP transport"). Padding to the
   * application's largest result turns the growth into a shrink. The
   * kernel ignores a follower's payload (no XSEQ_F_RESULT).
   */
  ackPadding?: number;
  /**
   * Where ACKs go (default 'sequencer': its in-kernel aggregator). 'client':
   * the group has no aggregation, so each ACK goes to the reply address its
   * client named in the REQUEST (reply-to.ts); the ACK socket is then not
   * connected, and an ACK for a client with no known address is dropped
   * (counted in acksNoAddress; the client's retry brings the address).
   */
  acksTo?: 'sequencer' | 'client';
  /**
   * The replica-side XDP program, loaded and attached (replica/xdp/
   * openReplicaXdp); the transport keeps it told what the replica holds,
   * turns its gap events into DROP_NOTIFICATIONs, and closes it.
   */
  xdp?: ReplicaXdp | null;
  /**
   * The group key (bpf/key-file.ts readKeyFile); null or absent: nothing is
   * authenticated (the caller warns). setKey() swaps it (SIGHUP).
   */
  key?: GroupKey | null;
  /**
   * How far ahead of the last session heard from a sequencer a SEQUENCED or
   * FLUSH may move the replica (default DEFAULT_SESSION_BOUND; sources.ts).
   */
  sessionBound?: number;
}

export interface HydraSequencer {
  id: number;
  sequencer: HostPort;
  repair: HostPort | null;
  /**
   * Not a member at start: it joins by an "add" control op (the replica's
   * `joiningSequencers`). The transport routes to it all the same (ACKs,
   * solicits, repair), since its traffic is only held, not refused.
   */
  joining?: boolean;
}

export interface UdpReplicaCounters {
  sequenced: number;
  retransmits: number;
  acks: number;
  repairRequests: number;
  repairReplies: number;
  repairErrors: number;
  /** Hydra: FLUSH received, FLUSH_SOLICIT sent. */
  flushes: number;
  solicits: number;
  /** Datagrams that are not for us: other groups, FLUSH (one sequencer), malformed. */
  ignored: number;
  sendErrors: number;
  /** acksTo 'client': ACKs dropped because their client named no reply address. */
  acksNoAddress: number;
  /** Gap events of the XDP program delivered to the replica. */
  dropNotifications: number;
  /** XDP map writes or ring buffer reads that failed (the replica carries on without them). */
  xdpErrors: number;
  /** With a key: datagrams to the group or repair sockets without a valid MAC, dropped. */
  unauthenticated: number;
  /** SEQUENCED/FLUSH refused: not from a configured sequencer, or a session too far ahead. */
  sources: SourceCounters;
  peer: PeerLinkCounters;
}

/** The XDP program's counters: per CPU summed, and per stream. */
export interface UdpReplicaXdpCounters {
  kernel: RxCounters;
  streams: (RxKey & RxState)[];
}

type Receiver = (m: ReplicaInbound) => void;

const SEQUENCER_ID_OFFSET = HEADER_LAYOUT.find((f) => f.c === 'sequencer_id')!.offset;
const REPLICA_ID_OFFSET = HEADER_LAYOUT.find((f) => f.c === 'replica_id')!.offset;
const VIEW_OFFSET = HEADER_LAYOUT.find((f) => f.c === 'view')!.offset;

function bind(sock: Socket, port: number, address: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port, ...(address ? { address } : {}), exclusive: false }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

function connectTo(sock: Socket, to: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(to.port, to.host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

export class UdpReplicaTransport implements ReplicaTransport {
  private receiver: Receiver | null = null;
  private afterEvent: () => void = () => {};
  private readonly c = { sequenced: 0, retransmits: 0, acks: 0, repairRequests: 0, repairReplies: 0, repairErrors: 0, flushes: 0, solicits: 0, ignored: 0, sendErrors: 0, acksNoAddress: 0, dropNotifications: 0, xdpErrors: 0, unauthenticated: 0 };
  private key: GroupKey | null;
  /** acksTo 'client': where each client wants its ACKs. */
  private readonly replyTo: ReplyToTable | null;
  private readonly xdp: ReplicaXdp | null;
  /** Hydra: sequencer id -> where its ACKs and solicits go, and its agent's socket. */
  private readonly hydra: Map<number, { sequencer: HostPort; repairSock: Socket | null }> | null;
  /** One sequencer with a standby: who stamped which session, and where the standby is. */
  private readonly standby: { route: StandbyRoute; sequencer: HostPort } | null;
  private readonly sources: SequencerSources;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.c.sendErrors++;
  };

  private constructor(
    private readonly o: UdpReplicaOptions,
    private readonly groupSock: Socket,
    private readonly ackSock: Socket,
    private readonly repairSock: Socket | null,
    private readonly link: PeerLink,
    hydraSocks: Map<number, Socket | null> | null,
    private readonly standbyRepairSock: Socket | null = null,
  ) {
    this.standby = !hydraSocks && o.standby ? { route: new StandbyRoute(o.standby.id), sequencer: o.standby.sequencer } : null;
    this.replyTo = o.acksTo === 'client' ? new ReplyToTable() : null;
    this.xdp = o.xdp ?? null;
    this.key = o.key ?? null;
    this.xdp?.setKey(o.groupId, this.key);
    this.xdp?.onGap((ev) => this.onGapEvent(ev), { onError: () => this.c.xdpErrors++ });
    // A one-sequencer group's standby speaks for the group too (once it takes over).
    const speakers = o.sequencers?.length ? o.sequencers : [{ id: 0, sequencer: o.sequencer }];
    this.sources = new SequencerSources(o.standby ? [...speakers, o.standby] : speakers, o.sessionBound);
    this.hydra = hydraSocks && new Map(o.sequencers!.map((q) => [q.id, { sequencer: q.sequencer, repairSock: hydraSocks.get(q.id) ?? null }]));
  }

  /** Binds every socket; nothing is delivered until attach(). */
  static async open(o: UdpReplicaOptions): Promise<UdpReplicaTransport> {
    const groupSock = createSocket({ type: 'udp4', reuseAddr: true });
    // The repair sockets share the ACK socket's address and port (see the top of this file).
    const ackSock = createSocket({ type: 'udp4', sendBufferSize: 4 << 20, reuseAddr: true });
    const multi = (o.sequencers?.length ?? 0) > 1;
    const repairSock = o.repair && !multi ? createSocket({ type: 'udp4', recvBufferSize: 4 << 20, reuseAddr: true }) : null;
    // Hydra: one repair socket per agent, each connected to it, so an answer's socket names its sequencer.
    const hydraSocks = multi ? new Map(o.sequencers!.map((q) => [q.id, q.repair ? createSocket({ type: 'udp4', recvBufferSize: 4 << 20, reuseAddr: true }) : null])) : null;
    const standby = !multi && o.standby ? o.standby : null;
    const standbyRepairSock = standby?.repair ? createSocket({ type: 'udp4', recvBufferSize: 4 << 20 }) : null;
    const all = [groupSock, ackSock, repairSock, standbyRepairSock, ...(hydraSocks?.values() ?? [])];
    let link: PeerLink | undefined;
    try {
      await bind(groupSock, o.group.port, undefined);
      groupSock.addMembership(o.group.host, o.member.host);
      groupSock.setRecvBufferSize(o.recvBufferBytes ?? 8 << 20);
      await bind(ackSock, o.member.port, o.member.host);
      // One sequencer: connected (no per-datagram lookup). Several, or ACKs
      // to clients: addressed per ACK.
      if (o.acksTo !== 'client' && !multi && !standby) await connectTo(ackSock, o.sequencer);
      if (standbyRepairSock) {
        await bind(standbyRepairSock, 0, o.member.host);
        await connectTo(standbyRepairSock, standby!.repair!);
      }
      const ackPort = ackSock.address().port;
      if (repairSock) {
        await bind(repairSock, ackPort, o.member.host);
        await connectTo(repairSock, o.repair!);
      }
      for (const q of o.sequencers ?? []) {
        const rs = hydraSocks?.get(q.id);
        if (!rs) continue;
        await bind(rs, ackPort, o.member.host);
        await connectTo(rs, q.repair!);
      }
      let t: UdpReplicaTransport | undefined;
      link = await PeerLink.listen({ self: o.self, groupId: o.groupId, peers: o.peers, onMessage: (m) => t?.deliver(m), key: o.key ?? null });
      t = new UdpReplicaTransport(o, groupSock, ackSock, repairSock, link, hydraSocks, standbyRepairSock);
      groupSock.on('message', (b, from) => t.onGroupDatagram(b, from.address, from.port));
      repairSock?.on('message', (b) => t.onRepairDatagram(b, null));
      standbyRepairSock?.on('message', (b) => t.onRepairDatagram(b, null));
      for (const [sid, rs] of hydraSocks ?? []) rs?.on('message', (b) => t.onRepairDatagram(b, sid));
      // ENOBUFS, or ICMP unreachable surfaced on a connected socket while
      // the sequencer or the agent is gone: one lost datagram, which the
      // protocol survives.
      for (const s of all) s?.on('error', () => t.c.sendErrors++);
      // Nothing is sent to the ACK socket; drain it anyway.
      ackSock.on('message', () => t.c.ignored++);
      return t;
    } catch (e) {
      for (const s of all) s?.close();
      await link?.close();
      throw e;
    }
  }

  /** Starts delivering inbound messages to `receive`; `afterEvent` runs after each one. */
  attach(receive: Receiver, afterEvent: () => void = () => {}): void {
    this.receiver = receive;
    this.afterEvent = afterEvent;
  }

  counters(): UdpReplicaCounters {
    return { ...this.c, sources: { ...this.sources.c }, peer: this.link.counters() };
  }

  /**
   * Swaps the group key (a reload): from now on datagrams are checked and
   * sealed with it, the XDP program checks with it, and new peer
   * connections use it (open ones keep theirs until they reconnect).
   */
  setKey(key: GroupKey | null): void {
    this.key = key;
    this.link.setKey(key);
    try {
      this.xdp?.setKey(this.o.groupId, key);
    } catch {
      this.c.xdpErrors++;
    }
  }

  /** The XDP program's counters, or null without one. */
  xdpCounters(): UdpReplicaXdpCounters | null {
    const x = this.xdp;
    if (!x) return null;
    const streams: (RxKey & RxState)[] = [];
    for (const k of x.streams()) {
      const st = x.stateOf(k);
      if (st) streams.push({ ...k, ...st });
    }
    return { kernel: x.counters(), streams };
  }

  async close(): Promise<void> {
    this.receiver = null;
    this.xdp?.close();
    this.groupSock.close();
    this.ackSock.close();
    this.repairSock?.close();
    this.standbyRepairSock?.close();
    for (const q of this.hydra?.values() ?? []) q.repairSock?.close();
    await this.link.close();
  }

  // ---- ReplicaTransport ----------------------------------------------------------

  sendToReplica(to: number, msg: PeerMsg): void {
    this.link.send(to, msg);
  }

  sendAck(msg: AckMsg): void {
    this.c.acks++;
    // A follower's ACK gets `ackPadding` zero bytes of payload (see UdpReplicaOptions).
    const key = this.key;
    const b = ackDatagram(msg, this.o.groupId, this.o.ackPadding ?? 0, key ? XSEQ_MAC_LEN : 0);
    if (key) sealInPlace(b, b.length - XSEQ_MAC_LEN, key);
    if (this.replyTo) {
      const to = this.replyTo.get(msg.clientId);
      if (!to) {
        this.c.acksNoAddress++;
        return;
      }
      return void this.ackSock.send(b, to.port, to.host, this.onSent);
    }
    if (this.standby) {
      const to = this.standby.route.isStandby(msg.session) ? this.standby.sequencer : this.o.sequencer;
      return void this.ackSock.send(b, to.port, to.host, this.onSent);
    }
    if (!this.hydra) return void this.ackSock.send(b, this.onSent);
    // The sequencer that stamped it counts its ACKs (each host aggregates its own).
    const q = this.hydra.get(msg.sequencerId ?? 0);
    if (!q) return void this.c.sendErrors++;
    this.ackSock.send(b, q.sequencer.port, q.sequencer.host, this.onSent);
  }

  delivered(session: number, seq: number, sequencerId?: number): void {
    if (!this.xdp) return;
    try {
      this.xdp.setDelivered(this.o.groupId, session, seq, sequencerId);
    } catch {
      // The kernel keeps the older position: it then drops less, never more
      // than it should (a later write catches up).
      this.c.xdpErrors++;
    }
  }

  sendRepairRequest(msg: RepairRequestMsg): void {
    const sock = this.hydra ? this.hydra.get(msg.sequencerId ?? 0)?.repairSock : this.standby?.route.isStandby(msg.session) ? this.standbyRepairSock : this.repairSock;
    if (!sock) return;
    this.c.repairRequests++;
    const req = repairRequestToWire(msg, { groupId: this.o.groupId });
    sock.send(this.key ? seal(req, this.key) : req, this.onSent);
  }

  /**
   * The group's committed weight table to every sequencer's agent (WEIGHTS,
   * bpf/xseq.h), from the repair sockets: the member's address and ACK
   * port, the agent's source check for repair requests too.
   */
  sendWeightsReport(r: WeightsReport): void {
    const msg = encodeWeightsReport({ groupId: this.o.groupId, replicaId: this.o.self }, r);
    const socks = this.hydra ? [...this.hydra.values()].map((q) => q.repairSock) : [this.repairSock, this.standbyRepairSock];
    for (const sock of socks) sock?.send(this.key ? seal(msg, this.key) : msg, this.onSent);
  }

  /** From the member's ACK address: the sequencer answers only a configured member (the same check as ACKs). */
  sendFlushSolicit(msg: FlushSolicitMsg): void {
    const q = this.hydra?.get(msg.sequencerId);
    if (!q) return;
    this.c.solicits++;
    // Keyed group: the sequencer answers only a sealed solicit (bpf/flush.h).
    const b = flushSolicitToWire(msg, { groupId: this.o.groupId });
    this.ackSock.send(this.key ? seal(b, this.key) : b, q.sequencer.port, q.sequencer.host, this.onSent);
  }

  // ---- inbound -------------------------------------------------------------------

  private deliver(m: ReplicaInbound): void {
    if (!this.receiver) return;
    this.receiver(m);
    this.afterEvent();
  }

  private decode(buf: Buffer): XseqMessage | null {
    const d = decodeMessage(buf);
    if (!d.ok || d.message.header.groupId !== this.o.groupId) {
      this.c.ignored++;
      return null;
    }
    return d.message;
  }

  private onSequenced(w: XseqMessage): void {
    const m = this.hydra ? hydraSequencedFromWire(w) : sequencedFromWire(w);
    if (!m) {
      this.c.ignored++;
      return;
    }
    this.acceptSequenced(m, w.header.sequencerId, w.header.view, w.header.replicaId);
  }

  /** `view` and `replicaId` as on the wire: a SEQUENCED's reply address (reply-to.ts). */
  private acceptSequenced(m: SequencedMsg, sequencerId: number, view: number, replicaId: number): void {
    this.standby?.route.note(m.session, sequencerId);
    if (this.xdp) {
      try {
        this.xdp.see({ groupId: this.o.groupId, sequencerId });
      } catch {
        this.c.xdpErrors++;
      }
    }
    this.c.sequenced++;
    if (m.retransmit) this.c.retransmits++;
    if (this.replyTo) {
      const to = replyToOf({ view, replicaId });
      if (to) this.replyTo.note(m.clientId, to);
    }
    this.deliver(m);
  }

  /** With a key: whether the datagram carries a valid MAC (counted when not). */
  private authentic(buf: Buffer): boolean {
    if (!this.key || checkMac(buf, this.key) === 'ok') return true;
    this.c.unauthenticated++;
    return false;
  }

  private onGroupDatagram(buf: Buffer, address: string, port: number): void {
    // The MAC first: nothing unauthenticated may reach the source and
    // session-bound checks (whose state follows what they accept) or the core.
    if (!this.authentic(buf)) return;
    if (!this.hydra) {
      // The common case, decoded without the general path's intermediate objects.
      const m = sequencedFromDatagram(buf, this.o.groupId);
      if (m) {
        if (!this.sources.admit(address, port, m.session)) return;
        return this.acceptSequenced(m, buf.readUInt16BE(SEQUENCER_ID_OFFSET), buf.readUInt32BE(VIEW_OFFSET), buf.readUInt16BE(REPLICA_ID_OFFSET));
      }
    }
    const w = this.decode(buf);
    if (!w) return;
    const t = w.header.type;
    if (t === MsgType.SEQUENCED || t === MsgType.FLUSH) {
      // Hydra: a sequencer speaks only for its own stream.
      if (this.hydra && this.sources.idOf(address, port) !== w.header.sequencerId && this.sources.idOf(address, port) !== undefined) return void this.sources.c.strangers++;
      if (!this.sources.admit(address, port, w.header.session)) return;
    }
    // FLUSH (with one sequencer) and anything else multicast to the group is not ours to act on.
    if (w.header.type === MsgType.SEQUENCED) this.onSequenced(w);
    else if (w.header.type === MsgType.FLUSH && this.hydra) {
      const f = flushFromWire(w);
      if (!f || !this.hydra.has(f.sequencerId)) return void this.c.ignored++;
      this.c.flushes++;
      this.deliver(f);
    } else this.c.ignored++;
  }

  /** The kernel saw seqs skipped: the replica decides whether that is a gap. */
  private onGapEvent(ev: GapEvent): void {
    if (ev.groupId !== this.o.groupId) return;
    this.c.dropNotifications++;
    this.deliver({ type: 'DROP_NOTIFICATION', sequencerId: ev.sequencerId, session: ev.session, from: Number(ev.from), to: Number(ev.to) });
  }

  /** The socket is connected to the repair service (Hydra: of sequencer sid): nobody else's datagrams get here. */
  private onRepairDatagram(buf: Buffer, sid: number | null): void {
    if (!this.authentic(buf)) return;
    const w = this.decode(buf);
    if (!w) return;
    if (sid !== null) w.header.sequencerId = sid;
    const t = w.header.type;
    if (t === MsgType.SEQUENCED) return this.onSequenced(w);
    if (t !== MsgType.REPAIR_REPLY && t !== MsgType.ERROR) {
      this.c.ignored++;
      return;
    }
    const m = t === MsgType.REPAIR_REPLY ? repairReplyFromWire(w) : repairErrorFromWire(w);
    if (!m) {
      this.c.ignored++;
      return;
    }
    if (m.type === 'REPAIR_REPLY') this.c.repairReplies++;
    else this.c.repairErrors++;
    this.deliver(sid === null ? m : { ...m, sequencerId: sid });
  }
}

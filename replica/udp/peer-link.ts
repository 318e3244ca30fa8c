// The slow path between replicas: one TCP connection per ordered pair
// (replica i dials j to send; j only reads it), carrying peer-codec frames.
// README.md says why TCP and not chunked datagrams.
//
// The protocol treats this path as best effort (lost, duplicated or
// reordered messages are all handled by retries), so the link never retries
// on its own: a message sent while a peer is unreachable is dropped, and the
// next send after a pause dials again. What the link does guarantee is that
// a frame is never delivered half, never from anyone but the configured
// peer, and never makes us buffer without bound. With a group key, also
// never without a valid per-connection MAC (peer-auth.ts): an address check
// alone does not hold on a LAN where addresses can be forged.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { XSEQ_HDR_LEN } from '../../bpf/wire.ts';
import type { PeerMsg } from '../messages.ts';
import { CodecError } from './bytes.ts';
import { FrameReader } from './frame-reader.ts';
import { checkPeerHeader, decodePeerPayload, encodePeerFrame } from './peer-codec.ts';
import type { GroupKey } from '../../bpf/mac.ts';
import { PEER_MAC_LEN, PEER_NONCE_LEN, peerMac, peerMacOk, peerNonce } from './peer-auth.ts';
import type { HostPort } from './addr.ts';

export interface PeerLinkOptions {
  /** This replica's id: peers[self] is the address it listens on. */
  self: number;
  groupId: number;
  /** Slow-path address of every replica, indexed by replica id (this one included). */
  peers: readonly HostPort[];
  onMessage: (m: PeerMsg) => void;
  /** Bytes queued towards one peer before the connection counts as stuck and is reset (default 64 MiB). */
  maxQueuedBytes?: number;
  /** Least time between two dials of one peer (default 100 ms). */
  redialMs?: number;
  /** The group key: frames carry a per-connection MAC both ways of the check (null: none). */
  key?: GroupKey | null;
}

export interface PeerLinkCounters {
  sent: Record<string, number>;
  received: Record<string, number>;
  /** Frame bytes written to peers and read from them. */
  bytesSent: number;
  bytesReceived: number;
  /** Messages dropped: peer unreachable, dialling too soon, or queue over its bound. */
  dropped: number;
  dials: number;
  /** Inbound connections closed for a malformed frame or a sender that is not who it claims. */
  rejected: number;
  /** Of those, closed for a frame whose MAC was missing or wrong (keyed group). */
  unauthenticated: number;
}

interface Outbound {
  sock: Socket | null;
  lastDial: number;
  /** The key this connection was dialled with (null: frames go without MACs). */
  key: GroupKey | null;
  /** The acceptor's nonce once all of it arrived; frames wait in `pending` until then. */
  nonce: Buffer | null;
  nonceBuf: Buffer;
  pending: Uint8Array[];
  pendingBytes: number;
  counter: bigint;
}

export class PeerLink {
  private readonly o: Required<Omit<PeerLinkOptions, 'onMessage' | 'key'>> & Pick<PeerLinkOptions, 'onMessage'>;
  private key: GroupKey | null;
  private readonly out: Outbound[];
  private readonly inbound = new Set<Socket>();
  private readonly c: PeerLinkCounters = { sent: {}, received: {}, bytesSent: 0, bytesReceived: 0, dropped: 0, dials: 0, rejected: 0, unauthenticated: 0 };
  private closed = false;
  // The leader sends one SYNC_PREPARE or START_VIEW object to every
  // follower: encode it once.
  private lastMsg: PeerMsg | null = null;
  private lastFrame: Uint8Array | null = null;

  private constructor(
    o: PeerLinkOptions,
    private readonly server: Server,
  ) {
    const { key, ...rest } = o;
    this.o = { maxQueuedBytes: 64 << 20, redialMs: 100, ...rest };
    this.key = key ?? null;
    this.out = o.peers.map(() => ({ sock: null, lastDial: -Infinity, key: null, nonce: null, nonceBuf: Buffer.alloc(0), pending: [], pendingBytes: 0, counter: 0n }));
  }

  /** Listens on peers[self] and resolves once bound. */
  static async listen(o: PeerLinkOptions): Promise<PeerLink> {
    const me = o.peers[o.self];
    if (!me) throw new RangeError(`peer link: no address for replica ${o.self}`);
    const server = createServer();
    const link = new PeerLink(o, server);
    server.on('connection', (s) => link.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: me.host, port: me.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {
      /* accept errors (EMFILE): the dialling peer retries */
    });
    return link;
  }

  /** The bound port (peers[self].port, or the one chosen for port 0). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Swaps the key for connections made from now on (open ones keep theirs). */
  setKey(key: GroupKey | null): void {
    this.key = key;
  }

  counters(): PeerLinkCounters {
    return { ...this.c, sent: { ...this.c.sent }, received: { ...this.c.received } };
  }

  send(to: number, m: PeerMsg): void {
    if (this.closed || to === this.o.self || !this.o.peers[to]) return;
    const ob = this.out[to]!;
    if (!ob.sock) {
      const now = performance.now();
      if (now - ob.lastDial < this.o.redialMs) {
        this.c.dropped++;
        return;
      }
      ob.lastDial = now;
      ob.sock = this.dial(to);
    }
    const frame = m === this.lastMsg ? this.lastFrame! : encodePeerFrame(m, this.o.groupId);
    this.lastMsg = m;
    this.lastFrame = frame;
    const sock = ob.sock;
    if (sock.writableLength + ob.pendingBytes + frame.length > this.o.maxQueuedBytes) {
      // A peer that does not read (stopped, partitioned) must not grow
      // our memory: reset, and dial again on a later send.
      this.c.dropped++;
      sock.destroy();
      ob.sock = null;
      return;
    }
    if (ob.key && !ob.nonce) {
      // Keyed, and the acceptor's nonce is not here yet: the MAC needs it.
      ob.pending.push(frame);
      ob.pendingBytes += frame.length;
    } else this.write(ob, sock, frame);
    this.c.sent[m.type] = (this.c.sent[m.type] ?? 0) + 1;
    this.c.bytesSent += frame.length;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const ob of this.out) ob.sock?.destroy();
    for (const s of this.inbound) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Writes one frame, with its MAC when the connection is keyed. */
  private write(ob: Outbound, sock: Socket, frame: Uint8Array): void {
    if (!ob.key) {
      sock.write(frame);
      return;
    }
    const mac = peerMac(ob.key, ob.nonce!, ob.counter++, frame);
    sock.cork();
    sock.write(frame);
    sock.write(mac);
    sock.uncork();
  }

  private dial(to: number): Socket {
    const peer = this.o.peers[to]!;
    const me = this.o.peers[this.o.self]!;
    this.c.dials++;
    // From our configured address, so the peer's check of who is calling holds.
    const sock = connect({ host: peer.host, port: peer.port, localAddress: me.host });
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 1000);
    const ob = this.out[to]!;
    ob.key = this.key;
    ob.nonce = null;
    ob.nonceBuf = Buffer.alloc(0);
    ob.pending = [];
    ob.pendingBytes = 0;
    ob.counter = 0n;
    sock.on('error', () => {
      /* ECONNREFUSED, ECONNRESET: 'close' follows */
    });
    sock.on('close', () => {
      if (ob.sock === sock) ob.sock = null;
    });
    // The acceptor's nonce is all that ever comes back (keyed group);
    // anything after it is read and ignored, so a misbehaving peer cannot
    // fill our receive buffer.
    sock.on('data', (chunk: Buffer) => {
      if (!ob.key || ob.nonce || ob.sock !== sock) return;
      ob.nonceBuf = Buffer.concat([ob.nonceBuf, chunk]);
      if (ob.nonceBuf.length < PEER_NONCE_LEN) return;
      ob.nonce = ob.nonceBuf.subarray(0, PEER_NONCE_LEN);
      const pending = ob.pending;
      ob.pending = [];
      ob.pendingBytes = 0;
      for (const f of pending) this.write(ob, sock, f);
    });
    return sock;
  }

  private accept(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    const remote = (s.remoteAddress ?? '').replace(/^::ffff:/, '');
    // A connection from no peer's address is closed at once: a stranger
    // holds no socket here, idle or not (docs/trust-model.md).
    if (!this.o.peers.some((p, i) => i !== this.o.self && p.host === remote)) {
      this.c.rejected++;
      s.destroy();
      return;
    }
    this.inbound.add(s);
    s.setNoDelay(true);
    s.setKeepAlive(true, 1000);
    // Keyed: this connection's nonce goes first; every frame must then
    // carry the MAC over it and the frame's number on this connection.
    const key = this.key;
    const nonce = key ? peerNonce() : null;
    let counter = 0n;
    if (nonce) s.write(nonce);
    const reader = new FrameReader(
      (hdr) => {
        const h = checkPeerHeader(hdr, this.o.groupId);
        const claimed = this.o.peers[h.replicaId];
        if (h.replicaId === this.o.self || !claimed) throw new CodecError(`frame from replica ${h.replicaId}, not a peer of ${this.o.self}`);
        if (claimed.host !== remote) throw new CodecError(`frame claims replica ${h.replicaId} (${claimed.host}) but comes from ${remote}`);
        return h;
      },
      (h, payload, raw, mac) => {
        if (key && !peerMacOk(key, nonce!, counter++, raw, payload, mac)) {
          this.c.unauthenticated++;
          throw new CodecError(`frame ${counter - 1n} from replica ${h.replicaId} has no valid MAC`);
        }
        const m = decodePeerPayload(h, payload);
        this.c.received[m.type] = (this.c.received[m.type] ?? 0) + 1;
        this.c.bytesReceived += XSEQ_HDR_LEN + payload.length;
        if (!this.closed) this.o.onMessage(m);
      },
      key ? PEER_MAC_LEN : 0,
    );
    s.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (e) {
        // Malformed bytes end this connection; a bug in the replica
        // (anything else) must not pass for a bad peer.
        if (!(e instanceof CodecError)) throw e;
        this.c.rejected++;
        s.destroy();
      }
    });
    s.on('error', () => {});
    s.on('close', () => this.inbound.delete(s));
  }
}

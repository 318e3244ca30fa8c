// The repair service (bpf/xseq.h, "Repair service"): a replica that saw a
// gap asks for up to XSEQ_REPAIR_MAX seqs; every one the window still holds
// is re-sent to it as the stamped message flagged XSEQ_F_RETRANSMIT, then
// one REPAIR_REPLY names the seqs it no longer has, so the replica can go
// on to gap agreement at once instead of waiting for a timeout.
//
// Only a configured member, asking from its configured address and port, gets
// anything re-sent: a request is up to 128 x 1.4 KB of answer, which must
// not be aimed at a stranger. Wrong requests get a typed ERROR. In a group
// with a key (agent/keys.ts) a request must carry a valid MAC, or it gets
// nothing at all, not even an ERROR (counted as unauthenticated): its
// source address may be forged. Every answer to a keyed group is sealed.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import {
  decodeRepairRequestCount,
  encodeError,
  encodeRepairReply,
  ErrorCode,
  type ErrorCodeName,
  REPAIR_REQ_SIZE,
  XSEQ_REPAIR_MAX,
} from '../bpf/repair.ts';
import { XSEQ_MAX_GROUPS } from '../bpf/maps.ts';
import { decodeMessage, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_MAGIC, XSEQ_VERSION, type XseqHeader } from '../bpf/wire.ts';
import { type Log, silentLog } from './log.ts';
import { decodeWeightsReport, type WeightsReport } from '../bpf/weights-report.ts';
import { checkFor, type KeySource, NO_KEYS, sealFor } from './keys.ts';
import type { GroupSource } from './retransmit.ts';
import type { SlotWindow } from './window.ts';

export const DEFAULT_REPAIR_PORT = 7401;

export interface RepairOptions {
  /** UDP port to serve (0: any free port, see `port`). */
  port: number;
  /** Address to bind (default every address). */
  address?: string;
  log?: Log;
  /** Group keys: a keyed group's requests must be sealed, its answers are. */
  keys?: KeySource;
  /** WEIGHTS from a configured member (agent/weight-switch.ts); absent: ignored. */
  onWeights?: (groupId: number, replicaId: number, r: WeightsReport) => void;
}

export interface RepairCounters {
  /** REPAIR_REQUESTs received, refused ones included. */
  requests: number;
  /** Stamped messages re-sent. */
  resent: number;
  /** Seqs answered as no longer held. */
  missing: number;
  /** ERRORs sent, by code. */
  refused: Record<ErrorCodeName, number>;
  /** Datagrams that were not xseq at all, or were ERROR or REPAIR_REPLY
   * messages (answers are never answered). */
  ignored: number;
  /** Datagrams the socket refused to send. */
  sendErrors: number;
  /** Requests to a keyed group without a valid MAC: not answered. */
  unauthenticated: number;
  /** WEIGHTS reports taken from a configured member, and dropped (malformed or a stranger's). */
  weightsReports: number;
  weightsDropped: number;
}

export class RepairServiceError extends Error {
  override readonly name = 'RepairServiceError';
  readonly code = 'EREPAIR_BIND';
}

class Refusal {
  constructor(
    readonly code: ErrorCodeName,
    readonly text: string,
  ) {}
}

/** Largest seq handled exactly (Numbers index the window). */
const MAX_SEQ = BigInt(Number.MAX_SAFE_INTEGER);

export class RepairService {
  readonly #source: GroupSource;
  readonly #window: SlotWindow;
  readonly #socket: Socket;
  readonly #log: Log;
  readonly #keys: KeySource;
  #counters: RepairCounters = {
    requests: 0,
    resent: 0,
    missing: 0,
    refused: Object.fromEntries(Object.keys(ErrorCode).map((k) => [k, 0])) as Record<ErrorCodeName, number>,
    ignored: 0,
    sendErrors: 0,
    unauthenticated: 0,
    weightsReports: 0,
    weightsDropped: 0,
  };
  #onWeights: RepairOptions['onWeights'];

  private constructor(source: GroupSource, window: SlotWindow, socket: Socket, log: Log, keys: KeySource) {
    this.#keys = keys;
    this.#source = source;
    this.#window = window;
    this.#socket = socket;
    this.#log = log;
    socket.on('message', (msg, rinfo) => this.#handle(msg, rinfo));
  }

  /** Binds the socket and serves until close(). */
  static async start(source: GroupSource, window: SlotWindow, opts: RepairOptions): Promise<RepairService> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        socket.close();
        reject(
          new RepairServiceError(
            `cannot bind the repair service to UDP ${opts.address ?? '0.0.0.0'}:${opts.port} (${e.code ?? e.message}); ` +
              `choose another --repair-port, or 0 to turn repair off`,
          ),
        );
      };
      socket.once('error', onError);
      socket.bind(opts.port, opts.address, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    const log = opts.log ?? silentLog;
    // After bind, a socket error (e.g. ICMP unreachable surfaced on a send)
    // must not crash the agent.
    socket.on('error', (e) => log.warn({ err: e.message }, 'repair socket error'));
    const svc = new RepairService(source, window, socket, log, opts.keys ?? NO_KEYS);
    svc.#onWeights = opts.onWeights;
    return svc;
  }

  /** The bound UDP port. */
  get port(): number {
    return this.#socket.address().port;
  }

  counters(): RepairCounters {
    return { ...this.#counters, refused: { ...this.#counters.refused } };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #handle(buf: Buffer, from: RemoteInfo): void {
    // Only a datagram that claims to be xseq gets an answer; anything else
    // could be a spoofed probe, and an answer would reflect it.
    if (buf.length < XSEQ_HDR_LEN || buf.readUInt32BE(0) !== XSEQ_MAGIC || buf[4] !== XSEQ_VERSION) {
      this.#counters.ignored++;
      return;
    }
    const h = readHeader(buf);
    // An answer is never answered: two services (or a confused peer)
    // must not bounce ERRORs back and forth.
    if (h.type === MsgType.ERROR || h.type === MsgType.REPAIR_REPLY) {
      this.#counters.ignored++;
      return;
    }
    if (h.type === MsgType.REPAIR_REQUEST) this.#counters.requests++;
    // Before anything is answered: a forged request must not even get an
    // ERROR (that would reflect it at whoever it names).
    if (checkFor(this.#keys, h.groupId, buf) !== 'ok') {
      this.#counters.unauthenticated++;
      return;
    }
    // A report is never answered, not even with an ERROR.
    if (h.type === MsgType.WEIGHTS) return this.#weights(buf, h, from);
    try {
      this.#serve(buf, h, from);
    } catch (e) {
      if (!(e instanceof Refusal)) {
        // A failed map read: the requester times out and asks again; the
        // agent stays up.
        this.#log.error({ err: (e as Error).message, code: (e as { code?: string }).code }, 'repair request failed');
        return;
      }
      this.#counters.refused[e.code]++;
      this.#log.debug({ event: 'repair_refused', code: e.code, from: `${from.address}:${from.port}`, group: h.groupId, replica: h.replicaId }, e.text);
      this.#send(encodeError({ groupId: h.groupId, session: h.session, replicaId: h.replicaId, seq: h.seq }, ErrorCode[e.code], e.text), from, h.groupId);
    }
  }

  #serve(buf: Buffer, h: XseqHeader, from: RemoteInfo): void {
    const decoded = decodeMessage(buf);
    if (!decoded.ok) throw new Refusal('BAD_REQUEST', `not a valid xseq message: ${decoded.error.message}`);
    if (h.type !== MsgType.REPAIR_REQUEST) throw new Refusal('BAD_REQUEST', `type ${h.type} is not REPAIR_REQUEST (${MsgType.REPAIR_REQUEST})`);
    const g = h.groupId < XSEQ_MAX_GROUPS ? this.#source.group(h.groupId) : undefined;
    if (!g) throw new Refusal('UNKNOWN_GROUP', `group ${h.groupId} is not configured`);
    const members = g.members ?? [];
    if (members.length === 0) throw new Refusal('NOT_MEMBER', `group ${h.groupId} has no members: nothing is kept for repair`);
    const m = members[h.replicaId];
    if (!m) throw new Refusal('NOT_MEMBER', `group ${h.groupId} has replicas 0..${members.length - 1}, not ${h.replicaId}`);
    // Address and port, exactly as the kernel counts an ACK: another
    // process on a member's host is not that member.
    if (m.addr !== from.address || m.port !== from.port) throw new Refusal('NOT_MEMBER', `replica ${h.replicaId} of group ${h.groupId} is not at ${from.address}:${from.port}`);
    if (h.session !== g.session) throw new Refusal('WRONG_SESSION', `group ${h.groupId} is in session ${g.session}, not ${h.session}`);
    const count = decodeRepairRequestCount(decoded.message.payload);
    if (count === null) throw new Refusal('BAD_REQUEST', `the payload must be ${REPAIR_REQ_SIZE} bytes (a count), got ${decoded.message.payload.length}`);
    if (count < 1 || count > XSEQ_REPAIR_MAX) throw new Refusal('RANGE_TOO_LARGE', `count ${count} is not 1..${XSEQ_REPAIR_MAX}`);
    if (h.seq < 1n || h.seq + BigInt(count) - 1n > MAX_SEQ) throw new Refusal('BAD_REQUEST', `seq ${h.seq} is not a seq (1..2^53)`);

    const w = this.#window;
    const first = Number(h.seq);
    const last = Number(this.#source.lastSeq(h.groupId));
    const base = g.windowBase ?? 0;
    const missing: bigint[] = [];
    let resent = 0;
    for (let s = first; s < first + count; s++) {
      const msg = s <= last ? w.copyRetransmit(w.slotOf(base, s), s, g.session) : null;
      if (msg) {
        this.#send(msg, from, h.groupId);
        resent++;
      } else {
        missing.push(BigInt(s));
      }
    }
    this.#counters.resent += resent;
    this.#counters.missing += missing.length;
    this.#send(
      encodeRepairReply({ groupId: h.groupId, session: g.session, replicaId: h.replicaId, sequencerId: g.sequencerId, first: h.seq }, { count, resent, missing }),
      from,
      h.groupId,
    );
  }

  /** A member's committed weight table: from its exact address and port, else dropped. */
  #weights(buf: Buffer, h: XseqHeader, from: RemoteInfo): void {
    const decoded = decodeMessage(buf);
    const g = h.groupId < XSEQ_MAX_GROUPS ? this.#source.group(h.groupId) : undefined;
    const m = g?.members?.[h.replicaId];
    const r = decoded.ok ? decodeWeightsReport(h.seq, decoded.message.payload) : null;
    if (!r || !m || m.addr !== from.address || m.port !== from.port) {
      this.#counters.weightsDropped++;
      return;
    }
    this.#counters.weightsReports++;
    this.#onWeights?.(h.groupId, h.replicaId, r);
  }

  #send(msg: Uint8Array, to: RemoteInfo, groupId: number): void {
    this.#socket.send(sealFor(this.#keys, groupId, Buffer.from(msg.buffer, msg.byteOffset, msg.length)), to.port, to.address, (err) => {
      if (err) this.#counters.sendErrors++;
    });
  }
}

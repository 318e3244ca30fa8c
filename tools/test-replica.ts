/**
 * test-replica: a stand-in replica that acknowledges every stamped packet,
 * for tests and benchmarks of the ACK path (not the replica library: it
 * delivers nothing and keeps no log).
 *
 *   tsx tools/test-replica.ts --group-addr 239.7.7.1 --iface-addr IP
 *       --replica-id R --seq-addr IP [--group-port 7500] [--group-id 1]
 *       [--replicas 3] [--view 0] [--ack-port 7600] [--seq-port 7400]
 *       [--ack-to sequencer|client] [--result-tag ok] [--idle-ms 0]
 *       [--max-ms 120000] [--result-bytes MIN[:MAX]]
 *
 * It joins the group and binds the group port on 0.0.0.0, so it gets both
 * the multicast copy and the agent's unicast retransmissions (addressed to
 * the member address at the group port). Every SEQUENCED packet of its
 * group, a retransmission or a duplicate included, is acked again: a lost
 * ACK is only ever replaced by the ACK of a later copy, and the kernel
 * counts a member's bit once. ACKs leave from --iface-addr:--ack-port, the
 * member address the sequencer was configured with. The leader of the view
 * (view % replicas) puts the result `ok:<clientId>:<requestId>` in its ACK
 * with XSEQ_F_RESULT; the others send an empty payload. --result-tag
 * changes `ok`, so a test can play a forger whose result must never reach
 * a client. --result-bytes pads the result with '.' to a length from MIN to
 * MAX that the request id picks (sizedResult; the client pads the same), so
 * the sequencer must grow a small ACK into a large REPLY.
 *
 * --ack-to client is the baseline without in-kernel aggregation: the ACK
 * goes to the reply address the client wrote at the front of its request
 * payload (see replyToPrefix), and the client counts the quorum itself.
 *
 * Prints {"event":"listening"} once bound, and one JSON summary line
 * (ReplicaSummary) on SIGTERM/SIGINT, after --idle-ms without packets (once
 * one arrived; 0 = never) or at --max-ms.
 */
import { createSocket, type Socket } from 'node:dgram';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Flags, MsgType, XSEQ_HDR_LEN, XSEQ_MAGIC, XSEQ_VERSION } from '../bpf/wire.ts';

/** The application result a test replica's leader returns for a request;
 * the client checks every REPLY against it. */
export function resultFor(clientId: bigint, requestId: bigint, tag = 'ok'): string {
  return `${tag}:${clientId}:${requestId}`;
}

/** A --result-bytes range: both ends inclusive. */
export interface ResultBytes {
  min: number;
  max: number;
}

/** Parses `MIN[:MAX]` (bytes, up to the 256-byte result cap); null if malformed. */
export function parseResultBytes(s: string): ResultBytes | null {
  const m = /^(\d{1,3})(?::(\d{1,3}))?$/.exec(s);
  if (!m) return null;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  return min <= max && max <= 256 ? { min, max } : null;
}

/** resultFor padded with '.' to a length in `bytes` picked by the request
 * id (never shorter than resultFor itself). */
export function sizedResult(clientId: bigint, requestId: bigint, tag: string, bytes: ResultBytes | null): string {
  const base = resultFor(clientId, requestId, tag);
  if (!bytes) return base;
  const len = bytes.min + Number((requestId * 7919n) % BigInt(bytes.max - bytes.min + 1));
  return base.padEnd(len, '.');
}

/**
 * The baseline client's reply address, written as `@<ip>:<port>|` at the
 * start of its request payload. The header has no field for it, and the
 * payload is the application's; in a real system the client's address would
 * be known to the replicas some other way.
 */
export function replyToPrefix(addr: string, port: number): string {
  return `@${addr}:${port}|`;
}

// Reply addresses by (ip << 16 | port): the baseline's replicas parse one
// per request, and a regex plus a string per packet would make the
// baseline pay for something the aggregated path never does.
const replyToCache = new Map<number, { addr: string; port: number }>();

/** Reads a replyToPrefix from the front of a payload, or null. */
export function parseReplyTo(payload: Uint8Array): { addr: string; port: number } | null {
  if (payload[0] !== 0x40 /* @ */) return null;
  const parts = [0, 0, 0, 0, 0];
  let part = 0;
  let digits = 0;
  for (let i = 1; i < payload.length && i < 24; i++) {
    const c = payload[i]!;
    if (c >= 0x30 && c <= 0x39) {
      parts[part] = parts[part]! * 10 + (c - 0x30);
      if (++digits > (part === 4 ? 5 : 3)) return null;
      continue;
    }
    if (digits === 0) return null;
    const sep = part < 3 ? 0x2e /* . */ : part === 3 ? 0x3a /* : */ : 0x7c; /* | */
    if (c !== sep) return null;
    if (part === 4) {
      const [a, b, c2, d, port] = parts as [number, number, number, number, number];
      if (a > 255 || b > 255 || c2 > 255 || d > 255 || port < 1 || port > 65535) return null;
      const key = (((a << 24) | (b << 16) | (c2 << 8) | d) >>> 0) * 65536 + port;
      let to = replyToCache.get(key);
      if (!to) {
        to = { addr: `${a}.${b}.${c2}.${d}`, port };
        if (replyToCache.size < 1024) replyToCache.set(key, to);
      }
      return to;
    }
    part++;
    digits = 0;
  }
  return null;
}

/** The line printed at exit. */
export interface ReplicaSummary {
  replicaId: number;
  /** SEQUENCED packets of the group, every copy counted. */
  received: number;
  /** Seqs seen at least once. */
  distinct: number;
  /** Copies of a seq already seen (retransmissions of seqs it had included). */
  duplicates: number;
  /** Packets carrying XSEQ_F_RETRANSMIT. */
  retransmits: number;
  /** Seqs whose first copy here was a retransmission: holes the agent's
   * retransmission filled (no repair request is ever sent from here). */
  repaired: number;
  /** Seqs whose first copy here was the original multicast. */
  originals: number;
  acksSent: number;
  sendErrors: number;
  /** Client-mode requests without a readable reply address (not acked). */
  noReplyTo: number;
  /** Not an xseq SEQUENCED message of our group. */
  invalid: number;
  session: number;
  minSeq: number;
  maxSeq: number;
  /** Seqs in [1, maxSeq] never seen. */
  holes: number;
  /** The first few of those holes, for the failure message. */
  missing: number[];
  /** CPU time (user + system) of this process per packet received, from
   * the first packet on (startup excluded). */
  cpuUsPerPacket: number;
}

function main(): void {
  const { values: v } = parseArgs({
    options: {
      'group-addr': { type: 'string' },
      'group-port': { type: 'string', default: '7500' },
      'group-id': { type: 'string', default: '1' },
      'iface-addr': { type: 'string' },
      'replica-id': { type: 'string' },
      replicas: { type: 'string', default: '3' },
      view: { type: 'string', default: '0' },
      'ack-port': { type: 'string', default: '7600' },
      'seq-addr': { type: 'string' },
      'seq-port': { type: 'string', default: '7400' },
      'ack-to': { type: 'string', default: 'sequencer' },
      'result-tag': { type: 'string', default: 'ok' },
      'idle-ms': { type: 'string', default: '0' },
      'max-ms': { type: 'string', default: '120000' },
      'result-bytes': { type: 'string' },
    },
  });
  const usage =
    'usage: test-replica.ts --group-addr ADDR --iface-addr IP --replica-id R [--seq-addr IP] [--group-port 7500] [--group-id 1] ' +
    '[--replicas 3] [--view 0] [--ack-port 7600] [--seq-port 7400] [--ack-to sequencer|client] [--result-tag ok] [--idle-ms 0] [--max-ms 120000] ' +
    '[--result-bytes MIN[:MAX]]';
  const int = (name: string, s: string | undefined, min: number, max: number): number => {
    const n = Number(s);
    if (s === undefined || !/^\d+$/.test(s) || n < min || n > max) {
      console.error(`test-replica: --${name} must be ${min}..${max}, got "${s}"\n${usage}`);
      process.exit(2);
    }
    return n;
  };
  const ackTo = v['ack-to'];
  if (!v['group-addr'] || !v['iface-addr'] || (ackTo !== 'sequencer' && ackTo !== 'client') || (ackTo === 'sequencer' && !v['seq-addr'])) {
    console.error(usage);
    process.exit(2);
  }
  const groupAddr = v['group-addr'];
  const ifaceAddr = v['iface-addr'];
  const groupPort = int('group-port', v['group-port'], 1, 65535);
  const groupId = int('group-id', v['group-id'], 0, 0xffffffff);
  const replicas = int('replicas', v.replicas, 1, 8);
  const replicaId = int('replica-id', v['replica-id'], 0, 0xffff);
  const view = int('view', v.view, 0, 0xffffffff);
  const ackPort = int('ack-port', v['ack-port'], 1, 65535);
  const seqPort = int('seq-port', v['seq-port'], 1, 65535);
  const idleMs = int('idle-ms', v['idle-ms'], 0, 3_600_000);
  const maxMs = int('max-ms', v['max-ms'], 1, 3_600_000);
  const isLeader = view % replicas === replicaId;
  const resultTag = v['result-tag']!;
  const resultBytes = v['result-bytes'] === undefined ? null : parseResultBytes(v['result-bytes']);
  if (v['result-bytes'] !== undefined && !resultBytes) {
    console.error(`test-replica: --result-bytes must be MIN[:MAX] with MIN <= MAX <= 256, got "${v['result-bytes']}"\n${usage}`);
    process.exit(2);
  }
  if (!/^[\w-]{1,32}$/.test(resultTag)) {
    console.error(`test-replica: --result-tag must be 1-32 word characters, got "${resultTag}"`);
    process.exit(2);
  }

  // Seqs as doubles: exact to 2^53, and a Set of numbers is several times
  // cheaper than one of BigInts on this per-packet path.
  const seen = new Set<number>();
  const s = {
    received: 0,
    duplicates: 0,
    retransmits: 0,
    repaired: 0,
    originals: 0,
    acksSent: 0,
    sendErrors: 0,
    noReplyTo: 0,
    invalid: 0,
  };
  let session = -1;
  let minSeq = Infinity;
  let maxSeq = 0;
  let lastAt = 0;
  let cpuFrom: NodeJS.CpuUsage | undefined;

  const ackSock: Socket = createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
  // A failed send (ENOBUFS under a burst) is one more lost ACK: the agent's
  // retransmission brings the packet back and it is acked again.
  ackSock.on('error', () => s.sendErrors++);
  const onSent = (err: Error | null): void => {
    if (err) s.sendErrors++;
  };

  const groupSock: Socket = createSocket({ type: 'udp4', reuseAddr: true });
  groupSock.on('message', (buf) => {
    lastAt = Date.now();
    cpuFrom ??= process.cpuUsage();
    if (
      buf.length < XSEQ_HDR_LEN ||
      buf.readUInt32BE(0) !== XSEQ_MAGIC ||
      buf[4] !== XSEQ_VERSION ||
      buf[5] !== MsgType.SEQUENCED ||
      buf.readUInt32BE(8) !== groupId ||
      buf.readUInt32BE(56) !== buf.length - XSEQ_HDR_LEN
    ) {
      s.invalid++;
      return;
    }
    s.received++;
    const flags = buf.readUInt16BE(6);
    const retransmit = (flags & Flags.RETRANSMIT) !== 0;
    if (retransmit) s.retransmits++;
    session = buf.readUInt32BE(16);
    const seq = buf.readUInt32BE(24) * 0x1_0000_0000 + buf.readUInt32BE(28);
    if (seen.has(seq)) s.duplicates++;
    else {
      seen.add(seq);
      if (retransmit) s.repaired++;
      else s.originals++;
      if (seq < minSeq) minSeq = seq;
      if (seq > maxSeq) maxSeq = seq;
    }

    let dstAddr: string;
    let dstPort: number;
    if (ackTo === 'client') {
      const to = parseReplyTo(buf.subarray(XSEQ_HDR_LEN));
      if (!to) {
        s.noReplyTo++;
        return;
      }
      dstAddr = to.addr;
      dstPort = to.port;
    } else {
      dstAddr = v['seq-addr']!;
      dstPort = seqPort;
    }
    const result = isLeader ? Buffer.from(sizedResult(buf.readBigUInt64BE(40), buf.readBigUInt64BE(48), resultTag, resultBytes), 'latin1') : null;
    const len = result?.length ?? 0;
    // The stamped header already holds magic, version, group, sequencer id,
    // session, seq, clock and the client's ids: copy it and change the rest.
    const ack = Buffer.allocUnsafe(XSEQ_HDR_LEN + len);
    buf.copy(ack, 0, 0, XSEQ_HDR_LEN);
    ack[5] = MsgType.ACK;
    ack.writeUInt16BE(result ? Flags.RESULT : 0, 6);
    ack.writeUInt16BE(replicaId, 14);
    ack.writeUInt32BE(view, 20);
    ack.writeUInt32BE(len, 56);
    ack.writeUInt32BE(0, 60);
    if (result) result.copy(ack, XSEQ_HDR_LEN);
    // Unconnected sends in both modes, so the baseline's replicas do
    // exactly the work the aggregated ones do.
    ackSock.send(ack, dstPort, dstAddr, onSent);
    s.acksSent++;
  });

  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    const cpu = cpuFrom && process.cpuUsage(cpuFrom);
    const missing: number[] = [];
    for (let q = 1; q <= maxSeq && missing.length < 20; q++) if (!seen.has(q)) missing.push(q);
    const summary: ReplicaSummary = {
      replicaId,
      ...s,
      distinct: seen.size,
      session,
      minSeq: seen.size ? minSeq : 0,
      maxSeq,
      holes: maxSeq - seen.size,
      missing,
      cpuUsPerPacket: cpu && s.received ? Number(((cpu.user + cpu.system) / s.received).toFixed(1)) : 0,
    };
    console.log(JSON.stringify(summary));
    groupSock.close();
    ackSock.close();
    process.exit(0);
  };

  let bound = 0;
  const ready = (): void => {
    if (++bound < 2) return;
    console.log(JSON.stringify({ event: 'listening', replicaId, leader: isLeader, ackFrom: `${ifaceAddr}:${ackPort}` }));
  };
  ackSock.bind(ackPort, ifaceAddr, ready);
  groupSock.bind(groupPort, () => {
    groupSock.addMembership(groupAddr, ifaceAddr);
    groupSock.setRecvBufferSize(8 << 20);
    ready();
  });

  const start = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (now - start > maxMs || (idleMs > 0 && lastAt > 0 && now - lastAt > idleMs)) finish();
  }, 50);
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
}

// Only when run as a program: client.ts imports the payload helpers above.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();

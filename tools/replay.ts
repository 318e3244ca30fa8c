/**
 * replay: what a stranger who captured a client's REQUESTs can send. Re-sends
 * REQUESTs under a real client's id with request ids that client already
 * used, each carrying a KV put of --value to --key (so an execution would
 * show in the store), paced at --rate, then waits --linger-ms for answers
 * and prints one JSON line (ReplaySummary).
 *
 *   tsx tools/replay.ts --seq-addr IP [--port 7400] [--group 1]
 *       --client-id C [--first-request-id 1] --count N [--rate 2000]
 *       [--key replayed] [--value REPLAYED] [--linger-ms 2000] [--bind-addr IP]
 *       [--bind-port P]   (the client's own port: a stranger that forges its source)
 *
 * Every answer is counted by kind: a REPLY carrying the leader's cached
 * result (the client's latest id), a REPLY with the stale mark (an older
 * id: not executed), a REPLY with neither, and ERROR BUSY (backpressure:
 * not stamped; a replayer does not re-send).
 */
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { encodeOp } from '../examples/kv/ops.ts';
import { decodeError, ErrorCode } from '../bpf/repair.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, XSEQ_HDR_LEN, XSEQ_MAGIC } from '../bpf/wire.ts';

export interface ReplaySummary {
  sent: number;
  /** REPLYs per request id beyond the first. */
  duplicates: number;
  /** Request ids with a REPLY. */
  replied: number;
  stale: number;
  cached: number;
  /** REPLYs with neither a result nor the stale mark. */
  other: number;
  busy: number;
  invalid: number;
}

function main(): void {
  const { values: v } = parseArgs({
    options: {
      'seq-addr': { type: 'string' },
      port: { type: 'string', default: '7400' },
      group: { type: 'string', default: '1' },
      'client-id': { type: 'string' },
      'first-request-id': { type: 'string', default: '1' },
      count: { type: 'string' },
      rate: { type: 'string', default: '2000' },
      key: { type: 'string', default: 'replayed' },
      value: { type: 'string', default: 'REPLAYED' },
      'linger-ms': { type: 'string', default: '2000' },
      'bind-addr': { type: 'string' },
      'bind-port': { type: 'string', default: '0' },
    },
  });
  const fail = (msg: string): never => {
    console.error(`replay: ${msg}`);
    process.exit(2);
  };
  if (!v['seq-addr'] || !v['client-id'] || !v.count) fail('--seq-addr, --client-id and --count are required');
  const clientId = BigInt(v['client-id']!);
  const first = BigInt(v['first-request-id']!);
  const count = Number(v.count);
  const rate = Number(v.rate);
  const groupId = Number(v.group);
  const port = Number(v.port);
  if (!Number.isInteger(count) || count < 1 || !(rate > 0)) fail('--count and --rate must be positive');
  const op = encodeOp({ kind: 'put', key: Buffer.from(v.key!), value: Buffer.from(v.value!) });

  const s: ReplaySummary = { sent: 0, duplicates: 0, replied: 0, stale: 0, cached: 0, other: 0, busy: 0, invalid: 0 };
  const answers = new Map<bigint, number>();
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  sock.on('message', (buf) => {
    if (buf.length < XSEQ_HDR_LEN || buf.readUInt32BE(0) !== XSEQ_MAGIC || buf.readBigUInt64BE(40) !== clientId) {
      s.invalid++;
      return;
    }
    const id = buf.readBigUInt64BE(48);
    const flags = buf.readUInt16BE(6);
    if (buf[5] === MsgType.ERROR) {
      if (decodeError(buf.subarray(XSEQ_HDR_LEN))?.code === ErrorCode.BUSY) s.busy++;
      else s.invalid++;
      return;
    }
    if (buf[5] !== MsgType.REPLY) {
      s.invalid++;
      return;
    }
    const n = (answers.get(id) ?? 0) + 1;
    answers.set(id, n);
    if (n > 1) s.duplicates++;
    else s.replied++;
    if (flags & Flags.STALE) s.stale++;
    else if (flags & Flags.RESULT) s.cached++;
    else s.other++;
  });
  const finish = (): void => {
    console.log(JSON.stringify(s));
    sock.close();
    process.exit(0);
  };
  sock.bind(Number(v['bind-port']), v['bind-addr'], () => {
    const t0 = performance.now();
    const tick = setInterval(() => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (s.sent < due) {
        const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId, clientId, requestId: first + BigInt(s.sent) }, op);
        s.sent++;
        sock.send(msg, port, v['seq-addr']);
      }
      if (s.sent >= count) {
        clearInterval(tick);
        setTimeout(finish, Number(v['linger-ms']));
      }
    }, 1);
  });
}

main();

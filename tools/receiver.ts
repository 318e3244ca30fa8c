// A group member that only listens: joins the multicast group, records every
// SEQUENCED message, and prints one JSON summary when it has --expect
// messages, when nothing arrived for --idle-ms, at --max-ms, or on SIGTERM.
// The digest covers (seq, payload) in seq order, so two receivers with the
// same digest saw the same sequence with the same contents.
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { decodeMessage, MsgType } from '../bpf/wire.ts';

const { values: v } = parseArgs({
  options: {
    group: { type: 'string' },
    port: { type: 'string', default: '7500' },
    'iface-addr': { type: 'string' },
    expect: { type: 'string', default: '0' },
    'idle-ms': { type: 'string', default: '3000' },
    'max-ms': { type: 'string', default: '60000' },
  },
});
if (!v.group || !v['iface-addr']) {
  console.error('usage: receiver.ts --group ADDR --iface-addr IP [--port 7500] [--expect N] [--idle-ms MS] [--max-ms MS]');
  process.exit(2);
}
const expected = Number(v.expect);
const payloads = new Map<bigint, Buffer>();
let received = 0;
let duplicates = 0;
let outOfOrder = 0;
let invalid = 0;
let lastSeq = 0n;
let lastAt = Date.now();
let session = -1;

const sock = createSocket({ type: 'udp4', reuseAddr: true });
sock.on('message', (buf) => {
  lastAt = Date.now();
  const r = decodeMessage(buf);
  if (!r.ok || r.message.header.type !== MsgType.SEQUENCED) {
    invalid++;
    return;
  }
  const { header, payload } = r.message;
  received++;
  session = header.session;
  if (payloads.has(header.seq)) duplicates++;
  else payloads.set(header.seq, Buffer.from(payload));
  if (header.seq < lastSeq) outOfOrder++;
  else lastSeq = header.seq;
  if (expected > 0 && payloads.size >= expected) finish();
});

let done = false;
function finish(): void {
  if (done) return;
  done = true;
  const seqs = [...payloads.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash('sha256');
  for (const s of seqs) h.update(`${s}:`).update(payloads.get(s)!).update('\n');
  const min = seqs[0] ?? 0n;
  const max = seqs[seqs.length - 1] ?? 0n;
  console.log(
    JSON.stringify({
      received,
      distinct: payloads.size,
      duplicates,
      outOfOrder,
      invalid,
      session,
      minSeq: Number(min),
      maxSeq: Number(max),
      holes: seqs.length ? Number(max - min + 1n) - seqs.length : 0,
      digest: h.digest('hex'),
    }),
  );
  sock.close();
  process.exit(0);
}

sock.bind(Number(v.port), () => {
  sock.addMembership(v.group!, v['iface-addr']);
  sock.setRecvBufferSize(16 * 1024 * 1024);
  console.log(JSON.stringify({ event: 'listening' }));
});
const start = Date.now();
setInterval(() => {
  if (Date.now() - start > Number(v['max-ms']) || (received > 0 && Date.now() - lastAt > Number(v['idle-ms']))) finish();
}, 100);
process.on('SIGTERM', finish);
process.on('SIGINT', finish);

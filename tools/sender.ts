// A bounded REQUEST load: sends --count requests to the sequencer at --rate
// per second at most, then prints {"sent":N,"elapsedMs":T} and exits. Used by
// the namespace tests and the demo; never runs longer than --max-ms.
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { emptyHeader, encodeMessage, MsgType } from '../bpf/wire.ts';

const { values: v } = parseArgs({
  options: {
    dst: { type: 'string' },
    port: { type: 'string', default: '7400' },
    group: { type: 'string', default: '1' },
    count: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '5000' },
    'client-id': { type: 'string', default: '1' },
    'payload-size': { type: 'string', default: '32' },
    'max-ms': { type: 'string', default: '60000' },
  },
});
if (!v.dst) {
  console.error('usage: sender.ts --dst IP [--port 7400] [--group 1] [--count N] [--rate PPS] [--client-id C] [--payload-size B] [--max-ms MS]');
  process.exit(2);
}
const count = Number(v.count);
const rate = Number(v.rate);
const clientId = BigInt(v['client-id']!);
const size = Number(v['payload-size']);
const maxMs = Number(v['max-ms']);
const groupId = Number(v.group);
const port = Number(v.port);

/** Payload names its client and request, so receivers can compare contents. */
function payload(req: number): Buffer {
  const tag = Buffer.from(`c${clientId}-r${req}|`);
  const out = Buffer.alloc(Math.max(size, tag.length), 0x2e);
  tag.copy(out);
  return out;
}

const sock = createSocket('udp4');
const start = Date.now();
const BATCH_MS = 2;
const perBatch = Math.max(1, Math.round((rate * BATCH_MS) / 1000));
let sent = 0;
while (sent < count && Date.now() - start < maxMs) {
  const batchStart = Date.now();
  const n = Math.min(perBatch, count - sent);
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const req = sent + i + 1;
      const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId, clientId, requestId: BigInt(req) }, payload(req));
      return new Promise<void>((res, rej) => sock.send(msg, port, v.dst!, (e) => (e ? rej(e) : res())));
    }),
  );
  sent += n;
  const wait = BATCH_MS - (Date.now() - batchStart);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
sock.close();
console.log(JSON.stringify({ sent, elapsedMs: Date.now() - start }));

/**
 * The same KV store as one unreplicated server: the baseline of bench P3.
 * Clients send it the REQUESTs they would send the sequencer; it executes
 * each at once, with the same at-most-once client table the replicas keep,
 * and answers with a REPLY shaped as the aggregator's. Nothing is ordered,
 * logged or replicated: this is what replication is measured against.
 *
 *   tsx examples/kv/unreplicated.ts --listen ADDR:PORT [--max-ms MS]
 *
 * Prints {"event":"listening"} once bound and {"event":"stopped", ...} on
 * SIGTERM/SIGINT.
 */
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType } from '../../bpf/wire.ts';
import { ClientTable } from '../../replica/client-table.ts';
import { parseHostPort } from '../../replica/udp/index.ts';
import { KvStore } from './store.ts';

const { values: v } = parseArgs({ options: { listen: { type: 'string' }, 'max-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
if (v.help || !v.listen) {
  console.log('Usage: tsx examples/kv/unreplicated.ts --listen ADDR:PORT [--max-ms MS]');
  process.exit(v.help ? 0 : 2);
}
const at = parseHostPort(v.listen, '--listen');
const store = new KvStore();
const table = new ClientTable();
const c = { requests: 0, executed: 0, duplicates: 0, stale: 0, ignored: 0, sendErrors: 0 };
let seq = 0n;
const sock = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 4 << 20 });
const onSent = (err: Error | null) => {
  if (err) c.sendErrors++;
};
sock.on('error', () => c.sendErrors++);
sock.on('message', (buf, from) => {
  const d = decodeMessage(buf);
  if (!d.ok || d.message.header.type !== MsgType.REQUEST) {
    c.ignored++;
    return;
  }
  c.requests++;
  const h = d.message.header;
  const a = table.admit(h.clientId, h.requestId);
  let result: Uint8Array;
  if (a.kind === 'stale') {
    c.stale++;
    return;
  } else if (a.kind === 'duplicate') {
    c.duplicates++;
    result = a.result;
  } else {
    result = store.execute(d.message.payload);
    table.record(h.clientId, h.requestId, result);
    c.executed++;
  }
  const reply = encodeMessage(
    { ...emptyHeader(), type: MsgType.REPLY, flags: Flags.RESULT, groupId: h.groupId, seq: ++seq, clientId: h.clientId, requestId: h.requestId },
    result,
  );
  sock.send(reply, from.port, from.address, onSent);
});
sock.bind(at.port, at.host, () => console.log(JSON.stringify({ event: 'listening', listen: `${at.host}:${at.port}`, pid: process.pid })));
const stop = (signal: string) => () => {
  console.log(JSON.stringify({ event: 'stopped', signal, keys: store.size, ...c }));
  sock.close();
  process.exit(0);
};
process.once('SIGTERM', stop('SIGTERM'));
process.once('SIGINT', stop('SIGINT'));
if (v['max-ms']) setTimeout(stop('max-ms'), Number(v['max-ms'])).unref();

// A bounded nextval load for tests: `workers` closed loops in one process,
// each call recorded (monotonic start and end, value or error code) to
// --out, one line each (sequences/history.ts). Runs until --duration-ms has
// passed, SIGTERM, or the --stop-file exists (tsx as a launcher does not
// pass signals on), then writes the file and a summary line.
//   tsx sequences/load.ts --server ADDR:PORT --name NAME --out FILE
//                         [--workers N] [--duration-ms MS] [--tag T] [--stop-file F] [--standby ADDR:PORT]
import { existsSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NextvalClient, SequenceError } from './client.ts';
import { type Call, formatCalls } from './history.ts';

const { values: o } = parseArgs({
  options: {
    server: { type: 'string' },
    name: { type: 'string' },
    out: { type: 'string' },
    workers: { type: 'string', default: '2' },
    'duration-ms': { type: 'string', default: '10000' },
    tag: { type: 'string', default: 'load' },
    'stop-file': { type: 'string' },
    standby: { type: 'string' },
  },
});
if (!o.server || !o.name || !o.out) {
  process.stderr.write('usage: load.ts --server ADDR:PORT --name NAME --out FILE [--workers N] [--duration-ms MS] [--tag T]\n');
  process.exit(2);
}
const calls: Call[] = [];
let stop = false;
process.once('SIGTERM', () => (stop = true));
const stopFile = o['stop-file'];
const poll = stopFile ? setInterval(() => (stop ||= existsSync(stopFile)), 100) : undefined;
const end = Date.now() + Number(o['duration-ms']);
const workers = Number(o.workers);
const clients = await Promise.all(Array.from({ length: workers }, () => NextvalClient.open({ server: o.server!, ...(o.standby ? { standby: o.standby } : {}) })));
process.stdout.write(`${JSON.stringify({ event: 'started', workers })}\n`);
let lastReport = 0;
await Promise.all(
  clients.map(async (c, w) => {
    const client = `${o.tag}/${w}`;
    while (!stop && Date.now() < end) {
      const startNs = process.hrtime.bigint();
      try {
        const value = await c.nextval(o.name!);
        calls.push({ client, startNs, endNs: process.hrtime.bigint(), value });
      } catch (e) {
        calls.push({ client, startNs, endNs: process.hrtime.bigint(), error: e instanceof SequenceError ? e.code : 'EOTHER' });
        if (e instanceof SequenceError && e.code === 'EUNKNOWN_SEQUENCE') await new Promise((r) => setTimeout(r, 50));
      }
      if (w === 0 && calls.length - lastReport >= 500) {
        lastReport = calls.length;
        const ok = calls.filter((x) => x.value !== undefined).length;
        process.stdout.write(`${JSON.stringify({ event: 'progress', calls: calls.length, ok })}\n`);
      }
    }
  }),
);
clearInterval(poll);
for (const c of clients) c.close();
writeFileSync(o.out, `${formatCalls(calls)}\n`);
const errors: Record<string, number> = {};
for (const c of calls) if (c.error) errors[c.error] = (errors[c.error] ?? 0) + 1;
process.stdout.write(`${JSON.stringify({ event: 'done', calls: calls.length, ok: calls.filter((c) => c.value !== undefined).length, errors, late: clients.reduce((n, c) => n + c.lateReplies, 0), attempts: clients.reduce((n, c) => n + c.attempts, 0) })}\n`);

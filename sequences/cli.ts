// xseq-nextval: the sequence command line.
//   xseq-nextval NAME [--count N] [--server ADDR[:PORT]]     values of a sequence
//   xseq-nextval bench NAME [--clients N] [--duration S] [--count N]
//   xseq-nextval list | create NAME --id N [--start S --increment I --cache C]
//                | drop NAME | setval NAME VALUE               through the agent (--control ADDR:PORT)
// Exit status: 0 ok, 2 bad arguments, 3 unknown sequence, 4 refused at the
// mark, 5 timeout, 1 anything else.
import { parseArgs } from 'node:util';
import { readKeyFile } from '../bpf/key-file.ts';
import { blockValues, NextvalClient, type NextvalOptions, SequenceError } from './client.ts';

const USAGE = `usage:
  xseq-nextval NAME [--count N] [--server ADDR[:PORT]] [--timeout-ms MS] [--group G --client-key-file PATH]
  xseq-nextval bench NAME [--clients N] [--duration S] [--count N] [--server ADDR[:PORT]] [--group G --client-key-file PATH]
  xseq-nextval list [--control ADDR:PORT]
  xseq-nextval create NAME --id N [--start S] [--increment I] [--cache C] [--group G] [--control ADDR:PORT]
  xseq-nextval drop NAME [--control ADDR:PORT]
  xseq-nextval setval NAME VALUE [--control ADDR:PORT]
--server defaults to $XSEQ_SERVER or 127.0.0.1:7400; --control to $XSEQ_CONTROL or 127.0.0.1:9465.
--group G --client-key-file PATH: a sequence of a keyed group answers only requests MAC'd under the
group's client key (\`xseq-agent client-key --key-file GROUP_KEY\` prints it).
--standby ADDR[:PORT]: the other host of an active/standby pair; an attempt that timed out or was refused goes there next.
Exit status: 0 ok, 2 bad arguments, 3 unknown sequence, 4 refused at the durable mark, 5 timeout.`;

const EXIT: Record<string, number> = { EUNKNOWN_SEQUENCE: 3, EREFUSED_AT_MARK: 4, ETIMEOUT: 5, EARGUMENT: 2 };

class UsageError extends Error {}

function intArg(v: string | undefined, name: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} ${v}: must be a whole number >= ${min}`);
  return n;
}

async function control(addr: string, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`http://${addr}${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  } catch (e) {
    throw new Error(`cannot reach the agent's sequence control at ${addr} (${(e as Error).message}); is xseq-agent running with sequenceControl.listen ${addr}?`);
  }
  const out = (await res.json()) as { code?: string; message?: string };
  if (!res.ok) throw Object.assign(new Error(`${out.code}: ${out.message}`), { exit: res.status === 404 ? 3 : 2 });
  return out;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
}

/** Closed-loop clients in this process; checks that no value came twice. */
async function bench(server: NextvalOptions, name: string, clients: number, seconds: number, count: number): Promise<void> {
  const cs = await Promise.all(Array.from({ length: clients }, () => NextvalClient.open(server)));
  const lat: number[] = [];
  const seen = new Set<bigint>();
  let dup = 0;
  let values = 0;
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    cs.map(async (c) => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const vs = count === 1 ? [await c.nextval(name)] : blockValues(await c.nextvalBlock(name, count));
          lat.push(performance.now() - s);
          values += vs.length;
          if (count === 1) {
            if (seen.has(vs[0]!)) dup++;
            seen.add(vs[0]!);
          }
        } catch (e) {
          errors++;
          if (e instanceof SequenceError && e.code === 'EUNKNOWN_SEQUENCE') throw e;
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const retries = cs.reduce((n, c) => n + c.retries, 0);
  const late = cs.reduce((n, c) => n + c.lateReplies, 0);
  for (const c of cs) c.close();
  lat.sort((a, b) => a - b);
  const out = {
    name,
    clients,
    count,
    calls: lat.length,
    values,
    errors,
    duplicates: dup,
    retries,
    lateReplies: late,
    callsPerSec: Math.round(lat.length / secs),
    valuesPerSec: Math.round(values / secs),
    p50us: Math.round(quantile(lat, 0.5) * 1000),
    p99us: Math.round(quantile(lat, 0.99) * 1000),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (dup) process.exitCode = 1;
}

export async function main(argv: string[]): Promise<number> {
  const { values: o, positionals: pos } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      count: { type: 'string' },
      server: { type: 'string' },
      control: { type: 'string' },
      'timeout-ms': { type: 'string' },
      clients: { type: 'string' },
      duration: { type: 'string' },
      id: { type: 'string' },
      start: { type: 'string' },
      increment: { type: 'string' },
      cache: { type: 'string' },
      group: { type: 'string' },
      'client-key-file': { type: 'string' },
      standby: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (o.help || !pos.length) {
    process.stdout.write(`${USAGE}\n`);
    return o.help ? 0 : 2;
  }
  const server = o.server ?? process.env['XSEQ_SERVER'] ?? '127.0.0.1:7400';
  const ctl = o.control ?? process.env['XSEQ_CONTROL'] ?? '127.0.0.1:9465';
  const [cmd, a1, a2] = pos;
  if (o['client-key-file'] !== undefined && o.group === undefined) throw new UsageError('--client-key-file needs --group: the group whose client key it is');
  const auth = { ...(o.standby !== undefined ? { standby: o.standby } : {}), ...(o.group !== undefined ? { group: intArg(o.group, 'group', 0, 0) } : {}), ...(o['client-key-file'] !== undefined ? { key: readKeyFile(o['client-key-file']) } : {}) };
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 1)}\n`);
  switch (cmd) {
    case 'list':
      print(await control(ctl, 'GET', '/sequences'));
      return 0;
    case 'create':
      if (!a1 || o.id === undefined) throw new UsageError('create NAME --id N');
      print(await control(ctl, 'POST', '/sequences', { name: a1, id: o.id, ...(o.start ? { start: o.start } : {}), ...(o.increment ? { increment: o.increment } : {}), ...(o.cache ? { cache: o.cache } : {}), ...(o.group ? { group: o.group } : {}) }));
      return 0;
    case 'drop':
      if (!a1) throw new UsageError('drop NAME');
      print(await control(ctl, 'DELETE', `/sequences/${encodeURIComponent(a1)}`));
      return 0;
    case 'setval':
      if (!a1 || a2 === undefined) throw new UsageError('setval NAME VALUE');
      print(await control(ctl, 'POST', `/sequences/${encodeURIComponent(a1)}/setval`, { value: a2 }));
      return 0;
    case 'bench':
      if (!a1) throw new UsageError('bench NAME');
      await bench({ server, ...auth }, a1, intArg(o.clients, 'clients', 1), intArg(o.duration, 'duration', 5), intArg(o.count, 'count', 1));
      return 0;
    default: {
      const count = intArg(o.count, 'count', 1);
      const c = await NextvalClient.open({ server, timeoutMs: intArg(o['timeout-ms'], 'timeout-ms', 200), ...auth });
      try {
        if (count === 1) process.stdout.write(`${await c.nextval(cmd!)}\n`);
        else {
          const b = await c.nextvalBlock(cmd!, count);
          process.stdout.write(`${blockValues(b).join('\n')}\n`);
        }
      } finally {
        c.close();
      }
      return 0;
    }
  }
}

if (import.meta.main || process.argv[1]?.endsWith('xseq-nextval.js') || process.argv[1]?.endsWith('sequences/cli.ts')) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`xseq-nextval: ${e instanceof SequenceError ? `${e.code}: ` : ''}${(e as Error).message}\n`);
      if (e instanceof UsageError) process.stderr.write(`${USAGE}\n`);
      process.exitCode = e instanceof SequenceError ? (EXIT[e.code] ?? 1) : e instanceof UsageError ? 2 : ((e as { exit?: number }).exit ?? 1);
    },
  );
}

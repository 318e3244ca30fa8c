// Run-time control of the sequences, JSON over HTTP on the agent's host
// (sequenceControl.listen, loopback by default: there is no authentication,
// so it must never face the LAN):
//   GET    /sequences              every sequence's status
//   POST   /sequences              create {name, id, start?, increment?, cache?, markAhead?, group?}
//   DELETE /sequences/NAME         drop
//   POST   /sequences/NAME/setval  {value}: the next value is value + increment
// Errors come back as {code, message} with 400 (bad input), 404 (no such
// sequence) or 409 (name or id taken).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError } from './errors.ts';
import type { Log } from './log.ts';
import type { SequenceDef } from './marks.ts';
import { defaultAhead, type SequenceService } from './sequences.ts';

const MAX_BODY = 4096;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new AgentError('ESEQUENCE', `body over ${MAX_BODY} bytes`));
        req.destroy();
      } else parts.push(c);
    });
    req.on('end', () => {
      try {
        resolve(parts.length ? JSON.parse(Buffer.concat(parts).toString('utf8')) : {});
      } catch {
        reject(new AgentError('ESEQUENCE', 'body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function big(v: unknown, field: string, dflt?: bigint): bigint {
  if (v === undefined && dflt !== undefined) return dflt;
  if ((typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v))) return BigInt(v);
  throw new AgentError('ESEQUENCE', `${field}: must be a whole number${v === undefined ? ' (required)' : ''}`);
}

/** A create request's body as a definition (checked again by the service). */
export function defFromBody(b: Record<string, unknown>): SequenceDef {
  if (typeof b['name'] !== 'string') throw new AgentError('ESEQUENCE', 'name: must be a string (required)');
  const cache = Number(big(b['cache'], 'cache', 1n));
  const increment = big(b['increment'], 'increment', 1n);
  return {
    name: b['name'],
    id: Number(big(b['id'], 'id')),
    start: big(b['start'], 'start', 1n),
    increment,
    cache,
    markAhead: big(b['markAhead'], 'markAhead', defaultAhead(cache, increment)),
    origin: 'runtime',
    ...(b['group'] !== undefined ? { group: Number(big(b['group'], 'group')) } : {}),
  };
}

function statusOf(e: unknown): number {
  const m = (e as Error).message;
  if (/^no sequence/.test(m)) return 404;
  if (/exists|is used by/.test(m)) return 409;
  return e instanceof AgentError ? 400 : 500;
}

export async function startSequenceControl(listen: string, svc: SequenceService, log?: Log): Promise<{ address: string; close(): Promise<void> } | undefined> {
  if (listen === '') return undefined;
  const [host, portText] = [listen.slice(0, listen.lastIndexOf(':')), listen.slice(listen.lastIndexOf(':') + 1)];
  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const m = /^\/sequences(?:\/([A-Za-z0-9_.-]{1,32})(\/setval)?)?$/.exec(path);
    if (!m) return send(res, 404, { code: 'ENOTFOUND', message: 'try GET /sequences' });
    const [, name, setval] = m;
    if (!name && req.method === 'GET') return send(res, 200, { sequences: svc.status(), ...svc.counters() });
    if (!name && req.method === 'POST') return send(res, 201, await svc.create(defFromBody((await readBody(req)) as Record<string, unknown>)));
    if (name && !setval && req.method === 'GET') {
      const s = svc.status().find((x) => x.name === name);
      return s ? send(res, 200, s) : send(res, 404, { code: 'ESEQUENCE', message: `no sequence "${name}"` });
    }
    if (name && !setval && req.method === 'DELETE') {
      await svc.drop(name);
      return send(res, 200, { dropped: name });
    }
    if (name && setval && req.method === 'POST') {
      const b = (await readBody(req)) as Record<string, unknown>;
      return send(res, 200, await svc.setval(name, big(b['value'], 'value')));
    }
    return send(res, 405, { code: 'EMETHOD', message: `${req.method} ${path} is not supported` });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log?.warn({ event: 'sequence', err: (e as Error).message }, 'sequence control request failed');
      if (!res.headersSent) send(res, statusOf(e), { code: (e as AgentError).code ?? 'EINTERNAL', message: (e as Error).message });
    });
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new AgentError('ESEQUENCE', `cannot serve sequence control on ${listen}: ${(e as Error).message}; set sequenceControl.listen to another address, or "" to turn it off`)));
    server.listen(Number(portText), host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  log?.info({ event: 'sequence-control', address: `${a.address}:${a.port}` }, `sequence control on ${a.address}:${a.port}`);
  return {
    address: `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

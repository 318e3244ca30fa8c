/**
 * The KV command-line client. Every op goes through the replicated log and
 * is answered once a quorum including the leader holds it.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type HostPort, parseHostPort } from '../../replica/udp/index.ts';
import { ClientError, KvClient } from './client.ts';
import { runLoad } from './load.ts';
import { KvError, MAX_VALUE } from './ops.ts';

const USAGE = `Usage: tsx examples/kv/cli.ts <command> --sequencer ADDR[:PORT] [options]

Commands:
  get KEY                      prints {"key","found","value"}
  put KEY VALUE                prints {"ok":true,"session","seq"}
  cas KEY EXPECTED VALUE       set VALUE if KEY holds EXPECTED; with --absent,
  cas --absent KEY VALUE       if KEY does not exist; prints {"swapped","current"}
  load                         closed-loop load, prints one JSON summary with
                               latencies and every acknowledged write
  read --keys-file FILE        reads every key in FILE (one per line), prints
                               {"values":{key: value|null}, "failed":[...]}

Options:
  --sequencer ADDR[:PORT]      the sequencer host (default port 7400), or an
                               unreplicated server (examples/kv/unreplicated.ts)
  --group ID                   replica group (default 1)
  --bind ADDR                  local address to send from
  --retry-ms MS                re-send an unanswered request (default 200)
  --timeout-ms MS              give up on a request (default 10000)
load:
  --clients C                  concurrent closed-loop clients (default 4)
  --ops N | --duration-ms MS   how much load (one of them)
  --rate R                     ops/s of all clients together (default: closed
                               loop, each client's next op when one returns)
  --warmup-ms MS               leading time not measured (default 0)
  --start-at EPOCH_MS          wait until then (start several processes together)
  --keys K                     keys per client (default 64)
  --value-size B               bytes per written value (default: just the
                               value's id, tag/client/n; at most 200)
  --mix G:P:C                  weights of get, put, cas (default 50:40:10)
  --tag STR                    key prefix (default random)
  --omit-writes                leave the acknowledged writes out of the summary
read:
  --clients C                  concurrent reads (default 8)`;

function fail(msg: string): never {
  console.error(`kv: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function num(v: string | undefined, name: string, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min) fail(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        sequencer: { type: 'string' },
        group: { type: 'string' },
        bind: { type: 'string' },
        'retry-ms': { type: 'string' },
        'timeout-ms': { type: 'string' },
        clients: { type: 'string' },
        ops: { type: 'string' },
        'duration-ms': { type: 'string' },
        'warmup-ms': { type: 'string' },
        'start-at': { type: 'string' },
        keys: { type: 'string' },
        mix: { type: 'string' },
        tag: { type: 'string' },
        rate: { type: 'string' },
        'value-size': { type: 'string' },
        'omit-writes': { type: 'boolean' },
        'keys-file': { type: 'string' },
        absent: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values: v, positionals: p } = parsed;
  if (v.help) {
    console.log(USAGE);
    return;
  }
  const [cmd, ...args] = p;
  if (!cmd) fail('no command');
  if (!v.sequencer) fail('--sequencer is required');
  let sequencer: HostPort;
  try {
    sequencer = parseHostPort(v.sequencer, '--sequencer', 7400);
  } catch (e) {
    fail((e as Error).message);
  }
  const clients = num(v.clients, 'clients', cmd === 'read' ? 8 : 4, 1);
  const client = await KvClient.open({
    sequencer,
    groupId: num(v.group, 'group', 1),
    lanes: cmd === 'load' || cmd === 'read' ? clients : 1,
    retryMs: num(v['retry-ms'], 'retry-ms', 200, 1),
    timeoutMs: num(v['timeout-ms'], 'timeout-ms', 10_000, 1),
    ...(v.bind ? { bindAddress: v.bind } : {}),
  });
  const print = (o: unknown) => console.log(JSON.stringify(o));
  try {
    switch (cmd) {
      case 'get': {
        if (args.length !== 1) fail('get KEY');
        const value = await client.get(args[0]!);
        print({ key: args[0], found: value !== null, value: value && Buffer.from(value).toString('utf8') });
        break;
      }
      case 'put': {
        if (args.length !== 2) fail('put KEY VALUE');
        const cert = await client.put(args[0]!, args[1]!);
        print({ ok: true, session: cert?.session, seq: cert?.seq });
        break;
      }
      case 'cas': {
        if (v.absent ? args.length !== 2 : args.length !== 3) fail('cas KEY EXPECTED VALUE, or cas --absent KEY VALUE');
        const r = v.absent ? await client.cas(args[0]!, null, args[1]!) : await client.cas(args[0]!, args[1]!, args[2]!);
        print({ swapped: r.swapped, current: r.current && Buffer.from(r.current).toString('utf8') });
        break;
      }
      case 'load': {
        if (v.ops === undefined && v['duration-ms'] === undefined) fail('load needs --ops or --duration-ms');
        if (num(v['value-size'], 'value-size', 0) > MAX_VALUE) fail(`--value-size is at most ${MAX_VALUE}`);
        const mix = (v.mix ?? '50:40:10').split(':').map(Number);
        if (mix.length !== 3 || mix.some((x) => !Number.isFinite(x) || x < 0)) fail(`--mix must be G:P:C, got "${v.mix}"`);
        const s = await runLoad(client, {
          concurrency: clients,
          ...(v.ops !== undefined ? { ops: num(v.ops, 'ops', 0, 1) } : {}),
          ...(v['duration-ms'] !== undefined ? { durationMs: num(v['duration-ms'], 'duration-ms', 0, 1) } : {}),
          warmupMs: num(v['warmup-ms'], 'warmup-ms', 0),
          ...(v['start-at'] !== undefined ? { startAt: num(v['start-at'], 'start-at', 0) } : {}),
          keys: num(v.keys, 'keys', 64, 1),
          rate: num(v.rate, 'rate', 0),
          valueSize: num(v['value-size'], 'value-size', 0),
          mix: mix as [number, number, number],
          tag: v.tag ?? randomBytes(4).toString('hex'),
          recordWrites: !v['omit-writes'],
        });
        print({ ...s, transport: client.counters() });
        break;
      }
      case 'read': {
        if (!v['keys-file']) fail('read needs --keys-file FILE');
        const keys = readFileSync(v['keys-file'], 'utf8').split('\n').filter(Boolean);
        const values: Record<string, string | null> = {};
        const failed: { key: string; error: string }[] = [];
        let next = 0;
        await Promise.all(
          Array.from({ length: clients }, async (_, lane) => {
            while (next < keys.length) {
              const k = keys[next++]!;
              try {
                const val = await client.get(k, lane);
                values[k] = val && Buffer.from(val).toString('utf8');
              } catch (e) {
                failed.push({ key: k, error: (e as Error).message });
              }
            }
          }),
        );
        print({ values, failed });
        break;
      }
      default:
        fail(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof ClientError || e instanceof KvError) {
      console.error(`kv: ${e.message}`);
      process.exitCode = 1;
    } else throw e;
  } finally {
    await client.close();
  }
}

main().catch((e: unknown) => {
  console.error(`kv: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});

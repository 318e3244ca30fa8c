/**
 * The KV command-line client. Every op goes through the replicated log and
 * is answered once a quorum including the leader holds it.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ClientError, KvClient } from './client.ts';
import { ClientConfigError, clientConfig, type KvClientConfig, mergeClientFlags, readClientConfigFile } from './client-config.ts';
import { runLoad } from './load.ts';
import { ANY_SESSION, MAX_SEQUENCER_ID } from '../../replica/control-op.ts';
import { KvError, MAX_VALUE } from './ops.ts';
import { versionLine } from '../../agent/version.ts';

const USAGE = `Usage: tsx examples/kv/cli.ts <command> --sequencer ADDR[:PORT] [options]
       tsx examples/kv/cli.ts <command> --sequencer ID:ADDR[:PORT] ... [options]
       tsx examples/kv/cli.ts <command> --config FILE [options]

Commands:
  get KEY                      prints {"key","found","value"}
  put KEY VALUE                prints {"ok":true,"session","seq"}
  cas KEY EXPECTED VALUE       set VALUE if KEY holds EXPECTED; with --absent,
  cas --absent KEY VALUE       if KEY does not exist; prints {"swapped","current"}
  load                         closed-loop load, prints one JSON summary with
                               latencies and every acknowledged write
  read --keys-file FILE        reads every key in FILE (one per line), prints
                               {"values":{key: value|null}, "failed":[...]}
  add-sequencer --id N         Hydra: adds sequencer N to the group (replicas
                               configured with it as "joining"): a control op
                               sent through the sequencers given (except N),
                               re-sent to the next one after --retry-ms until
                               a quorum with the leader holds it or
                               --timeout-ms passes; prints {"ok":true,
                               "sequencer":N,"session","seq","leaderNum",
                               "attempts":{ID:count}}. Start N's agent first.
  remove-sequencer --id N      removes sequencer N, whose host is known to be
    [--session S]              dead: a control op sent through the sequencers
                               given (except N); the replicas agree on N's
                               last seq and deliver nothing of it after that,
                               without waiting for their dead-sequencer
                               timeout. --session S: only if the replicas
                               still hold N at session S (default: any).
                               Prints {"ok":true,"sequencer":N,"session",
                               "seq","leaderNum","attempts"}. N may rejoin
                               later under a new session (a fresh data path).
  weights reassign --member M --delta=D
                               weight reassignment (docs/weights.md): adds D
                               (negative: takes) to member M's voting weight,
                               through the total order; prints {"applied",
                               "version","weights"[,"refused"]}: a change that
                               would break integrity is committed as a no-op
                               change and says why (exit 1)
  weights transfer --from A --to B --amount X
                               moves X of A's weight to B, the same way
  weights changes --member M   read_changes(M) through the total order:
                               {"total","changes":[{"version","delta",
                               "applied","kind"}]} (the newest 30)

Options (in brackets: the field in a --config file; flags win):
  --config FILE                YAML (or JSON) with the bracketed fields; see
                               examples/kv/client.example.yaml
  --sequencer ADDR[:PORT]      the sequencer host (default port 7400), or an
                               unreplicated server (examples/kv/unreplicated.ts)
                               [sequencer]
  --sequencer ID:ADDR[:PORT]   one of the group's sequencers (Hydra): repeat
                               once per sequencer; replaces the file's list
                               [sequencers: ["ID:ADDR:PORT" | {id, addr, port}]]
  --policy round-robin|key|failover
                               how a request picks its sequencer: in turn
                               (default), or by its KV key (FNV-1a 32 of the
                               key's bytes mod the number of sequencers, in
                               the order given), or failover (a sequencer and
                               its standby: the one that answered last, at
                               first the first given; the next only when an
                               attempt times out) [policy]
  --group ID                   replica group (default 1) [group]
  --bind ADDR                  local address to send from [bind]
  --bind-port P                local UDP port to send from (default any)
  --retry-ms MS                per-attempt timeout: re-send an unanswered
                               request, with the same request id, to the next
                               sequencer (default 200) [retryMs]
  --backoff-ms MS              a sequencer that timed out is avoided this long,
                               doubling per consecutive timeout up to 16x,
                               then tried again (default 1000) [backoffMs]
  --timeout-ms MS              give up on a request: ETIMEDOUT, with how many
                               attempts went to which sequencer (default
                               10000) [timeoutMs]
  --direct-acks --replicas N   the group runs without aggregation (agent group
                               without members, replicas --acks-to client):
                               replicas ACK this client, which counts f+1
                               matching ACKs including the leader's; N is the
                               group size [directAcks, replicas]
  --client-key-file PATH       a keyed group's client key (\`xseq-agent
                               client-key --key-file GROUP_KEY\` prints it):
                               every REQUEST is sealed with it, which the
                               sequencer requires of a keyed group
                               [clientKeyFile]
  --group-key-file PATH        the group key itself (operators: control ops
                               such as add-sequencer need it in a keyed
                               group; plain requests use its client key)
                               [groupKeyFile]
  --version                    the version and commit, then exit
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
  --completions                list when each answered op completed (wall-clock
                               ms) in "completedAtMs": failover timing
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
  if (process.argv.includes('--version')) {
    console.log(versionLine('kv-cli'));
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        sequencer: { type: 'string', multiple: true },
        policy: { type: 'string' },
        'backoff-ms': { type: 'string' },
        'direct-acks': { type: 'boolean' },
        replicas: { type: 'string' },
        'client-key-file': { type: 'string' },
        'group-key-file': { type: 'string' },
        group: { type: 'string' },
        bind: { type: 'string' },
        'bind-port': { type: 'string' },
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
        completions: { type: 'boolean' },
        'keys-file': { type: 'string' },
        absent: { type: 'boolean' },
        id: { type: 'string' },
        session: { type: 'string' },
        member: { type: 'string' },
        delta: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        amount: { type: 'string' },
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
  const membership = cmd === 'add-sequencer' || cmd === 'remove-sequencer';
  if (v.id !== undefined && !membership) fail('--id is for add-sequencer and remove-sequencer only');
  if (v.session !== undefined && cmd !== 'remove-sequencer') fail('--session is for remove-sequencer only');
  let cfg: KvClientConfig;
  try {
    const file = v.config ? readClientConfigFile(v.config) : {};
    cfg = clientConfig(
      mergeClientFlags(file, {
        ...(v.sequencer ? { sequencer: v.sequencer } : {}),
        ...(v.group !== undefined ? { group: v.group } : {}),
        ...(v.policy !== undefined ? { policy: v.policy } : {}),
        ...(v['retry-ms'] !== undefined ? { retryMs: v['retry-ms'] } : {}),
        ...(v['timeout-ms'] !== undefined ? { timeoutMs: v['timeout-ms'] } : {}),
        ...(v['backoff-ms'] !== undefined ? { backoffMs: v['backoff-ms'] } : {}),
        ...(v.bind !== undefined ? { bind: v.bind } : {}),
        ...(v['direct-acks'] !== undefined ? { directAcks: v['direct-acks'] } : {}),
        ...(v.replicas !== undefined ? { replicas: v.replicas } : {}),
        ...(v['client-key-file'] !== undefined ? { clientKeyFile: v['client-key-file'] } : {}),
        ...(v['group-key-file'] !== undefined ? { groupKeyFile: v['group-key-file'] } : {}),
      }),
    );
  } catch (e) {
    if (e instanceof ClientConfigError) fail(e.message);
    throw e;
  }
  const clients = num(v.clients, 'clients', cmd === 'read' ? 8 : 4, 1);
  // add-sequencer goes through members only: the joining sequencer's own
  // traffic is held by the replicas until the op is merged. remove-sequencer
  // never goes through the sequencer it removes: that host is dead.
  const named = membership && v.id !== undefined ? num(v.id, 'id', 0) : null;
  const via = named === null ? cfg.sequencers : cfg.sequencers.filter((q) => q.id !== named);
  if (via.length === 0) fail(`${cmd}: give at least one member sequencer other than ${named} (--sequencer ID:ADDR[:PORT])`);
  const client = await KvClient.open({
    sequencers: via,
    policy: cfg.policy,
    groupId: cfg.groupId,
    lanes: cmd === 'load' || cmd === 'read' ? clients : 1,
    retryMs: cfg.retryMs,
    timeoutMs: cfg.timeoutMs,
    backoffMs: cfg.backoffMs,
    ...(cfg.bind ? { bindAddress: cfg.bind } : {}),
    ...(v['bind-port'] !== undefined ? { bindPort: num(v['bind-port'], 'bind-port', 1) } : {}),
    ...(cfg.directAcks ? { directAcks: true, replicas: cfg.replicas } : {}),
    ...(cfg.clientKey ? { clientKey: cfg.clientKey } : {}),
    ...(cfg.groupKey ? { groupKey: cfg.groupKey } : {}),
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
          recordCompletions: v.completions === true,
        });
        print({ ...s, transport: client.counters() });
        break;
      }
      case 'add-sequencer': {
        if (args.length !== 0) fail('add-sequencer takes no arguments, only --id N');
        if (v.id === undefined) fail('add-sequencer needs --id N (the joining sequencer id)');
        const sid = num(v.id, 'id', 0);
        if (sid > MAX_SEQUENCER_ID) fail(`--id must be 0..${MAX_SEQUENCER_ID}, got ${sid}`);
        const cert = await client.addSequencer(sid);
        const attempts = Object.fromEntries(client.health().filter((h) => h.attempts > 0).map((h) => [h.id, h.attempts]));
        print({ ok: true, sequencer: sid, session: cert?.session, seq: cert?.seq, leaderNum: cert?.leaderNum, attempts });
        break;
      }
      case 'remove-sequencer': {
        if (args.length !== 0) fail('remove-sequencer takes no arguments, only --id N [--session S]');
        if (v.id === undefined) fail('remove-sequencer needs --id N (the dead sequencer id)');
        const sid = num(v.id, 'id', 0);
        if (sid > MAX_SEQUENCER_ID) fail(`--id must be 0..${MAX_SEQUENCER_ID}, got ${sid}`);
        const session = num(v.session, 'session', ANY_SESSION);
        if (v.session !== undefined && session >= ANY_SESSION) fail(`--session must be 0..${ANY_SESSION - 1}, got ${session}`);
        const cert = await client.removeSequencer(sid, session);
        const attempts = Object.fromEntries(client.health().filter((h) => h.attempts > 0).map((h) => [h.id, h.attempts]));
        print({ ok: true, sequencer: sid, ...(session !== ANY_SESSION ? { removedSession: session } : {}), session: cert?.session, seq: cert?.seq, leaderNum: cert?.leaderNum, attempts });
        break;
      }
      case 'weights': {
        const sub = args[0];
        const m = (name: 'member' | 'from' | 'to') => num(v[name], name, -1);
        if (sub === 'reassign') {
          if (v.member === undefined || v.delta === undefined || !/^-?\d+$/.test(v.delta)) fail('weights reassign --member M --delta=D (D may be negative: --delta=-1)');
          const r = await client.reassignWeight(m('member'), Number(v.delta));
          print(r);
          if (!r.applied) process.exitCode = 1;
        } else if (sub === 'transfer') {
          if (v.from === undefined || v.to === undefined || v.amount === undefined) fail('weights transfer --from A --to B --amount X');
          const r = await client.transferWeight(m('from'), m('to'), num(v.amount, 'amount', 0, 1));
          print(r);
          if (!r.applied) process.exitCode = 1;
        } else if (sub === 'changes') {
          if (v.member === undefined) fail('weights changes --member M');
          print(await client.readChanges(m('member')));
        } else fail('weights reassign|transfer|changes');
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
    if (e instanceof ClientError && e.code === 'EUNAUTHORIZED') {
      console.error(`kv: ${e.code}: ${e.message}`);
      process.exitCode = 1;
    } else if (e instanceof ClientError || e instanceof KvError) {
      console.error(`kv: ${e.message}`);
      if (membership) console.error(`kv: ${cmd}: no certified answer; check that a member sequencer given here is running and that the replicas are up`);
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

// A stranger on the LAN (docs/trust-model.md, no key): the KV store on three
// replicas behind the XDP sequencer under a KV load with the agent's
// default policy, and one more host on the same bridge that is in no
// configuration (topology role x). It forges SEQUENCED with the largest
// and random sessions, FLUSH, FLUSH_SOLICIT, ACKs and repair requests from
// members' addresses on other ports, peer frames on the TCP port, and
// replays overheard REQUESTs and impersonates the overheard client ids with
// request ids ahead of theirs (tools/stranger.ts forge); then it fuzzes
// every port from a seed, overheard datagrams keeping their client ids
// (tools/stranger.ts fuzz). Whatever it sends: no replica changes session,
// nothing of it is committed (no entry under a load client's id that the
// client did not send), no client op times out, every acknowledged write
// reads back, and the replicas' logs are identical. Leader changes are
// counted, not asserted (see below).
//
// The fuzz seed is printed; XSEQ_STRANGER_SEED=N replays a failing one,
// XSEQ_STRANGER_COUNT=N sets how many datagrams (default 20000; 0 runs the
// same load without the stranger, the baseline for the p99 comparison),
// XSEQ_STRANGER_LOAD_MS=N the KV load's length (default 30 s).
//
// What this does not test: a stranger that sends from a configured
// sequencer's or member's exact address AND port. Without a key nothing
// can tell that forgery from the real thing; the key (auth) is what stops
// it, and its tests are auth's.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { decodeOp } from '../examples/kv/ops.ts';
import { ACK_PORT, GROUP, KvCluster, PEER_PORT, REPAIR_PORT, REPO_ROOT, SEQ_PORT, spawnTs } from '../examples/kv/netns-cluster.ts';
import type { NsProcess, Topology } from '../netns/topology.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const STRANGER = join(REPO_ROOT, 'tools', 'stranger.ts');
/** tools/stranger.ts STRANGER_CLIENT, as the dumps print client ids. */
const STRANGER_CLIENT = (0x5354_5241_4e47_4552n).toString();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StatusLine {
  status: string;
  view: { leaderNum: number; session: number };
  leader: boolean;
}
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function lines(p: NsProcess, event: string): Json[] {
  return p
    .output()
    .stdout.split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Json);
}
const statusLines = (p: NsProcess) => lines(p, 'status') as unknown as StatusLine[];

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function issueNo(value: string): number {
  return Number(value.slice(value.lastIndexOf('/') + 1));
}

function strangerArgs(t: Topology, mode: string): string[] {
  return [
    '--mode', mode,
    '--seq', t.ip('seq'), '--seq-port', String(SEQ_PORT), '--repair-port', String(REPAIR_PORT),
    '--group', String(GROUP.id), '--mcast', GROUP.addr, '--group-port', String(GROUP.port),
    '--replicas', t.receivers.map((r) => t.ip(r)).join(','), '--ack-port', String(ACK_PORT), '--peer-port', String(PEER_PORT),
    '--self', t.ip('x'), '--iface', t.ifname('x'), '--spoof', t.receivers.map((r) => t.ip(r)).join(','),
  ];
}

/** A KV load with the stranger at work meanwhile; every check of the file's header. */
async function underAttack(attack: 'forge' | 'replay' | 'fuzz' | 'none', fuzz: { seed: number; count: number }): Promise<void> {
  const t = await kv.topology({ receivers: 3, clients: 1, strangers: 1, mode: 'native' });
  // The default policy: what users run.
  const c = kv.cluster(t, { dumps: true, replicaArgs: ['--stats-interval', '1000'] });
  const first = await c.startAgent();
  await c.startReplicas();

  const loadMs = Number(process.env['XSEQ_STRANGER_LOAD_MS'] ?? (attack === 'forge' || attack === 'replay' ? 20_000 : 30_000));
  const load = c.spawnCli('cli', ['load', '--duration-ms', String(loadMs), '--clients', '4', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--tag', 'cli']);
  await until('every replica normal in the agent\'s session', () => c.replicas.every((p) => p && statusLines(p).at(-1)?.status === 'normal' && statusLines(p).at(-1)?.view.session === first.session), 20_000);
  await sleep(2000);
  const viewsBefore = c.replicas.map((p) => statusLines(p!).length);

  let sent: Json | null = null;
  if (attack !== 'none') {
    const args = strangerArgs(t, attack === 'replay' ? 'forge' : attack);
    if (attack === 'fuzz') args.push('--seed', String(fuzz.seed), '--count', String(fuzz.count), ...(process.env['XSEQ_STRANGER_NO_REPLAYS'] ? ['--no-replays'] : []));
    // The forgeries alone, or the replays alone (issue 10: the default policy answers replays; "policy").
    args.push('--replay-ms', attack === 'replay' ? '5000' : '0', ...(attack === 'replay' ? ['--only-replay'] : []));
    const x = spawnTs(t, 'x', STRANGER, args);
    sent = JSON.parse(await x.waitForLine(/"sent"/, loadMs + 600_000)) as Json;
    console.log(`[strangers ${attack}] sent ${JSON.stringify(sent)}`);
  }
  const sum = JSON.parse(await load.waitForLine(/"tag"/, loadMs + 600_000)) as LoadSummary;
  const { latencyHist: _h, writes: _w, unacked: _u, clientIds: _c, lastRequestIds: _l, staleSamples: _s, ...brief } = sum;
  console.log(`[strangers ${attack}] load: ${JSON.stringify(brief)}`);

  // No session change, ever: the stranger's sessions never reach a replica.
  // A leader change is a view change too, but nothing the stranger sends
  // can ask for one (its peer frames are cut off before delivery, and a
  // replica hears SEQUENCED only from the sequencer); on a loaded 2-CPU
  // machine a follower may time a starved leader out, and the same load
  // without any stranger shows those too. So they are counted and printed,
  // not asserted; the README says so for the demo as well.
  const changes = c.replicas.map((p, i) => statusLines(p!).slice(viewsBefore[i]));
  const stats = c.replicas.map((p) => lines(p!, 'stats').at(-1));
  const sessions = changes.flat().map((l) => l.view.session);
  expect(sessions.filter((x) => x !== first.session), JSON.stringify({ changes, transport: stats.map((s) => s?.['transport']) })).toEqual([]);
  const leaderChanges = new Set(changes.flat().map((l) => l.view.leaderNum)).size;
  // Soft: a stalled window must not hide what the other checks say.
  expect.soft({ timeouts: sum.timeouts, errors: sum.errors }).toEqual({ timeouts: 0, errors: 0 });
  expect(sum.ok).toBeGreaterThan(100);

  // Every acknowledged write reads back.
  const expected = new Map<string, string>();
  for (const w of sum.writes) {
    const e = expected.get(w.key);
    if (!e || issueNo(w.value) > issueNo(e)) expected.set(w.key, w.value);
  }
  const keysFile = join(c.dir, 'keys.txt');
  writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
  const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000']);
  expect.soft(read.status, read.stderr).toBe(0);
  const got = read.status === 0 ? (JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] }) : null;

  // Logs identical, in the one session, and nothing of the stranger in them.
  const dumps = await c.settledDumps(30_000);
  const shape = dumps.map((d) => ({ id: d.replicaId, committed: d.committed, executed: d.executed, view: d.view, status: d.status, entries: d.entries.length }));
  for (const d of dumps) {
    expect(d, JSON.stringify(shape)).toMatchObject({ committed: dumps[0]!.committed, executed: dumps[0]!.committed, conflicts: 0, status: 'normal', view: { session: first.session } });
    expect(d.stateDigest).toBe(dumps[0]!.stateDigest);
    expect(d.entries.filter((e) => e.session !== first.session)).toEqual([]);
    // The forgeries carry the stranger's client id; the fuzz also sends
    // REQUESTs, which a stranger may (clients are untrusted: they cost a
    // slot and an execution), so there every entry is counted against the
    // kernel's stamps instead.
    if (attack === 'forge') expect(d.entries.filter((e) => e.clientId === STRANGER_CLIENT)).toEqual([]);
  }
  const bySlot = new Map<number, string>();
  const mismatches: string[] = [];
  for (const d of dumps) {
    for (const e of d.entries) {
      const s = JSON.stringify(e);
      const prev = bySlot.get(e.slot);
      if (prev !== undefined && prev !== s && mismatches.length < 5) mismatches.push(`slot ${e.slot}: ${prev} vs ${s}`);
      bySlot.set(e.slot, s);
    }
  }
  expect(mismatches).toEqual([]);

  // Nobody spoke for the load's clients: every committed entry under one of
  // their ids carries a request id that client handed out (the stranger's
  // impersonations go ahead of them; a client id is bound to its first
  // source, docs/trust-model.md "Client ids").
  const lastIssued = new Map(sum.clientIds.map((id, i) => [id, BigInt(sum.lastRequestIds[i]!)]));
  const spokenFor = dumps[0]!.entries.filter((e) => !e.noop && lastIssued.has(e.clientId) && BigInt(e.requestId) > lastIssued.get(e.clientId)!);
  expect(spokenFor.slice(0, 5), `${spokenFor.length} entries under a load client's id it never sent`).toEqual([]);

  // The fuzz's REQUESTs under the stranger's own client id execute like any
  // client's (clients are untrusted: a slot and an execution each), so a
  // mutated put of an overheard key is a write by another client: a read
  // of that key may then differ from the load's last acknowledged write.
  // Every such read must be explained by a committed write of a client
  // that is not the load's; anywhere else, and in the other attacks, reads
  // are exact.
  const ours = new Set(sum.clientIds);
  const foreignKeys = new Set<string>();
  for (const e of dumps[0]!.entries) {
    if (e.noop || e.control || ours.has(e.clientId)) continue;
    const op = decodeOp(Buffer.from(e.op, 'hex'));
    if (op && op.kind !== 'get') foreignKeys.add(Buffer.from(op.key).toString());
  }
  if (attack === 'fuzz') {
    expect.soft(sum.staleSamples.length, 'every stale read sampled, so every one is checked').toBe(sum.staleReads);
    expect.soft(sum.staleSamples.filter((x) => !foreignKeys.has(x.key))).toEqual([]);
  } else {
    expect.soft(sum.staleReads).toBe(0);
  }
  // Every acknowledged write reads back (but where another client wrote after it).
  expect(got?.failed).toEqual([]);
  expect([...expected].filter(([k, v]) => got?.values[k] !== v && !(attack === 'fuzz' && foreignKeys.has(k)))).toEqual([]);
  const noops = dumps[0]!.entries.filter((e) => e.noop).length;
  const strangerEntries = dumps[0]!.entries.filter((e) => e.clientId === STRANGER_CLIENT).length;

  // Where the stranger's datagrams ended: counted, refused.
  // On timeouts the counters say where the slots went: a stamped request
  // the leader never ACKs (a stale request id) holds its slot until the
  // retries give up (giveUps), and under backpressure the window then
  // stalls (drop_backpressure).
  const agentStopped = await c.stopAgent('SIGTERM');
  const k = (agentStopped?.['counters'] ?? {}) as Record<string, string>;
  const repair = (agentStopped?.['repair'] ?? {}) as Json;
  const refusedBy = stats.map((s) => ({ sources: s?.['transport']?.['sources'], ignored: s?.['transport']?.['ignored'], peerRejected: s?.['transport']?.['peer']?.['rejected'] }));
  console.log(
    `[strangers ${attack}] replicas ${JSON.stringify(shape)} leader changes ${leaderChanges}, noops ${noops}, entries with the stranger's client id (REQUESTs) ${strangerEntries}; refused: replicas ${JSON.stringify(refusedBy)}, ` +
      `agent ${JSON.stringify({ drop_ack_stranger: k['drop_ack_stranger'], drop_ack_session: k['drop_ack_session'], drop_solicit_stranger: k['drop_solicit_stranger'], drop_client_source: k['drop_client_source'], control_refused: k['control_refused'], drop_solicit_rate: k['drop_solicit_rate'], drop_backpressure: k['drop_backpressure'], window_overwrite: k['window_overwrite'], sequenced: k['sequenced'], reply: k['reply'], repairRefused: repair['refused'], retransmit: agentStopped?.['retransmit'] })}`,
  );
  // Every committed slot is a seq the sequencer stamped: nothing forged
  // took a slot, nothing stamped was lost (no view change, no loss here).
  expect({ committed: dumps[0]!.committed, noops }).toEqual({ committed: Number(k['sequenced']), noops: 0 });
  if (attack === 'forge') {
    // The forged ACKs reached the kernel and were refused there; every
    // replica refused forged SEQUENCED/FLUSH and the peer connections.
    expect(Number(k['drop_ack_stranger'])).toBeGreaterThan(0);
    expect(Number(k['drop_solicit_stranger'])).toBeGreaterThan(0);
    expect(repair['refused']?.['NOT_MEMBER']).toBeGreaterThan(0);
    // The impersonations (4 per overheard client id, from here and from
    // each member's address) were refused at the sequencer: bound ids.
    expect(Number(k['drop_client_source'])).toBeGreaterThanOrEqual(Number(sent?.['sent']?.['impersonated requests'] ?? 1) * (1 + t.receivers.length));
    for (const r of refusedBy) {
      expect(r.sources?.strangers).toBeGreaterThan(0);
      expect(r.peerRejected).toBeGreaterThan(0);
    }
  }
  if (attack === 'replay') {
    // Every replay came from the stranger's address under a load client's
    // bound id: refused before it took a slot.
    expect(Number(k['drop_client_source'])).toBe(Number(sent?.['sent']?.['replayed requests']));
  }
}

describePrivileged('a stranger on the LAN (no key)', () => {
  it('forged SEQUENCED (largest and random sessions), FLUSH, ACKs, solicits, repair and peer frames change nothing', async () => {
    await underAttack('forge', { seed: 0, count: 0 });
  }, 300_000);

  it('replays of overheard REQUESTs change nothing and stall nothing', async () => {
    await underAttack('replay', { seed: 0, count: 0 });
  }, 300_000);

  it('a seeded bounded fuzz of every port changes nothing', async () => {
    const seed = process.env['XSEQ_STRANGER_SEED'] ? Number(process.env['XSEQ_STRANGER_SEED']) : Math.floor(Math.random() * 0x7fffffff);
    const count = process.env['XSEQ_STRANGER_COUNT'] ? Number(process.env['XSEQ_STRANGER_COUNT']) : 20_000;
    console.log(`[strangers fuzz] seed ${seed}, ${count} datagrams (replay: XSEQ_STRANGER_SEED=${seed} XSEQ_STRANGER_COUNT=${count})`);
    await underAttack(count > 0 ? 'fuzz' : 'none', { seed, count });
  }, 900_000);
});

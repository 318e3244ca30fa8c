// The KV store (examples/kv) on three replicas behind the real sequencer,
// under 5% loss on every replica link (fast path, repair and the TCP slow
// path alike), while clients keep writing: a replica killed with -9 and
// restarted (it recovers from its peers before it acks anything), the agent
// killed with -9 and restarted (its pinned data path keeps stamping: same
// session, no view change), then the data path detached and re-created (a
// new session: the replicas change view). Afterwards every acknowledged
// write must read back, sit in the committed log at the position its
// certificate names, and the three replicas' committed logs and states
// must agree.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { decodeOp, MAX_VALUE } from '../examples/kv/ops.ts';
import type { CommittedLogDump, DumpedEntry } from '../examples/kv/committed-log.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
import { expectedValues, unreadable } from '../examples/kv/verify.ts';
import { addLinkLoss } from '../netns/loss.ts';
import type { NsProcess } from '../netns/topology.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const losses = kv.losses;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StatusLine {
  event: 'status';
  id: number;
  status: string;
  view: { leaderNum: number; session: number };
  leader: boolean;
  t: number;
}

function statusLines(p: NsProcess): StatusLine[] {
  return p
    .output()
    .stdout.split('\n')
    .filter((l) => l.includes('"event":"status"'))
    .map((l) => JSON.parse(l) as StatusLine);
}

function lastStatus(p: NsProcess): StatusLine | undefined {
  return statusLines(p).at(-1);
}

/** Each replica's newest stats line: counters for a failure message. */
function lastStats(c: KvCluster): unknown[] {
  return c.replicas.map((p) => {
    const l = p?.output().stdout.split('\n').filter((x) => x.includes('"event":"stats"')).at(-1);
    return l ? JSON.parse(l) : null;
  });
}

/** `detail`: what the failure message adds (which replica is where, and why). */
async function until(what: string, cond: () => boolean, timeoutMs: number, detail?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${JSON.stringify(detail())}` : ''}`);
    await sleep(100);
  }
}

/** Ops of the load started with the new session (step 3). */
const POST_OPS = 400;

describePrivileged('KV store on three replicas behind the XDP sequencer', () => {
  it('loss, replica crash, agent crash and a new session: acknowledged writes survive, logs agree', async () => {
    const t = (await kv.topology({ receivers: 3, clients: 2, mode: 'native' }));
    // The default policy (backpressure): every slot must free, also those of
    // seqs a replica settled without their request (truncated below its
    // checkpoint, or no-op'd), which it ACKs as settled (replica/acks.ts).
    // The window stays at its default (1024): a restarted agent re-sends
    // every slot of it some member never acked, and a larger one would bury
    // the recovered replica in them.
    const c = (kv.cluster(t, { dumps: true, replicaArgs: ['--stats-interval', '1000'] }));
    const first = await c.startAgent();
    expect(first.dataPath).toBe('created');
    await c.startReplicas();

    for (const r of t.receivers) {
      losses.push(addLinkLoss(t, r, 5, { direction: 'to' }), addLinkLoss(t, r, 5, { direction: 'from' }));
    }

    const loadMs = 40_000;
    const loads = ['cli', 'cli2'].map((role) =>
      c.spawnCli(role, ['load', '--duration-ms', String(loadMs), '--clients', '4', '--rate', '400', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--tag', role]),
    );
    const replica = (i: number) => c.replicas[i]!;
    await until('every replica normal in the agent\'s session', () => c.replicas.every((p) => p && lastStatus(p)?.status === 'normal' && lastStatus(p)?.view.session === first.session), 20_000);
    await sleep(4000);

    // Committed logs are dumped before each event that makes a replica
    // hold state without entries (its crash, then the view change of the
    // new session, which may install a newer checkpoint): together with the
    // final dumps they hold every committed slot, so every acknowledged
    // write can be position-checked, not only those still in a log.
    const earlier: CommittedLogDump[] = [];
    // 1. kill -9 the leader, restart it: it recovers from its peers.
    const leader = c.replicas.findIndex((p) => lastStatus(p!)?.leader);
    expect(leader).toBeGreaterThanOrEqual(0);
    earlier.push(...(await c.dumps()));
    await c.crashReplica(leader);
    await sleep(2000);
    const restarted = await c.startReplica(leader);
    expect(restarted.output().stdout).toMatch(/"event":"listening".*"recovering":true/);
    await until('the restarted replica to recover', () => lastStatus(restarted)?.status === 'normal', 30_000);
    expect(statusLines(restarted)[0]?.status).toBe('recovering');
    await sleep(3000);

    // 2. kill -9 the agent, restart it: the pinned data path kept stamping.
    const viewsBefore = c.replicas.map((p) => statusLines(p!).length);
    const killedAt = Date.now();
    await c.stopAgent('SIGKILL');
    await sleep(1000);
    const adopted = await c.startAgent();
    expect(adopted).toMatchObject({ dataPath: 'adopted', session: first.session });
    await sleep(3000);
    // No replica changed status or view meanwhile.
    const changes = c.replicas.map((p, i) => statusLines(p!).slice(viewsBefore[i]));
    expect(changes, JSON.stringify({ agentKilledAt: killedAt, changes, stats: lastStats(c) })).toEqual([[], [], []]);

    // 3. Detach the data path and start again: a new session, a view change.
    earlier.push(...(await c.dumps()));
    await c.stopAgent('SIGTERM');
    expect(c.detach()).toMatch(/detached XDP link/);
    const fresh = await c.startAgent();
    expect(fresh.dataPath).toBe('created');
    expect(fresh.session).toBeGreaterThan(first.session);
    // Replicas learn of a new session only from its traffic (the first
    // SEQUENCED of it starts the view change). The duration load may be
    // over by now on a slow machine (steps 1 and 2 wait for process starts),
    // so a load of a count of ops starts here: the new session always
    // carries writes, checked below like the others.
    const post = c.spawnCli('cli2', ['load', '--ops', String(POST_OPS), '--clients', '4', '--rate', '400', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--tag', 'post']);
    await until('every replica normal in the new session', () => c.replicas.every((p) => lastStatus(p!)?.status === 'normal' && lastStatus(p!)?.view.session === fresh.session), 30_000, () => ({
      session: fresh.session,
      loadsDone: [...loads, post].map((p) => p.output().stdout.includes('"tag"')),
      statuses: c.replicas.map((p) => statusLines(p!).slice(-4)),
      stats: lastStats(c),
    }));

    const sums = await Promise.all([...loads, post].map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, loadMs + 60_000)) as LoadSummary));
    for (const l of losses.splice(0)) {
      expect(l.dropped(), 'the loss was real').toBeGreaterThan(0);
      l.remove();
    }
    const brief = sums.map(({ latencyHist: _h, writes: _w, ...s }) => s);
    console.log(`[kv] load: ${JSON.stringify(brief)}`);
    for (const s of sums) {
      expect(s.staleReads, JSON.stringify(s.staleSamples)).toBe(0);
      expect(s.errors).toBe(0);
      // Writes kept being answered through all of it (the new session's too).
      expect(s.writes.length).toBeGreaterThan(s.tag === 'post' ? 0 : 200);
    }

    // Every acknowledged write reads back: the lane's last acked write to
    // the key, unless a later write of that lane timed out (it may have
    // executed after all).
    const expected = expectedValues(sums);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000']);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(unreadable(expected, got.values), 'acknowledged writes that did not read back').toEqual([]);

    // The replicas converge: same commit point, nothing executed past it.
    const dumps = await c.settledDumps(30_000);
    const shape = dumps.map((d) => ({ id: d.replicaId, committed: d.committed, executed: d.executed, view: d.view, gaps: d.gaps, conflicts: d.conflicts, entries: d.entries.length }));
    console.log(`[kv] replicas: ${JSON.stringify(shape)}`);
    for (const d of dumps) {
      expect(d, JSON.stringify(shape)).toMatchObject({ committed: dumps[0]!.committed, executed: dumps[0]!.committed, conflicts: 0, status: 'normal' });
      expect(d.stateDigest).toBe(dumps[0]!.stateDigest);
      expect(d.view.session).toBe(fresh.session);
    }

    // Committed logs: wherever two replicas hold a slot they hold the same
    // entry, and together they hold every slot.
    const bySlot = new Map<number, string>();
    const holders = new Map<number, number>();
    const mismatches: string[] = [];
    for (const d of dumps) {
      for (const e of d.entries) {
        const s = JSON.stringify(e);
        const prev = bySlot.get(e.slot);
        if (prev !== undefined && prev !== s && mismatches.length < 5) mismatches.push(`slot ${e.slot}: ${prev} vs ${s} (replica ${d.replicaId})`);
        bySlot.set(e.slot, s);
        holders.set(e.slot, (holders.get(e.slot) ?? 0) + 1);
      }
    }
    expect(mismatches).toEqual([]);
    const committed = dumps[0]!.committed;
    const unheld = [];
    for (let s = 1; s <= committed; s++) if (!holders.has(s)) unheld.push(s);
    expect(unheld.slice(0, 10)).toEqual([]);
    // Past the last state transfer anywhere (the restarted replica's
    // recovery at least), every replica holds every slot.
    expect(dumps[leader]!.gaps.length).toBeGreaterThan(0);
    const lastGap = Math.max(...dumps.map((d) => d.gaps.at(-1)?.to ?? 0));
    const partial = [];
    for (let s = lastGap + 1; s <= committed; s++) if (holders.get(s) !== 3) partial.push(s);
    expect(lastGap).toBeLessThan(committed);
    expect(partial.slice(0, 10)).toEqual([]);

    // Each acknowledged write sits, not as a no-op, at the log position its
    // certificate names: every one of them, found in the final dumps or in
    // those taken before the crash and the view change. An earlier dump
    // must agree with the final ones wherever both hold a position.
    const byPosition = new Map<string, DumpedEntry>();
    const disagree: string[] = [];
    for (const d of [...dumps, ...earlier]) {
      for (const e of d.entries) {
        const key = `${e.session}/${e.seq}`;
        const prev = byPosition.get(key);
        if (prev && JSON.stringify(prev) !== JSON.stringify(e) && disagree.length < 5) disagree.push(`${key}: ${JSON.stringify(prev)} vs ${JSON.stringify(e)} (replica ${d.replicaId})`);
        if (!prev) byPosition.set(key, e);
      }
    }
    expect(disagree).toEqual([]);
    const misplaced: string[] = [];
    const unfound: string[] = [];
    let placed = 0;
    for (const s of sums) {
      for (const w of s.writes) {
        const e = byPosition.get(`${w.session}/${w.seq}`);
        if (!e) {
          if (unfound.length < 5) unfound.push(JSON.stringify(w));
          continue;
        }
        placed++;
        const op = e.noop ? null : decodeOp(Buffer.from(e.op, 'hex'));
        const ok = op !== null && op.kind !== 'get' && op.kind === w.kind && Buffer.from(op.key).toString() === w.key && Buffer.from(op.value).toString() === w.value;
        if (!ok && misplaced.length < 5) misplaced.push(`${JSON.stringify(w)} -> ${JSON.stringify(e)}`);
      }
    }
    expect(misplaced).toEqual([]);
    const written = sums.reduce((a, x) => a + x.writes.length, 0);
    expect(unfound, `acknowledged writes in no dumped log (${placed} of ${written} found)`).toEqual([]);
    expect(placed).toBe(written);

    const agentStopped = await c.stopAgent('SIGTERM');
    const k = (agentStopped?.['counters'] ?? {}) as Record<string, string>;
    console.log(`[kv] agent (last session): ${JSON.stringify({ reply: k['reply'], sequenced: k['sequenced'], ack_late: k['ack_late'], window_overwrite: k['window_overwrite'], retransmit: agentStopped?.['retransmit'], repair: agentStopped?.['repair'] })}`);
    expect(k['drop_ack_stranger']).toBe('0');
    for (const p of c.replicas) {
      await p!.stop('SIGTERM', 10_000);
      const stopped = JSON.parse(p!.output().stdout.split('\n').find((l) => l.includes('"event":"stopped"'))!) as { acksWhileRecovering: number };
      expect(stopped.acksWhileRecovering).toBe(0);
    }
  }, 300_000);

  it('the CLI end to end; with no loss every op is answered by its first REPLY, results of the largest size included', async () => {
    const t = (await kv.topology({ receivers: 3, clients: 1, mode: 'native' }));
    const c = (kv.cluster(t));
    await c.startAgent();
    await c.startReplicas();
    const cli = (args: string[]) => {
      const r = c.cli('cli', [...args, '--timeout-ms', '20000']);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    expect(cli(['get', 'k'])).toEqual({ key: 'k', found: false, value: null });
    expect(cli(['cas', '--absent', 'k', 'one'])).toEqual({ swapped: true, current: 'one' });
    expect(cli(['cas', 'k', 'two', 'three'])).toEqual({ swapped: false, current: 'one' });
    expect(cli(['put', 'k', 'two'])).toMatchObject({ ok: true });
    expect(cli(['get', 'k'])).toEqual({ key: 'k', found: true, value: 'two' });
    const big = 'v'.repeat(MAX_VALUE);
    expect(cli(['put', 'big', big])).toMatchObject({ ok: true });
    expect(cli(['get', 'big'])).toEqual({ key: 'big', found: true, value: big });
    // The largest result the store can give: a mismatch carrying a 200-byte value.
    expect(cli(['cas', 'big', 'x', 'y'])).toEqual({ swapped: false, current: big });

    // Most answers here are the leader's result grown into a REPLY from a
    // follower's ACK; without the ACK padding some of those were lost in
    // the sequencer's XDP and had to be retried by the client.
    const load = c.cli('cli', ['load', '--ops', '3000', '--clients', '4', '--keys', '16', '--mix', '60:35:5', '--value-size', String(MAX_VALUE), '--retry-ms', '1000', '--timeout-ms', '20000']);
    expect(load.status, load.stderr).toBe(0);
    const s = JSON.parse(load.stdout) as LoadSummary & { transport: { requests: number; replies: number } };
    expect({ ok: s.ok, timeouts: s.timeouts, staleReads: s.staleReads, requests: s.transport.requests, replies: s.transport.replies }).toEqual({
      ok: 3000,
      timeouts: 0,
      staleReads: 0,
      requests: 3000,
      replies: 3000,
    });
  }, 180_000);
});

// Replayed REQUESTs under the default policy (backpressure): a stranger
// re-sends a real client's requests (its client id, request ids it already
// used, each a KV put) at the sequencer of a running KV cluster. Each replay
// may cost one stamped slot and no execution: the leader answers it from its
// client table (a stale mark for an old id, the cached result for the
// client's latest), every member ACKs it, so its slot completes at once
// (before: no REPLY, 5 re-sends and a held slot each), and the clients'
// load afterwards goes on.
import { expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { SEQ_PORT } from '../examples/kv/netns-cluster.ts';
import type { ReplaySummary } from '../tools/replay.ts';
import { join } from 'node:path';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const REPLAY = join(import.meta.dirname, '..', 'tools', 'replay.ts');

interface AgentStopped {
  counters: Record<string, string>;
  retransmit?: { retransmissions: number; giveUps: number; probes: number };
}

describePrivileged('replayed REQUESTs under the default policy', () => {
  it('each replay costs at most one slot, no execution, no re-send schedule, no stall', async () => {
    const t = await kv.topology({ receivers: 3, clients: 2, mode: 'native' });
    const c = kv.cluster(t, { replicaArgs: ['--stats-interval', '1000'] });
    await c.startAgent();
    await c.startReplicas();
    const ops = 600;
    const before = JSON.parse(await c.spawnCli('cli', ['load', '--ops', String(ops), '--clients', '2', '--keys', '16', '--tag', 'before']).waitForLine(/"tag"/, 120_000)) as LoadSummary;
    expect(before).toMatchObject({ ok: ops, timeouts: 0 });

    // The stranger on cli2 replays both lanes' request ids 1..per, which
    // both clients used (each did about ops/2 requests).
    const per = 200;
    const replays = await Promise.all(
      before.clientIds.map(async (id) => {
        const p = t.spawn('cli2', process.execPath, ['--import', 'tsx', REPLAY, '--seq-addr', t.ip('seq'), '--port', String(SEQ_PORT), '--client-id', id, '--count', String(per), '--rate', '2000', '--bind-addr', t.ip('cli2')]);
        return JSON.parse(await p.waitForLine(/"sent"/, 60_000)) as ReplaySummary;
      }),
    );
    const after = JSON.parse(await c.spawnCli('cli', ['load', '--ops', String(ops), '--clients', '2', '--keys', '16', '--tag', 'after']).waitForLine(/"tag"/, 120_000)) as LoadSummary;
    // Nothing of the replays executed: the key they put is absent.
    const got = c.cli('cli', ['get', 'replayed']);
    const stopped = (await c.stopAgent('SIGTERM')) as AgentStopped | null;
    const k = stopped?.counters ?? {};
    const report = { replays, after: { ok: after.ok, timeouts: after.timeouts }, get: got.stdout.trim(), kernel: { sequenced: k['sequenced'], reply: k['reply'], busy: k['busy'] }, retransmit: stopped?.retransmit };
    console.log(`[replay] ${JSON.stringify(report)}`);

    const total = replays.length * per;
    const sum = (f: (r: ReplaySummary) => number) => replays.reduce((a, r) => a + f(r), 0);
    // Every replay that was stamped (not refused BUSY) got exactly one
    // REPLY, a stale mark: its slot completed, nothing executed.
    expect(sum((r) => r.replied) + sum((r) => r.busy), JSON.stringify(report)).toBe(total);
    expect(sum((r) => r.stale), JSON.stringify(report)).toBe(sum((r) => r.replied));
    expect({ duplicates: sum((r) => r.duplicates), cached: sum((r) => r.cached), other: sum((r) => r.other) }).toEqual({ duplicates: 0, cached: 0, other: 0 });
    expect(got.status, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ key: 'replayed', found: false });
    // Every stamped request, replays included, got its REPLY (a silent
    // leader left every replay without one, its slot held through the
    // whole retry schedule). Give-ups are reported, not asserted: on a
    // loaded machine a member can lag past the schedule.
    expect(stopped, JSON.stringify(report)).not.toBeNull();
    expect(k['reply'], JSON.stringify(report)).toBe(k['sequenced']);
    expect(after, JSON.stringify(report)).toMatchObject({ ok: ops, timeouts: 0, errors: 0, staleReads: 0 });
  }, 300_000);
});

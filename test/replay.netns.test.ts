// Replayed REQUESTs under the default policy (backpressure): a stranger
// re-sends a real client's requests (its client id, request ids it already
// used, each a KV put) at the sequencer of a running KV cluster.
//  - From its own host: the sequencer binds a client id to the source
//    address that first used it (no key; docs/trust-model.md "Client
//    ids"), so every replay is dropped before it takes a slot, unanswered.
//  - From the client's own address and port (a stranger that can forge
//    them): each replay may cost one stamped slot and no execution: the
//    leader answers it from its client table (a stale mark for an old id,
//    the cached result for the client's latest), every member ACKs it, so
//    its slot completes at once (before: no REPLY, 5 re-sends and a held
//    slot each).
// Either way the clients' load afterwards goes on.
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
    // One socket for both lanes, at a known port: the forging replayer below sends from it.
    const clientPort = 47123;
    const first = c.spawnCli('cli', ['load', '--ops', String(ops), '--clients', '2', '--keys', '16', '--tag', 'before', '--bind-port', String(clientPort)]);
    const before = JSON.parse(await first.waitForLine(/"tag"/, 120_000)) as LoadSummary;
    await first.exited; // its port is free for the forging replayer
    expect(before).toMatchObject({ ok: ops, timeouts: 0 });

    // Both lanes' request ids 1..per, which both clients used (each did
    // about ops/2 requests), replayed from `role` (and `port`).
    const per = 200;
    // One client id after the other: each replayer binds the port.
    const replay = async (role: string, port: number) => {
      const out: ReplaySummary[] = [];
      for (const id of before.clientIds) {
        const p = t.spawn(role, process.execPath, ['--import', 'tsx', REPLAY, '--seq-addr', t.ip('seq'), '--port', String(SEQ_PORT), '--client-id', id, '--count', String(per), '--rate', '2000', '--bind-addr', t.ip(role), '--bind-port', String(port)]);
        out.push(JSON.parse(await p.waitForLine(/"sent"/, 60_000)) as ReplaySummary);
        await p.exited;
      }
      return out;
    };
    // From the stranger's host: nothing answered, nothing stamped.
    const refused = await replay('cli2', 0);
    expect(refused.map((r) => ({ sent: r.sent, replied: r.replied, busy: r.busy, invalid: r.invalid }))).toEqual(refused.map(() => ({ sent: per, replied: 0, busy: 0, invalid: 0 })));
    // From the client's own address and port (the load has exited).
    const replays = await replay('cli', clientPort);
    const after = JSON.parse(await c.spawnCli('cli', ['load', '--ops', String(ops), '--clients', '2', '--keys', '16', '--tag', 'after']).waitForLine(/"tag"/, 120_000)) as LoadSummary;
    // Nothing of the replays executed: the key they put is absent.
    const got = c.cli('cli', ['get', 'replayed']);
    const stopped = (await c.stopAgent('SIGTERM')) as AgentStopped | null;
    const k = stopped?.counters ?? {};
    const report = { refused: k['drop_client_source'], replays, after: { ok: after.ok, timeouts: after.timeouts }, get: got.stdout.trim(), kernel: { sequenced: k['sequenced'], reply: k['reply'], busy: k['busy'] }, retransmit: stopped?.retransmit };
    console.log(`[replay] ${JSON.stringify(report)}`);

    const total = replays.length * per;
    const sum = (f: (r: ReplaySummary) => number) => replays.reduce((a, r) => a + f(r), 0);
    // Every replay that was stamped (not refused BUSY) got exactly one
    // REPLY, a stale mark: its slot completed, nothing executed.
    expect(Number(k['drop_client_source']), JSON.stringify(report)).toBe(total);
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

// Two sequencers (Hydra) under a KV load with 5% loss on every replica
// link: sequencer host 1 dies (link down + kill -9 + detach --force); the
// load continues through sequencer 0 once the replicas agreed on host 1's
// last seq. Then host 1 comes back under the same id with a fresh data path
// (a new session) and stamps again. Every acknowledged write reads back,
// the logs are identical, and nothing of host 1's old session sits after
// the place the replicas ended it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { failoverTiming } from '../examples/kv/failover-timing.ts';
import type { LoadSummary } from '../examples/kv/load.ts';
import { compareLogs, expectedValues, unreadable } from '../examples/kv/verify.ts';
import { addLinkLoss } from '../netns/loss.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const losses = kv.losses;
const LOAD_MS = 14_000;

describePrivileged('Hydra: a sequencer host dies for good, and comes back under its id', () => {
  it('5 percent loss: the load continues through the survivor; the dead host rejoins with a new session; all writes read back, logs identical', async () => {
    const t = await kv.topology({ receivers: 3, clients: 1, sequencers: 2, mode: 'native' });
    const c = kv.cluster(t, { dumps: true, flushIntervalMs: 2, agentArgs: ['--policy', 'overwrite'] });
    expect(c.hydra).toBe(true);
    await c.startAgent(0);
    const first = await c.startAgent(1);
    await c.startReplicas();
    for (const r of t.receivers) losses.push(addLinkLoss(t, r, 5, { direction: 'to' }), addLinkLoss(t, r, 5, { direction: 'from' }));

    const load = c.spawnCli('cli', ['load', '--duration-ms', String(LOAD_MS), '--clients', '4', '--keys', '32', '--timeout-ms', '20000', '--policy', 'round-robin', '--tag', 'hf', '--completions']);
    await c.replicas[0]!.waitForLine((l) => l.includes('"event":"status"') && l.includes('"session"'), 60_000);
    await sleep(3_000);
    const killAt = await c.killHost(1, { detach: true });
    await sleep(5_000);
    // Host 1 back under the same id: a fresh data path, so a new session.
    c.linkUp(1);
    const again = await c.startAgent(1);
    expect(again.dataPath).toBe('created');
    expect(again.session).toBeGreaterThan(first.session);

    const sum = JSON.parse(await load.waitForLine(/"tag"/, LOAD_MS + 60_000)) as LoadSummary;
    for (const r of c.replicas) for (const l of r?.output().stdout.split('\n') ?? []) if (l.includes('"event":"sequencers"')) console.log(`[hydra-failover] ${l}`);
    for (const l of losses.splice(0)) l.remove();
    const f = failoverTiming(sum.completedAtMs!, killAt);
    console.log(`[hydra-failover] ${sum.ok} ops ok; resumed ${f.failoverMs} ms after the kill; ops/s ${f.opsPerSecBefore} before, ${f.opsPerSecAround} around`);
    expect(sum.errors).toBe(0);
    expect(sum.timeouts).toBe(0);
    expect(sum.staleReads).toBe(0);

    const expected = expectedValues([sum]);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000']);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(unreadable(expected, got.values)).toEqual([]);

    const dumps = await c.settledDumps(30_000);
    const cmp = compareLogs(dumps);
    expect(cmp.problems).toEqual([]);
    expect(cmp.identical).toBe(true);
    // Sequencer 1's entries: the old session's all before the replicas' end
    // of it, then the start of the new one; nothing of the old one after.
    const e = dumps[0]!.entries.filter((x) => x.sequencerId === 1);
    const end = e.findIndex((x) => x.end);
    const firstNew = e.findIndex((x) => x.streamSession === again.session);
    expect(end, 'the replicas ended the dead session').toBeGreaterThan(0);
    expect(e[end]!.streamSession).toBe(first.session);
    expect(firstNew).toBe(end + 1);
    expect(e.slice(firstNew).some((x) => x.streamSession === first.session)).toBe(false);
    expect(e.slice(firstNew).filter((x) => !x.noop).length, 'requests stamped in the new session merged').toBeGreaterThan(0);
  }, 300_000);

  it('an operator removes the dead host by hand (remove-sequencer): the load resumes without waiting for the timeout', async () => {
    const t = await kv.topology({ receivers: 3, clients: 1, sequencers: 2, mode: 'native' });
    const c = kv.cluster(t, { dumps: true, flushIntervalMs: 2, agentArgs: ['--policy', 'overwrite'], protocol: '{"deadSequencerUs":60000000}' });
    await c.startAgent(0);
    await c.startAgent(1);
    await c.startReplicas();
    await c.killHost(1, { detach: true });
    const rm = c.cli('cli', ['remove-sequencer', '--id', '1', '--timeout-ms', '20000'], 60_000, [0]);
    expect(rm.status, rm.stderr).toBe(0);
    const put = c.cli('cli', ['put', 'after-removal', 'v', '--timeout-ms', '20000'], 60_000, [0]);
    expect(put.status, put.stderr).toBe(0);
    const cmp = compareLogs(await c.settledDumps(30_000));
    expect(cmp.identical).toBe(true);
  }, 300_000);
});

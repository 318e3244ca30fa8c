// One sequencer plus a standby, real processes in network namespaces with
// 5% loss on every replica link: the active sequencer host dies (link down
// + kill -9) under a KV load whose clients list both (--policy failover).
// The load continues through the standby (its session is above the
// active's, so the replicas move to it by a view change); the old active
// that comes back with its pinned data path stamps a lower session and
// nothing of it is ever delivered; re-created (detach --force, a fresh
// agent) it takes a session above the standby's by the pair rule and
// serves again. Every acknowledged write reads back and the logs are
// identical. The failover time is printed, not asserted (bench F1 reports it).
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
const LOAD_MS = 12_000;
const KILL_AFTER_MS = 3_000;

describePrivileged('one sequencer plus a standby: the active host dies', () => {
  it('5 percent loss: the load continues through the standby, the old active cannot split the order, all writes read back, logs identical', async () => {
    const t = await kv.topology({ receivers: 3, clients: 1, sequencers: 2, mode: 'native' });
    // A pair needs flushes: they are the active's heartbeat.
    const c = kv.cluster(t, { dumps: true, standby: true, flushIntervalMs: 2 });
    expect(c.pair).toBe(true);
    const active = await c.startAgent(0);
    const waiting = await c.startAgent(1);
    // The pair rule: the active's session is even; the standby takes none until it takes over.
    expect(active.session % 2).toBe(0);
    expect(waiting.session).toBe(0);
    await c.startReplicas();
    for (const r of t.receivers) losses.push(addLinkLoss(t, r, 5, { direction: 'to' }), addLinkLoss(t, r, 5, { direction: 'from' }));

    const load = c.spawnCli('cli', ['load', '--duration-ms', String(LOAD_MS), '--clients', '4', '--keys', '32', '--timeout-ms', '20000', '--policy', 'failover', '--tag', 'sb', '--completions']);
    // The load is under way (the CLI takes seconds to start on a busy host)
    // once the replicas have moved to the active's session.
    await c.replicas[0]!.waitForLine((l) => l.includes('"event":"status"') && l.includes(`"session":${active.session}`), 60_000);
    await sleep(KILL_AFTER_MS);
    const early = c.agents[1]!.output().stdout.includes('"event":"takeover"');
    const killAt = await c.killHost(0, { detach: false });
    const took = JSON.parse(await c.agents[1]!.waitForLine(/"event":"takeover"/, 20_000)) as { session: number; quietMs: number; atMs: number };
    // atMs: the takeover's wall-clock time (epoch ms).
    const standby = { session: took.session };
    console.log(`[standby] took over ${early ? 'BEFORE the kill (active silent and clients knocking)' : `${took.atMs - killAt} ms after the kill`}, quiet ${took.quietMs} ms, session ${took.session}`);
    // Odd, above the active's.
    expect(standby.session % 2).toBe(1);
    expect(standby.session).toBeGreaterThan(active.session);
    // The standby idles until clients fail over; by now it is past that.
    await sleep(3_000);
    // The old active's host comes back: its pinned data path stamps on in the old session.
    c.linkUp(0);
    const old = c.cli('cli', ['put', 'from-old-active', 'x', '--timeout-ms', '2000'], 60_000, [0]);
    const statusLines = () =>
      c.replicas.map((p, i) => `replica ${i}: ` + (p?.output().stdout ?? '').split('\n').filter((l) => l.includes('"event":"status"')).map((l) => { const o = JSON.parse(l) as { status: string; view: { leaderNum: number; session: number }; t: number }; return `${o.t - killAt}ms:${o.status}/${o.view.leaderNum}/${o.view.session}`; }).join(' '));
    expect(old.status, `${old.stdout} ${old.stderr}\n${statusLines().join('\n')}\nstandby: ${c.agents[1]!.output().stdout.split('\n').filter((l) => /takeover|standby/.test(l)).join('\n')}`).toBe(1);
    expect(old.stderr).toMatch(/not certified/);

    const sum = JSON.parse(await load.waitForLine(/"tag"/, LOAD_MS + 60_000)) as LoadSummary & { transport: { busy: number } };
    console.log(`[standby] load: ${sum.ops} ops, ${sum.timeouts} timeouts, ${sum.transport.busy} BUSY`);
    for (const l of losses.splice(0)) {
      expect(l.dropped(), 'the loss was real').toBeGreaterThan(0);
      l.remove();
    }
    const f = failoverTiming(sum.completedAtMs!, killAt, early ? {} : { survivorFromMs: took.atMs });
    const buckets = Array.from({ length: 40 }, (_, i) => sum.completedAtMs!.filter((x) => x >= killAt - 1000 + i * 250 && x < killAt - 750 + i * 250).length);
    console.log(`[standby] ops per 250 ms from 1 s before the kill: ${buckets.join(' ')}`);
    for (const [i, p] of c.replicas.entries()) {
      const st = (p?.output().stdout ?? '').split('\n').filter((l) => l.includes('"event":"status"')).map((l) => { const o = JSON.parse(l) as { status: string; view: { leaderNum: number; session: number }; t: number }; return `${o.t - killAt}ms:${o.status}/${o.view.leaderNum}/${o.view.session}`; });
      console.log(`[standby] replica ${i}: ${st.join(' ')}`);
    }
    if (sum.timeouts) {
      const st = await c.stopAgent('SIGTERM', 1);
      console.log(`[standby] DIAG standby agent stopped: ${JSON.stringify(st)}`);
      for (const [i, p] of c.replicas.entries()) {
        p?.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 1500));
        console.log(`[standby] DIAG replica ${i}: ${(p?.output().stdout ?? '').split('\n').filter((l) => l.includes('"stopped"')).join(' ')}`);
      }
    }
    console.log(`[standby] unacked ${JSON.stringify(sum.unacked)} timeouts ${JSON.stringify(sum.timeoutSamples)}`);
    console.log(`[standby] ${sum.ok} ops ok; failover ${f.failoverMs} ms (stall ${f.stallMs} ms); ops/s ${f.opsPerSecBefore} before, ${f.opsPerSecAround} around the kill`);
    expect(sum.errors, JSON.stringify({ ...sum, completedAtMs: undefined, writes: undefined })).toBe(0);
    expect(sum.timeouts).toBe(0);
    expect(sum.staleReads).toBe(0);
    expect(Number.isFinite(f.failoverMs), 'the load resumed after the kill').toBe(true);
    // Writes acknowledged after the kill were certified in the standby's session.
    expect(sum.writes.some((w) => w.session === standby.session)).toBe(true);
    expect(sum.writes.every((w) => w.session === active.session || w.session === standby.session)).toBe(true);

    // The old active is re-created (a fresh data path): the pair rule puts it above the standby.
    c.detach(0, true);
    const back = await c.startAgent(0);
    expect(back.dataPath).toBe('created');
    expect(back.session % 2).toBe(0);
    expect(back.session).toBeGreaterThan(standby.session);
    const put = c.cli('cli', ['put', 'after-rejoin', 'y', '--timeout-ms', '20000'], 60_000, [0]);
    expect(put.status, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true, session: back.session });

    // Every acknowledged write reads back; the old active's put never executed.
    const expected = expectedValues([sum]);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys(), 'from-old-active', 'after-rejoin'].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000', '--policy', 'failover']);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(got.values['from-old-active']).toBeNull();
    expect(got.values['after-rejoin']).toBe('y');
    expect(unreadable(expected, got.values)).toEqual([]);

    const dumps = await c.settledDumps(30_000);
    const cmp = compareLogs(dumps);
    console.log(`[standby] committed ${cmp.committed}, held by all ${cmp.slotsHeldByAll}, problems ${JSON.stringify(cmp.problems)}`);
    expect(cmp.problems).toEqual([]);
    expect(cmp.identical).toBe(true);
    // Nothing the old active stamped after the takeover is in any log: its
    // session's entries all come before the first of the standby's.
    const e = dumps[0]!.entries;
    const firstStandby = e.findIndex((x) => x.session === standby.session);
    expect(firstStandby).toBeGreaterThan(0);
    expect(e.slice(firstStandby).some((x) => x.session === active.session)).toBe(false);
    expect(dumps.every((d) => d.view.session === back.session)).toBe(true);

    const k = ((await c.stopAgent('SIGTERM', 1))?.['counters'] ?? {}) as Record<string, string>;
    console.log(`[standby] standby agent: sequenced ${k['sequenced']}, replies ${k['reply']}`);
    expect(Number(k['reply'] ?? 0)).toBeGreaterThan(10);
  }, 300_000);
});

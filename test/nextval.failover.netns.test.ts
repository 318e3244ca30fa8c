// Replicated sequence marks end to end, real processes in network
// namespaces: a sequencer host with a replicated dense sequence, three KV
// replicas as its group, three client hosts running nextval loads. The
// sequencer host dies (link down, kill -9, its data path pulled and its
// state directory wiped: the disk is gone) and a new agent starts there
// with nothing but the config. It must recover the sequence from the
// replicas and start at the group's mark, above every value ever handed
// out. The history is checked: no value twice, real-time order across the
// failover, and dense by the documented rule (docs/sequences.md,
// "Replicated durability"): the only values never handed out are those of
// attempts that got no OK reply, plus the one failover gap, from the last
// value the lost host handed out to the mark the group had certified. The
// second case is the same with an active/standby pair: the clients name
// both hosts, knock on the standby with NEXTVAL, and it takes over; there
// real-time order is only logged (a spurious takeover breaks it, see below).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import type { NsProcess, Topology } from '../netns/topology.ts';
import { checkHistory, parseCalls, type Call } from '../sequences/history.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { pollUntil } from './helpers/ns-http.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const root = join(import.meta.dirname, '..');
const TSX = join(root, 'node_modules', '.bin', 'tsx');
const LOAD = join(root, 'sequences', 'load.ts');
const MARK_AHEAD = 2000;

function startLoads(t: Topology, d: string, standby?: string): Array<{ p: NsProcess; out: string }> {
  return t.clients.map((role) => {
    const out = join(d, `${role}.calls`);
    const p = t.spawn(role, TSX, [LOAD, '--server', `${t.ip(t.sequencerRole(0))}:7400`, ...(standby ? ['--standby', standby] : []), '--name', 'orders', '--workers', '2', '--duration-ms', '120000', '--tag', role, '--out', out, '--stop-file', join(d, 'stop')]);
    return { p, out };
  });
}

const okValues = (calls: readonly Call[]) => calls.flatMap((c) => (c.value === undefined ? [] : [c.value]));

/** The checks of the documented rule on a history split at the new host's first value. */
function checkFailover(calls: readonly Call[], groupMark: bigint, attempts: number, lostFileMark: bigint, o: { order: boolean } = { order: true }): void {
  const h = checkHistory(calls);
  expect(h.duplicates, 'values returned twice').toEqual([]);
  if (o.order) expect(h.orderViolations, 'real-time order broken').toEqual([]);
  else console.log(`[nextval failover] real-time order violations (not asserted, see the pair case): ${h.orderViolations.length}`);
  const values = okValues(calls).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const before = values.filter((v) => v < groupMark);
  const after = values.filter((v) => v >= groupMark);
  const lastOld = before.at(-1)!;
  const notOk = attempts - values.length;
  const missing = Number(lastOld) - before.length + Number(after.at(-1)! - groupMark + 1n) - after.length;
  console.log(`[nextval failover] ${values.length} values: ${before.length} from the lost host (1..${lastOld}), ${after.length} from the new one (${groupMark}..${after.at(-1)}); errors ${JSON.stringify(h.errors)}; attempts ${attempts}, not answered OK ${notOk}, missing outside the failover gap ${missing}`);
  expect(before.length).toBeGreaterThan(1000);
  expect(after.length).toBeGreaterThan(100);
  expect(before[0]).toBe(1n);
  // The new host starts exactly at the group's mark: above everything the
  // lost host handed out, at most its mark ahead of its last value (plus
  // replies lost at the crash), never above what the lost host's file held.
  expect(after[0]).toBe(groupMark);
  expect(groupMark > lastOld).toBe(true);
  expect(groupMark - lastOld <= BigInt(MARK_AHEAD + 1 + notOk)).toBe(true);
  expect(groupMark <= lostFileMark).toBe(true);
  // Dense by the rule: inside [1, lastOld] and [groupMark, last] a value is
  // missing only for an attempt that got no OK reply, at most one each.
  expect(missing).toBeLessThanOrEqual(notOk);
}

/** The agent's log line of its counter's jump to the group's mark. */
function jumpOf(out: string): { from: string; to: string } | undefined {
  const l = out.split('\n').find((x) => x.includes('"event":"mark"') && x.includes('"to"'));
  return l ? (JSON.parse(l) as { from: string; to: string }) : undefined;
}


describePrivileged('replicated sequence marks: the sequencer host dies with its disk', () => {
  it('a new agent without state recovers the mark from the replicas: no value twice, order kept, dense but for the documented failover gap', async () => {
    const t = await kv.topology({ receivers: 3, clients: 3, mode: 'generic' });
    // A replacement host's session must be above the lost one's, which only
    // the pair rule gives a host without state: role active (2 x seconds).
    const c = kv.cluster(t, { mode: 'generic', flushIntervalMs: 2 });
    const config = join(c.dir, 'agent.yaml');
    writeFileSync(config, `sequences:\n  - { name: orders, id: 1, group: 1, replicated: true, markAhead: ${MARK_AHEAD} }\n`);
    const agentFlags = ['--config', config, '--role', '1:active'];
    await c.startReplicas();
    await c.startAgent(0, agentFlags);
    const loads = startLoads(t, c.dir);
    await Promise.all(loads.map((l) => l.p.waitForLine(/"event":"progress"/, 60_000)));
    // Several ranges reserved and used before the host dies.
    await pollUntil('a few thousand values on the first host', 60_000, () => (loads.every((l) => /"ok":(\d{4,})/.test(l.p.output().stdout.split('\n').filter(Boolean).at(-1) ?? '')) ? true : undefined));
    const oldFile = () => BigInt((JSON.parse(readFileSync(join(c.stateDir, 'sequences.json'), 'utf8')) as { sequences: Array<{ mark: string }> }).sequences[0]!.mark);

    // The host dies: link down, kill -9, data path pulled, disk gone.
    const downAt = await c.killHost(0, { detach: true });
    const lostFileMark = oldFile();
    rmSync(c.stateDir, { recursive: true, force: true });
    c.linkUp(0);
    await sleep(1200); // the pair rule's session is 2 x seconds: the next second's is above
    const ready = await c.startAgent(0, agentFlags);
    expect(ready.dataPath).toBe('created');
    const jump = await pollUntil('the new host jumps to the group mark', 60_000, () => jumpOf(c.agents[0]?.output().stdout ?? ''));
    console.log(`[nextval failover] host down at ${new Date(downAt).toISOString()}, lost host's file mark ${lostFileMark}, new host continues at ${jump.to} (its counter was at ${jump.from})`);
    // The loads go on through the new host for a while.
    await sleep(4000);
    writeFileSync(join(c.dir, 'stop'), '');
    const done = await Promise.all(loads.map(async (l) => JSON.parse(await l.p.waitForLine(/"event":"done"/, 120_000)) as { attempts: number }));
    const calls = loads.flatMap((l) => parseCalls(readFileSync(l.out, 'utf8')));
    await c.stopAgent('SIGTERM', 0);
    checkFailover(calls, BigInt(jump.to), done.reduce((n, d) => n + d.attempts, 0), lostFileMark);
  }, 300_000);

  it('a standby pair: the active host dies with its disk, clients knock on the standby with NEXTVAL, it takes over and continues at the group mark', async () => {
    const t = await kv.topology({ receivers: 3, clients: 3, sequencers: 2, mode: 'generic' });
    const c = kv.cluster(t, { mode: 'generic', standby: true, flushIntervalMs: 2 });
    const config = join(c.dir, 'agent.yaml');
    writeFileSync(config, `sequences:\n  - { name: orders, id: 1, group: 1, replicated: true, markAhead: ${MARK_AHEAD} }\n`);
    await c.startReplicas();
    await c.startAgent(0, ['--config', config]);
    await c.startAgent(1, ['--config', config]);
    const loads = startLoads(t, c.dir, `${t.ip(t.sequencerRole(1))}:7400`);
    await pollUntil('a few thousand values on the active', 60_000, () => (loads.every((l) => /"ok":(\d{4,})/.test(l.p.output().stdout.split('\n').filter(Boolean).at(-1) ?? '')) ? true : undefined));
    const downAt = await c.killHost(0, { detach: true });
    const lostFileMark = BigInt((JSON.parse(readFileSync(join(c.stateDir, 'sequences.json'), 'utf8')) as { sequences: Array<{ mark: string }> }).sequences[0]!.mark);
    rmSync(c.stateDir, { recursive: true, force: true });
    const jump = await pollUntil('the standby takes over and jumps to the group mark', 60_000, () => jumpOf(c.agents[1]?.output().stdout ?? ''));
    const takeover = (c.agents[1]!.output().stdout.split('\n').find((l) => l.includes('"event":"takeover"')) ?? '').match(/"atMs":(\d+)/);
    expect(takeover).not.toBeNull();
    console.log(`[nextval failover] standby took over ${Number(takeover![1]) - downAt} ms after the active's link went down (negative: a spurious takeover while the active lived)`);
    await sleep(4000);
    writeFileSync(join(c.dir, 'stop'), '');
    const done = await Promise.all(loads.map(async (l) => JSON.parse(await l.p.waitForLine(/"event":"done"/, 120_000)) as { attempts: number }));
    const calls = loads.flatMap((l) => parseCalls(readFileSync(l.out, 'utf8')));
    await c.stopAgent('SIGTERM', 1);
    // Real-time order is not asserted here: a standby that takes over while
    // the active still answers some clients (a spurious takeover on a loaded
    // host, issue 11) lets the active hand out the rest of the range it owns,
    // below values the standby already gave (docs/sequences.md). Uniqueness,
    // the start at the group mark and the dense rule hold either way.
    checkFailover(calls, BigInt(jump.to), done.reduce((n, d) => n + d.attempts, 0), lostFileMark, { order: false });
  }, 300_000);
});

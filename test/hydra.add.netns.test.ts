// Adding (and then removing) a sequencer, end to end in network namespaces:
// three sequencer hosts, agents 0 and 1 members from the start, sequencer 2
// known to the replicas as "joining". Agent 2 runs (stamping, flushing) from
// the start, but the replicas hold its traffic until `cli.ts add-sequencer
// --id 2` (a control op through 0 or 1) is merged. Then clients spread over
// 0, 1 and 2. Finally agent 2 is restarted with --drain 1 (FINAL flushes)
// and its data path detached, so host 2 is silent: the replicas must keep
// delivering what comes through 0 and 1.
//
// At the end: the three replicas' committed logs are identical, the add op
// holds one slot and every entry of sequencer 2 comes after it (and sorts
// after its clock), and every acknowledged write reads back.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { compareLogs, expectedValues, unreadable } from '../examples/kv/verify.ts';
import { encodeControlOp } from '../replica/hydra.ts';
import { addLinkLoss } from '../netns/loss.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const losses = kv.losses;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LOAD_MS = 4000;
/** Ops per load in phases 2 and 3: about 40% writes. */
const OPS = 200;

describePrivileged('Hydra: adding a sequencer to a running KV group, then draining it', () => {
  it('add-sequencer --id 2 while loaded, 2 percent loss: identical logs, sequencer 2 only after the add op, every acknowledged write reads back; after a drain and detach of 2 the group keeps going', async () => {
    const t = (await kv.topology({ receivers: 3, clients: 2, sequencers: 3, mode: 'native' }));
    const c = (kv.cluster(t, { dumps: true, flushIntervalMs: 2, joining: [2] }));
    for (let i = 0; i < 3; i++) await c.startAgent(i);
    await c.startReplicas();
    for (const r of t.receivers) losses.push(addLinkLoss(t, r, 2, { direction: 'to' }), addLinkLoss(t, r, 2, { direction: 'from' }));

    // Phase 1 runs for a time (the add op goes in while it runs); the later
    // phases run a count of ops, so what they carry does not depend on the
    // machine's speed (a loaded 2-CPU host did 20 ops/s here).
    const load = (role: string, ids: number[], tag: string, ops?: number) =>
      c.spawnCli(role, ['load', ...(ops ? ['--ops', String(ops)] : ['--duration-ms', String(LOAD_MS)]), '--clients', '4', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--policy', 'round-robin', '--tag', tag], ids);
    const finish = async (ps: ReturnType<typeof load>[], minWrites: number) => {
      const sums = await Promise.all(ps.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, LOAD_MS + 60_000)) as LoadSummary & { transport: { busy: number } }));
      console.log(`[hydra add] load ${sums.map((s) => `${s.tag}: ${s.ops} ops, ${s.timeouts} timeouts, ${s.writes.length} acked writes, ${s.transport.busy} BUSY`).join('; ')}`);
      for (const s of sums) {
        expect(s.errors, JSON.stringify(s)).toBe(0);
        expect(s.timeouts, JSON.stringify(s)).toBe(0);
        expect(s.staleReads).toBe(0);
        expect(s.writes.length).toBeGreaterThan(minWrites);
      }
      return sums;
    };

    // 1. Members 0 and 1 only; the add op goes in while this load runs.
    const phase1 = [load('cli', [0, 1], 'a1'), load('cli2', [0, 1], 'a2')];
    await sleep(LOAD_MS / 2);
    // The CLI is given all three and must leave 2 out by itself. Without a
    // key a control op counts only from a member's address: it runs on a
    // replica host (a client host's is refused, below).
    const refused = c.cli('cli', ['add-sequencer', '--id', '2', '--retry-ms', '300', '--timeout-ms', '5000'], 60_000);
    expect(refused.status, refused.stderr).not.toBe(0);
    expect(refused.stderr).toContain('EUNAUTHORIZED');
    const add = c.cli('r1', ['add-sequencer', '--id', '2', '--retry-ms', '300', '--timeout-ms', '20000'], 60_000);
    expect(add.status, add.stderr).toBe(0);
    const added = JSON.parse(add.stdout) as { ok: boolean; sequencer: number; seq: number; attempts: Record<string, number> };
    console.log(`[hydra add] ${add.stdout.trim()}`);
    expect(added).toMatchObject({ ok: true, sequencer: 2 });
    expect(Object.keys(added.attempts).every((id) => id !== '2')).toBe(true);
    const sums = await finish(phase1, 0);

    // 2. Spread over all three.
    sums.push(...(await finish([load('cli', [0, 1, 2], 'b1', OPS), load('cli2', [0, 1, 2], 'b2', OPS)], 20)));
    // Adding it again is harmless.
    const again = c.cli('r2', ['add-sequencer', '--id', '2', '--timeout-ms', '20000'], 60_000);
    expect(again.status, again.stderr).toBe(0);

    // 3. Removal: agent 2 drains (FINAL flushes), then its data path goes away.
    await c.stopAgent('SIGTERM', 2);
    await c.startAgent(2, ['--drain', '1']);
    await c.agents[2]!.waitForLine(/"event":"drain"/, 10_000);
    await sleep(300);
    const st2 = (await c.stopAgent('SIGTERM', 2))?.['counters'] as Record<string, string> | undefined;
    console.log(`[hydra add] drained agent 2: flush ${st2?.['flush']}, flush_final ${st2?.['flush_final']}`);
    expect(Number(st2?.['flush_final'] ?? 0)).toBeGreaterThan(0);
    expect(c.detach(2)).toMatch(/detached/);
    sums.push(...(await finish([load('cli', [0, 1], 'c1', OPS), load('cli2', [0, 1], 'c2', OPS)], 20)));
    for (const l of losses.splice(0)) {
      expect(l.dropped(), 'the loss was real').toBeGreaterThan(0);
      l.remove();
    }

    // Every acknowledged write reads back (through the members left).
    const expected = expectedValues(sums);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000'], 120_000, [0, 1]);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(unreadable(expected, got.values)).toEqual([]);

    // One committed log everywhere.
    const dumps = await c.settledDumps(30_000);
    const cmp = compareLogs(dumps);
    console.log(`[hydra add] committed ${cmp.committed}, held by all ${cmp.slotsHeldByAll}, problems ${JSON.stringify(cmp.problems)}`);
    expect(cmp.problems).toEqual([]);
    expect(cmp.identical).toBe(true);

    // The first add op's slot; sequencer 2 only after it, with a later clock.
    const addHex = Buffer.from(encodeControlOp({ kind: 'add', sid: 2 })).toString('hex');
    const ops = dumps[0]!.entries.filter((e) => e.control && !e.noop && e.op === addHex);
    expect(ops.length, 'the add op and its repeat (and any retried copy) are in the log').toBeGreaterThanOrEqual(2);
    const first = ops[0]!;
    expect(first.sequencerId, 'it went through a member').not.toBe(2);
    const from2 = dumps[0]!.entries.filter((e) => e.sequencerId === 2 && !e.noop);
    const before = from2.filter((e) => e.slot <= first.slot || (e.clock ?? 0) <= (first.clock ?? 0));
    const bySequencer = new Map<number, number>();
    for (const e of dumps[0]!.entries) if (!e.noop) bySequencer.set(e.sequencerId ?? 0, (bySequencer.get(e.sequencerId ?? 0) ?? 0) + 1);
    console.log(`[hydra add] add op at slot ${first.slot} (via ${first.sequencerId}), ${ops.length} add ops in the log; entries by sequencer ${JSON.stringify([...bySequencer].sort())}`);
    expect(before).toEqual([]);
    expect(from2.length, 'sequencer 2 stamped part of the log').toBeGreaterThan(10);
    // Control ops never reach the application: every other entry is a KV op.
    expect(dumps[0]!.entries.filter((e) => e.control && e.op !== addHex)).toEqual([]);

    for (let i = 0; i < 2; i++) {
      const k = ((await c.stopAgent('SIGTERM', i))?.['counters'] ?? {}) as Record<string, string>;
      console.log(`[hydra add] agent ${i}: sequenced ${k['sequenced']}, replies ${k['reply']}, flushes ${k['flush']}`);
    }
  }, 300_000);
});

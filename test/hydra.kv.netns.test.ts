// Hydra end to end, real processes in network namespaces: two and then
// three sequencer hosts, each running the agent with its own sequencer id
// and a flush timer, three KV replicas that merge the sequencers' streams,
// and two clients spreading requests round-robin over the sequencers,
// with 5% loss on every replica link both ways. Every replica must end
// with the identical committed log (the same entry at every slot, so the
// same merge order), every sequencer must have stamped part of it, and
// every acknowledged write must read back.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { compareLogs, expectedValues, unreadable } from '../examples/kv/verify.ts';
import { addLinkLoss } from '../netns/loss.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const losses = kv.losses;

// A count, not a duration: what the test checks must not depend on how
// fast this machine is (a loaded one did 37 writes in 8 s).
const OPS = 600;
const LOAD_MS = 8000;

describePrivileged('Hydra: several sequencer hosts, KV replicas merge their streams', () => {
  it.each([2, 3])('%i sequencers, 5 percent loss, two clients round-robin: identical logs, every sequencer in them, every acknowledged write reads back', async (n) => {
    const t = (await kv.topology({ receivers: 3, clients: 2, sequencers: n, mode: 'native' }));
    const c = (kv.cluster(t, { dumps: true, flushIntervalMs: 2 }));
    expect(c.hydra).toBe(true);
    for (let i = 0; i < n; i++) await c.startAgent(i);
    await c.startReplicas();
    for (const r of t.receivers) losses.push(addLinkLoss(t, r, 5, { direction: 'to' }), addLinkLoss(t, r, 5, { direction: 'from' }));

    const loads = ['cli', 'cli2'].map((role) =>
      c.spawnCli(role, ['load', '--ops', String(OPS), '--clients', '4', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--policy', 'round-robin', '--tag', role]),
    );
    const sums = await Promise.all(loads.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, LOAD_MS + 120_000)) as LoadSummary));
    for (const l of losses.splice(0)) {
      expect(l.dropped(), 'the loss was real').toBeGreaterThan(0);
      l.remove();
    }
    for (const s of sums) {
      expect(s.errors, JSON.stringify(s)).toBe(0);
      expect(s.timeouts, JSON.stringify(s)).toBe(0);
      expect(s.staleReads).toBe(0);
      expect(s.ops).toBe(OPS);
      expect(s.writes.length).toBeGreaterThan(50);
    }

    // Every acknowledged write reads back.
    const expected = expectedValues(sums);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000']);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(unreadable(expected, got.values)).toEqual([]);

    // The replicas converge on one committed log: the same merge order.
    const dumps = await c.settledDumps(30_000);
    const cmp = compareLogs(dumps);
    console.log(`[hydra x${n}] committed ${cmp.committed}, held by all ${cmp.slotsHeldByAll}, problems ${JSON.stringify(cmp.problems)}`);
    expect(cmp.problems).toEqual([]);
    expect(cmp.identical).toBe(true);
    expect(cmp.committed).toBeGreaterThan(100);

    // Every sequencer stamped part of what was committed.
    const bySequencer = new Map<number, number>();
    for (const e of dumps[0]!.entries) if (!e.noop) bySequencer.set(e.sequencerId ?? 0, (bySequencer.get(e.sequencerId ?? 0) ?? 0) + 1);
    console.log(`[hydra x${n}] committed entries by sequencer: ${JSON.stringify([...bySequencer].sort())}`);
    for (let i = 0; i < n; i++) expect(bySequencer.get(i) ?? 0, `sequencer ${i}`).toBeGreaterThan(10);

    // And each agent's kernel stamped and replied for its own share.
    for (let i = 0; i < n; i++) {
      const k = ((await c.stopAgent('SIGTERM', i))?.['counters'] ?? {}) as Record<string, string>;
      console.log(`[hydra x${n}] agent ${i}: sequenced ${k['sequenced']}, replies ${k['reply']}, flushes ${k['flush']}`);
      expect(Number(k['sequenced'] ?? 0), `agent ${i} sequenced`).toBeGreaterThan(10);
      expect(Number(k['reply'] ?? 0), `agent ${i} replied`).toBeGreaterThan(10);
      expect(Number(k['flush'] ?? 0), `agent ${i} flushed`).toBeGreaterThan(0);
    }
  }, 240_000);
});

// Weight reassignment end to end (docs/weights.md): the KV store on five
// replicas behind the XDP sequencer, with weights 2/2/2/2/2 (f = 1) in the
// agent and the replicas, under a KV load from two clients. During the
// load the operator, as a client (`kv weights`), moves all of member 4's
// weight away (applied: 2/2/2/2/0, the fifth member in no minimal quorum),
// proposes a change that would let two members certify (committed as a
// no-op change, and the proposer told why), member 3 is killed -9 and
// restarted (it recovers the ledger with the state), and member 4 gets
// weight back (2/2/2/2/1). Every replica applies each change at its log
// position; the agent switches the kernel to each committed table (the
// status command shows it) with requests stamped before a switch certified
// under the old table (the kernel drops, as drop_ack_weights, any ACK that
// could have mixed them: a slot whose table was replaced twice).
// Afterwards: every acknowledged write reads back, the committed logs and
// states agree, and so do the replicas' weight ledgers and read_changes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { expectedValues, unreadable } from '../examples/kv/verify.ts';
import { REPO_ROOT } from '../examples/kv/netns-cluster.ts';
import type { NsProcess } from '../netns/topology.ts';
import { useKvNetns } from './helpers/kv-netns.ts';
import { describePrivileged } from './helpers/privileged.ts';

const kv = useKvNetns();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const AGENT = join(REPO_ROOT, 'agent', 'cli.ts');

async function until(what: string, cond: () => boolean, timeoutMs: number, detail?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${JSON.stringify(detail())}` : ''}`);
    await sleep(100);
  }
}

function lines<T>(p: NsProcess, event: string): T[] {
  return p
    .output()
    .stdout.split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as T);
}

interface WeightsLine {
  id: number;
  version: number;
  weights: number[];
  f: number;
  applied: number;
  refused: number;
}

describePrivileged('weight reassignment on five replicas under load', () => {
  it('reassign and refuse through the log, a member crash, the kernel table switched: acknowledged writes survive, logs and ledgers agree', async () => {
    const t = await kv.topology({ receivers: 5, clients: 2, mode: 'native' });
    const weightFlags = [0, 1, 2, 3, 4].flatMap((i) => ['--weight', `1:${i}:2`]);
    const c = kv.cluster(t, { dumps: true, agentArgs: [...weightFlags, '--tolerate', '1:1'], replicaArgs: ['--weights', '2,2,2,2,2', '--tolerate', '1'] });
    await c.startAgent();
    await c.startReplicas();
    const agent = (): NsProcess => c.agent!;
    const status = (): { weights: number[]; weightsVersion: number } => {
      const r = t.tryExec('seq', process.execPath, ['--import', 'tsx', AGENT, 'status', '--json', '--iface', t.ifname('seq'), '--bpffs', c.bpffs, '--state-dir', c.stateDir], { cwd: REPO_ROOT, timeoutMs: 60_000 });
      const j = JSON.parse(r.stdout) as { interfaces: Array<{ groups: Array<{ id: number; weights: number[]; weightsVersion: number }> }> };
      return j.interfaces[0]!.groups.find((g) => g.id === 1)!;
    };
    expect(status()).toMatchObject({ weights: [2, 2, 2, 2, 2], weightsVersion: 1 });

    const loadMs = 35_000;
    const loads = ['cli', 'cli2'].map((role) =>
      c.spawnCli(role, ['load', '--duration-ms', String(loadMs), '--clients', '4', '--rate', '300', '--keys', '32', '--retry-ms', '300', '--timeout-ms', '20000', '--tag', role]),
    );
    await sleep(4000);
    // Weight ops are control ops: without a key the sequencer takes them
    // only from a member's address (docs/trust-model.md, "Control ops"), so
    // they run on a replica host (r1: member 0, never killed here).
    const weights = (args: string[]) => {
      const r = c.cli('r1', ['weights', ...args, '--timeout-ms', '20000']);
      return { status: r.status, out: r.stdout.trim() ? (JSON.parse(r.stdout) as { applied: boolean; version: number; weights: number[]; refused?: string }) : null, stderr: r.stderr };
    };
    const switched = (v: number) => lines<{ ledgerVersion?: number; kernelVersion?: number }>(agent(), 'weights').some((l) => l.ledgerVersion === v && l.kernelVersion !== undefined);

    // A client host cannot reassign weights: refused at the sequencer, nothing committed.
    const stranger = c.cli('cli', ['weights', 'reassign', '--member', '0', '--delta=1', '--retry-ms', '300', '--timeout-ms', '5000']);
    expect(stranger.status).not.toBe(0);
    expect(stranger.stderr).toContain('EUNAUTHORIZED');

    // 1. Member 4 loses its weight: applied, version 2; the kernel follows.
    const a = weights(['reassign', '--member', '4', '--delta=-2']);
    expect(a, a.stderr).toMatchObject({ status: 0, out: { applied: true, version: 2, weights: [2, 2, 2, 2, 0] } });
    await until('the agent to switch to ledger v2', () => switched(2), 15_000, () => lines(agent(), 'weights'));
    expect(status()).toMatchObject({ weights: [2, 2, 2, 2, 0], weightsVersion: 2 });
    await sleep(2000);

    // 2. Members 0 and 1 would hold 4 of 7: committed as a no-op change, the proposer told why.
    const b = weights(['reassign', '--member', '3', '--delta=-1']);
    expect(b.status).toBe(1);
    expect(b.out).toMatchObject({ applied: false, version: 2, weights: [2, 2, 2, 2, 0] });
    expect(b.out!.refused).toMatch(/^quorum intersection: the 2 heaviest members 0 \(weight 2\), 1 \(weight 2\) hold 4 of the total weight 7/);

    // 3. Member 3 dies (kill -9) under load: 2/2/2 of 8 still certify. It comes back and recovers.
    await c.crashReplica(3);
    await sleep(3000);
    const back = await c.startReplica(3);
    await until('replica 3 to recover', () => lines<{ status: string }>(back, 'status').at(-1)?.status === 'normal', 30_000);
    // The recovered replica holds the ledger as committed (it came with the state).
    await until('replica 3 to report ledger v2', () => lines<WeightsLine>(back, 'weights').some((l) => l.version === 2), 15_000, () => lines(back, 'weights'));

    // 4. Member 4 gets weight back: 2/2/2/2/1, version 3.
    const d = weights(['transfer', '--from', '4', '--to', '0', '--amount', '1']);
    expect(d.status).toBe(1); // 4 has nothing to give: refused (weight -1)
    expect(d.out!.refused).toMatch(/member 4 would weigh -1/);
    const e = weights(['reassign', '--member', '4', '--delta=1']);
    expect(e, e.stderr).toMatchObject({ status: 0, out: { applied: true, version: 3, weights: [2, 2, 2, 2, 1] } });
    await until('the agent to switch to ledger v3', () => switched(3), 15_000, () => lines(agent(), 'weights'));
    expect(status()).toMatchObject({ weights: [2, 2, 2, 2, 1], weightsVersion: 3 });

    // read_changes through the log.
    const rc = c.cli('r1', ['weights', 'changes', '--member', '4']);
    expect(rc.status, rc.stderr).toBe(0);
    expect(JSON.parse(rc.stdout)).toEqual({
      total: 3,
      changes: [
        { version: 2, delta: -2, applied: true, kind: 'reassign' },
        { version: 2, delta: 0, applied: false, kind: 'transfer' },
        { version: 3, delta: 1, applied: true, kind: 'reassign' },
      ],
    });

    const sums = await Promise.all(loads.map(async (p) => JSON.parse(await p.waitForLine(/"tag"/, loadMs + 60_000)) as LoadSummary));
    console.log(`[weights] load: ${JSON.stringify(sums.map(({ latencyHist: _h, writes: _w, unacked: _u, ...s }) => s))}`);
    for (const s of sums) {
      expect(s.staleReads, JSON.stringify(s.staleSamples)).toBe(0);
      expect(s.errors).toBe(0);
      expect(s.writes.length).toBeGreaterThan(200);
    }

    // Every acknowledged write reads back (the lane's last acked one, unless a later one timed out).
    const expected = expectedValues(sums);
    const keysFile = join(c.dir, 'keys.txt');
    writeFileSync(keysFile, [...expected.keys()].join('\n') + '\n');
    const read = c.cli('cli', ['read', '--keys-file', keysFile, '--clients', '8', '--timeout-ms', '20000']);
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { values: Record<string, string | null>; failed: unknown[] };
    expect(got.failed).toEqual([]);
    expect(unreadable(expected, got.values), 'acknowledged writes that did not read back').toEqual([]);

    // Logs and states agree; wherever two replicas hold a slot, the same entry.
    const dumps = await c.settledDumps(30_000);
    const shape = dumps.map((x) => ({ id: x.replicaId, committed: x.committed, executed: x.executed, entries: x.entries.length }));
    for (const x of dumps) {
      expect(x, JSON.stringify(shape)).toMatchObject({ committed: dumps[0]!.committed, executed: dumps[0]!.committed, conflicts: 0, status: 'normal' });
      expect(x.stateDigest).toBe(dumps[0]!.stateDigest);
    }
    const bySlot = new Map<number, string>();
    const mismatches: string[] = [];
    for (const x of dumps) {
      for (const en of x.entries) {
        const s = JSON.stringify(en);
        const prev = bySlot.get(en.slot);
        if (prev !== undefined && prev !== s && mismatches.length < 5) mismatches.push(`slot ${en.slot}: ${prev} vs ${s}`);
        bySlot.set(en.slot, s);
      }
    }
    expect(mismatches).toEqual([]);

    // Every replica's ledger ends the same: v3, 2/2/2/2/1, 2 applied and 2 refused.
    await until('every replica to report the final ledger', () => c.replicas.every((p) => lines<WeightsLine>(p!, 'weights').at(-1)?.refused === 2), 15_000);
    for (const p of c.replicas) expect(lines<WeightsLine>(p!, 'weights').at(-1)).toMatchObject({ version: 3, weights: [2, 2, 2, 2, 1], f: 1, applied: 2, refused: 2 });

    const stopped = (await c.stopAgent('SIGTERM')) as { counters: Record<string, string> } | null;
    const k = stopped!.counters;
    console.log(`[weights] kernel: ${JSON.stringify({ reply: k['reply'], ack_counted: k['ack_counted'], drop_ack_weights: k['drop_ack_weights'] })}`);
    // Every certified request had one REPLY, under its slot's one table;
    // an ACK that would have mixed tables was dropped (drop_ack_weights), not counted.
    expect(Number(k['reply'])).toBeGreaterThanOrEqual(sums.reduce((n, s) => n + s.writes.length, 0));
  }, 240_000);
});

// The KV client against the real XDP sequencer in namespaces.
//
// Fail over: two sequencers configured, one an address nobody serves; a
// load completes with no timeout, and the silent one only gets a probe per
// back-off period.
//
// Aggregation off through the real XDP sequencer: the agent's group has no
// members (n_members = 0, the kernel counts no ACK), the KV replicas run
// with --acks-to client and the CLI with --direct-acks, so every answer is
// the replicas' own ACKs, certified by the client on f+1 matching ones
// including the leader's. Proves the reply address survives the real stamp
// and multicast and that ACKs reach a client in another namespace.
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KV_CLI, KvCluster, SEQ_PORT } from '../examples/kv/netns-cluster.ts';
import { Topology } from '../netns/topology.ts';
import { describePrivileged } from './helpers/privileged.ts';

let topo: Topology | undefined;
let cluster: KvCluster | undefined;
afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
  await topo?.destroy();
  topo = undefined;
});

describePrivileged('KV store without aggregation behind the XDP sequencer', () => {
  it('replicas ACK the client directly; ops and a short load are certified with no REPLY at all', async () => {
    const t = (topo = await Topology.create({ receivers: 3, clients: 1, mode: 'native' }));
    const c = (cluster = new KvCluster(t, { members: false, replicaArgs: ['--acks-to', 'client'] }));
    await c.startAgent();
    await c.startReplicas();
    const direct = ['--direct-acks', '--replicas', '3', '--timeout-ms', '20000'];
    const cli = (args: string[]) => {
      const r = c.cli('cli', [...args, ...direct]);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    expect(cli(['put', 'k', 'one'])).toMatchObject({ ok: true, session: 1 });
    expect(cli(['cas', 'k', 'one', 'two'])).toEqual({ swapped: true, current: 'two' });
    expect(cli(['get', 'k'])).toEqual({ key: 'k', found: true, value: 'two' });

    const load = c.cli('cli', ['load', '--ops', '400', '--clients', '4', '--keys', '16', '--retry-ms', '1000', ...direct]);
    expect(load.status, load.stderr).toBe(0);
    const s = JSON.parse(load.stdout) as LoadSummary & { transport: { requests: number; replies: number; acks: number } };
    expect({ ok: s.ok, timeouts: s.timeouts, staleReads: s.staleReads, replies: s.transport.replies }).toEqual({ ok: 400, timeouts: 0, staleReads: 0, replies: 0 });
    // At least f+1 = 2 ACKs per op reached the client.
    expect(s.transport.acks).toBeGreaterThanOrEqual(2 * 400);
  }, 180_000);
});

describePrivileged('KV client failing over between two sequencers, one of them silent', () => {
  it('a closed-loop load through the real sequencer completes with no timeout; the silent one gets a probe per back-off', async () => {
    const t = (topo = await Topology.create({ receivers: 3, clients: 1, mode: 'native' }));
    const c = (cluster = new KvCluster(t));
    await c.startAgent();
    await c.startReplicas();
    // Sequencer 0 is an address nobody serves (a replica host, the xseq
    // port): requests there vanish. Sequencer 1 is the real one.
    const silent = `0:${t.ip(t.receivers[0]!)}:${SEQ_PORT}`;
    const real = `1:${t.ip('seq')}:${SEQ_PORT}`;
    const r = t.tryExec('cli', process.execPath, ['--import', 'tsx', KV_CLI, 'load', '--duration-ms', '3000', '--clients', '2', '--keys', '8', '--sequencer', silent, '--sequencer', real, '--bind', t.ip('cli'), '--retry-ms', '100', '--backoff-ms', '1000', '--timeout-ms', '20000'], {
      cwd: join(import.meta.dirname, '..'),
      timeoutMs: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as LoadSummary & { transport: { sequencers: Record<string, { requests: number; replies: number }>; strangers: number } };
    expect({ timeouts: s.timeouts, errors: s.errors, staleReads: s.staleReads }).toEqual({ timeouts: 0, errors: 0, staleReads: 0 });
    expect(s.ok).toBeGreaterThan(50);
    const k = s.transport.sequencers;
    expect(k['1:0']!.replies).toBe(0);
    expect(k['1:1']!.replies).toBe(s.ok);
    // Each lane tries the silent one first, then once per back-off period
    // (1 s, then 2 s: doubled) at most: 2 lanes x (1 + 3 s / 1 s).
    expect(k['1:0']!.requests).toBeGreaterThanOrEqual(2);
    expect(k['1:0']!.requests).toBeLessThanOrEqual(8);
    expect(s.transport.strangers).toBe(0);
  }, 180_000);
});

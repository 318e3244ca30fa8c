// Aggregation off through the real XDP sequencer: the agent's group has no
// members (n_members = 0, the kernel counts no ACK), the KV replicas run
// with --acks-to client and the CLI with --direct-acks, so every answer is
// the replicas' own ACKs, certified by the client on f+1 matching ones
// including the leader's. Proves the reply address survives the real stamp
// and multicast and that ACKs reach a client in another namespace.
import { afterEach, expect, it } from 'vitest';
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
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

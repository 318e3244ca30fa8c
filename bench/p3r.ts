// P3r: the ACK race with the replica-side XDP program, as a number. A lost
// leader ACK is replaced by the leader's re-ACK of the agent's
// retransmitted copy (the kernel must pass those copies, bpf/replica.h),
// within the agent's re-sends and before the client's own retry. How many
// client retries each lost leader ACK still costs is a race of timers, so
// it is a bench row, measured with the program on and off side by side,
// not a test assertion (test/replica-xdp.netns.test.ts checks that the
// copies pass).
//
//   P3r   client retries per 100 leader ACKs lost (10 % of the leader's
//         ACKs dropped at its bridge port), replica XDP on vs off
import type { LoadSummary } from '../examples/kv/load.ts';
import { KvCluster } from '../examples/kv/netns-cluster.ts';
import { addLinkLoss } from '../netns/loss.ts';
import { Topology, type NsProcess } from '../netns/topology.ts';
import { below, ratioOf, type BenchRow } from './row.ts';

export interface P3rOptions {
  quick?: boolean;
  log?: (s: string) => void;
}

type Setting = 'on' | 'off';

interface Phase {
  setting: Setting;
  ops: number;
  retries: number;
  leaderAcksLost: number;
  timeouts: number;
}

function lastStatus(p: NsProcess): { status: string; leader: boolean; view: { session: number } } | undefined {
  const l = p
    .output()
    .stdout.split('\n')
    .filter((x) => x.includes('"event":"status"'))
    .at(-1);
  return l ? JSON.parse(l) : undefined;
}

async function phase(setting: Setting, ops: number, log: (s: string) => void): Promise<Phase> {
  const t = await Topology.create({ receivers: 3, clients: 1, mode: 'native' });
  let c: KvCluster | undefined;
  try {
    // Overwrite, as in the test: under backpressure a slot the leader had
    // truncated would never free.
    c = new KvCluster(t, { replicaArgs: ['--xdp', setting, '--stats-interval', '250'], agentArgs: ['--policy', 'overwrite'] });
    const { session } = await c.startAgent();
    await c.startReplicas();
    const warm = c.cli('cli', ['load', '--ops', '20', '--clients', '1', '--timeout-ms', '20000'], 90_000);
    if (warm.status !== 0) throw new Error(`P3r warm-up load failed: ${warm.stderr.trim()}`);
    const end = Date.now() + 30_000;
    let leader = -1;
    while (Date.now() < end) {
      const st = c.replicas.map((p) => (p ? lastStatus(p) : undefined));
      if (st.every((s) => s?.status === 'normal' && s.view.session === session)) {
        leader = st.findIndex((s) => s?.leader);
        if (leader >= 0) break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (leader < 0) throw new Error('P3r: the replicas did not settle on a leader in the agent session');
    const loss = addLinkLoss(t, t.receivers[leader]!, 10, { direction: 'from', udpDport: 7400 });
    try {
      const load = c.spawnCli('cli', ['load', '--ops', String(ops), '--clients', '4', '--keys', '16', '--retry-ms', '1000', '--timeout-ms', '20000', '--tag', `p3r-${setting}`]);
      const s = JSON.parse(await load.waitForLine(/"tag"/, 300_000)) as LoadSummary & { transport: { requests: number } };
      const p: Phase = { setting, ops, retries: s.transport.requests - ops, leaderAcksLost: loss.dropped(), timeouts: s.timeouts };
      log(`P3r xdp ${setting}: ${p.retries} client retries, ${p.leaderAcksLost} leader ACKs lost, ${p.timeouts} timeouts`);
      return p;
    } finally {
      loss.remove();
    }
  } finally {
    await c?.cleanup();
    await t.destroy();
  }
}

export async function runP3r(opts: P3rOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {});
  const ops = opts.quick ? 300 : 1500;
  const on = await phase('on', ops, log);
  const off = await phase('off', ops, log);
  const per100 = (p: Phase) => (p.leaderAcksLost > 0 ? Number(((100 * p.retries) / p.leaderAcksLost).toFixed(1)) : 0);
  const x = per100(on);
  const b = per100(off);
  const failed = [on, off].filter((p) => p.timeouts > 0 || p.leaderAcksLost === 0).map((p) => `xdp ${p.setting}: ${p.timeouts} timeouts, ${p.leaderAcksLost} leader ACKs lost`);
  return [
    {
      id: 'P3r',
      name: `client retries per 100 leader ACKs lost (10 % dropped at the leader's port), KV on 3 replicas, ${ops} ops, 4 clients, client retry 1 s, agent RTO default: replica XDP on`,
      unit: 'retries/100 lost',
      xseq: x,
      baseline: b,
      baselineName: 'the same with the replica XDP program off',
      ratio: ratioOf(x, b),
      // What test/replica-xdp.netns.test.ts once asserted: retries < lost / 3.
      goal: below('xseq', 33.3),
      ...(failed.length ? { failed: failed.join('; ') } : {}),
    },
  ];
}

// The KV namespace tests' fixture: the topology, the KV cluster and any
// injected loss of the running test, all removed after it, pass or fail.
import { afterEach } from 'vitest';
import { KvCluster, type KvClusterOptions } from '../../examples/kv/netns-cluster.ts';
import type { LossHandle } from '../../netns/loss.ts';
import { Topology, type TopologyOptions } from '../../netns/topology.ts';

export interface KvNetns {
  topology(o: TopologyOptions): Promise<Topology>;
  cluster(t: Topology, o?: KvClusterOptions): KvCluster;
  /** Loss handles to remove after the test (a test may remove them earlier: splice them out). */
  readonly losses: LossHandle[];
}

/** Call at the top level of a test file: registers the cleanup. */
export function useKvNetns(): KvNetns {
  let topo: Topology | undefined;
  let cluster: KvCluster | undefined;
  const losses: LossHandle[] = [];
  afterEach(async () => {
    for (const l of losses.splice(0)) l.remove();
    await cluster?.cleanup();
    cluster = undefined;
    await topo?.destroy();
    topo = undefined;
  });
  return {
    losses,
    async topology(o) {
      topo = await Topology.create(o);
      return topo;
    },
    cluster(t, o) {
      cluster = new KvCluster(t, o);
      return cluster;
    },
  };
}

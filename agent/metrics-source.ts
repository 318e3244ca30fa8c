// The agent's side of the metrics endpoint (agent/metrics.ts): what every
// scrape reads, and whether the data path is healthy.
import { queryXdp } from '../bpf/libbpf/index.ts';
import type { Sequencer } from '../bpf/sequencer.ts';
import type { DataPath } from './datapath.ts';
import type { FlushTimer } from './flush.ts';
import type { Log } from './log.ts';
import { createMetricsRegistry, type MetricsSource, startMetricsServer, windowOccupancy } from './metrics.ts';
import type { RepairService } from './repair.ts';
import type { Retransmitter } from './retransmit.ts';
import type { SlotWindow } from './window.ts';
import type { WeightSwitch } from './weight-switch.ts';

export interface Health {
  ok: boolean;
  detail: Record<string, unknown>;
}

export function metricsSource(
  seq: Sequencer,
  sequencerId: number,
  groupIds: readonly number[],
  parts: {
    window?: SlotWindow;
    retransmitter?: Retransmitter;
    repair?: RepairService;
    flusher?: FlushTimer;
    pairs?: ReadonlyArray<{ id: number; role: 'active' | 'standby'; sequencerId: number }>;
    weightSwitch?: WeightSwitch;
  },
): MetricsSource {
  const { window, retransmitter, repair, flusher, pairs, weightSwitch } = parts;
  return {
    sequencerId,
    groups: () => {
      const backlog = retransmitter?.backlog();
      return groupIds.flatMap((id) => {
        const g = seq.group(id);
        if (!g) return [];
        const lastSeq = seq.lastSeq(id);
        const aggregating = (g.members?.length ?? 0) > 0;
        const behind = backlog?.get(id);
        const changes = g.weights ? weightSwitch?.status(id) : undefined;
        return [
          {
            id,
            // What the data path stamps, overrides included (not the agent-wide id).
            sequencerId: g.sequencerId,
            session: g.session,
            lastSeq,
            ...(window && aggregating ? { windowOccupancy: windowOccupancy(window, g, lastSeq), windowCapacity: window.windowSlots } : {}),
            ...(behind !== undefined ? { retransmitBacklog: behind } : {}),
            ...(g.weights ? { weights: g.weights, weightsVersion: g.weightsVersion ?? 0 } : {}),
            ...(changes ? { weightChanges: changes } : {}),
          },
        ];
      });
    },
    // Serving: the group is on the data path (an active always; a standby once it took over).
    ...(pairs?.length ? { pairs: () => pairs.map((p) => ({ ...p, serving: seq.group(p.id) !== undefined })) } : {}),
    kernelCounters: () => seq.counters(),
    quorumHistogram: () => ({ buckets: seq.quorumHistogram(), sumNs: seq.quorumNanosSum() }),
    ...(retransmitter ? { retransmitCounters: () => ({ ...retransmitter.counters() }) } : {}),
    ...(repair ? { repairCounters: () => ({ ...repair.counters() }) } : {}),
    ...(flusher ? { flushCounters: () => ({ ...flusher.counters() }) } : {}),
  };
}

/** Healthy while the pinned link's program is what runs on the interface. */
export function dataPathHealth(dp: DataPath, iface: string): () => Health {
  return () => {
    try {
      const info = dp.link.info();
      const q = queryXdp(iface);
      const running = dp.mode === 'native' ? q.nativeProgId : q.genericProgId;
      return {
        ok: running !== 0 && running === info.progId,
        detail: { interface: iface, mode: dp.mode, progId: info.progId, linkId: info.id, runningProgId: running, dataPath: dp.origin, pinDir: dp.pinDir },
      };
    } catch (e) {
      return { ok: false, detail: { interface: iface, error: (e as Error).message } };
    }
  };
}

/**
 * Serves /metrics and /healthz on `listen` ("" = off). A failed bind is
 * logged, not fatal: the data path, retransmission and repair matter more
 * than their dashboard, and /healthz being unreachable says enough.
 */
export async function startMetrics(
  listen: string,
  src: MetricsSource,
  health: () => Health,
  log: Log,
  route?: Parameters<typeof startMetricsServer>[3],
): Promise<{ address: string; close(): Promise<void> } | undefined> {
  if (listen === '') return undefined;
  try {
    const server = await startMetricsServer(listen, createMetricsRegistry(src), health, route);
    log.info({ event: 'metrics', address: server.address }, `serving /metrics and /healthz on ${server.address}`);
    return server;
  } catch (e) {
    log.error({ event: 'metrics', code: (e as { code?: string }).code ?? 'EMETRICS', listen, err: (e as Error).message }, (e as Error).message);
    return undefined;
  }
}

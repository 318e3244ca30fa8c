// What an operator reads about a merged group's sequencers, from one
// replica (replica/README.md, "Hydra metrics", lists every field; the KV
// replica prints it in its stats and sequencers lines). Computed on demand
// from the merge's state: nothing here runs per message.
import type { Hydra } from './hydra.ts';

export interface SequencerMetrics {
  /** The sequencer id. */
  readonly sequencer: number;
  /** The session the replicas' log holds for it (-1: none heard yet). */
  readonly session: number;
  /** The replicas ended this session (removed; a rejoin starts a new one). */
  readonly ended: boolean;
  /**
   * How far its frontier trails the most advanced frontier of the group's
   * live sequencers, ns (0 for the most advanced; null once ended or
   * before it has one). A sequencer that holds the merge back shows here
   * first, long before the dead-sequencer timeout.
   */
  readonly frontierLagNs: number | null;
  /** FLUSH_SOLICITs this replica sent it. */
  readonly solicits: number;
  /** Solicits sent since it was last heard from (grows while it is silent). */
  readonly unanswered: number;
}

export interface HydraMetrics {
  /** Sessions the replicas ended by agreement (dead, removed by hand, or replaced by a rejoin), as seen here. */
  readonly removals: number;
  /** Sessions started for a sequencer id that had one before (a rejoin under the same id). */
  readonly rejoins: number;
  /** View changes this replica started, as leader, to end or start a session. */
  readonly reconfigViewChanges: number;
  /** FLUSH_SOLICITs sent, all sequencers. */
  readonly solicits: number;
  /** Messages of an ended session past its end, dropped. */
  readonly afterEnd: number;
  readonly sequencers: readonly SequencerMetrics[];
}

export function hydraMetrics(h: Hydra): HydraMetrics {
  let top = -Infinity;
  for (const s of h.streams) {
    const f = s.frontier();
    if (!s.ended && Number.isFinite(f) && f > top) top = f;
  }
  const sequencers = h.streams.map((s): SequencerMetrics => {
    const f = s.frontier();
    return {
      sequencer: s.sid,
      session: s.session,
      ended: s.ended,
      frontierLagNs: s.ended || !Number.isFinite(f) || !Number.isFinite(top) ? null : top - f,
      solicits: s.solicits,
      unanswered: s.live.unanswered,
    };
  });
  const fs = h.failover.stats;
  return { removals: fs.removals, rejoins: fs.rejoins, reconfigViewChanges: fs.reconfigViewChanges, solicits: h.stats.solicits, afterEnd: h.stats.afterEnd, sequencers };
}

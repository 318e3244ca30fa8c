// One randomized run. The seed picks a profile (group size, network quality,
// window, aggregation, timeouts, fault rates); then `steps` events run with
// faults injected between them, the invariants checked after every event.
// Then everything heals, the clients finish what they started, and the
// liveness check runs.
//
// Faults: replica crash + restart (memory lost), isolation, flaky nodes,
// cut links between two replicas (partial partitions), one replica missing
// much of the multicast, sequencer failover.
// Never more than f replicas crashed, recovering, isolated or flaky at once:
// beyond that NOPaxos promises nothing. A nemesis also strikes right after
// slow-path messages (GAP_COMMIT, START_VIEW, ...), because the interesting
// interleavings (a leader dying between its no-op and the next sync) are
// too rare for faults that fall uniformly in time.
import { DEFAULT_CONFIG } from '../config.ts';
import type { WeightChange } from '../weights.ts';
import { checkWeights, type Proposal } from './weights.ts';
import type { Replica } from '../replica.ts';
import { SEQUENCER_NODE, SimCluster } from './cluster.ts';
import { InvariantChecker, InvariantViolation } from './invariants.ts';
import { Prng } from './prng.ts';

export interface RandomRunOptions {
  seed: number;
  steps: number;
  /** Keep the last lines of the message trace for the failure report. */
  trace?: boolean;
  /** Mutates every replica right after it is built (deliberately broken variants). */
  tamper?: (r: Replica) => void;
  /**
   * Hydra mode: 2-4 sequencers with skewed, drifting, coarse clocks and
   * clock inversions between seqs, periodic and solicited flushes, often one
   * idle sequencer, extra loss on one sequencer's path, and sequencer
   * removal (FINAL flush) instead of failover.
   */
  hydra?: boolean;
  /**
   * Weighted quorums: the sequencer certifies by weight, and an operator
   * proposes random reassignments and transfers (racing each other, the
   * faults and the failovers) through the total order; checkWeights at the end.
   */
  weights?: boolean;
}

export interface RandomRunResult {
  seed: number;
  n: number;
  events: number;
  virtualUs: number;
  certified: number;
  committedSlots: number;
  noops: number;
  repairMissing: number;
  crashes: number;
  isolations: number;
  cuts: number;
  failovers: number;
  viewChanges: number;
  /** Hydra mode only (0 otherwise). */
  sequencers: number;
  removals: number;
  additions: number;
  /** Hydra: sequencer hosts crashed, restarted with a new session, removed by an operator's op. */
  seqCrashes: number;
  seqRestarts: number;
  removeOps: number;
  /** Hydra: streams the replicas ended by agreement (the final leader's count). */
  agreedEnds: number;
  solicits: number;
  inversions: number;
  remerges: number;
  /** Longest time any replica held resolved messages back for a frontier, us. */
  maxStallUs: number;
  /** The stall bound was enforced (a clean profile). */
  stallChecked: boolean;
  /** From the last fault healing to the last client op completing, virtual us (bound: HEAL_BOUND_US). */
  healToDoneUs: number;
  /** The longest any client op took from submit to its outcome, virtual us (bound: CLIENT_DEADLINE_US). */
  maxOpUs: number;
  /** Weights mode: changes applied and refused, and tables the sequencer switched to. */
  weightsApplied: number;
  weightsRefused: number;
  weightTables: number;
}

export class SimFailure extends Error {
  override readonly name = 'SimFailure';
  constructor(
    readonly seed: number,
    readonly step: number,
    override readonly cause: unknown,
    readonly trace: string[],
  ) {
    super(`seed ${seed} failed at step ${step}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`);
  }
}

const TRACE_LINES = 400;
/**
 * Virtual time a client waits for a certificate before it fails the op
 * (ETIMEDOUT), which the final check reports. 2000 + 1000 seeds: the longest
 * op took 125 ms through faults (each heals within 30 ms; no more than f
 * replicas impaired at once), the longest run lasts 252 ms; 1 s is 8x that op.
 */
export const CLIENT_DEADLINE_US = 1_000_000;
/**
 * After the last fault heals, every open client op completes within this
 * (virtual us): at worst a leader timeout (<= 32 ms), view-change retries
 * escalating past a dead candidate (3 x 2.5 ms each), a state transfer and
 * a client retry (3 ms). Measured: 42 ms at most over 2000 + 1000 seeds.
 */
export const HEAL_BOUND_US = 100_000;
/**
 * Hydra, when a sequencer host died: the bound above plus the replicas'
 * dead-sequencer timeout (detection), since a sequencer still dead at the
 * heal holds the merge back until the replicas end its stream (one view
 * change, inside the bound above).
 */
export const FAILOVER_HEAL_BOUND_US = HEAL_BOUND_US + DEFAULT_CONFIG.deadSequencerUs;
/** Messages after which the nemesis may strike. */
const NEMESIS_TRIGGERS = new Set(['GAP_COMMIT', 'GAP_RECV', 'START_VIEW', 'VIEW_CHANGE', 'SYNC_COMMIT', 'STATE_REPLY']);

export function runRandom(o: RandomRunOptions): RandomRunResult {
  const rng = new Prng(o.seed ^ 0x5eed);
  const n = rng.chance(0.25) ? 5 : 3;
  const f = (n - 1) / 2;
  let aggregated = rng.chance(0.7);
  // Hydra draws come from their own stream, so single-sequencer seeds run exactly as before.
  const hr = new Prng(o.seed ^ 0x4d7a);
  const k = o.hydra ? hr.int(2, 4) : 1;
  const clean = !!o.hydra && hr.chance(0.25);
  const flushIntervalUs = hr.pick([500, 1_000, 2_000]);
  const skewUs = Array.from({ length: k }, () => hr.int(-400, 400));
  const drift = Array.from({ length: k }, () => hr.int(-20, 20) * 1e-6);
  const tickUs = hr.pick([1, 1, 20]);
  let maxDelayUs = 0;
  if (o.hydra) aggregated = true; // ACK counting by clients is per (session, seq): one sequencer only
  // Weights draw from their own stream too.
  const wr = new Prng(o.seed ^ 0x3e16);
  const weights = o.weights ? { weights: Array<number>(n).fill(wr.pick([1, 2, 3])), f: wr.int(Math.min(1, f), f) } : undefined;
  if (o.weights) aggregated = true; // weights are counted by the sequencer host
  const syncIntervalUs = rng.pick([1_000, 2_000, 8_000]);
  const c = new SimCluster({
    n,
    seed: o.seed,
    clients: rng.int(1, 4),
    aggregated,
    net: { loss: rng.pick([0, 0.005, 0.02, 0.05]), dup: rng.pick([0, 0.01, 0.05]), minDelayUs: 20, maxDelayUs: (maxDelayUs = rng.pick([100, 300, 800])) },
    windowSlots: rng.pick([4, 8, 16, 64]),
    retransmitUs: aggregated && rng.chance(0.5) ? 1_500 : 0,
    replica: { syncIntervalUs, leaderTimeoutUs: Math.max(8_000, 4 * syncIntervalUs), reorderWaitUs: rng.pick([50, 150, 500]) },
    // A finite deadline: a request not certified within it is a failure
    // the final check reports (1e12, the scenario tests' default, would
    // hide a client that gave up on nothing).
    clientDeadlineUs: CLIENT_DEADLINE_US,
    ...(weights ? { weights } : {}),
    ...(o.hydra ? { sequencers: k, hydra: { skewUs, drift, tickUs, inversion: hr.pick([0, 0.05, 0.3]), inversionNs: hr.pick([50_000, 400_000]), flushIntervalUs } } : {}),
  });
  if (o.hydra && hr.chance(0.4)) c.avoid.add(hr.int(0, k - 1)); // one idle sequencer
  if (o.hydra && !clean && hr.chance(0.5)) {
    // Drops on one sequencer's path: to every replica, or to one.
    const sid = hr.int(0, k - 1);
    const rate = hr.pick([0.05, 0.2]);
    for (let i = 0; i < n; i++) if (hr.chance(0.5) || i === 0) c.net.linkLoss.set((SEQUENCER_NODE + sid) * 65536 + i, rate);
  }
  if (clean) c.net.params = { ...c.net.params, loss: 0 };
  // Some seeds: one replica (often the first leader) misses part of the
  // multicast all along, so gap agreement with followers holding the request is common.
  const lossyReceiver = rng.chance(0.5) ? (rng.chance(0.7) ? 0 : rng.int(1, n - 1)) : -1;
  const lossyRate = rng.pick([0.02, 0.1]);
  if (lossyReceiver >= 0 && !clean) c.net.linkLoss.set(SEQUENCER_NODE * 65536 + lossyReceiver, lossyRate);
  const faultRate = clean ? (rng.next(), 0) : rng.pick([0, 0.002, 0.005, 0.01]);
  const nemesisRate = clean ? (rng.next(), 0) : rng.pick([0, 0.05, 0.2, 0.5]);
  const trace: string[] = [];
  if (o.trace) {
    c.net.trace = (line) => {
      trace.push(line);
      if (trace.length > TRACE_LINES) trace.shift();
    };
  }
  if (o.tamper) for (const r of c.live()) o.tamper(r);
  const checker = new InvariantChecker(c);
  const stats = { crashes: 0, isolations: 0, cuts: 0, failovers: 0, removals: 0, additions: 0, seqCrashes: 0, seqRestarts: 0, removeOps: 0 };
  if (clean) {
    // An idle (or merely slower) sequencer holds delivery back at most until
    // its next flush whose clock passes the waiting message: the flush
    // interval, the clocks' disagreement, and the flush's trip.
    const spread = Math.max(...skewUs) - Math.min(...skewUs);
    checker.stallBoundUs = flushIntervalUs + spread + 2 * maxDelayUs + 2 * tickUs + 200;
  }

  const impaired = (): number => {
    let k = 0;
    for (let i = 0; i < n; i++) {
      const r = c.replicas[i];
      if (!r || r.status === 'recovering' || c.net.isolated.has(i) || c.net.nodeLoss.has(i)) k++;
    }
    return k;
  };
  const healthy = (i: number): boolean => {
    const r = c.replicas[i];
    return !!r && r.status !== 'recovering' && !c.net.isolated.has(i) && !c.net.nodeLoss.has(i);
  };
  const restart = (i: number): void => {
    c.restart(i);
    if (o.tamper) o.tamper(c.replicas[i]!);
  };
  const later = (): number => rng.int(2_000, 30_000);

  /** Crash or isolate replica i if the budget allows. */
  const strike = (i: number): void => {
    if (!healthy(i) || impaired() >= f) return;
    if (rng.chance(0.5)) {
      stats.crashes++;
      c.crash(i);
      c.q.after(later(), () => restart(i));
    } else {
      stats.isolations++;
      c.isolate(i);
      c.q.after(later(), () => c.rejoin(i));
    }
  };

  /**
   * Hydra: a sequencer host dies (never the last one stamping): for good,
   * or back after a while with a new data path (a new session, the same
   * id); sometimes an operator removes it by hand as well.
   */
  const crashSequencer = (): void => {
    const up = c.sequencers.filter((q) => q.up && !q.retired);
    if (up.length <= 1 || stats.seqCrashes >= 2) return;
    const q = rng.pick(up);
    stats.seqCrashes++;
    const session = q.session;
    q.crash();
    if (rng.chance(0.3)) {
      stats.removeOps++;
      c.q.after(rng.int(0, 5_000), () => c.removeSequencer(q.id, session));
    }
    if (rng.chance(0.6)) {
      c.q.after(rng.pick([500, 5_000, 30_000, 150_000]), () => {
        if (q.up || q.retired) return;
        stats.seqRestarts++;
        q.restart();
      });
    }
  };

  const injectFault = (): void => {
    const kind = rng.int(0, 5);
    const i = rng.int(0, n - 1);
    switch (kind) {
      case 0:
      case 1:
        return strike(i);
      case 2:
        if (!healthy(i) || impaired() >= f) return;
        c.net.nodeLoss.set(i, 0.5);
        c.q.after(later(), () => c.net.nodeLoss.delete(i));
        return;
      case 3: {
        const j = (i + rng.int(1, n - 1)) % n;
        if (c.net.cutLinks >= 2) return;
        stats.cuts++;
        c.net.cut(i, j);
        c.q.after(later(), () => c.net.mend(i, j));
        return;
      }
      case 4: {
        // One receiver misses much of the multicast (a bad port or NIC queue).
        const link = SEQUENCER_NODE * 65536 + i;
        const before = c.net.linkLoss.get(link) ?? 0;
        c.net.linkLoss.set(link, rng.pick([0.1, 0.3]));
        c.q.after(later(), () => c.net.linkLoss.set(link, before));
        return;
      }
      default:
        if (!rng.chance(0.3)) return;
        if (o.hydra) {
          const kind = rng.int(0, 2);
          if (kind === 2) return crashSequencer();
          if (kind === 0) {
            // Add a sequencer: it starts, and an "add" control op goes through the total order.
            if (stats.additions >= 1) return;
            stats.additions++;
            c.addSequencer();
            return;
          }
          // Remove a sequencer (never the last one stamping): it stops for good and sends FINAL flushes.
          const active = c.sequencers.filter((q) => !q.retired);
          if (active.length <= 1 || stats.removals >= 1) return;
          stats.removals++;
          const q = rng.pick(active);
          const session = q.session;
          q.retire();
          // Sometimes an operator removes it at once too: the replicas' end races its FINAL flushes.
          if (rng.chance(0.5)) {
            stats.removeOps++;
            c.removeSequencer(q.id, session);
          }
          return;
        }
        stats.failovers++;
        c.sequencer.crash();
        c.q.after(rng.int(0, 3_000), () => c.sequencer.up || c.failoverSequencer());
    }
  };

  let nemesis = nemesisRate > 0;
  c.net.onSend = (from, to, msg) => {
    if (!nemesis || from >= n || !NEMESIS_TRIGGERS.has(msg.type) || !rng.chance(nemesisRate)) return;
    const victim = rng.chance(0.7) ? from : to;
    if (victim < n) c.q.after(rng.pick([0, 200, 1_000]) + rng.int(0, 400), () => nemesis && strike(victim));
  };

  const proposals: Proposal[] = [];
  const propose = (): void => {
    const change: WeightChange = wr.chance(0.5)
      ? { kind: 'reassign', member: wr.int(0, n - 1), delta: wr.int(-2, 2) }
      : { kind: 'transfer', from: wr.int(0, n - 1), to: wr.int(0, n - 1), amount: wr.int(1, 2) };
    const p: Proposal = { change, result: undefined };
    proposals.push(p);
    c.proposeWeights(change, (r) => (p.result = r));
  };

  let step = 0;
  let healedAt = 0;
  let healToDoneUs = 0;
  try {
    c.startWorkload();
    for (; step < o.steps; step++) {
      if (rng.chance(faultRate)) injectFault();
      if (o.weights && wr.chance(0.003)) propose();
      if (!c.step()) break;
    }
    // Heal: every replica up and reachable, a working sequencer, a clean
    // network (reordering stays), no new requests.
    nemesis = false;
    c.stopWorkload();
    c.net.params = { ...c.net.params, loss: 0, dup: 0 };
    c.net.nodeLoss.clear();
    c.net.linkLoss.clear();
    c.net.mendAll();
    for (let i = 0; i < n; i++) {
      c.rejoin(i);
      if (!c.replicas[i]) restart(i);
    }
    if (!c.sequencer.up && !c.sequencer.retired) c.failoverSequencer();
    // Liveness bound: once the last fault healed, every op still open must
    // complete within HEAL_BOUND_US (a stuck view change, recovery or gap
    // shows here, not only as an op that never ends).
    healedAt = c.q.now;
    const bound = stats.seqCrashes ? FAILOVER_HEAL_BOUND_US : HEAL_BOUND_US;
    if (!c.runUntil(() => c.pendingRequests === 0, bound)) {
      throw new InvariantViolation(`liveness: ${c.pendingRequests} client ops still open ${bound} us after the last fault healed`);
    }
    healToDoneUs = c.q.now - healedAt;
    c.runUntil(() => c.converged(), 1_000_000);
    checker.finalCheck();
    if (c.weights) {
      if (!c.runUntil(() => proposals.every((p) => p.result !== undefined), HEAL_BOUND_US)) throw new InvariantViolation('liveness: a weight change was never answered');
      c.runUntil(() => c.converged(), 1_000_000);
      checkWeights(c.weights, c.live(), n, proposals);
    }
  } catch (e) {
    throw new SimFailure(o.seed, step, e, trace);
  }
  const l = c.leader()!;
  return {
    seed: o.seed,
    n,
    events: step,
    virtualUs: c.q.now,
    certified: c.certified.length,
    committedSlots: checker.committedSlots,
    noops: checker.committedNoops,
    repairMissing: c.sequencers.reduce((a, q) => a + q.stats.repairMissing, 0),
    ...stats,
    viewChanges: l.view.leaderNum + l.view.session - 1,
    sequencers: o.hydra ? k : 0,
    solicits: c.live().reduce((a, r) => a + (r.hydra?.stats.solicits ?? 0), 0),
    agreedEnds: l.hydra?.failover.stats.removals ?? 0,
    inversions: c.sequencers.reduce((a, q) => a + q.stats.inversions, 0),
    remerges: c.live().reduce((a, r) => a + (r.hydra?.stats.remerges ?? 0), 0),
    maxStallUs: checker.maxStallUs,
    healToDoneUs,
    maxOpUs: c.maxOpUs,
    stallChecked: checker.stallBoundUs !== null,
    weightsApplied: proposals.filter((p) => p.result?.applied).length,
    weightsRefused: proposals.filter((p) => p.result && !p.result.applied).length,
    weightTables: c.weights ? c.weights.tables.length - 1 : 0,
  };
}

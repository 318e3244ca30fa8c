// The agent's side of weight reassignment (docs/weights.md): replicas report
// the weight table their ledger committed (WEIGHTS at the repair port, after
// the member and MAC checks of agent/repair.ts), and once f + 1 members
// report the same version and table (at least one of them correct) the
// agent switches the kernel to it: Sequencer.setGroup writes the table into
// the other xseq_weights entry and then flips the group's weights_version,
// so requests stamped before the switch are certified under the old table
// and those after it under the new one (bpf/xseq.h, the parity rule).
//
// Every table is checked again here, whoever reported it: integrity for the
// configured f and quorum intersection with the replicas' majorities
// (bpf/quorum.ts). Any table that passes is safe to certify under, so even
// f + 1 lying members could only pick among safe tables. Switches are
// spaced MIN_SWITCH_MS apart (a newer table waits, the newest wins): a
// slot whose table was replaced twice before its quorum loses its ACKs
// (drop_ack_weights) and its client must re-send.
import { integrityIssue, majorityIssue } from '../bpf/quorum.ts';
import type { GroupConfig } from '../bpf/maps.ts';
import type { WeightsReport } from '../bpf/weights-report.ts';
import type { Log } from './log.ts';
import type { AgentConfig } from './config.ts';
import { defaultTolerance } from '../bpf/quorum.ts';

export const MIN_SWITCH_MS = 1_000;

/** What the switch reads and writes of the sequencer (bpf/sequencer.ts). */
export interface WeightMap {
  readonly windowSlots: number;
  group(id: number): GroupConfig | undefined;
  setGroup(id: number, g: GroupConfig, window?: number): void;
  weightTable(id: number): { version: number; weights: number[] } | undefined;
}

export interface WeightGroupSpec {
  id: number;
  /** Members in the configuration. */
  n: number;
  /** The group's f (configured or (n - 1) / 2). */
  f: number;
  /** false: a count quorum (groups[].quorum): reports are ignored. */
  weighted: boolean;
  /** The configured table (the replicas' ledger starts from the same one, as version 1). */
  weights: readonly number[];
}

/** The groups with members, as the configuration has them. */
export function weightGroups(cfg: Pick<AgentConfig, 'groups'>): WeightGroupSpec[] {
  return cfg.groups
    .filter((g) => g.members.length > 0)
    .map((g) => ({ id: g.id, n: g.members.length, f: g.f ?? defaultTolerance(g.members.length), weighted: g.quorum === undefined, weights: [...g.members].sort((a, b) => a.id - b.id).map((m) => m.weight ?? 1) }));
}

export type ReportRefusal = 'unknown_group' | 'count_quorum' | 'mismatch' | 'unsafe' | 'old';

export interface WeightGroupStatus {
  /** The replicas' ledger version the kernel's table came from (0: the configuration's). */
  ledgerVersion: number;
  /** Changes the replicas applied and refused, as last agreed by f + 1 of them. */
  applied: number;
  refused: number;
  /** Kernel switches made from reports. */
  switches: number;
}

export interface WeightSwitchCounters {
  reports: number;
  refused: Record<ReportRefusal, number>;
  switches: number;
  /** A switch the map refused (logged). */
  errors: number;
}

interface Pending {
  readonly key: string;
  readonly report: WeightsReport;
}

export class WeightSwitch {
  readonly #groups = new Map<number, WeightGroupSpec>();
  readonly #status = new Map<number, WeightGroupStatus>();
  /** Per group: report key (version, table, counts) -> members that sent it. */
  readonly #votes = new Map<number, Map<string, Set<number>>>();
  readonly #pending = new Map<number, Pending>();
  readonly #lastSwitch = new Map<number, number>();
  readonly #timers = new Map<number, NodeJS.Timeout>();
  #counters: WeightSwitchCounters = { reports: 0, refused: { unknown_group: 0, count_quorum: 0, mismatch: 0, unsafe: 0, old: 0 }, switches: 0, errors: 0 };

  constructor(
    private readonly map: WeightMap,
    groups: readonly WeightGroupSpec[],
    private readonly log: Log,
    private readonly now: () => number = Date.now,
    private readonly onSwitch: (id: number) => void = () => {},
  ) {
    for (const g of groups) {
      this.#groups.set(g.id, g);
      this.#status.set(g.id, { ledgerVersion: 0, applied: 0, refused: 0, switches: 0 });
    }
  }

  counters(): WeightSwitchCounters {
    return { ...this.#counters, refused: { ...this.#counters.refused } };
  }

  status(id: number): WeightGroupStatus | undefined {
    const s = this.#status.get(id);
    return s && { ...s };
  }

  /** A member's report, already checked to come from it (agent/repair.ts). */
  report(groupId: number, replicaId: number, r: WeightsReport): ReportRefusal | 'counted' | 'switched' {
    this.#counters.reports++;
    const refuse = (why: ReportRefusal, text?: string): ReportRefusal => {
      this.#counters.refused[why]++;
      if (text) this.log.warn({ event: 'weights', group: groupId, replica: replicaId, version: r.version, code: why }, text);
      return why;
    };
    const g = this.#groups.get(groupId);
    if (!g) return refuse('unknown_group');
    if (!g.weighted) return refuse('count_quorum');
    if (r.weights.length !== g.n || r.f !== g.f) {
      return refuse('mismatch', `group ${groupId}: replica ${replicaId} reports ${r.weights.length} weights with f = ${r.f}, but the agent's configuration has ${g.n} members and f = ${g.f}; give the replicas the same --weights/--tolerate as groups[].members[].weight and groups[].f`);
    }
    if (r.version === 1 && r.weights.join(',') !== g.weights.join(',')) {
      return refuse('mismatch', `group ${groupId}: replica ${replicaId} starts its weight ledger from ${r.weights.join('/')}, but the agent's configuration has ${g.weights.join('/')}; give the replicas the same --weights as groups[].members[].weight`);
    }
    const issue = integrityIssue(r.weights.map((weight, id) => ({ id, weight })), g.f) ?? majorityIssue(r.weights);
    if (issue) return refuse('unsafe', `group ${groupId}: replica ${replicaId} reports table v${r.version} ${r.weights.join('/')}, which the agent refuses: ${issue}`);
    const st = this.#status.get(groupId)!;
    const pending = this.#pending.get(groupId);
    const decided = r.applied + r.refused;
    if (r.version < st.ledgerVersion || (r.version === st.ledgerVersion && decided <= st.applied + st.refused && !pending)) return refuse('old');
    const key = `${r.version}|${r.weights.join(',')}|${r.applied}|${r.refused}`;
    let votes = this.#votes.get(groupId);
    if (!votes) this.#votes.set(groupId, (votes = new Map()));
    let who = votes.get(key);
    if (!who) votes.set(key, (who = new Set()));
    who.add(replicaId);
    if (who.size < g.f + 1) return 'counted';
    // Agreed: older keys can go.
    for (const k of votes.keys()) if (k !== key && Number(k.split('|')[0]) <= r.version) votes.delete(k);
    if (r.version === st.ledgerVersion) {
      // Same table, more decided (a refused change): counts only.
      st.applied = r.applied;
      st.refused = r.refused;
      return 'counted';
    }
    if (pending && pending.report.version >= r.version) return 'counted';
    this.#pending.set(groupId, { key, report: r });
    return this.#apply(groupId) ? 'switched' : 'counted';
  }

  /** Switches to the group's pending table if the last switch is old enough, else later. */
  #apply(id: number): boolean {
    const p = this.#pending.get(id);
    if (!p) return false;
    const wait = (this.#lastSwitch.get(id) ?? -Infinity) + MIN_SWITCH_MS - this.now();
    if (wait > 0) {
      if (!this.#timers.has(id)) {
        const t = setTimeout(() => {
          this.#timers.delete(id);
          this.#apply(id);
        }, wait);
        t.unref();
        this.#timers.set(id, t);
      }
      return false;
    }
    this.#pending.delete(id);
    const st = this.#status.get(id)!;
    const cur = this.map.group(id);
    if (!cur?.members?.length) return false;
    const before = this.map.weightTable(id);
    if (before && before.weights.join(',') === p.report.weights.join(',')) {
      // The kernel already certifies by this table (the configuration's, or
      // a restart after a switch): nothing to write.
      Object.assign(st, { ledgerVersion: p.report.version, applied: p.report.applied, refused: p.report.refused });
      return false;
    }
    try {
      const { quorum: _q, weightsVersion: _v, windowBase, ...rest } = cur;
      this.map.setGroup(id, { ...rest, weights: [...p.report.weights] }, Math.floor((windowBase ?? 0) / this.map.windowSlots));
    } catch (e) {
      this.#counters.errors++;
      this.log.error({ event: 'weights', group: id, err: (e as Error).message }, `group ${id}: could not switch to weight table v${p.report.version}: ${(e as Error).message}`);
      return false;
    }
    this.#lastSwitch.set(id, this.now());
    Object.assign(st, { ledgerVersion: p.report.version, applied: p.report.applied, refused: p.report.refused, switches: st.switches + 1 });
    this.#counters.switches++;
    const after = this.map.weightTable(id);
    this.log.info(
      { event: 'weights', group: id, ledgerVersion: p.report.version, weights: p.report.weights, kernelVersion: after?.version, was: before },
      `group ${id}: weights ${p.report.weights.join('/')} (ledger v${p.report.version}) from kernel table v${before?.version ?? 0} to v${after?.version ?? 0}; requests stamped before keep the old table`,
    );
    this.onSwitch(id);
    return true;
  }

  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}

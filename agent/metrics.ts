// Prometheus metrics of the sequencer host: the kernel's counters and
// stamp-to-quorum histogram, per-group seq and session, the agent's
// retransmission and repair counters, and the agent process itself, served
// on /metrics beside a /healthz for supervisors.
//
// Kernel counters live in maps that outlive the agent (the data path is
// pinned and keeps stamping through an agent restart). So the exported
// counters are not the agent's own tallies: every scrape reads the kernel
// and adds what moved since the previous scrape. The first scrape of a new
// agent adds the whole kernel value, so a restarted agent continues where
// the kernel is rather than from zero; a kernel value that went down means
// the data path was re-created, and the new values count in full (a counter
// never goes backwards, Prometheus never sees a negative increment).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, type Metric, Registry } from 'prom-client';
import { COUNTER_NAMES, type CounterName, type Counters, XSEQ_HIST_BUCKETS } from '../bpf/maps.ts';
import type { SlotWindow } from './window.ts';
import { buildInfo } from './version.ts';
import type { RepairCounters } from './repair.ts';
import type { RetransmitCounters } from './retransmit.ts';

/**
 * What the metrics read from the agent, at every scrape. The agent builds
 * it from its Sequencer (bpf/sequencer.ts), Retransmitter and RepairService.
 * retransmitCounters/repairCounters return interfaces that TypeScript does
 * not treat as records: pass a copy, `() => ({ ...retransmitter.counters() })`.
 */
export interface MetricsSource {
  sequencerId: number;
  groups(): Array<{
    id: number;
    /** The id this group is stamped with (groups[].sequencerId, else the agent's). */
    sequencerId?: number;
    session: number;
    /** Last seq stamped for the group in this session (Sequencer.lastSeq). */
    lastSeq: bigint;
    /** Seqs of the group's window that some member has not acked yet
     * (see windowOccupancy()); absent for a group without members. */
    windowOccupancy?: number;
    /** Slots of the group's window (window.slots): what occupancy is
     * measured against, so alerts can use the ratio. */
    windowCapacity?: number;
    /** Seqs the retransmitter still has to deliver to some member. */
    retransmitBacklog?: number;
    /** Weighted quorums: each member's weight by replica id, and the
     * version of the table new requests are stamped under. */
    weights?: number[];
    weightsVersion?: number;
    /** Weight reassignment (agent/weight-switch.ts): the replicas' ledger
     * version the kernel's table came from, changes they applied and
     * refused (as f + 1 of them last reported), and switches made. */
    weightChanges?: { ledgerVersion: number; applied: number; refused: number; switches: number };
  }>;
  /** bpf/maps.ts counters, summed over CPUs (Sequencer.counters()). */
  kernelCounters(): Counters;
  /** Sequencer.quorumHistogram() and Sequencer.quorumNanosSum(). */
  quorumHistogram(): { buckets: bigint[]; sumNs: bigint };
  /** Retransmitter.counters(). */
  retransmitCounters?(): Record<string, number>;
  /** RepairService.counters(). */
  repairCounters?(): Record<string, unknown>;
  /** One-sequencer failover pairs (groups[].role): this host's role per group, and whether it stamps for it. */
  pairs?(): Array<{ id: number; role: 'active' | 'standby'; sequencerId: number; serving: boolean }>;
  /** FlushTimer.counters() (agent/flush.ts). */
  flushCounters?(): Record<string, number>;
  /** Adds more families to the registry (the sequences: agent/sequence-metrics.ts). */
  register?(registry: Registry): void;
}

/** One exported counter family fed by kernel counters. */
interface KernelFamily {
  name: string;
  help: string;
  /** Extra label that tells the members of a family apart. */
  label?: 'reason' | 'outcome';
}

// Every kernel counter has a place here: the Record type makes a counter
// added to bpf/maps.ts fail the build until it is exported.
const DROPPED: KernelFamily = {
  name: 'xseq_packets_dropped_total',
  help: 'Packets to the sequencer port the XDP program dropped, by reason (ack_* reasons are ACKs).',
  label: 'reason',
};
const ACKS: KernelFamily = {
  name: 'xseq_acks_total',
  help: 'ACKs from configured members: counted (set a new bit) or duplicate (already counted in that view).',
  label: 'outcome',
};
const KERNEL: Record<CounterName, { family: KernelFamily; value?: string }> = {
  rx: { family: { name: 'xseq_packets_received_total', help: "UDP packets to the sequencer port seen by the XDP program (requests, ACKs, flush solicits, the agent's own included)." } },
  sequenced: { family: { name: 'xseq_requests_sequenced_total', help: 'Requests stamped and multicast to their group, all groups.' } },
  drop_truncated: { family: DROPPED, value: 'truncated' },
  drop_bad_magic: { family: DROPPED, value: 'bad_magic' },
  drop_bad_version: { family: DROPPED, value: 'bad_version' },
  drop_bad_length: { family: DROPPED, value: 'bad_length' },
  drop_unknown_type: { family: DROPPED, value: 'unknown_type' },
  drop_unexpected_type: { family: DROPPED, value: 'unexpected_type' },
  drop_unknown_group: { family: DROPPED, value: 'unknown_group' },
  drop_ip_options: { family: DROPPED, value: 'ip_options' },
  drop_fragment: { family: DROPPED, value: 'fragment' },
  events_lost: { family: { name: 'xseq_drop_samples_lost_total', help: 'Drop samples the kernel could not queue for the agent (the drop counters still count them).' } },
  ack_rx: { family: { name: 'xseq_acks_received_total', help: 'ACKs to the sequencer port, valid or not.' } },
  ack_counted: { family: ACKS, value: 'counted' },
  ack_duplicate: { family: ACKS, value: 'duplicate' },
  ack_late: { family: { name: 'xseq_acks_late_total', help: 'Counted ACKs for a request already replied to (a member catching up).' } },
  reply: { family: { name: 'xseq_replies_total', help: 'REPLYs sent to clients: a quorum including the leader acked.' } },
  drop_ack_stranger: { family: DROPPED, value: 'ack_stranger' },
  drop_ack_session: { family: DROPPED, value: 'ack_session' },
  drop_ack_window: { family: DROPPED, value: 'ack_window' },
  drop_ack_stale_view: { family: DROPPED, value: 'ack_stale_view' },
  drop_result_too_big: { family: DROPPED, value: 'result_too_big' },
  ack_view_reset: { family: { name: 'xseq_ack_view_resets_total', help: "ACKs of a higher view that reset a slot's acks." } },
  window_overwrite: { family: { name: 'xseq_window_overwrites_total', help: 'Window slots overwritten before every member acked them (overwrite policy).' } },
  drop_backpressure: { family: DROPPED, value: 'backpressure' },
  drop_no_window: { family: DROPPED, value: 'no_window' },
  flush: { family: { name: 'xseq_flushes_total', help: 'FLUSHes sent to groups (solicited by a member or by the agent\'s flush timer), FINAL ones included.' } },
  flush_final: { family: { name: 'xseq_flushes_final_total', help: 'FINAL FLUSHes sent for draining groups (this sequencer removed).' } },
  drop_solicit_stranger: { family: DROPPED, value: 'solicit_stranger' },
  drop_draining: { family: DROPPED, value: 'draining' },
  reply_grow_failed: {
    family: {
      name: 'xseq_reply_grow_failures_total',
      help: 'Quorum-completing ACKs that could not grow into the REPLY (no tail- nor headroom): undone as if lost, so the re-sent request\'s re-ACK retries.',
    },
  },
  reply_headroom: { family: { name: 'xseq_replies_grown_in_front_total', help: 'REPLYs that took (part of) their growth from headroom: the ACK frame had too little tailroom.' } },
  drop_ack_weights: { family: DROPPED, value: 'ack_weights' },
  drop_bad_mac: { family: DROPPED, value: 'bad_mac' },
  drop_mac_room: { family: DROPPED, value: 'mac_room' },
  busy: { family: { name: 'xseq_busy_answers_total', help: 'Requests refused by backpressure that were answered with an ERROR BUSY (not stamped: the client re-sends them).' } },
  drop_client_mac: { family: DROPPED, value: 'client_mac' },
  drop_client_source: { family: DROPPED, value: 'client_source' },
  control_refused: { family: DROPPED, value: 'control_unauthorized' },
  drop_solicit_rate: { family: DROPPED, value: 'solicit_rate' },
};

/** Retransmitter counters: name, help, and the factor to base units. */
const RETRANSMIT: Record<keyof RetransmitCounters, { name: string; help: string; scale?: number }> = {
  retransmissions: { name: 'xseq_retransmissions_total', help: 'Datagrams re-sent to members that had not acked (one per member per try).' },
  retransmittedSeqs: { name: 'xseq_retransmitted_seqs_total', help: 'Distinct seqs re-sent at least once.' },
  probes: { name: 'xseq_retransmit_probes_total', help: 'Re-sends of given-up seqs still lacking a quorum with the leader, once per probe interval, so they cannot hold the window for good.' },
  giveUps: { name: 'xseq_retransmit_give_ups_total', help: 'Seqs given up on after the retry limit.' },
  sendErrors: { name: 'xseq_retransmit_send_errors_total', help: 'Re-sends the socket refused.' },
  scans: { name: 'xseq_retransmit_scans_total', help: 'Group scans that read the window.' },
  slotsScanned: { name: 'xseq_retransmit_scanned_slots_total', help: 'Window slots read by scans.' },
  idleTicks: { name: 'xseq_retransmit_idle_ticks_total', help: 'Group ticks skipped: nothing new and nothing due.' },
  deferred: { name: 'xseq_retransmit_deferred_total', help: 'Due re-sends left for a later tick by the per-tick send limit.' },
  scanNs: { name: 'xseq_retransmit_scan_seconds_total', help: 'Time spent scanning windows.', scale: 1e-9 },
};

type RepairScalar = Exclude<keyof RepairCounters, 'refused'>;
const REPAIR: Record<RepairScalar, { name: string; help: string }> = {
  requests: { name: 'xseq_repair_requests_total', help: 'REPAIR_REQUESTs received, refused ones included.' },
  resent: { name: 'xseq_repair_resent_messages_total', help: 'Stamped messages re-sent to replicas that asked.' },
  missing: { name: 'xseq_repair_missing_seqs_total', help: 'Seqs asked for that the window no longer held.' },
  ignored: { name: 'xseq_repair_ignored_datagrams_total', help: 'Datagrams to the repair port that got no answer (not xseq, or an answer).' },
  sendErrors: { name: 'xseq_repair_send_errors_total', help: 'Repair datagrams the socket refused.' },
  unauthenticated: { name: 'xseq_repair_unauthenticated_total', help: 'Repair requests to a keyed group without a valid MAC: not answered.' },
  weightsReports: { name: 'xseq_weights_reports_total', help: "WEIGHTS reports (a replica's committed weight table) taken at the repair port from a configured member." },
  weightsDropped: { name: 'xseq_weights_reports_dropped_total', help: "WEIGHTS datagrams dropped unread: malformed, or not from a configured member's exact address and port." },
};
/** Flush timer counters (agent/flush.ts). */
const FLUSH: Record<string, { name: string; help: string }> = {
  injected: { name: 'xseq_agent_flush_solicits_total', help: "The agent's own FLUSH_SOLICITs run through the XDP program (each makes the kernel send one FLUSH)." },
  errors: { name: 'xseq_agent_flush_errors_total', help: 'Flush solicits the kernel refused to run (BPF_PROG_TEST_RUN failed); every one is logged.' },
};

const REPAIR_REFUSED = { name: 'xseq_repair_refused_total', help: 'Repair requests answered with an ERROR, by error code.' };

export const QUORUM_HISTOGRAM = 'xseq_quorum_latency_seconds';

/**
 * Upper bounds (seconds) of the Prometheus buckets for the kernel's log2
 * buckets: kernel bucket i counts [2^i, 2^(i+1)) ns, so its bound is
 * 2^(i+1) ns. (Prometheus bounds are inclusive: a time of exactly 2^(i+1)
 * ns sits one bucket higher in the kernel, one nanosecond of difference.)
 * The kernel's last bucket also takes everything longer, so it has no finite
 * bound and only counts toward +Inf.
 */
export const QUORUM_BUCKET_BOUNDS: readonly number[] = Array.from({ length: XSEQ_HIST_BUCKETS - 1 }, (_, i) => 2 ** (i + 1) / 1e9);

// prom-client's default gauges whose names end in _total without being
// counters; `promtool check metrics` rejects them. Their per-type siblings
// (nodejs_active_handles{type} ...) remain, and sum() over them is the same
// number.
const DROPPED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

type Values = Map<string, bigint>;

/**
 * Turns a family of monotone source values (that may restart from zero
 * together) into totals that only go up: each step adds what moved; when
 * any value went down, the source restarted and every value counts in full.
 * One value going down is proof for the family, even where another has
 * already climbed past its old value.
 */
class Accumulator {
  #last: Values | undefined;
  readonly totals: Values = new Map();

  step(now: Values): void {
    const last = this.#last;
    const restarted = !last || [...now].some(([k, v]) => v < (last.get(k) ?? 0n));
    for (const [k, v] of now) {
      const inc = restarted ? v : v - (last.get(k) ?? 0n);
      this.totals.set(k, (this.totals.get(k) ?? 0n) + inc);
    }
    this.#last = now;
  }
}

/** The hist bucket keys in an Accumulator: b0..b39, then the sum. */
const HIST_SUM_KEY = 'sum';

/**
 * Everything a scrape reads, read once per scrape: prom-client calls every
 * metric's collect() in one synchronous pass, so the first read of a pass
 * serves them all (one consistent view, one set of map lookups), and the
 * cache is dropped when the pass is over.
 */
class ScrapeState {
  readonly #src: MetricsSource;
  #fresh = false;
  /** Kernel counters and histogram: one data path, so one restart test. */
  readonly kernel = new Accumulator();
  readonly retransmit = new Accumulator();
  readonly repair = new Accumulator();
  readonly flush = new Accumulator();
  /** Per group: seqs stamped, summed over sessions. */
  readonly groupSeqs = new Map<number, bigint>();
  readonly #groupLast = new Map<number, { session: number; lastSeq: bigint }>();
  /** Per group: the sequencer id it was last seen stamped with. */
  readonly groupSequencer = new Map<number, string>();
  groups: ReturnType<MetricsSource['groups']> = [];

  constructor(src: MetricsSource) {
    this.#src = src;
  }

  /**
   * The `sequencer` label of what the whole data path counts (kernel
   * counters, agent counters, histogram): the id its groups are stamped
   * with, which per-group overrides may make other than the agent's; ids
   * joined by "+" when its groups are stamped with several.
   */
  stampers(): string {
    const ids = [...new Set(this.groups.map((g) => g.sequencerId ?? this.#src.sequencerId))].sort((a, b) => a - b);
    return ids.length ? ids.join('+') : String(this.#src.sequencerId);
  }

  refresh(): void {
    if (this.#fresh) return;
    this.#fresh = true;
    queueMicrotask(() => {
      this.#fresh = false;
    });

    const src = this.#src;
    const c = src.kernelCounters();
    const h = src.quorumHistogram();
    const kernel: Values = new Map(COUNTER_NAMES.map((n) => [n, c[n]]));
    h.buckets.forEach((n, i) => kernel.set(`b${i}`, n));
    kernel.set(HIST_SUM_KEY, h.sumNs);
    this.kernel.step(kernel);

    this.groups = src.groups();
    for (const g of this.groups) {
      const prev = this.#groupLast.get(g.id);
      // A new session starts at seq 1, so its lastSeq is all new seqs; so is
      // a group's first sight (its seqs so far) and a seq that went down.
      // A group that was disabled for a while and comes back in the same
      // session continues from where it was seen last.
      const inc = !prev || prev.session !== g.session || g.lastSeq < prev.lastSeq ? g.lastSeq : g.lastSeq - prev.lastSeq;
      this.groupSeqs.set(g.id, (this.groupSeqs.get(g.id) ?? 0n) + inc);
      this.#groupLast.set(g.id, { session: g.session, lastSeq: g.lastSeq });
      this.groupSequencer.set(g.id, String(g.sequencerId ?? this.#src.sequencerId));
    }

    if (src.retransmitCounters) {
      const r = src.retransmitCounters();
      this.retransmit.step(new Map(Object.keys(RETRANSMIT).map((k) => [k, toBig(r[k])])));
    }
    if (src.flushCounters) {
      const r = src.flushCounters();
      this.flush.step(new Map(Object.keys(FLUSH).map((k) => [k, toBig(r[k])])));
    }
    if (src.repairCounters) {
      const r = src.repairCounters();
      const vals: Values = new Map(Object.keys(REPAIR).map((k) => [k, toBig(r[k])]));
      const refused = r['refused'];
      if (refused && typeof refused === 'object') {
        for (const [code, n] of Object.entries(refused)) vals.set(`refused.${code}`, toBig(n));
      }
      this.repair.step(vals);
    }
  }
}

/** A counter value from an untyped record: absent or not a count is 0. */
function toBig(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? BigInt(Math.round(v)) : 0n;
}

/**
 * The registry of one agent: kernel counters and histogram, group gauges,
 * retransmit and repair counters (when the source has them), and the Node
 * process metrics (without the three that break promtool).
 */
export function createMetricsRegistry(src: MetricsSource): Registry {
  const registry = new Registry();
  const state = new ScrapeState(src);
  const sequencer = String(src.sequencerId);
  const registers = [registry];

  // Kernel counter families.
  const families = new Map<string, { family: KernelFamily; members: Array<{ counter: CounterName; value: string | undefined }> }>();
  for (const n of COUNTER_NAMES) {
    const { family, value } = KERNEL[n];
    const f = families.get(family.name) ?? { family, members: [] };
    f.members.push({ counter: n, value });
    families.set(family.name, f);
  }
  for (const { family, members } of families.values()) {
    new Counter({
      name: family.name,
      help: family.help,
      labelNames: family.label ? ['sequencer', family.label] : ['sequencer'],
      registers,
      collect() {
        state.refresh();
        // prom-client counters only go up by inc(): the total is kept by
        // ScrapeState, so start from zero and add all of it.
        this.reset();
        const sequencer = state.stampers();
        for (const m of members) {
          const labels: Record<string, string> = { sequencer };
          if (family.label && m.value) labels[family.label] = m.value;
          this.inc(labels, Number(state.kernel.totals.get(m.counter) ?? 0n));
        }
      },
    });
  }

  new Counter({
    name: 'xseq_group_requests_sequenced_total',
    help: 'Requests stamped for a group, from its last seq (summed over sessions).',
    labelNames: ['sequencer', 'group'],
    registers,
    collect() {
      state.refresh();
      this.reset();
      for (const [id, n] of state.groupSeqs) this.inc({ sequencer: state.groupSequencer.get(id) ?? sequencer, group: String(id) }, Number(n));
    },
  });

  const groupGauge = (name: string, help: string, value: (g: ScrapeState['groups'][number]) => number | bigint | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['sequencer', 'group'],
      registers,
      collect() {
        state.refresh();
        // Only groups configured now: a removed group's gauges disappear.
        this.reset();
        for (const g of state.groups) {
          const v = value(g);
          if (v !== undefined) this.set({ sequencer: String(g.sequencerId ?? src.sequencerId), group: String(g.id) }, Number(v));
        }
      },
    });
  groupGauge('xseq_group_last_seq', 'Last seq stamped for the group in its current session.', (g) => g.lastSeq);
  groupGauge('xseq_group_session', 'Current session number of the group.', (g) => g.session);
  groupGauge('xseq_window_occupied_slots', "Seqs in the group's window that some member has not acked yet.", (g) => g.windowOccupancy);
  groupGauge('xseq_window_capacity_slots', "Slots in the group's window (window.slots): xseq_window_occupied_slots / this is how full it is.", (g) => g.windowCapacity);
  groupGauge('xseq_retransmit_backlog_seqs', 'Seqs the retransmitter still has to deliver to some member.', (g) => g.retransmitBacklog);

  if (src.pairs) {
    const pairs = src.pairs.bind(src);
    new Gauge({
      name: 'xseq_group_serving',
      help: "One-sequencer failover pairs (groups[].role): 1 while this host stamps for the group, 0 while it does not (a standby waiting for its active's heartbeat to stop). Of a pair, the serving host with the higher xseq_group_session is the one the replicas follow.",
      labelNames: ['sequencer', 'group', 'role'],
      registers,
      collect() {
        this.reset();
        for (const p of pairs()) this.set({ sequencer: String(p.sequencerId), group: String(p.id), role: p.role }, p.serving ? 1 : 0);
      },
    });
  }

  groupGauge('xseq_group_weights_version', "Version of the group's weight table new requests are stamped under (absent: count quorum).", (g) => g.weightsVersion);
  new Gauge({
    name: 'xseq_member_weight',
    help: "A member's voting weight in the group's current weight table: a request is certified once the leader and more than half the total weight acked.",
    labelNames: ['sequencer', 'group', 'replica'],
    registers,
    collect() {
      state.refresh();
      this.reset();
      for (const g of state.groups) g.weights?.forEach((w, rid) => this.set({ sequencer, group: String(g.id), replica: String(rid) }, w));
    },
  });

  groupGauge('xseq_group_weights_ledger_version', "Version, in the replicas' weight ledger, of the table the kernel certifies by (0: the configuration's, no reassignment reported yet).", (g) => g.weightChanges?.ledgerVersion);
  groupGauge('xseq_group_weight_switches', 'Times this agent switched the kernel to a weight table the replicas committed (since the agent started).', (g) => g.weightChanges?.switches);
  new Gauge({
    name: 'xseq_weight_changes',
    help: 'Weight reassignments the replicas committed through the log, by outcome: applied, or refused (committed as a no-op change: it would have broken integrity or quorum intersection), as f + 1 replicas last reported.',
    labelNames: ['sequencer', 'group', 'outcome'],
    registers,
    collect() {
      state.refresh();
      this.reset();
      for (const g of state.groups) {
        if (!g.weightChanges) continue;
        const l = { sequencer: String(g.sequencerId ?? src.sequencerId), group: String(g.id) };
        this.set({ ...l, outcome: 'applied' }, g.weightChanges.applied);
        this.set({ ...l, outcome: 'refused' }, g.weightChanges.refused);
      }
    },
  });

  registry.registerMetric(quorumHistogram(state));

  if (src.retransmitCounters) {
    for (const [key, m] of Object.entries(RETRANSMIT) as Array<[keyof RetransmitCounters, (typeof RETRANSMIT)[keyof RetransmitCounters]]>) {
      new Counter({
        name: m.name,
        help: m.help,
        labelNames: ['sequencer'],
        registers,
        collect() {
          state.refresh();
          this.reset();
          this.inc({ sequencer: state.stampers() }, Number(state.retransmit.totals.get(key) ?? 0n) * (m.scale ?? 1));
        },
      });
    }
  }
  if (src.repairCounters) {
    for (const [key, m] of Object.entries(REPAIR)) {
      new Counter({
        name: m.name,
        help: m.help,
        labelNames: ['sequencer'],
        registers,
        collect() {
          state.refresh();
          this.reset();
          this.inc({ sequencer: state.stampers() }, Number(state.repair.totals.get(key) ?? 0n));
        },
      });
    }
    new Counter({
      name: REPAIR_REFUSED.name,
      help: REPAIR_REFUSED.help,
      labelNames: ['sequencer', 'code'],
      registers,
      collect() {
        state.refresh();
        this.reset();
        for (const [k, n] of state.repair.totals) {
          if (k.startsWith('refused.')) this.inc({ sequencer: state.stampers(), code: k.slice('refused.'.length).toLowerCase() }, Number(n));
        }
      },
    });
  }

  if (src.flushCounters) {
    for (const [key, m] of Object.entries(FLUSH)) {
      new Counter({
        name: m.name,
        help: m.help,
        labelNames: ['sequencer'],
        registers,
        collect() {
          state.refresh();
          this.reset();
          this.inc({ sequencer: state.stampers() }, Number(state.flush.totals.get(key) ?? 0n));
        },
      });
    }
  }

  // The build, as a constant 1 with labels: join on it (`* on() group_left
  // xseq_build_info`) or count versions across hosts during an upgrade.
  const build = buildInfo();
  new Gauge({
    name: 'xseq_build_info',
    help: 'The running build: package version, commit, SHA-256 prefix of the BPF object the agent loads, Node.js version. Always 1.',
    labelNames: ['version', 'commit', 'bpf_object_sha', 'node_version'],
    registers,
  }).set({ version: build.version, commit: build.commit, bpf_object_sha: build.bpfObjectSha, node_version: build.node }, 1);

  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULTS) registry.removeSingleMetric(name);
  src.register?.(registry);
  return registry;
}

/**
 * The kernel histogram as a Prometheus histogram. prom-client's Histogram
 * only learns values through observe(); the kernel already did the
 * counting, so this is a metric object of our own that the registry
 * formats like any other (it needs name, help, type and get()).
 */
function quorumHistogram(state: ScrapeState): Metric {
  const help = 'Time from stamping a request to the quorum ACK that answered it (kernel log2 buckets).';
  const metric = {
    name: QUORUM_HISTOGRAM,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: ['sequencer'],
    reset(): void {},
    async get() {
      state.refresh();
      const sequencer = state.stampers();
      const t = state.kernel.totals;
      const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
      let cumulative = 0n;
      for (let i = 0; i < XSEQ_HIST_BUCKETS; i++) {
        cumulative += t.get(`b${i}`) ?? 0n;
        const le = QUORUM_BUCKET_BOUNDS[i];
        if (le !== undefined) values.push({ metricName: `${QUORUM_HISTOGRAM}_bucket`, labels: { sequencer, le: String(le) }, value: Number(cumulative) });
      }
      values.push({ metricName: `${QUORUM_HISTOGRAM}_bucket`, labels: { sequencer, le: '+Inf' }, value: Number(cumulative) });
      values.push({ metricName: `${QUORUM_HISTOGRAM}_sum`, labels: { sequencer }, value: Number(t.get(HIST_SUM_KEY) ?? 0n) / 1e9 });
      values.push({ metricName: `${QUORUM_HISTOGRAM}_count`, labels: { sequencer }, value: Number(cumulative) });
      return { name: QUORUM_HISTOGRAM, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  // prom-client's typings name only its own classes; its registry accepts
  // any object with this shape (registry.js: name, help, type, get()).
  return metric as unknown as Metric;
}

/**
 * Seqs of a group's window (the last `windowSlots` stamped) that some member
 * has not acked: what backpressure or overwrite will act on when it fills.
 * Reads the mmapped slots, no syscalls; a slot that holds another seq or
 * session (overwritten, or not written yet) is not counted.
 */
export function windowOccupancy(
  window: SlotWindow,
  group: { session: number; windowBase?: number; members?: readonly unknown[] },
  lastSeq: bigint,
): number {
  const n = group.members?.length ?? 0;
  if (n === 0) return 0;
  const all = (1 << n) - 1;
  const last = Number(lastSeq);
  let occupied = 0;
  for (let s = Math.max(1, last - window.windowSlots + 1); s <= last; s++) {
    const slot = window.slotOf(group.windowBase ?? 0, s);
    if (window.seqAt(slot) === s && window.sessionAt(slot) === group.session && (window.ackedAt(slot) & all) !== all) occupied++;
  }
  return occupied;
}

export class MetricsServerError extends Error {
  override readonly name = 'MetricsServerError';
  readonly code = 'EMETRICS_LISTEN';
}

/** "IPV4:PORT" or "[IPV6]:PORT" (the config's metrics.listen). */
function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new MetricsServerError(`metrics listen address "${listen}" is not IPV4:PORT or [IPV6]:PORT (e.g. "127.0.0.1:9464")`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

const json = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

/**
 * Serves GET /metrics (the registry, Prometheus text format) and GET
 * /healthz (200 with the JSON detail when healthy, 503 otherwise) on
 * `listen`; the config's default keeps it on loopback. Resolves once
 * listening, with the bound address (port 0 picks one).
 */
export async function startMetricsServer(
  listen: string,
  registry: Registry,
  health: () => { ok: boolean; detail: Record<string, unknown> },
  /** More paths (the agent's /drops stream, agent/monitor.ts): true when it answered. */
  route?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<{ address: string; close(): Promise<void> }> {
  const { host, port } = parseListen(listen);
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && route?.(req, res)) return;
    handle(req, res, registry, health, route).catch((e: unknown) => {
      // Headers may be out already; all that is left is to end the reply.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`internal error: ${(e as Error).message}\n`);
    });
  });
  // A scrape is one small request; a slow or stuck client must not hold
  // a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      const why =
        e.code === 'EADDRINUSE'
          ? 'the address is already in use (another xseq-agent or exporter?)'
          : e.code === 'EADDRNOTAVAIL'
            ? 'no interface of this host has that address'
            : e.code === 'EACCES'
              ? 'permission denied'
              : (e.code ?? e.message);
      reject(new MetricsServerError(`cannot serve metrics on ${listen}: ${why}; set metrics.listen to another address, or "" to turn the endpoint off`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Prometheus keeps its connection alive between scrapes.
        server.closeAllConnections();
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
  health: () => { ok: boolean; detail: Record<string, unknown> },
  route?: unknown,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const head = req.method === 'HEAD';
  const send = (status: number, type: string, body: string): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(head ? undefined : body);
  };
  if (path !== '/metrics' && path !== '/healthz') {
    send(404, 'text/plain; charset=utf-8', `not found: try /metrics or /healthz${route ? ' or /drops' : ''}\n`);
    return;
  }
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    send(405, 'text/plain; charset=utf-8', `${req.method} is not allowed: use GET\n`);
    return;
  }
  if (path === '/metrics') {
    let body: string;
    try {
      body = await registry.metrics();
    } catch (e) {
      // Prometheus marks the target down (up == 0); the text says why.
      send(500, 'text/plain; charset=utf-8', `reading metrics failed: ${(e as Error).message}\n`);
      return;
    }
    send(200, registry.contentType, body);
    return;
  }
  let h: { ok: boolean; detail: Record<string, unknown> };
  try {
    h = health();
  } catch (e) {
    h = { ok: false, detail: { error: (e as Error).message } };
  }
  send(h.ok ? 200 : 503, 'application/json', `${json({ ...h.detail, ok: h.ok })}\n`);
}

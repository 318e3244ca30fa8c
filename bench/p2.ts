/**
 * P2: the highest zero-loss sequenced rate through the namespace topology.
 *
 *   loadgen (cli) ─► br0 ─► seq: sequencer ─► br0 floods ─► r1, r2, r3
 *
 * For each sequencer (xseq = the XDP sequencer through the agent, in native
 * and in generic mode; c-mmsg = bench/baseline/udp-sequencer.c; node-dgram
 * = bench/baseline/node-sequencer.ts) the offered rate is doubled, then
 * bisected; a rate passes when every receiver saw every packet the load
 * generator sent (distinct seqs counted in XDP on the receivers by
 * bench/xdp/count.bpf.c), twice in a row. A rate the generator itself could
 * not offer (achieved < 97 % of target) fails as "generator-bound".
 *
 * What bounds it: every hop is software (veth, bridge, one skb clone per
 * flooded port), a few microseconds of kernel time per sequenced packet,
 * while the XDP program itself is under 1 % of the profile. A veth runs the
 * receive side of what a process sends in softirq on the sender's CPU, so
 * without care one CPU would carry the generator, the switch and the
 * sequencer (xseq) while a userspace sequencer got a second CPU for free.
 * So P2 splits the machine the same way for every kind, like two hosts:
 *
 *   CPU 0: the generator (pinned), the client link and the bridge ingress;
 *   CPU 1: the sequencer and everything after it, the flood included.
 *
 *   - c-mmsg and node-dgram: the process is pinned to CPU 1 (its receive
 *     softirq stays on CPU 0; steering it to CPU 1 with RPS measured worse);
 *   - xseq generic: RPS on the sequencer's veth moves its receive path, and
 *     with it generic XDP and the XDP_TX transmit, to CPU 1;
 *   - xseq native: veth's NAPI is made threaded and the thread pinned to
 *     CPU 1 (native XDP runs in NAPI, before RPS could apply).
 *
 * The generator alone (pinned, into an XDP sink on the sequencer's veth) is
 * measured first and reported as the ceiling no kind can exceed here.
 *
 * Zero loss at a rate near a CPU's capacity is at the mercy of any stall
 * longer than the queue in front of it (1000 packets of backlog, 256 in a
 * veth's XDP ring: a few ms). So all candidates are set up side by side
 * and their steps interleaved, and each runs several independent searches
 * (rounds) whose median is the result: another workload on the machine
 * then lowers every candidate in the same round instead of one of them.
 * It still lowers the numbers, so run P2 on an otherwise idle machine.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Topology, type XdpMode } from '../netns/topology.ts';
import { ratioOf, type BenchRow } from './row.ts';
import {
  agentXdpSequencer,
  cMmsgSequencer,
  GROUP,
  nodeDgramSequencer,
  SEQ_PORT,
  type StartedSequencer,
  type StartSequencer,
} from './sequencers.ts';
import { buildBenchTools, Counters, runLoadgen, type CountStats } from './tools.ts';

export type { StartSequencer, StartedSequencer } from './sequencers.ts';
export type SequencerKind = 'xseq' | 'c-mmsg' | 'node-dgram';

export interface P2Options {
  /** Starts the XDP sequencer; default: the agent CLI (agentXdpSequencer). */
  startSequencer?: StartSequencer;
  /** XDP modes to measure xseq in (default both); each has its own row. */
  modes?: XdpMode[];
  /** Which sequencers to measure (default all three). */
  kinds?: SequencerKind[];
  receivers?: number;
  /** Traffic per step in ms (default 1000; quick: 300). */
  stepMs?: number;
  /** REQUEST payload bytes (default 64). */
  payload?: number;
  /** Whole-run budget; searches stop with what they have (default 220 s). */
  budgetMs?: number;
  /** Independent searches per candidate, result the median (default 3;
   * quick: 1).
   * A full run of all four candidates takes about a minute per round. */
  rounds?: number;
  /** Shorter steps, coarser bisection: a smoke run, not numbers to report. */
  quick?: boolean;
  log?: (s: string) => void;
}

export interface StepResult {
  rate: number;
  sent: number;
  achievedRate: number;
  /** Per receiver: distinct seqs seen. */
  distinct: number[];
  duplicates: number;
  pass: boolean;
  reason?: 'loss' | 'generator-bound';
}

export interface KindResult {
  /** 'xseq-native', 'xseq-generic', 'c-mmsg', 'node-dgram' or 'ceiling'. */
  label: string;
  /** Highest rate that passed (pps), 0 if none did; the median round. */
  rate: number;
  /** Each round's highest passing rate. */
  rounds?: number[];
  /** True when the first failure above `rate` was the generator's. */
  generatorBound: boolean;
  steps: StepResult[];
  error?: string;
}

export interface P2Row extends BenchRow {
  notes: string;
}

export interface P2Result {
  rows: P2Row[];
  ceiling: KindResult;
  results: KindResult[];
}

const FIRST_RATE = 25_000;
const ACHIEVED_MIN = 0.97;

interface CpuPlan {
  generator?: number;
  sequencer?: number;
}

function cpuPlan(): CpuPlan {
  // One CPU: nothing to split; the numbers then say so by being low.
  return availableParallelism() >= 2 ? { generator: 0, sequencer: 1 } : {};
}

/** Reads counters until two reads 50 ms apart agree: a sequencer with a
 * backlog (node's socket buffer) keeps delivering after the generator ends,
 * and those packets belong to this step, not the next. */
async function settle(c: Counters, maxMs = 3000): Promise<CountStats[]> {
  let prev = c.read();
  const end = Date.now() + maxMs;
  for (;;) {
    await sleep(50);
    const cur = c.read();
    if (cur.every((s, i) => s.packets === prev[i]!.packets) || Date.now() > end) return cur;
    prev = cur;
  }
}

function napiThreads(ifname: string): Set<number> {
  const out = new Set<number>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').startsWith(`napi/${ifname}-`)) out.add(Number(p));
    } catch {
      /* exited */
    }
  }
  return out;
}

/** Moves the sequencer host's receive path to `cpu`, per XDP mode. */
function steerSequencer(topo: Topology, mode: XdpMode, cpu: number): void {
  const dev = topo.ifname('seq');
  if (mode === 'generic') {
    topo.exec('seq', 'sh', ['-c', `echo ${(1 << cpu).toString(16)} > /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
    return;
  }
  // The NAPI thread appears when threaded is switched on; other runs may
  // have threads of the same interface name in their namespaces, so take
  // only the ones that appeared just now.
  const before = napiThreads(dev);
  topo.exec('seq', 'sh', ['-c', `echo 1 > /sys/class/net/${dev}/threaded`]);
  const mine = [...napiThreads(dev)].filter((p) => !before.has(p));
  if (mine.length === 0) throw new Error(`no NAPI thread appeared for ${dev}`);
  for (const pid of mine) topo.exec('seq', 'taskset', ['-pc', String(cpu), String(pid)]);
}

/**
 * One kind's search as a state machine, so P2 can interleave the kinds'
 * steps: the machine's noise (a VM's stolen time, timer storms) then hits
 * every kind alike instead of whichever happened to run during it.
 */
class Search {
  readonly steps: StepResult[] = [];
  private phase: 'warm' | 'ramp' | 'bisect' | 'done' = 'warm';
  private rate = 5000;
  private confirming = false;
  private lo = 0;
  private hi = 0;
  generatorBound = false;
  error: string | undefined;

  constructor(
    private readonly maxRate: number,
    private readonly precision: number,
  ) {}

  get done(): boolean {
    return this.phase === 'done';
  }

  /** Highest rate that passed twice in a row. */
  get best(): number {
    return this.lo;
  }

  next(): number | null {
    return this.phase === 'done' ? null : this.rate;
  }

  record(r: StepResult): void {
    this.steps.push(r);
    if (this.phase === 'warm') {
      // A kind that loses at a trivial rate is broken, not slow.
      if (!r.pass) return this.finish(`loss at ${r.rate} pps`);
      this.phase = 'ramp';
      this.rate = Math.min(FIRST_RATE, this.maxRate);
      return;
    }
    if (r.pass && !this.confirming) {
      // A rate counts only if it passes twice in a row.
      this.confirming = true;
      return;
    }
    this.confirming = false;
    if (r.pass) {
      this.lo = r.rate;
      if (this.phase === 'ramp') {
        // Passing at the ceiling: the generator is the limit.
        if (r.rate >= this.maxRate) {
          this.generatorBound = true;
          return this.finish();
        }
        this.rate = Math.min(r.rate * 2, this.maxRate);
        return;
      }
    } else {
      this.hi = r.rate;
      this.generatorBound = r.reason === 'generator-bound';
      this.phase = 'bisect';
    }
    const mid = Math.round((this.lo + this.hi) / 2 / 1000) * 1000;
    if (this.hi - this.lo <= Math.max(this.lo * this.precision, 1000) || mid <= this.lo || mid >= this.hi) {
      return this.finish();
    }
    this.rate = mid;
  }

  finish(error?: string): void {
    this.phase = 'done';
    if (error) this.error = error;
  }
}

/** Runs one step: `rate` pps for stepMs from cli, then counts receivers. */
async function step(
  topo: Topology,
  counters: Counters,
  rate: number,
  o: Common,
): Promise<StepResult> {
  counters.reset();
  const count = Math.max(2000, Math.round((rate * o.stepMs) / 1000));
  const lg = runLoadgen(topo, 'cli', {
    count,
    rate,
    payload: o.payload,
    groupId: GROUP.id,
    port: SEQ_PORT,
    maxMs: o.stepMs * 3 + 500,
    ...(o.cpus.generator === undefined ? {} : { cpu: o.cpus.generator }),
  });
  const stats = await settle(counters);
  const distinct = stats.map((s) => s.distinct);
  const allSeen = lg.sent > 0 && distinct.every((d) => d === lg.sent);
  const generatorOk = lg.achievedRate >= rate * ACHIEVED_MIN && lg.sent === count;
  const r: StepResult = {
    rate,
    sent: lg.sent,
    achievedRate: Math.round(lg.achievedRate),
    distinct,
    duplicates: stats.reduce((a, s) => a + s.duplicates, 0),
    pass: allSeen && generatorOk,
  };
  if (!allSeen) r.reason = 'loss';
  else if (!generatorOk) r.reason = 'generator-bound';
  return r;
}

async function withTopology<T>(mode: XdpMode, receivers: number, fn: (topo: Topology) => Promise<T>): Promise<T> {
  const topo = await Topology.create({ receivers, mode });
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

interface Common {
  receivers: number;
  stepMs: number;
  payload: number;
  cpus: CpuPlan;
}

/** The generator alone: loadgen into an XDP sink on the sequencer's veth
 * (REQUESTs counted by request id and dropped at the driver). */
async function measureCeiling(o: Common, log: (s: string) => void): Promise<KindResult> {
  return withTopology('generic', o.receivers, async (topo) => {
    const sink = Counters.attach(topo, ['seq'], { mode: 'native', requests: true, port: SEQ_PORT });
    const steps: StepResult[] = [];
    const once = async (rate: number, count: number): Promise<StepResult> => {
      sink.reset();
      const lg = runLoadgen(topo, 'cli', {
        count,
        rate,
        payload: o.payload,
        maxMs: o.stepMs * 3 + 500,
        groupId: GROUP.id,
        ...(o.cpus.generator === undefined ? {} : { cpu: o.cpus.generator }),
      });
      const s = (await settle(sink))[0]!;
      const r: StepResult = {
        rate,
        sent: lg.sent,
        achievedRate: Math.round(lg.achievedRate),
        distinct: [s.distinct],
        duplicates: s.duplicates,
        pass: s.distinct === lg.sent,
      };
      if (!r.pass) r.reason = 'loss';
      steps.push(r);
      log(`  ceiling ${rate ? `paced ${rate}` : 'unpaced'}: ${r.achievedRate} pps, sink saw ${s.distinct}/${lg.sent}`);
      return r;
    };
    // Unpaced for about one step: the generator's own maximum. Then paced
    // at 95 % of it, as every kind's steps run; that is the ceiling.
    const top = await once(0, Math.round(o.stepMs * 400));
    const paced = Math.round((top.achievedRate * 0.95) / 1000) * 1000;
    const r = await once(paced, Math.round((paced * o.stepMs) / 1000));
    const rate = r.pass && r.achievedRate >= paced * ACHIEVED_MIN ? paced : top.pass ? top.achievedRate : 0;
    return { label: 'ceiling', rate, generatorBound: true, steps };
  });
}

interface Candidate {
  label: string;
  kind: SequencerKind;
  /** The sequencer's XDP mode; for baselines the topology is 'generic',
   * which only means no pass program on the sequencer's bridge peer. */
  mode: XdpMode;
  start: StartSequencer;
}

interface Rig {
  c: Candidate;
  topo: Topology;
  counters: Counters;
  seq?: StartedSequencer;
  search: Search;
}

/** Builds the candidate's own topology, counters and sequencer. */
async function setUp(c: Candidate, o: Common, search: Search): Promise<Rig> {
  const topo = await Topology.create({ receivers: o.receivers, mode: c.mode });
  let counters: Counters;
  try {
    counters = Counters.attach(topo, topo.receivers, { mode: 'native', port: GROUP.port, groupId: GROUP.id });
    // The bridge floods the group to the client's port too (snooping off);
    // a real switch would not, so drop it at the client's driver instead
    // of charging the generator's CPU for a stack that discards it.
    Counters.attach(topo, topo.clients, { mode: 'native', port: GROUP.port });
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  const rig: Rig = { c, topo, counters, search };
  try {
    rig.seq = await c.start(topo, c.mode);
    if (c.kind === 'xseq' && o.cpus.sequencer !== undefined) steerSequencer(topo, c.mode, o.cpus.sequencer);
  } catch (e) {
    search.finish((e as Error).message);
  }
  return rig;
}

async function tearDown(rig: Rig, log: (s: string) => void): Promise<void> {
  try {
    await rig.seq?.stop();
  } catch (e) {
    log(`  ${rig.c.label}: stop failed: ${(e as Error).message}`);
  }
  await rig.topo.destroy();
}

function k(n: number): string {
  return n >= 1000 ? `${Math.round(n / 1000)}k` : String(n);
}

function describe(r: KindResult): string {
  const rounds = r.rounds && r.rounds.length > 1 ? ` (rounds ${r.rounds.map(k).join('/')})` : '';
  return `${r.label} ${k(r.rate)}${rounds}${r.generatorBound ? ' (generator-bound)' : ''}${r.error ? ` [${r.error}]` : ''}`;
}

/** Runs P2; returns the rows and everything measured on the way. */
export async function runP2Detailed(opts: P2Options = {}): Promise<P2Result> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const o: Common = {
    receivers: opts.receivers ?? 3,
    stepMs: opts.stepMs ?? (quick ? 300 : 1000),
    payload: opts.payload ?? 64,
    cpus: cpuPlan(),
  };
  const kinds = opts.kinds ?? ['xseq', 'c-mmsg', 'node-dgram'];
  const modes = opts.modes ?? ['generic', 'native'];
  const precision = quick ? 0.15 : 0.05;
  const nRounds = Math.max(1, opts.rounds ?? (quick ? 1 : 3));
  const started = Date.now();
  const deadline = started + (opts.budgetMs ?? 220_000);

  buildBenchTools();
  log(
    `P2: ${o.receivers} receivers, ${o.stepMs} ms steps, ${o.payload} B payload, ` +
      (o.cpus.generator === undefined ? 'one CPU, no split' : `generator on CPU ${o.cpus.generator}, sequencer side on CPU ${o.cpus.sequencer}`),
  );
  const ceiling = await measureCeiling(o, log);
  log(`P2 ceiling: ${k(ceiling.rate)} pps`);
  const maxRate = Math.max(ceiling.rate, FIRST_RATE);

  const pin = o.cpus.sequencer === undefined ? {} : { cpu: o.cpus.sequencer };
  const candidates: Candidate[] = [];
  for (const kind of kinds) {
    if (kind === 'xseq') {
      for (const mode of modes) candidates.push({ label: `xseq-${mode}`, kind, mode, start: opts.startSequencer ?? agentXdpSequencer });
    } else if (kind === 'c-mmsg') {
      candidates.push({ label: kind, kind, mode: 'generic', start: cMmsgSequencer(pin) });
    } else {
      candidates.push({ label: kind, kind, mode: 'generic', start: nodeDgramSequencer(pin) });
    }
  }
  // Every candidate is set up at once and their steps interleaved; idle
  // candidates cost nothing but memory. Each round is a fresh search for
  // every candidate; the result is the median round.
  const rigs: Rig[] = [];
  const rounds: Array<Map<Rig, Search>> = [];
  try {
    for (const c of candidates) rigs.push(await setUp(c, o, new Search(maxRate, precision)));
    for (let round = 0; round < nRounds && Date.now() < deadline; round++) {
      const searches = new Map<Rig, Search>();
      for (const rig of rigs) {
        // A candidate that failed to start keeps its error in every round.
        const s = round === 0 ? rig.search : new Search(maxRate, precision);
        if (rig.search.error && round > 0) s.finish(rig.search.error);
        searches.set(rig, s);
      }
      rounds.push(searches);
      if (nRounds > 1) log(`P2 round ${round + 1}/${nRounds}`);
      for (;;) {
        const active = rigs.filter((r) => !searches.get(r)!.done);
        if (active.length === 0) break;
        if (Date.now() > deadline) {
          log('P2: budget spent, keeping what passed so far');
          break;
        }
        for (const rig of active) {
          const search = searches.get(rig)!;
          const rate = search.next();
          if (rate === null) continue;
          const r = await step(rig.topo, rig.counters, rate, o);
          log(
            `  ${rig.c.label} ${rate} pps: sent ${r.sent} at ${r.achievedRate} pps, receivers ${r.distinct.join('/')}` +
              (r.pass ? ' ok' : ` FAIL (${r.reason})`),
          );
          search.record(r);
        }
      }
    }
  } finally {
    for (const rig of rigs) await tearDown(rig, log);
  }
  const results: KindResult[] = rigs.map((rig) => {
    const per = rounds.map((m) => m.get(rig)!);
    // Lower median: with two rounds, the worse one (zero loss is a floor).
    const sorted = [...per].sort((a, b) => a.best - b.best);
    const med = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const error = per.find((s) => s.error)?.error;
    return {
      label: rig.c.label,
      rate: med.best,
      rounds: per.map((s) => s.best),
      generatorBound: med.generatorBound,
      steps: per.flatMap((s) => s.steps),
      ...(error ? { error } : {}),
    };
  });
  for (const r of results) log(`P2 ${describe(r)} pps`);

  // Native and generic are separate rows, each fixed in advance (native is
  // what the agent runs by default): taking the better of the two after
  // the fact would give xseq two tries where each baseline gets one.
  const xseqResults = results.filter((r) => r.label.startsWith('xseq-'));
  const row = (id: string, xLabel: string, baseKind: SequencerKind, baseName: string): P2Row | null => {
    const xr = results.find((r) => r.label === xLabel);
    const base = results.find((r) => r.label === baseKind);
    if (!xr && !base) return null;
    const x = xr?.rate ?? 0;
    const b = base?.rate ?? 0;
    const error = xr?.error ?? base?.error;
    return {
      id,
      name: `highest zero-loss sequenced rate, ${o.receivers} receivers behind a Linux bridge, xseq (${xLabel}${xr ? '' : ', not run'}) vs ${baseName}`,
      unit: 'pps',
      xseq: x,
      baseline: b,
      baselineName: baseName,
      ratio: ratioOf(x, b),
      goal: null,
      ...(error ? { failed: error } : {}),
      notes: [
        `ceiling: the generator alone into an XDP sink ${k(ceiling.rate)} pps`,
        ...xseqResults.map(describe),
        ...(base ? [describe(base)] : []),
        o.cpus.generator === undefined ? 'one CPU' : `generator CPU ${o.cpus.generator}, sequencer side CPU ${o.cpus.sequencer}`,
        `${o.stepMs} ms steps, zero loss twice in a row, median of ${nRounds} round(s)`,
      ].join('; '),
    };
  };
  const rows = [
    row('P2', 'xseq-native', 'c-mmsg', 'C recvmmsg/sendmmsg sequencer'),
    row('P2-generic', 'xseq-generic', 'c-mmsg', 'C recvmmsg/sendmmsg sequencer'),
    row('P2b', 'xseq-native', 'node-dgram', 'Node dgram sequencer'),
    row('P2b-generic', 'xseq-generic', 'node-dgram', 'Node dgram sequencer'),
  ].filter((r): r is P2Row => r !== null);
  log(`P2 done in ${Math.round((Date.now() - started) / 1000)} s`);
  return { rows, ceiling, results };
}

/** The rows for bench/run.ts. */
export async function runP2(opts: P2Options = {}): Promise<P2Row[]> {
  return (await runP2Detailed(opts)).rows;
}

// Standalone: tsx bench/p2.ts [--quick] [--rounds N] [--kinds xseq,c-mmsg] [--modes generic] [--json]
if (import.meta.url === `file://${process.argv[1]}`) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      kinds: { type: 'string' },
      modes: { type: 'string' },
      rounds: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const r = await runP2Detailed({
    quick: Boolean(values.quick),
    ...(values.rounds ? { rounds: Number(values.rounds) } : {}),
    ...(values.kinds ? { kinds: values.kinds.split(',') as SequencerKind[] } : {}),
    ...(values.modes ? { modes: values.modes.split(',') as XdpMode[] } : {}),
    log: (l) => console.error(l),
  });
  console.log(JSON.stringify(values.json ? r : r.rows, null, 2));
}

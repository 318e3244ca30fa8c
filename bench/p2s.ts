/**
 * P2s / P2sb: sequencer capacity, the highest zero-loss rate with the
 * sequencer as the bottleneck. The method, and what bounds the numbers on
 * this machine, is in bench/README.md; in short:
 *
 *   CPU 0 (client side)                      CPU 1 (sequencer host)
 *   xdpgen: reqgen.bpf.o in a live ─┐    ┌─ the sequencer's veth:
 *     test run, REQUEST, XDP_TX ────┼────┼─►  xseq: native or generic XDP,
 *                                   │    │    XDP_TX back out of the veth;
 *   client veth: count.bpf.o  ◄─────┼────┼─   baselines: NAPI, UDP socket,
 *     (native XDP: counts seqs,     │    │    the process, sendmmsg to the
 *      drops; also the peer program ┘    └─   group (route 224/4 via veth)
 *      native XDP_TX on veth needs)
 *
 * Two namespaces per candidate, one veth pair between them, nothing else:
 * no bridge to flood, no socket generator to saturate (P2 has both).
 *
 * - Generator: bench/baseline/xdpgen.c runs xdp/reqgen.bpf.o under
 *   BPF_PROG_TEST_RUN in live-frames mode; every repetition writes a
 *   REQUEST and returns XDP_TX, a real transmit out of the client's veth,
 *   paced in the program, one syscall per step. A kernel that refuses
 *   live test runs gets bench/baseline/pktgen.c instead (same frames and
 *   pacing from an AF_PACKET socket, slower), and the rows say so.
 * - Counter: count.bpf.o, native XDP on the client's veth (bitmap of
 *   seqs, XDP_DROP), in that veth's NAPI thread on the client's CPU.
 * - Placement: threaded NAPI on both veths, pinned, so the sequencer's
 *   whole receive-process-send path runs on CPU 1 and generator and
 *   counter on CPU 0; baseline processes pinned to CPU 1.
 * - A step passes when the counter saw every request the generator sent
 *   exactly once, as a dense run of seqs; a rate passes when two of at
 *   most three steps pass. Bracket from START_RATE, then bisect; all
 *   candidates side by side, steps interleaved, three rounds, median.
 * - Also per round: one unpaced step per candidate (saturation), and the
 *   machine's noise floor (bench/baseline/cpugap.c) before and after.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { withNetns, type XdpLink } from '../bpf/libbpf/index.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { encodeMessage, emptyHeader, MsgType } from '../bpf/wire.ts';
import { atLeast, ratioOf, type BenchRow, type Goal } from './row.ts';
import { GROUP, SEQ_PORT } from './sequencers.ts';
import { BENCH_DIR, bin, buildBenchTools, Counters, generatorKind, REPO_ROOT, runCpugap, runXdpgenAsync, type CountStats, type CpuGap, type XdpgenResult } from './tools.ts';

export type P2sLabel = 'xseq-native' | 'xseq-generic' | 'c-mmsg' | 'c-mmsg-busy' | 'node-dgram';
const ALL_LABELS: readonly P2sLabel[] = ['xseq-native', 'xseq-generic', 'c-mmsg', 'c-mmsg-busy', 'node-dgram'];
/** c-mmsg-busy: busy polling of the receive queue for up to this many microseconds, and UDP GSO out. */
const BUSY_POLL_US = 50;

export interface P2sOptions {
  /** Candidates to measure (default all four). */
  labels?: P2sLabel[];
  /** Traffic per step in ms (default 400; quick: 200). */
  stepMs?: number;
  /** Independent searches per candidate; the result is the median
   * (default 3; quick: 1). */
  rounds?: number;
  /** REQUEST payload bytes (default 64, at most 150). */
  payload?: number;
  /** Budget for the searches; they stop with what they have (default
   * 105 s; quick: 18 s, counted from the start). Teardown comes on top. */
  budgetMs?: number;
  /** Coarser bisection, shorter steps: a smoke run, not numbers to report. */
  quick?: boolean;
  log?: (s: string) => void;
}

export interface P2sStep {
  rate: number;
  sent: number;
  achievedRate: number;
  /** Distinct seqs the counter saw. */
  distinct: number;
  duplicates: number;
  /** Requests the counter never saw as a seq (sent - distinct). */
  lost: number;
  /** Generator schedule slips (it was held up, see xdpgen.c). */
  late: number;
  pass: boolean;
  reason?: 'loss' | 'generator';
}

export interface P2sResult {
  label: string;
  /** Highest rate that passed (2 of 3 steps lossless), median round (pps). */
  rate: number;
  rounds: number[];
  /** The search reached the generator's ceiling without a loss. */
  generatorBound: boolean;
  /**
   * Offered more than it can take (the generator unpaced), what it
   * delivered per second, median round; `offered` is what the generator
   * managed meanwhile. Not the row's number: it is the processing rate of
   * an XDP sequencer (which drops the excess at its ring and goes on), and
   * for a userspace one it shows receive livelock instead.
   */
  saturated?: { rate: number; offered: number };
  steps: P2sStep[];
  error?: string;
}

export interface P2sRow extends BenchRow {
  notes: string;
}

export interface P2sDetailed {
  rows: P2sRow[];
  /** The generator alone, into an XDP sink on the sequencer's veth. */
  ceiling: number;
  results: P2sResult[];
  /** Per CPU, the worst of the noise probes before and after. */
  noise: CpuGap[];
}

const START_RATE = 50_000;
const WARM_RATE = 10_000;
/** Below this the generator did not offer the step's rate. */
const ACHIEVED_MIN = 0.97;
/** A step whose generator fell short is repeated this often before it
 * counts as a failure (the machine's noise, not the sequencer). */
const GENERATOR_RETRIES = 2;
/** The NAPI threads (the sequencer's receive path, and the counter):
 * SCHED_FIFO, so they run as soon as frames wait, before any process, as
 * softirq would. Measured with SCHED_OTHER: the counter's thread, sharing
 * its CPU with the generator, let the client's 256-frame ring overflow at
 * 100 kpps. */
const NAPI_PRIO = 50;
/** The baseline processes: nice -20 in an autogroup of their own at -20,
 * about 99 % of the CPU against nice-0 work. Not SCHED_FIFO: measured, a
 * node process at FIFO spinning at 90 % of the sequencer's CPU starved
 * everything else there (both baselines then read nothing from their
 * sockets, step after step); under nice nothing starves. */
const PROC_NICE = -20;
/** The generator: real-time so other tenants cannot hold its schedule up,
 * below the counter so the counter's thread takes the CPU at the end of
 * every batch. A step must stay well under a second: a real-time task
 * that keeps normal tasks off a CPU for ~1 s makes the kernel's fair
 * server run them for 50 ms, which would stall the counter too. */
const GEN_PRIO = 30;
/** How long one live batch may hold the client's CPU. A batch runs with
 * bottom halves off, so the counter's NAPI thread waits for its end, while
 * the sequencer keeps filling the client's 256-frame ring. Measured: with
 * 64-frame batches at 10 kpps (6 ms) a baseline draining its socket
 * backlog overflowed it; with 100 us batches at 600 kpps, native xseq's
 * failing steps overflowed it in about half the cases, with 25 us in none
 * of ten. */
const BATCH_NS = 25_000;

/** Frames per live batch for `rate`: about BATCH_NS worth, 1..64. */
function liveBatch(rate: number): number {
  return rate > 0 ? Math.max(1, Math.min(64, Math.round((rate * BATCH_NS) / 1e9))) : 64;
}
/** count.h: seqs are tracked modulo 4 Mi; a step must stay below it. */
const MAX_STEP_PACKETS = 3_500_000;
/** reqgen.h: 256-byte frames, 106 of them headers. */
const MAX_PAYLOAD = 150;

const NETNS_DIR = '/run/netns';
const MARKER_DIR = '/run/xseq-p2s';
const RIG_RE = /^p2s([0-9a-f]{6})-/;
const CLI_IP = '10.79.0.1';
const SEQ_IP = '10.79.0.2';
const CLI_PORT = 40000;

// ---------------------------------------------------------------------------
// Namespaces: two per candidate. Every name carries a random id, and an
// owner record (pid and start time) lets a later run remove what a crashed
// one left behind. The names do not match netns/topology.ts's pattern, so
// its stale cleanup leaves them alone and the other way round.

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string;
  exited: Promise<number | null>;
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

function delNetns(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
  for (const p of pids.split(/\s+/).filter(Boolean).map(Number)) {
    if (p === process.pid) continue;
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  spawnSync('ip', ['netns', 'del', ns]);
}

/** Removes namespaces of P2s runs whose process is gone. */
function cleanupStale(): void {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {
    return;
  }
  for (const ns of names) {
    const m = RIG_RE.exec(ns);
    if (!m || liveIds.has(m[1]!)) continue;
    let alive = false;
    try {
      const { pid, start } = JSON.parse(readFileSync(join(MARKER_DIR, m[1]!), 'utf8')) as { pid: number; start: string };
      alive = procStart(pid) === start;
    } catch {
      /* no record: a crashed run */
    }
    if (!alive) {
      delNetns(ns);
      rmSync(join(MARKER_DIR, m[1]!), { force: true });
    }
  }
}

const liveRigs = new Set<Rig>();
const liveIds = new Set<string>();

function onExit(): void {
  for (const r of [...liveRigs]) r.destroySync();
}
function onSignal(sig: NodeJS.Signals): void {
  onExit();
  uninstall();
  // Re-raise so the process ends as it would have without us, unless
  // another handler is there to decide.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}
const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, () => onSignal(s)] as const);
let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const [s, h] of handlers) process.on(s, h);
}
function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const [s, h] of handlers) process.off(s, h);
}

function napiThreads(ifname: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').startsWith(`napi/${ifname}-`)) out.push(Number(p));
    } catch {
      /* exited */
    }
  }
  return out;
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

function csum16(bytes: Uint8Array, start = 0): number {
  let s = start;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The REQUEST as the client would put it on the wire, request_id 0, with
 * full IP and UDP checksums (the generator updates the UDP one per id). */
export function requestFrame(srcMac: string, dstMac: string, payload: number): Uint8Array {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: GROUP.id, clientId: 1n, requestId: 0n }, new Uint8Array(payload).fill(0x5a));
  const udpLen = 8 + msg.length;
  const ipLen = 20 + udpLen;
  const f = new Uint8Array(14 + ipLen);
  const v = new DataView(f.buffer);
  f.set(macBytes(dstMac), 0);
  f.set(macBytes(srcMac), 6);
  v.setUint16(12, 0x0800);
  f[14] = 0x45;
  v.setUint16(16, ipLen);
  v.setUint16(20, 0x4000); // DF, as the kernel sends UDP
  f[22] = 64;
  f[23] = 17;
  f.set(ipBytes(CLI_IP), 26);
  f.set(ipBytes(SEQ_IP), 30);
  v.setUint16(24, ~csum16(f.subarray(14, 34)) & 0xffff);
  v.setUint16(34, CLI_PORT);
  v.setUint16(36, SEQ_PORT);
  v.setUint16(38, udpLen);
  f.set(msg, 42);
  const pseudo = new Uint8Array(12);
  pseudo.set(ipBytes(CLI_IP), 0);
  pseudo.set(ipBytes(SEQ_IP), 4);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, udpLen);
  const c = ~csum16(f.subarray(34), csum16(pseudo)) & 0xffff;
  v.setUint16(40, c === 0 ? 0xffff : c);
  return f;
}

export type RigKind = P2sLabel | 'sink';

/**
 * One candidate's two namespaces, its counter, its sequencer. Everything
 * it creates goes away with destroySync (also from exit/signal handlers).
 */
export class Rig {
  readonly cliNs: string;
  readonly seqNs: string;
  readonly cliIf: string;
  readonly seqIf: string;
  readonly cliMac: string;
  readonly seqMac: string;
  /** The REQUEST the generator sends, addressed across this rig's veth. */
  readonly frame: Uint8Array;
  counters!: Counters;
  private readonly procs = new Set<Proc>();
  private xdp: { seq: Sequencer; link: XdpLink } | undefined;
  private destroyed = false;
  private created: string[] = [];

  private constructor(
    readonly id: string,
    readonly kind: RigKind,
    readonly cpus: Cpus,
    payload: number,
  ) {
    this.cliNs = `p2s${id}-cli`;
    this.seqNs = `p2s${id}-seq`;
    // Interface names are unique too: the NAPI threads are found by
    // name, and other namespaces may hold an x-seq of their own.
    this.cliIf = `p${id}c`;
    this.seqIf = `p${id}s`;
    const r = [id.slice(0, 2), id.slice(2, 4), id.slice(4, 6)].join(':');
    this.cliMac = `02:50:${r}:01`;
    this.seqMac = `02:50:${r}:02`;
    this.frame = requestFrame(this.cliMac, this.seqMac, payload);
  }

  /** Builds the rig for `kind`; on any failure removes what it built. */
  static async create(kind: RigKind, o: { cpus?: Cpus; payload?: number } = {}): Promise<Rig> {
    const cpus = o.cpus ?? defaultCpus();
    const payload = o.payload ?? 64;
    if (!Number.isInteger(payload) || payload < 0 || payload > MAX_PAYLOAD) throw new RangeError(`payload must be 0..${MAX_PAYLOAD} bytes (reqgen.h)`);
    mkdirSync(MARKER_DIR, { recursive: true });
    cleanupStale();
    let id: string;
    do id = randomBytes(3).toString('hex');
    while (liveIds.has(id) || existsSync(join(MARKER_DIR, id)));
    const rig = new Rig(id, kind, cpus, payload);
    liveIds.add(id);
    liveRigs.add(rig);
    install();
    writeFileSync(join(MARKER_DIR, id), JSON.stringify({ pid: process.pid, start: procStart(process.pid) }));
    try {
      rig.build(cpus);
      await rig.startSequencer(cpus);
    } catch (e) {
      rig.destroySync();
      throw e;
    }
    return rig;
  }

  private exec(ns: string, cmd: string, args: string[]): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  private build(cpus: Cpus): void {
    for (const ns of [this.cliNs, this.seqNs]) {
      sh('ip', ['netns', 'add', ns]);
      this.created.push(ns);
      this.exec(ns, 'sysctl', [
        '-q', '-w',
        'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
        // No router solicitations, DAD or MLD on the link.
        'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1',
      ]);
    }
    sh('ip', ['-n', this.cliNs, 'link', 'add', this.cliIf, 'address', this.cliMac, 'type', 'veth', 'peer', 'name', this.seqIf, 'address', this.seqMac, 'netns', this.seqNs]);
    const side = (ns: string, ifname: string, ip: string, peerIp: string, peerMac: string): void => {
      sh('ip', ['-n', ns, '-batch', '-'], [
        'link set lo up',
        `addr add ${ip}/24 dev ${ifname}`,
        `link set ${ifname} up`,
        // The baselines send to the group through the veth.
        `route add 224.0.0.0/4 dev ${ifname}`,
        `neigh replace ${peerIp} lladdr ${peerMac} dev ${ifname} nud permanent`,
      ].join('\n') + '\n');
      // Full checksums on the wire, as a NIC would: an XDP program that
      // updates a CHECKSUM_PARTIAL checksum incrementally leaves it wrong.
      this.exec(ns, 'ethtool', ['-K', ifname, 'tx-checksumming', 'off']);
    };
    side(this.cliNs, this.cliIf, CLI_IP, SEQ_IP, this.seqMac);
    side(this.seqNs, this.seqIf, SEQ_IP, CLI_IP, this.cliMac);

    // The counter: native XDP on the client's veth, SEQUENCED by seq. The
    // sink instead counts REQUESTs by request id where a sequencer would
    // be, and there is nothing to count on the client's side.
    const counted = this.kind === 'sink'
      ? { ns: this.seqNs, ifname: this.seqIf }
      : { ns: this.cliNs, ifname: this.cliIf };
    this.counters = Counters.attachInNetns(
      [counted],
      this.kind === 'sink'
        ? { mode: 'native', port: SEQ_PORT, requests: true }
        : { mode: 'native', port: GROUP.port, groupId: GROUP.id },
    );
    if (this.kind !== 'sink') this.threadNapi(this.cliNs, this.cliIf, cpus.client);
  }

  /** Threaded NAPI for the interface, its thread pinned and SCHED_FIFO. */
  private threadNapi(ns: string, ifname: string, cpu: number | undefined): void {
    this.exec(ns, 'sh', ['-c', `echo 1 > /sys/class/net/${ifname}/threaded`]);
    const pids = napiThreads(ifname);
    if (pids.length === 0) throw new Error(`no NAPI thread for ${ifname} (no XDP program and no GRO?)`);
    for (const pid of pids) {
      if (cpu !== undefined) sh('taskset', ['-pc', String(cpu), String(pid)]);
      sh('chrt', ['-f', '-p', String(NAPI_PRIO), String(pid)]);
    }
  }

  private async startSequencer(cpus: Cpus): Promise<void> {
    const pin = cpus.sequencer === undefined ? [] : ['taskset', '-c', String(cpus.sequencer)];
    const prio = ['nice', '-n', String(PROC_NICE)];
    const common = [
      '--port', String(SEQ_PORT), '--group-addr', GROUP.addr, '--group-port', String(GROUP.port),
      '--group-id', String(GROUP.id), '--session', String(GROUP.session), '--sequencer-id', String(GROUP.sequencerId),
      '--iface-addr', SEQ_IP,
    ];
    // Node with tsx's loader, not the tsx CLI: the CLI stays around as a
    // second process on the sequencer's CPU (one measured spinning at 90 %
    // of it after its child had stopped).
    const node = [process.execPath, '--import', pathToFileURL(join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href];
    switch (this.kind) {
      case 'sink':
        this.threadNapi(this.seqNs, this.seqIf, cpus.sequencer);
        return;
      case 'xseq-native':
      case 'xseq-generic': {
        const mode = this.kind === 'xseq-native' ? 'native' : 'generic';
        // Generic XDP runs on skbs; GRO gives the veth the NAPI instance
        // the generator's frames arrive through (and the thread to pin).
        if (mode === 'generic') this.exec(this.seqNs, 'ethtool', ['-K', this.seqIf, 'gro', 'on']);
        // The agent's own loader, in this process: the data path is the
        // same program and maps the agent attaches, and nothing of the
        // agent's control plane (timers, pins, metrics) is on the path of
        // a packet. The link goes away with this process at the latest.
        withNetns(this.seqNs, () => {
          const seq = Sequencer.load({ port: SEQ_PORT });
          try {
            seq.resetSeq(GROUP.id);
            seq.setGroup(GROUP.id, { mcastAddr: GROUP.addr, mcastPort: GROUP.port, sequencerId: GROUP.sequencerId, session: GROUP.session, enabled: true });
            this.xdp = { seq, link: seq.attach(this.seqIf, mode) };
          } catch (e) {
            seq.close();
            throw e;
          }
        });
        this.threadNapi(this.seqNs, this.seqIf, cpus.sequencer);
        return;
      }
      case 'c-mmsg':
      case 'c-mmsg-busy':
      case 'node-dgram': {
        this.exec(this.seqNs, 'ethtool', ['-K', this.seqIf, 'gro', 'on']);
        // A userspace sender keeps its checksum offload, as on a real NIC:
        // only the XDP path needs full checksums on frames it rewrites
        // (above), and the counter on the other side does not check them.
        this.exec(this.seqNs, 'ethtool', ['-K', this.seqIf, 'tx-checksumming', 'on']);
        this.threadNapi(this.seqNs, this.seqIf, cpus.sequencer);
        const cmd = this.kind === 'c-mmsg'
          ? [bin.udpSequencer, ...common, '--batch', '64']
          : this.kind === 'c-mmsg-busy'
          ? [bin.udpSequencer, ...common, '--batch', '64', '--busy-poll', String(BUSY_POLL_US), '--gso']
          : [...node, join(BENCH_DIR, 'baseline', 'node-sequencer.ts'), ...common];
        await this.spawnReady([...prio, ...pin, ...cmd]);
        return;
      }
    }
  }

  private async spawnReady(argv: string[]): Promise<void> {
    // Its own session, hence its own autogroup (sched_autogroup is on
    // here): a nice value only ranks threads within their autogroup, and
    // every session's group gets an equal share of the CPU. The group's
    // own nice (/proc/PID/autogroup) is what ranks it against other work.
    const child = spawn('ip', ['netns', 'exec', this.seqNs, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const p: Proc = {
      child,
      lines: [],
      stderr: '',
      exited: new Promise((res) => child.once('close', (code) => res(code))),
    };
    this.procs.add(p);
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (p.stderr = (p.stderr + d).slice(-8192)));
    const ready = new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${argv.join(' ')}: not ready after 30 s: ${p.stderr.trim()}`)), 30_000);
      child.stdout!.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (p.lines.length < 1000) p.lines.push(line);
          if (line.includes('"event":"ready"')) {
            clearTimeout(timer);
            res();
          }
        }
      });
      void p.exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`${argv.join(' ')} exited (${code}) before ready: ${p.stderr.trim()}`));
      });
    });
    await ready;
    if (child.pid !== undefined) {
      try {
        writeFileSync(`/proc/${child.pid}/autogroup`, String(PROC_NICE));
      } catch {
        /* no autogroups on this kernel: nice alone ranks it */
      }
    }
  }

  /** Stops the processes (SIGTERM, then SIGKILL) and removes the namespaces. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all(
      [...this.procs].map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGTERM');
        const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.procs) {
      try {
        p.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.procs.clear();
    if (this.xdp) {
      try {
        this.xdp.link.close();
      } finally {
        this.xdp.seq.close();
        this.xdp = undefined;
      }
    }
    // Deleting the namespaces deletes the veth pair, its XDP programs and
    // their maps; delNetns also kills anything still inside.
    for (const ns of this.created.reverse()) delNetns(ns);
    this.created = [];
    rmSync(join(MARKER_DIR, this.id), { force: true });
    liveIds.delete(this.id);
    liveRigs.delete(this);
    if (liveRigs.size === 0) uninstall();
  }

  private drops = new Map<string, number>();

  /**
   * Where frames were dropped since the last call, from the kernel's own
   * counters: the generator's transmit into the sequencer's veth ring
   * (full: the sequencer's receive side fell behind), the sequencer's
   * XDP_TX or skb transmit into the client's ring (full: the counter's
   * thread was kept off its CPU), and the sequencer host's UDP socket.
   */
  dropsSinceLast(): Record<string, number> {
    const read = (ns: string, ifname: string): string =>
      this.exec(ns, 'sh', ['-c', `ethtool -S ${ifname}; echo tx_dropped: $(cat /sys/class/net/${ifname}/statistics/tx_dropped); cat /proc/net/snmp`]);
    const pick = (text: string, key: RegExp): number => Number(key.exec(text)?.[1] ?? 0);
    const cli = read(this.cliNs, this.cliIf);
    const seq = read(this.seqNs, this.seqIf);
    const udp = /^Udp: (\d.*)$/m.exec(seq)?.[1]?.split(' ').map(Number) ?? [];
    const udpHead = /^Udp: ([A-Z].*)$/m.exec(seq)?.[1]?.split(' ') ?? [];
    const now: Record<string, number> = {
      'generator->sequencer ring': pick(cli, /tx_queue_0_xdp_xmit_errors: (\d+)/),
      // XDP_TX failures (native) count in both; skb sends only in tx_dropped.
      'sequencer->client ring': Math.max(pick(seq, /rx_queue_0_xdp_tx_errors: (\d+)/), pick(seq, /^tx_dropped: (\d+)/m)),
      'socket receive buffer': udp[udpHead.indexOf('RcvbufErrors')] ?? 0,
      'socket send': udp[udpHead.indexOf('SndbufErrors')] ?? 0,
    };
    const out: Record<string, number> = {};
    for (const [key, v] of Object.entries(now)) {
      const d = v - (this.drops.get(key) ?? 0);
      if (d) out[key] = d;
      this.drops.set(key, v);
    }
    return out;
  }

  /** One step: `count` requests at `rate` pps (0: as fast as it goes). */
  /** Signals the baseline sequencer process (c-mmsg, c-mmsg-busy, node-dgram rigs); its wrappers exec, so the pid is its own. */
  signalBaseline(sig: NodeJS.Signals): void {
    for (const p of this.procs) p.child.kill(sig);
  }

  /**
   * What the counter saw since the last step began, once it stops changing
   * (after a SIGCONT). With `want`, it first waits (up to 10 s) until that
   * many packets arrived: a resumed process may be kept off its CPU for
   * longer than one quiet tick, which is not the end of its output.
   */
  settled(want?: number): Promise<CountStats> {
    return settle(this.counters, want === undefined ? 3000 : 10_000, want);
  }

  /** Stops the baseline sequencer (SIGTERM) and returns the counters of its stopped line. */
  async stopBaseline(): Promise<Record<string, number>> {
    for (const p of this.procs) {
      p.child.kill('SIGTERM');
      await p.exited;
      const line = p.lines.find((l) => l.includes('"event":"stopped"'));
      if (line) return JSON.parse(line) as Record<string, number>;
    }
    throw new Error(`${this.kind}: no baseline stopped line`);
  }

  async step(rate: number, count: number): Promise<{ gen: XdpgenResult; stats: CountStats }> {
    const cpus = this.cpus;
    this.counters.reset();
    const gen = await runXdpgenAsync(this.cliNs, {
      ifname: this.cliIf,
      frame: this.frame,
      count,
      rate,
      // Generous: a step that runs into it reports the generator short.
      maxMs: rate > 0 ? Math.round((count / rate) * 4000) + 2000 : 10_000,
      ...(cpus.client === undefined ? {} : { cpu: cpus.client }),
      fifo: GEN_PRIO,
      batch: liveBatch(rate),
    });
    return { gen, stats: await settle(this.counters) };
  }
}

/** Reads the counter until two reads 50 ms apart agree: a baseline with a
 * backlog in its socket keeps sending after the generator stops, and
 * those packets belong to this step. */
async function settle(c: Counters, maxMs = 3000, want = 0): Promise<CountStats> {
  let prev = c.read()[0]!;
  const end = Date.now() + maxMs;
  for (;;) {
    await sleep(50);
    const cur = c.read()[0]!;
    // Quiet for a tick, and (when a count is wanted) that count reached; any
    // extra (a duplicate) still arrives within the quiet tick after it.
    if ((cur.packets === prev.packets && cur.packets >= want) || Date.now() > end) return cur;
    prev = cur;
  }
}

export interface Cpus {
  /** The generator and the counter's NAPI thread. */
  client?: number;
  /** Everything the sequencer host does. */
  sequencer?: number;
}

/** One CPU: nothing to split; the numbers then say so by being low. */
export function defaultCpus(): Cpus {
  return availableParallelism() >= 2 ? { client: 0, sequencer: 1 } : {};
}

// ---------------------------------------------------------------------------

/**
 * Bracketing, then bisection: from `start`, multiply by `factor` while
 * rates pass (divide while they fail), then halve the gap between the
 * highest pass and the lowest failure down to `precision`. A rate passes
 * when two of at most three steps at it lose nothing (and fails when two
 * lose): at these rates a 256-frame veth ring overflows within a fraction
 * of a millisecond, and on a shared VM a single stall that long now and
 * then is the machine, which one step must not decide either way.
 */
class Search {
  readonly steps: P2sStep[] = [];
  private rate: number;
  private lo = 0;
  private hi = Infinity;
  private passes = 0;
  private fails = 0;
  private retries = 0;
  generatorBound = false;
  done = false;
  /** Stopped by the budget before it converged. */
  cut = false;
  error: string | undefined;

  constructor(
    start: number,
    private readonly factor: number,
    private readonly maxRate: number,
    private readonly precision: number,
    /** Steps that must agree: 2 (of at most 3), or 1 for a smoke run. */
    private readonly votes = 2,
  ) {
    this.rate = Math.min(start, maxRate);
  }

  get best(): number {
    return this.lo;
  }

  next(): number | null {
    return this.done ? null : this.rate;
  }

  record(s: P2sStep): void {
    this.steps.push(s);
    if (s.reason === 'generator' && this.retries < GENERATOR_RETRIES) {
      // The generator was held up, nothing was lost: no vote, again.
      this.retries++;
      return;
    }
    this.retries = 0;
    if (s.pass) this.passes++;
    else this.fails++;
    if (this.passes < this.votes && this.fails < this.votes) return;
    const pass = this.passes >= this.votes;
    this.passes = this.fails = 0;
    if (pass) {
      this.lo = s.rate;
      if (this.hi === Infinity) {
        if (s.rate >= this.maxRate) {
          this.generatorBound = true;
          this.done = true;
          return;
        }
        this.rate = Math.min(round1k(s.rate * this.factor), this.maxRate);
        return;
      }
    } else {
      this.hi = s.rate;
      if (this.lo === 0) {
        if (s.rate <= 5000) {
          this.error = `loss at ${s.rate} pps`;
          this.done = true;
          return;
        }
        this.rate = Math.max(1000, round1k(s.rate / this.factor));
        return;
      }
    }
    const mid = round1k((this.lo + this.hi) / 2);
    if (this.hi - this.lo <= Math.max(this.lo * this.precision, 2000) || mid <= this.lo || mid >= this.hi) {
      this.done = true;
      return;
    }
    this.rate = mid;
  }
}

function round1k(n: number): number {
  return Math.round(n / 1000) * 1000;
}

function k(n: number): string {
  return n >= 1000 ? `${Math.round(n / 1000)}k` : String(n);
}

function describe(r: P2sResult): string {
  const rounds = r.rounds.length > 1 ? ` (rounds ${r.rounds.map(k).join('/')})` : '';
  const sat = r.saturated
    ? `, saturated ${k(r.saturated.rate)}${r.saturated.rate >= r.saturated.offered * 0.98 ? ' (all the generator offered)' : ` of ${k(r.saturated.offered)} offered`}`
    : '';
  return `${r.label} ${k(r.rate)}${rounds}${r.generatorBound ? ' (generator-bound)' : ''}${sat}${r.error ? ` [${r.error}]` : ''}`;
}

function judge(rate: number, sent: number, gen: XdpgenResult, st: CountStats): P2sStep {
  const lost = sent - st.distinct;
  const dense = st.distinct === sent && st.duplicates === 0 && st.zeroSeq === 0 && st.maxSeq - st.minSeq + 1 === sent;
  const genOk = !gen.interrupted && (rate === 0 || gen.achievedRate >= rate * ACHIEVED_MIN);
  const s: P2sStep = {
    rate,
    sent,
    achievedRate: Math.round(gen.achievedRate),
    distinct: st.distinct,
    duplicates: st.duplicates,
    lost,
    late: gen.late,
    pass: dense && genOk,
  };
  if (!dense) s.reason = 'loss';
  else if (!genOk) s.reason = 'generator';
  return s;
}

/** Runs P2s; returns the rows and everything measured on the way. */
export async function runP2sDetailed(opts: P2sOptions = {}): Promise<P2sDetailed> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  // Not longer than ~800 ms: the generator is SCHED_FIFO and spins, and
  // about a second of that hands the CPU to the starved normal tasks
  // (fair server) for 50 ms, which would stall the counter too.
  const stepMs = Math.min(800, opts.stepMs ?? (quick ? 200 : 400));
  const nRounds = Math.max(1, opts.rounds ?? (quick ? 1 : 3));
  const payload = opts.payload ?? 64;
  // Quick is a smoke run: one step decides a rate, coarser steps.
  const precision = quick ? 0.25 : 0.1;
  const votes = quick ? 1 : 2;
  const labels = opts.labels ?? [...ALL_LABELS];
  const started = Date.now();
  const deadline = started + (opts.budgetMs ?? (quick ? 18_000 : 105_000));
  const cpus = defaultCpus();

  buildBenchTools();
  log(
    `P2s: ${stepMs} ms steps, ${payload} B payload, ` +
      (cpus.client === undefined ? 'one CPU: no split' : `client side (generator, counter) CPU ${cpus.client}, sequencer host CPU ${cpus.sequencer}`),
  );

  // This process too stays off the sequencer's CPU: its GC and spawning
  // between steps would otherwise run where the sequencer is measured.
  const ownMask = cpus.client === undefined ? undefined : /:\s*([0-9a-f]+)\s*$/.exec(sh('taskset', ['-p', String(process.pid)]))?.[1];
  if (ownMask) sh('taskset', ['-a', '-pc', String(cpus.client), String(process.pid)]);

  const rigs: Rig[] = [];
  const searches = new Map<Rig, Search[]>();
  /** Searches of candidates that could not be set up, by label. */
  const failed = new Map<P2sLabel, Search>();
  const saturation = new Map<Rig, Array<{ rate: number; offered: number }>>();
  // The machine's noise floor, before and after: see bench/baseline/cpugap.c.
  const gaps = new Map<number, CpuGap>();
  const probeNoise = (when: string): void => {
    for (const cpu of cpus.sequencer === undefined ? [0] : [cpus.client!, cpus.sequencer]) {
      const g = runCpugap(cpu, 300);
      log(`P2s noise ${when}: CPU ${cpu} stalled up to ${g.maxGapUs} us in 300 ms (${g.over300us} gaps > 300 us)`);
      const prev = gaps.get(cpu);
      if (!prev || g.maxGapUs > prev.maxGapUs) gaps.set(cpu, g);
    }
  };
  let ceiling = 0;
  try {
    // The generator alone: unpaced into an XDP sink on the sequencer's
    // veth (its NAPI thread on the sequencer's CPU, as in every run).
    const sink = await Rig.create('sink', { cpus, payload });
    try {
      // About one step's worth at the few Mpps it reaches.
      const { gen, stats } = await sink.step(0, Math.min(MAX_STEP_PACKETS, stepMs * 3000));
      ceiling = Math.round(gen.achievedRate);
      log(`P2s ceiling: generator alone ${k(ceiling)} pps, sink saw ${stats.distinct}/${gen.sent}`);
      if (stats.distinct !== gen.sent) ceiling = Math.round(ceiling * (stats.distinct / gen.sent));
    } finally {
      await sink.destroy();
    }
    const maxRate = Math.floor((ceiling * 0.9) / 1000) * 1000;
    probeNoise('before');

    for (const label of labels) {
      try {
        rigs.push(await Rig.create(label, { cpus, payload }));
      } catch (e) {
        log(`P2s ${label}: setup failed: ${(e as Error).message}`);
        const s = new Search(START_RATE, 2, maxRate, precision);
        s.done = true;
        s.error = (e as Error).message;
        failed.set(label, s);
      }
    }
    // Passing steps lose nothing, so drops counted since the last failure
    // (or since now) are the failing step's.
    const logDrops = (rig: Rig): void => {
      const where = Object.entries(rig.dropsSinceLast()).map(([w, n]) => `${w} ${n}`).join(', ');
      if (where) log(`    dropped at: ${where}`);
    };
    // Warm-up, not part of any search: a JIT (node, the agent's first
    // packets) or a cold cache must not decide a search's first step. A
    // kind that loses even here, twice, is broken rather than slow.
    for (const rig of [...rigs]) {
      rig.dropsSinceLast();
      let ok = false;
      for (let i = 0; i < 2 && !ok; i++) {
        const count = Math.max(1000, Math.round((WARM_RATE * stepMs) / 1000));
        const { gen, stats } = await rig.step(WARM_RATE, count);
        const s = judge(WARM_RATE, gen.sent, gen, stats);
        ok = s.pass || s.reason === 'generator';
        if (!ok) {
          log(`  ${rig.kind} warm-up at ${k(WARM_RATE)}: counted ${s.distinct}/${s.sent}`);
          logDrops(rig);
        }
      }
      if (!ok) {
        const f = new Search(START_RATE, 2, maxRate, precision);
        f.done = true;
        f.error = `loss at ${k(WARM_RATE)} pps (warm-up)`;
        failed.set(rig.kind as P2sLabel, f);
        rigs.splice(rigs.indexOf(rig), 1);
        await rig.destroy();
      }
    }
    for (let round = 0; round < nRounds && Date.now() < deadline; round++) {
      if (nRounds > 1) log(`P2s round ${round + 1}/${nRounds}`);
      for (const rig of rigs) {
        // Later rounds bracket the first round's result in finer steps:
        // the same search, without the steps every kind passes anyway.
        const first = searches.get(rig)?.[0]?.best ?? 0;
        const search =
          round > 0 && first > 0
            ? new Search(first, 1.25, maxRate, precision, votes)
            : new Search(START_RATE, quick ? 3 : 2, maxRate, precision, votes);
        searches.set(rig, [...(searches.get(rig) ?? []), search]);
      }
      // Saturation: one unpaced step each, between the searches' steps.
      for (const rig of rigs) {
        const count = Math.min(MAX_STEP_PACKETS, Math.round((ceiling * Math.min(stepMs, 300)) / 1000));
        const { gen, stats } = await rig.step(0, count);
        const sat = { rate: Math.round(stats.distinct / (gen.elapsedNs / 1e9)), offered: Math.round(gen.achievedRate) };
        saturation.set(rig, [...(saturation.get(rig) ?? []), sat]);
        log(`  ${rig.kind} saturated: offered ${k(sat.offered)} pps, delivered ${k(sat.rate)} pps`);
        // Its drops are expected; they must not show up as the next failure's.
        rig.dropsSinceLast();
      }
      for (;;) {
        const active = rigs.filter((r) => !searches.get(r)![round]!.done);
        if (active.length === 0) break;
        if (Date.now() > deadline) {
          log('P2s: budget spent; an unfinished round counts only if no round finished');
          for (const r of active) searches.get(r)![round]!.cut = true;
          break;
        }
        for (const rig of active) {
          const search = searches.get(rig)![round]!;
          const rate = search.next();
          if (rate === null) continue;
          const count = Math.min(MAX_STEP_PACKETS, Math.max(1000, Math.round((rate * stepMs) / 1000)));
          const { gen, stats } = await rig.step(rate, count);
          const s = judge(rate, gen.sent, gen, stats);
          log(
            `  ${rig.kind} ${k(rate)}: sent ${s.sent} at ${k(s.achievedRate)} pps (${s.late} slips), ` +
              `counted ${s.distinct}` + (s.pass ? ' ok' : ` FAIL (${s.reason}${s.lost ? `, ${s.lost} lost` : ''})`),
          );
          if (!s.pass) logDrops(rig);
          search.record(s);
        }
      }
    }
  } finally {
    for (const rig of rigs) await rig.destroy();
    if (rigs.length) probeNoise('after');
    if (ownMask) sh('taskset', ['-a', '-p', ownMask, String(process.pid)]);
  }

  const results: P2sResult[] = labels.map((label) => {
    const rig = rigs.find((r) => r.kind === label);
    const all = rig ? (searches.get(rig) ?? []) : failed.has(label) ? [failed.get(label)!] : [];
    // A round the budget cut short only knows a lower bound.
    const per = all.some((s) => !s.cut) ? all.filter((s) => !s.cut) : all;
    // Lower median: with two rounds, the worse one (zero loss is a floor).
    const sorted = [...per].sort((a, b) => a.best - b.best);
    const med = sorted[Math.floor((sorted.length - 1) / 2)];
    const error = per.find((s) => s.error)?.error;
    const sats = rig ? [...(saturation.get(rig) ?? [])].sort((a, b) => a.rate - b.rate) : [];
    const sat = sats[Math.floor((sats.length - 1) / 2)];
    return {
      label,
      rate: med?.best ?? 0,
      rounds: per.map((s) => s.best),
      generatorBound: med?.generatorBound ?? false,
      ...(sat ? { saturated: sat } : {}),
      steps: per.flatMap((s) => s.steps),
      ...(error ? { error } : {}),
    };
  });
  for (const r of results) log(`P2s ${describe(r)} pps`);

  const xs = results.filter((r) => r.label.startsWith('xseq-'));
  // Native and generic are separate rows, each fixed in advance; the goal
  // is on native, the agent's default mode (see bench/p2.ts).
  const row = (id: string, xLabel: P2sLabel, base: P2sLabel, baseName: string, goal: Goal | null): P2sRow | null => {
    const bestX = results.find((r) => r.label === xLabel);
    const b = results.find((r) => r.label === base);
    if (!bestX && !b) return null;
    const x = bestX?.rate ?? 0;
    const bv = b?.rate ?? 0;
    const error = bestX?.error ?? b?.error;
    return {
      id,
      name: `sequencer capacity: highest zero-loss rate with the sequencer as the bottleneck (one veth, ${generatorKind() === 'xdp-live' ? 'XDP live-frames generator' : 'AF_PACKET generator: this kernel refuses live test runs'}, one CPU for the sequencer host), xseq (${xLabel}${bestX ? '' : ', not run'}) vs ${baseName}`,
      unit: 'pps',
      xseq: x,
      baseline: bv,
      baselineName: baseName,
      ratio: ratioOf(x, bv),
      goal,
      ...(error ? { failed: error } : {}),
      notes: [
        `generator alone into an XDP sink ${k(ceiling)} pps`,
        ...xs.map(describe),
        ...(b ? [describe(b)] : []),
        cpus.client === undefined ? 'one CPU' : `client side CPU ${cpus.client}, sequencer host CPU ${cpus.sequencer}`,
        `noise: ${[...gaps.values()].map((g) => `CPU ${g.cpu} stalled up to ${g.maxGapUs} us`).join(', ')} (a 256-frame ring lasts 256/rate: 640 us at 400 kpps)`,
        votes === 1
          ? `${stepMs} ms steps, one step decides a rate (quick: not numbers to report)`
          : `${stepMs} ms steps, a rate passes when 2 of 3 steps lose nothing, median of ${nRounds} round(s)`,
      ].join('; '),
    };
  };
  const rows = [
    row('P2s', 'xseq-native', 'c-mmsg', 'C recvmmsg/sendmmsg sequencer', atLeast('ratio', 2.0)),
    row('P2s-generic', 'xseq-generic', 'c-mmsg', 'C recvmmsg/sendmmsg sequencer', null),
    row('P2s-busy', 'xseq-native', 'c-mmsg-busy', `C recvmmsg sequencer with busy polling (${BUSY_POLL_US} us) and UDP GSO sends`, null),
    row('P2sb', 'xseq-native', 'node-dgram', 'Node dgram sequencer', atLeast('ratio', 4.0)),
    row('P2sb-generic', 'xseq-generic', 'node-dgram', 'Node dgram sequencer', null),
  ].filter((r): r is P2sRow => r !== null);
  log(`P2s done in ${Math.round((Date.now() - started) / 1000)} s`);
  return { rows, ceiling, results, noise: [...gaps.values()] };
}

/** The rows for bench/run.ts. */
export async function runP2s(opts: P2sOptions = {}): Promise<P2sRow[]> {
  return (await runP2sDetailed(opts)).rows;
}

// Standalone: tsx bench/p2s.ts [--quick] [--rounds N] [--step-ms MS] [--labels xseq-native,c-mmsg] [--json]
if (import.meta.url === `file://${process.argv[1]}`) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      labels: { type: 'string' },
      rounds: { type: 'string' },
      'step-ms': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const r = await runP2sDetailed({
    quick: Boolean(values.quick),
    ...(values.rounds ? { rounds: Number(values.rounds) } : {}),
    ...(values['step-ms'] ? { stepMs: Number(values['step-ms']) } : {}),
    ...(values.labels ? { labels: values.labels.split(',') as P2sLabel[] } : {}),
    log: (l) => console.error(l),
  });
  console.log(JSON.stringify(values.json ? r : r.rows, null, 2));
}

/**
 * The standard xseq test topology, built from network namespaces.
 *
 *   cli ──┐
 *   seq ──┤ br0 (in ns `br`, mcast_snooping 0: floods multicast to every port)
 *   r1  ──┤
 *   rN  ──┘
 *
 * Every host namespace has one veth; its peer is a port of br0. All names
 * carry a per-run prefix (`xs<4 hex>-`) so parallel test files and leftovers
 * from a crashed run never collide. Addresses live in 10.77.0.0/24, which is
 * fine because nothing here is reachable from the root namespace.
 *
 * Everything is done through iproute2 (`ip`), never by entering namespaces
 * from Node: Node cannot setns(2), and spawning `ip` keeps this module free
 * of native dependencies so every test and benchmark can use it.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type XdpMode = 'native' | 'generic';

export interface TopologyOptions {
  /** Number of receivers (replicas), roles r1..rN. */
  receivers: number;
  /** Number of clients, roles cli, cli2, cli3, ... Default 1. */
  clients?: number;
  /**
   * Number of stranger hosts, roles x, x2, ... (addresses .200+): on the
   * bridge like everyone else and in no configuration (forgery and fuzz
   * tests). Default 0.
   */
  strangers?: number;
  /** Number of sequencer hosts, roles seq, seq2, ... Default 1. */
  sequencers?: number;
  /**
   * How the sequencer's XDP program will be attached. 'native' attaches a
   * pass program to the bridge-side peer of every sequencer veth, without
   * which native XDP_TX on veth fails. Default 'generic'.
   */
  mode?: XdpMode;
  /** Disable IPv6 in every namespace (default true): no router solicitations,
   * DAD or MLD reports on the bridge to disturb counts and benchmarks. */
  disableIpv6?: boolean;
  /** Install permanent ARP entries for every host in every host namespace
   * (default true), so the first packets of a burst are not dropped while
   * ARP resolves (the kernel queues only ~100 packets per unresolved entry). */
  staticNeighbors?: boolean;
  /** Object file of the pass program for native mode. Default
   * bench/build/pass.bpf.o, built with `make -C bench` if missing. */
  passObject?: string;
}

export interface ExecOptions {
  input?: string | Buffer;
  /** Milliseconds before the command is killed (default 60 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface NsExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child started in a namespace; killed on destroy. */
export interface NsProcess {
  readonly role: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<NsExit>;
  /** The last 256 KiB of stdout and stderr (when they are pipes), whole lines from the first. */
  output(): { stdout: string; stderr: string };
  /** Resolves with the first stdout line (one seen before the call counts)
   * that matches; rejects on timeout or if the process exits first. */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM), escalates to SIGKILL after
   * `timeoutMs` (default 3000) and resolves with the exit status. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<NsExit>;
}

const NETNS_DIR = '/run/netns';
/** Owner records: one file per run prefix holding the creating process's pid
 * and start time, so cleanupStale can tell a crashed run from a live one. */
const MARKER_DIR = '/run/xseq-netns';
const RUN_PREFIX_RE = /^(xs[0-9a-f]{4}-)/;
const SUBNET = '10.77.0';
const BRIDGE = 'br0';
const OUTPUT_TAIL = 256 * 1024;

/**
 * The last OUTPUT_TAIL chars of `s`, from a line start: a tail cut inside a
 * line would hand readers a fragment ('"vel":"info",...' of a JSON line that
 * still names its event), which a long run's stats lines made a test parse
 * and fail on.
 */
function tailLines(s: string): string {
  if (s.length <= OUTPUT_TAIL) return s;
  const t = s.slice(-OUTPUT_TAIL);
  return t.slice(t.indexOf('\n') + 1);
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_PASS_OBJECT = join(repoRoot, 'bench', 'build', 'pass.bpf.o');

/** Run `ip` (or any command) in the root namespace; throws with stderr. */
function run(cmd: string, args: string[], opts: ExecOptions = {}): string {
  const r = runResult(cmd, args, opts);
  if (r.status !== 0) {
    const why = r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

function runResult(cmd: string, args: string[], opts: ExecOptions = {}): ExecResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input,
    timeout: opts.timeoutMs ?? 60_000,
    env: opts.env,
    cwd: opts.cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** /proc/<pid>/stat field 22 (start time in clock ticks since boot): a pid
 * plus this identifies a process even after the pid is reused. */
function procStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parens; fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(marker: string): boolean {
  try {
    const { pid, start } = JSON.parse(readFileSync(marker, 'utf8')) as { pid: number; start: string };
    return procStartTicks(pid) === start;
  } catch {
    return false;
  }
}

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

function netnsPids(ns: string): number[] {
  const r = runResult('ip', ['netns', 'pids', ns]);
  if (r.status !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** Kill whatever still runs inside `ns` (only processes our runs put there),
 * then delete it. Deleting the namespace removes its veths and with them the
 * XDP attachments, and the peers' ends in the bridge namespace. */
function deleteNetnsSync(ns: string): void {
  for (const pid of netnsPids(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  runResult('ip', ['netns', 'del', ns]);
}

/**
 * Remove namespaces left behind by crashed runs: those whose name starts
 * with `prefix` (default 'xs', every run) and the run pattern `xs<4 hex>-`,
 * whose owner process is dead, or, when no owner record exists, which are
 * older than this process. Live parallel runs keep their namespaces.
 * Returns the names removed.
 */
export function cleanupStale(prefix = 'xs'): string[] {
  const processStart = Date.now() - process.uptime() * 1000;
  const removed: string[] = [];
  const runs = new Map<string, string[]>();
  for (const ns of listNetns()) {
    const m = RUN_PREFIX_RE.exec(ns);
    if (!m || !ns.startsWith(prefix)) continue;
    const run = m[1]!;
    if (liveRuns.has(run)) continue;
    runs.set(run, [...(runs.get(run) ?? []), ns]);
  }
  for (const [runPrefix, names] of runs) {
    const marker = join(MARKER_DIR, runPrefix);
    let stale: boolean;
    if (existsSync(marker)) {
      stale = !ownerAlive(marker);
    } else {
      stale = names.every((ns) => {
        try {
          return statSync(join(NETNS_DIR, ns)).mtimeMs < processStart;
        } catch {
          return false;
        }
      });
    }
    if (!stale) continue;
    for (const ns of names) {
      deleteNetnsSync(ns);
      removed.push(ns);
    }
    rmSync(marker, { force: true });
  }
  // Owner records of runs that left no namespace behind.
  try {
    for (const f of readdirSync(MARKER_DIR)) {
      if (RUN_PREFIX_RE.test(f) && f.startsWith(prefix) && !liveRuns.has(f) && !ownerAlive(join(MARKER_DIR, f))) {
        rmSync(join(MARKER_DIR, f), { force: true });
      }
    }
  } catch {
    /* no marker dir yet */
  }
  return removed;
}

// ---------------------------------------------------------------------------
// Process-exit safety net. 'exit' runs for normal exits and uncaught
// exceptions; signals need their own handlers because the default action
// would skip 'exit'. Only synchronous work is possible there.

const liveTopologies = new Set<Topology>();
const liveRuns = new Set<string>();
let hooksInstalled = false;

function onExit(): void {
  for (const t of [...liveTopologies]) t.destroySync();
}

function onSignal(sig: NodeJS.Signals): void {
  onExit();
  uninstallHooks();
  // Re-raise so the process ends the way it would have without us, unless
  // someone else also handles the signal and decides for themselves.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

const sigHandlers: Array<[NodeJS.Signals, () => void]> = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map(
  (s) => [s, () => onSignal(s)],
);

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExit);
  for (const [s, h] of sigHandlers) process.on(s, h);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', onExit);
  for (const [s, h] of sigHandlers) process.off(s, h);
}

// ---------------------------------------------------------------------------

interface Host {
  role: string;
  ns: string;
  ifname: string; // in the host namespace
  port: string; // bridge-side end, in the br namespace
  octet: number;
  mac: string;
}

function mac(tag: number, octet: number, runBytes: Buffer): string {
  // Locally administered unicast (0x02), stable per run, role and side.
  const b = [0x02, tag, runBytes[0]!, runBytes[1]!, 0x00, octet];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ensurePassObject(path: string): void {
  if (existsSync(path)) return;
  if (path !== DEFAULT_PASS_OBJECT) throw new Error(`pass XDP object not found: ${path}`);
  run('make', ['-C', join(repoRoot, 'bench'), 'build/pass.bpf.o'], { timeoutMs: 120_000 });
}

export class Topology {
  readonly prefix: string;
  readonly mode: XdpMode;
  /** Receiver roles in order: r1..rN. */
  readonly receivers: readonly string[];
  /** Client roles: cli, cli2, ... */
  readonly clients: readonly string[];
  /** Sequencer host roles: seq, seq2, ... */
  readonly sequencers: readonly string[];
  /** Stranger roles: x, x2, ... (in no configuration). */
  strangers: readonly string[] = [];
  readonly subnet = `${SUBNET}.0/24`;
  readonly bridge = BRIDGE;

  private readonly hosts = new Map<string, Host>();
  private readonly children = new Set<NsProcess>();
  private readonly created: string[] = [];
  private destroyed = false;

  private constructor(prefix: string, mode: XdpMode, clients: string[], sequencers: string[], receivers: string[]) {
    this.prefix = prefix;
    this.mode = mode;
    this.clients = clients;
    this.sequencers = sequencers;
    this.receivers = receivers;
  }

  /** Builds the topology; on any failure everything built so far is removed. */
  static async create(opts: TopologyOptions): Promise<Topology> {
    const nRecv = opts.receivers;
    const nCli = opts.clients ?? 1;
    const nSeq = opts.sequencers ?? 1;
    // Address plan: cli .1, seq .2, rN .10+N, cliK .100+K, seqK .150+K, strangers .200+.
    if (!Number.isInteger(nRecv) || nRecv < 0 || nRecv > 89) throw new RangeError('receivers must be 0..89');
    if (!Number.isInteger(nCli) || nCli < 0 || nCli > 49) throw new RangeError('clients must be 0..49');
    if (!Number.isInteger(nSeq) || nSeq < 0 || nSeq > 49) throw new RangeError('sequencers must be 0..49');
    const nX = opts.strangers ?? 0;
    if (!Number.isInteger(nX) || nX < 0 || nX > 9) throw new RangeError('strangers must be 0..9');
    const mode = opts.mode ?? 'generic';
    const passObject = opts.passObject ?? DEFAULT_PASS_OBJECT;
    if (mode === 'native' && nSeq > 0) ensurePassObject(passObject);

    // Leftovers of crashed runs would otherwise pile up (each holds veths
    // and XDP programs); live runs, ours or parallel ones, are spared.
    cleanupStale();
    let runBytes: Buffer;
    let prefix: string;
    const existing = new Set(listNetns());
    do {
      runBytes = randomBytes(2);
      prefix = `xs${runBytes.toString('hex')}-`;
    } while (
      liveRuns.has(prefix) ||
      existsSync(join(MARKER_DIR, prefix)) ||
      [...existing].some((n) => n.startsWith(prefix))
    );

    const clients = Array.from({ length: nCli }, (_, i) => (i === 0 ? 'cli' : `cli${i + 1}`));
    const sequencers = Array.from({ length: nSeq }, (_, i) => (i === 0 ? 'seq' : `seq${i + 1}`));
    const receivers = Array.from({ length: nRecv }, (_, i) => `r${i + 1}`);
    const strangers = Array.from({ length: nX }, (_, i) => (i === 0 ? 'x' : `x${i + 1}`));
    const topo = new Topology(prefix, mode, clients, sequencers, receivers);
    topo.strangers = strangers;

    const octetOf = (role: string, i: number): number => {
      if (role.startsWith('cli')) return i === 0 ? 1 : 100 + i + 1;
      if (role.startsWith('seq')) return i === 0 ? 2 : 150 + i + 1;
      if (role.startsWith('x')) return 200 + i;
      return 10 + i + 1;
    };
    for (const group of [clients, sequencers, receivers, strangers]) {
      group.forEach((role, i) => {
        const octet = octetOf(role, i);
        topo.hosts.set(role, {
          role,
          ns: prefix + role,
          ifname: `x-${role}`,
          port: `p-${role}`,
          octet,
          mac: mac(0x77, octet, runBytes),
        });
      });
    }

    liveRuns.add(prefix);
    liveTopologies.add(topo);
    installHooks();
    try {
      mkdirSync(MARKER_DIR, { recursive: true });
      writeFileSync(
        join(MARKER_DIR, prefix),
        JSON.stringify({ pid: process.pid, start: procStartTicks(process.pid), created: new Date().toISOString() }),
      );
      topo.build(opts, passObject);
    } catch (err) {
      topo.destroySync();
      throw err;
    }
    return topo;
  }

  private build(opts: TopologyOptions, passObject: string): void {
    const brNs = this.prefix + 'br';
    const all = [brNs, ...[...this.hosts.values()].map((h) => h.ns)];
    const quietV6 = opts.disableIpv6 ?? true;
    for (const ns of all) {
      run('ip', ['netns', 'add', ns]);
      this.created.push(ns);
      // Before any link exists, so 'default' covers the veths made next.
      const sysctls = ['net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'];
      if (quietV6) sysctls.push('net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      if (ns === brNs) {
        // With br_netfilter loaded (Docker loads it) every bridged frame
        // would also traverse iptables: measured, that halves the
        // forwarding rate and is no part of a switch. The keys exist only
        // with the module, hence -e.
        sysctls.push(
          'net.bridge.bridge-nf-call-iptables=0',
          'net.bridge.bridge-nf-call-ip6tables=0',
          'net.bridge.bridge-nf-call-arptables=0',
        );
      }
      run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-e', '-w', ...sysctls]);
    }

    const brCmds = [
      `link set lo up`,
      `link add ${BRIDGE} type bridge mcast_snooping 0 stp_state 0`,
      `link set ${BRIDGE} up`,
    ];
    for (const h of this.hosts.values()) {
      // Create the pair in the host namespace with its peer straight in br,
      // so no interface ever sits in the root namespace.
      run('ip', [
        '-n', h.ns, 'link', 'add', h.ifname, 'address', h.mac, 'type', 'veth',
        'peer', 'name', h.port, 'address', mac(0x78, h.octet, Buffer.from(this.prefix.slice(2, 6), 'hex')),
        'netns', brNs,
      ]);
      brCmds.push(`link set ${h.port} master ${BRIDGE}`, `link set ${h.port} up`);
    }
    run('ip', ['-n', brNs, '-batch', '-'], { input: brCmds.join('\n') + '\n' });
    // Static FDB entries: with static ARP a silent host (the sequencer only
    // receives unicast) is never learned, and the bridge would flood every
    // frame addressed to it to all ports.
    const fdb = [...this.hosts.values()].map((h) => `fdb replace ${h.mac} dev ${h.port} master static`);
    if (fdb.length) run('bridge', ['-n', brNs, '-batch', '-'], { input: fdb.join('\n') + '\n' });

    const staticNeigh = opts.staticNeighbors ?? true;
    for (const h of this.hosts.values()) {
      const cmds = [
        `link set lo up`,
        `addr add ${SUBNET}.${h.octet}/24 dev ${h.ifname}`,
        `link set ${h.ifname} up`,
        // Multicast sends and joins need a route for the group range.
        `route add 224.0.0.0/4 dev ${h.ifname}`,
      ];
      if (staticNeigh) {
        for (const o of this.hosts.values()) {
          if (o !== h) cmds.push(`neigh replace ${SUBNET}.${o.octet} lladdr ${o.mac} dev ${h.ifname} nud permanent`);
        }
      }
      run('ip', ['-n', h.ns, '-batch', '-'], { input: cmds.join('\n') + '\n' });
      // A veth hands the peer a frame whose UDP checksum the sender left
      // for "hardware" to finish (CHECKSUM_PARTIAL). A native XDP program
      // sees those raw bytes, and a checksum it updates incrementally stays
      // wrong, so receivers drop the packet. A real NIC puts full checksums
      // on the wire: make these do the same.
      run('ip', ['netns', 'exec', h.ns, 'ethtool', '-K', h.ifname, 'tx-checksumming', 'off']);
    }

    if (this.mode === 'native') {
      for (const role of this.sequencers) {
        run('ip', ['-n', brNs, 'link', 'set', 'dev', this.host(role).port, 'xdpdrv', 'obj', passObject, 'sec', 'xdp']);
      }
    }
  }

  private host(role: string): Host {
    const h = this.hosts.get(role);
    if (!h) throw new Error(`unknown role '${role}' (have br, ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  /**
   * The role of the sequencer host with index `i` (0-based): 'seq', 'seq2',
   * 'seq3', ... (addresses .2, .152, .153, ...). Hydra tests give host i
   * sequencer id i. Throws for an index the topology does not have.
   */
  sequencerRole(i: number): string {
    const role = this.sequencers[i];
    if (role === undefined) throw new Error(`no sequencer host ${i}: this topology has ${this.sequencers.length} (sequencers option)`);
    return role;
  }

  /** Every role: 'br' first, then clients, sequencers, receivers. */
  get roles(): string[] {
    return ['br', ...this.hosts.keys()];
  }

  /** Full namespace name of a role ('br' included). */
  ns(role: string): string {
    return role === 'br' ? this.prefix + 'br' : this.host(role).ns;
  }

  /** The host's interface inside its own namespace; for 'br' the bridge. */
  ifname(role: string): string {
    return role === 'br' ? BRIDGE : this.host(role).ifname;
  }

  /** The bridge port (in the br namespace) that the host's veth plugs into. */
  bridgePort(role: string): string {
    return this.host(role).port;
  }

  /** IPv4 address of the host, e.g. '10.77.0.2' for seq. */
  ip(role: string): string {
    return `${SUBNET}.${this.host(role).octet}`;
  }

  /** MAC address of the host's interface. */
  mac(role: string): string {
    return this.host(role).mac;
  }

  /** Runs `cmd args` inside the role's namespace; returns stdout, throws with
   * stderr on a non-zero exit, a signal or a timeout. */
  exec(role: string, cmd: string, args: string[] = [], opts: ExecOptions = {}): string {
    return run('ip', ['netns', 'exec', this.ns(role), cmd, ...args], opts);
  }

  /** Like exec, but returns the status instead of throwing on failure. */
  tryExec(role: string, cmd: string, args: string[] = [], opts: ExecOptions = {}): ExecResult {
    return runResult('ip', ['netns', 'exec', this.ns(role), cmd, ...args], opts);
  }

  /**
   * Starts a long-running `cmd args` in the role's namespace. `ip netns exec`
   * execs the command itself, so the pid is the command's and signals reach
   * it directly. Stdout and stderr are pipes unless opts.stdio says
   * otherwise; they are always drained so the child never blocks on them.
   */
  spawn(role: string, cmd: string, args: string[] = [], opts: SpawnOptions = {}): NsProcess {
    if (this.destroyed) throw new Error('topology destroyed');
    const child = spawn('ip', ['netns', 'exec', this.ns(role), cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    if (child.pid === undefined) {
      throw new Error(`spawn ${cmd} in ${role} failed`);
    }
    let stdout = '';
    let stderr = '';
    let lineBuf = '';
    const lines: string[] = [];
    const lineWaiters = new Set<(line: string) => void>();
    let exitInfo: NsExit | undefined;
    const exitWaiters = new Set<(e: NsExit) => void>();

    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      stdout = tailLines(stdout + d);
      lineBuf += d;
      let nl: number;
      while ((nl = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, nl);
        lineBuf = lineBuf.slice(nl + 1);
        if (lines.length < 10_000) lines.push(line);
        for (const w of [...lineWaiters]) w(line);
      }
    });
    child.stderr?.on('data', (d: string) => {
      stderr = tailLines(stderr + d);
    });
    const exited = new Promise<NsExit>((res) => {
      child.once('error', () => {
        /* reported through 'close' with code null */
      });
      child.once('close', (code, signal) => {
        exitInfo = { code, signal };
        this.children.delete(proc);
        for (const w of [...exitWaiters]) w(exitInfo);
        res(exitInfo);
      });
    });

    const proc: NsProcess = {
      role,
      child,
      pid: child.pid,
      exited,
      output: () => ({ stdout, stderr }),
      waitForLine: (match, timeoutMs = 10_000) => {
        const test = typeof match === 'function' ? match : (l: string) => match.test(l);
        const seen = lines.find(test);
        if (seen !== undefined) return Promise.resolve(seen);
        return new Promise<string>((res, rej) => {
          const done = (): void => {
            clearTimeout(timer);
            lineWaiters.delete(onLine);
            exitWaiters.delete(onExit);
          };
          const onLine = (l: string): void => {
            if (test(l)) {
              done();
              res(l);
            }
          };
          const onExit = (e: NsExit): void => {
            done();
            rej(new Error(`${cmd} exited (${e.signal ?? e.code}) before the expected line; stderr: ${stderr.trim()}`));
          };
          const timer = setTimeout(() => {
            done();
            rej(new Error(`timeout after ${timeoutMs} ms waiting for a line from ${cmd}; stderr: ${stderr.trim()}`));
          }, timeoutMs);
          if (exitInfo) return onExit(exitInfo);
          lineWaiters.add(onLine);
          exitWaiters.add(onExit);
        });
      },
      stop: async (signal = 'SIGTERM', timeoutMs = 3000) => {
        if (exitInfo) return exitInfo;
        try {
          child.kill(signal);
        } catch {
          /* gone */
        }
        const timer = setTimeout(() => {
          try {
            child.kill('SIGKILL');
          } catch {
            /* gone */
          }
        }, timeoutMs);
        const e = await exited;
        clearTimeout(timer);
        return e;
      },
    };
    this.children.add(proc);
    return proc;
  }

  /** Stops every child (SIGTERM, then SIGKILL), then deletes every namespace. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.children].map((c) => c.stop('SIGTERM', 2000)));
    this.destroySync();
  }

  /** Synchronous teardown, usable from a process 'exit' handler. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) {
      try {
        c.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.children.clear();
    // Hosts first, bridge last: each host's veth takes its bridge port with it.
    for (const ns of [...this.created].reverse()) deleteNetnsSync(ns);
    this.created.length = 0;
    rmSync(join(MARKER_DIR, this.prefix), { force: true });
    liveRuns.delete(this.prefix);
    liveTopologies.delete(this);
    if (liveTopologies.size === 0) uninstallHooks();
  }
}

// The KV example in the namespace topology (netns/topology.ts): the agent on
// `seq`, replica i on r(i+1), clients on cli, cli2, ... Shared by the KV
// namespace test and bench P3 so both start the same thing the same way.
// With several sequencer hosts (Hydra: the topology's `sequencers` option)
// agent i runs on the i-th sequencer host with sequencer id i, the
// replicas list every sequencer and clients spread over them.
//
// Processes run as `node --import tsx SCRIPT`, not through the tsx
// wrapper: the wrapper forwards SIGTERM and SIGINT to the real process but
// not SIGUSR2 (the log dump) and cannot forward SIGKILL, which would leave
// the real process running after a "crash".
//
// The agent pins its data path in a bpffs mounted here, in the host's mount
// namespace: one mounted by the agent itself under `ip netns exec` would
// vanish with the agent, and the data path with it (agent/bpffs.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NsProcess, Topology, XdpMode } from '../../netns/topology.ts';
import type { CommittedLogDump } from './committed-log.ts';

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const AGENT = join(REPO_ROOT, 'agent', 'cli.ts');
const REPLICA = join(REPO_ROOT, 'examples', 'kv', 'replica.ts');
export const KV_CLI = join(REPO_ROOT, 'examples', 'kv', 'cli.ts');
export const KV_UNREPLICATED = join(REPO_ROOT, 'examples', 'kv', 'unreplicated.ts');

export const GROUP = { id: 1, addr: '239.7.7.1', port: 7500 } as const;
export const SEQ_PORT = 7400;
/** Replica i sends its ACKs from ACK_PORT + i and listens for peers on PEER_PORT. */
export const ACK_PORT = 7600;
export const PEER_PORT = 7700;
/** The agent's repair service (its default port). */
export const REPAIR_PORT = 7401;

export interface AgentReady {
  dataPath: 'created' | 'adopted';
  session: number;
  pid: number;
}

export interface KvClusterOptions {
  mode?: XdpMode;
  /** Extra `xseq-agent run` flags (window, policy, rto ...). */
  agentArgs?: string[];
  /** --protocol of every replica (JSON). */
  protocol?: string;
  /** Replicas write their committed log here (--log-dump). */
  dumps?: boolean;
  /** More replica flags (e.g. --stats-interval). */
  replicaArgs?: string[];
  /**
   * net.ipv4.tcp_rto_min_us in the replicas' namespaces (default 20 ms).
   * Linux's 200 ms minimum RTO, doubled per retry, turns two lost segments
   * in a row on the slow path into a 600 ms stall, longer than the leader
   * timeout: on a LAN the minimum belongs near the real round trip.
   */
  tcpRtoMinUs?: number;
  /**
   * false: the agent's group gets no members, so the kernel aggregates
   * nothing (run the replicas with --acks-to client, clients with
   * --direct-acks). Default true.
   */
  members?: boolean;
  /** Hydra: every agent's --flush-interval in ms (default 0: off). */
  flushIntervalMs?: number;
  /**
   * Hydra: sequencer ids the replicas know as "joining" (routable, not
   * members until `cli.ts add-sequencer --id ID` is merged).
   */
  joining?: readonly number[];
  /**
   * Two sequencer hosts serving one group as a pair (not Hydra): agent 0 is
   * the active (--role G:active, sequencer id 0), agent 1 the standby
   * (--role G:standby, sequencer id 1); replicas list the standby as such,
   * clients list both with --policy failover.
   */
  standby?: boolean;
}

/** Runs `node --import tsx script args` in a role's namespace. */
export function spawnTs(t: Topology, role: string, script: string, args: string[]): NsProcess {
  return t.spawn(role, process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO_ROOT, env: { ...process.env, XSEQ_CONFIG: '' } });
}

export class KvCluster {
  readonly dir: string;
  readonly bpffs: string;
  readonly stateDir: string;
  /** Agent i runs on sequencer host i (t.sequencerRole(i)). */
  readonly agents: (NsProcess | null)[];
  readonly replicas: (NsProcess | null)[];
  readonly roles: readonly string[];

  constructor(
    readonly t: Topology,
    private readonly o: KvClusterOptions = {},
  ) {
    this.roles = t.receivers;
    this.agents = t.sequencers.map(() => null);
    this.replicas = this.roles.map(() => null);
    // Before the mount below, so a failure here leaves nothing behind.
    for (const r of this.roles) t.exec(r, 'sysctl', ['-q', '-w', `net.ipv4.tcp_rto_min_us=${o.tcpRtoMinUs ?? 20_000}`]);
    this.dir = mkdtempSync(join(tmpdir(), 'xseq-kv-'));
    this.bpffs = join(this.dir, 'bpffs');
    this.stateDir = join(this.dir, 'agent-state');
    mkdirSync(this.bpffs);
    const m = spawnSync('mount', ['-t', 'bpf', 'bpf', this.bpffs], { encoding: 'utf8' });
    if (m.status !== 0) {
      rmSync(this.dir, { recursive: true, force: true });
      throw new Error(`mount -t bpf ${this.bpffs}: ${m.stderr.trim()}`);
    }
  }

  /** The first agent (the only one without Hydra). */
  get agent(): NsProcess | null {
    return this.agents[0] ?? null;
  }

  /** Several sequencer hosts: Hydra, sequencer id i on host i (unless they are an active/standby pair). */
  get hydra(): boolean {
    return this.t.sequencers.length > 1 && !this.o.standby;
  }

  /** An active/standby pair on sequencer hosts 0 and 1. */
  get pair(): boolean {
    return this.o.standby === true;
  }

  private agentStateDir(i: number): string {
    return i === 0 ? this.stateDir : `${this.stateDir}-${i}`;
  }

  private agentArgs(i: number, extra: readonly string[]): string[] {
    const t = this.t;
    const members = this.roles.map((r, i) => `--member=${GROUP.id}:${i}:${t.ip(r)}:${ACK_PORT + i}`);
    return [
      'run', '--config', '', '--iface', t.ifname(t.sequencerRole(i)), '--mode', this.o.mode ?? 'native',
      '--group', `${GROUP.id}:${GROUP.addr}:${GROUP.port}`, ...(this.o.members === false ? [] : members),
      '--bpffs', this.bpffs, '--state-dir', this.agentStateDir(i),
      '--stats-interval', '0', '--metrics-listen', '',
      ...(this.hydra || this.pair ? ['--sequencer-id', String(i)] : []),
      ...(this.pair ? ['--role', `${GROUP.id}:${i === 0 ? 'active' : 'standby'}`] : []),
      ...(this.o.flushIntervalMs ? ['--flush-interval', String(this.o.flushIntervalMs)] : []),
      ...(this.o.agentArgs ?? []),
      ...extra,
    ];
  }

  /** Starts agent i (creating or adopting the data path) and waits for "ready"; `extra`: more flags (e.g. --drain). */
  async startAgent(i = 0, extra: readonly string[] = []): Promise<AgentReady> {
    const a = spawnTs(this.t, this.t.sequencerRole(i), AGENT, this.agentArgs(i, extra));
    this.agents[i] = a;
    const line = JSON.parse(await a.waitForLine(/"event":"ready"/, 60_000)) as { dataPath: 'created' | 'adopted'; groups: Record<string, { session: number }>; pid: number };
    return { dataPath: line.dataPath, session: line.groups[String(GROUP.id)]!.session, pid: line.pid };
  }

  /** Stops the agent: SIGKILL is a crash, SIGTERM leaves the data path stamping. Returns its "stopped" line, if any. */
  async stopAgent(signal: 'SIGKILL' | 'SIGTERM', i = 0): Promise<Record<string, unknown> | null> {
    const a = this.agents[i] ?? null;
    this.agents[i] = null;
    if (!a) return null;
    await a.stop(signal, 10_000);
    const l = a.output().stdout.split('\n').find((x) => x.includes('"event":"stopped"'));
    return l ? (JSON.parse(l) as Record<string, unknown>) : null;
  }

  /**
   * Sequencer host i dies as a powered-off host looks from the network: its
   * link goes down, its agent is killed (kill -9), and (`detach`) its data
   * path is pulled with `detach --force`. Returns when all of it is done,
   * with the wall-clock time (ms) the link was down by: `ip netns exec`
   * takes tens of ms on a busy host, and the host is not dead before that.
   */
  async killHost(i: number, o: { detach: boolean }): Promise<number> {
    const role = this.t.sequencerRole(i);
    this.t.exec(role, 'ip', ['link', 'set', this.t.ifname(role), 'down']);
    const downAt = Date.now();
    await this.stopAgent('SIGKILL', i);
    if (o.detach) this.detach(i, true);
    return downAt;
  }

  /** Sequencer host i's link up again (after killHost). */
  linkUp(i: number): void {
    const role = this.t.sequencerRole(i);
    this.t.exec(role, 'ip', ['link', 'set', this.t.ifname(role), 'up']);
  }

  /** `xseq-agent detach` on sequencer host i: stamping stops, and the next agent creates a new session. */
  detach(i = 0, force = false): string {
    const role = this.t.sequencerRole(i);
    const r = this.t.tryExec(role, process.execPath, ['--import', 'tsx', AGENT, 'detach', '--iface', this.t.ifname(role), '--bpffs', this.bpffs, '--state-dir', this.agentStateDir(i), ...(force ? ['--force'] : [])], {
      cwd: REPO_ROOT,
      env: { ...process.env, XSEQ_CONFIG: '' },
      timeoutMs: 60_000,
    });
    if (r.status !== 0) throw new Error(`xseq-agent detach: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout.trim();
  }

  dumpPath(i: number): string {
    return join(this.dir, `replica-${i}.log.json`);
  }

  replicaArgs(i: number): string[] {
    const t = this.t;
    const role = this.roles[i]!;
    return [
      '--group', `${GROUP.id}:${GROUP.addr}:${GROUP.port}`,
      '--id', String(i),
      '--member', `${t.ip(role)}:${ACK_PORT + i}`,
      ...this.roles.map((r, j) => `--peer=${j}:${t.ip(r)}:${PEER_PORT}`),
      ...(this.hydra
        ? ['--sequencers', JSON.stringify(t.sequencers.map((r, id) => ({ id, addr: t.ip(r), port: SEQ_PORT, repairPort: REPAIR_PORT, ...(this.o.joining?.includes(id) ? { joining: true } : {}) })))]
        : this.pair
          ? ['--sequencers', JSON.stringify(t.sequencers.slice(0, 2).map((r, id) => ({ id, addr: t.ip(r), port: SEQ_PORT, repairPort: REPAIR_PORT, ...(id === 1 ? { standby: true } : {}) })))]
          : ['--sequencer', `${t.ip('seq')}:${SEQ_PORT}`]),
      // A restart finds its marker here and recovers from its peers.
      '--state-dir', join(this.dir, `replica-${i}-state`),
      ...(this.o.dumps ? ['--log-dump', this.dumpPath(i)] : []),
      ...(this.o.protocol ? ['--protocol', this.o.protocol] : []),
      ...(this.o.replicaArgs ?? []),
    ];
  }

  /** Starts replica i and waits until its sockets are bound. */
  async startReplica(i: number): Promise<NsProcess> {
    const p = spawnTs(this.t, this.roles[i]!, REPLICA, this.replicaArgs(i));
    this.replicas[i] = p;
    await p.waitForLine(/"event":"listening"/, 60_000);
    return p;
  }

  async startReplicas(): Promise<void> {
    await Promise.all(this.roles.map((_, i) => this.startReplica(i)));
  }

  /** kill -9: the replica's memory is gone. */
  async crashReplica(i: number): Promise<void> {
    const p = this.replicas[i];
    this.replicas[i] = null;
    await p?.stop('SIGKILL', 5000);
  }

  /** Asks every running replica for its committed-log dump and reads them back. */
  async dumps(): Promise<CommittedLogDump[]> {
    const out: CommittedLogDump[] = [];
    for (const [i, p] of this.replicas.entries()) {
      if (!p) throw new Error(`replica ${i} is not running`);
      const before = p.output().stdout.split('"event":"dumped"').length;
      p.child.kill('SIGUSR2');
      const deadline = Date.now() + 20_000;
      while (p.output().stdout.split('"event":"dumped"').length === before) {
        if (Date.now() > deadline) throw new Error(`replica ${i} did not dump its log`);
        await new Promise((r) => setTimeout(r, 50));
      }
      out.push(JSON.parse(readFileSync(this.dumpPath(i), 'utf8')) as CommittedLogDump);
    }
    return out;
  }

  /** The CLI's --sequencer flags: every sequencer by id with Hydra (or those in `ids`). */
  sequencerFlags(ids?: readonly number[]): string[] {
    const t = this.t;
    if (!this.hydra && !this.pair) return ['--sequencer', `${t.ip('seq')}:${SEQ_PORT}`];
    return t.sequencers.flatMap((r, id) => (ids && !ids.includes(id) ? [] : ['--sequencer', `${id}:${t.ip(r)}:${SEQ_PORT}`]));
  }

  /**
   * Dumps every replica's committed log until they settle (same commit
   * point, all of it executed, status normal) or `timeoutMs` passes; the
   * last dumps either way, for the caller to judge.
   */
  async settledDumps(timeoutMs: number): Promise<CommittedLogDump[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const dumps = await this.dumps();
      const settled = dumps.every((d) => d.committed === dumps[0]!.committed && d.executed === d.committed && d.status === 'normal');
      if (settled || Date.now() > deadline) return dumps;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Runs the KV CLI in a client namespace to completion (through sequencers `ids`, default all). */
  cli(role: string, args: string[], timeoutMs = 120_000, ids?: readonly number[]): { status: number | null; stdout: string; stderr: string } {
    return this.t.tryExec(role, process.execPath, ['--import', 'tsx', KV_CLI, ...args, ...this.sequencerFlags(ids), '--bind', this.t.ip(role)], {
      cwd: REPO_ROOT,
      timeoutMs,
    });
  }

  /** Starts the KV CLI in a client namespace, in the background: through `target` (one ADDR:PORT), sequencer ids, or all. */
  spawnCli(role: string, args: string[], target?: string | readonly number[]): NsProcess {
    const seqs = typeof target === 'string' ? ['--sequencer', target] : this.sequencerFlags(target);
    return spawnTs(this.t, role, KV_CLI, [...args, ...seqs, '--bind', this.t.ip(role)]);
  }

  /** Stops everything it started and unmounts the bpffs (the pins go with it). Safe to call twice. */
  async cleanup(): Promise<void> {
    await Promise.all([...this.agents, ...this.replicas].map((p) => p?.stop('SIGTERM', 5000)));
    this.agents.fill(null);
    this.replicas.fill(null);
    // Unmounting drops every pin, and with the last reference the XDP link.
    if (spawnSync('umount', [this.bpffs]).status !== 0) spawnSync('umount', ['-l', this.bpffs]);
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* a mount that would not go: leave the directory rather than fail the caller's cleanup */
    }
  }
}

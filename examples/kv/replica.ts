/**
 * A KV store replica process: the NOPaxos replica core with the KV store as
 * its application, on the real transport (replica/udp). Options: --help,
 * or replica-config.ts.
 *
 * stdout, one JSON object per line:
 *   {"event":"xdp", ...}        whether the replica-side XDP program is
 *                               attached (where, which mode) and if not why
 *   {"event":"listening", ...}  sockets bound, replica running (recovering
 *                               first if --recover or --state-dir says so)
 *   {"event":"status", ...}     on every change of status or view
 *   {"event":"stats", ...}      every --stats-interval (with the XDP
 *                               program's counters when it is attached)
 *   {"event":"dumped", ...}     the committed log was written (--log-dump)
 *   {"event":"stopped", ...}    on SIGTERM/SIGINT, with the counters
 *
 * XSEQ_KV_CPU_PROFILE=DIR (environment, for profiling under the bench
 * harnesses, which start replicas through a script and cannot add node
 * flags): a V8 CPU profile of the whole run is written to
 * DIR/kv-replica-<id>-<pid>.cpuprofile on SIGTERM/SIGINT.
 */
import type { WeightsReport } from '../../bpf/weights-report.ts';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { hydraMetrics, leaderOf, Replica, type ReplicaTransport } from '../../replica/index.ts';
import { formatHostPort, randomRecoverNonce, RealTimeScheduler, UdpReplicaTransport } from '../../replica/udp/index.ts';
import { CommittedLog } from './committed-log.ts';
import { ConfigError, type KvReplicaConfig, loadKeyFile, parseReplicaArgs, USAGE } from './replica-config.ts';
import { MAX_RESULT } from './ops.ts';
import { openReplicaXdp, ReplicaXdpError } from '../../replica/xdp/index.ts';
import { KvStore } from './store.ts';
import { buildInfo, versionLine } from '../../agent/version.ts';
import { createLogger } from '../../agent/logger.ts';

// The agent's logger and format (agent/logger.ts): string levels, ISO
// times, journald priorities under systemd; XSEQ_LOG_FORMAT=pretty for a
// terminal. Kernel counters are u64 (bigint): pino writes them as JSON
// numbers, exact far past any run.
const logFormat = process.env['XSEQ_LOG_FORMAT'] === 'pretty' ? 'pretty' : 'json';
const log = createLogger({ level: 'info', format: logFormat });

function out(o: { event: string } & Record<string, unknown>, msg: string = o.event): void {
  log.info(o, msg);
}

/** The marker that makes every later start of this replica a recovery. */
function markerPath(c: KvReplicaConfig): string | null {
  return c.stateDir ? join(c.stateDir, `kv-replica-g${c.groupId}-r${c.id}.json`) : null;
}

/** Starts the V8 profiler in this process; the returned function writes the profile. */
function startCpuProfile(dir: string): (name: string) => Promise<void> {
  const s = new Session();
  s.connect();
  const post = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) => s.post(method, (err, res) => (err ? reject(err) : resolve(res))));
  const started = post('Profiler.enable').then(() => post('Profiler.start'));
  return async (name) => {
    await started;
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
  };
}

function buildFields(): { version: string; commit: string } {
  const b = buildInfo();
  return { version: b.version, commit: b.commit };
}

async function main(): Promise<void> {
  const profileDir = process.env['XSEQ_KV_CPU_PROFILE'];
  const writeProfile = profileDir ? startCpuProfile(profileDir) : null;
  if (process.argv.includes('--version')) {
    console.log(versionLine('kv-replica'));
    return;
  }
  let cfg: KvReplicaConfig | null;
  try {
    cfg = parseReplicaArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`kv-replica: ${e.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (!cfg) {
    console.log(USAGE);
    return;
  }
  const c = cfg;
  const marker = markerPath(c);
  // No disk holds the log: a process that ran before under this identity
  // has lost what it acknowledged, and must not act before its peers
  // filled it in again.
  const recover = c.recover || (marker !== null && existsSync(marker));

  // Before the sockets: with `xdp: on` a replica that cannot have its
  // program must not start at all (exit 3: a supervisor restarting it
  // would only meet the same refusal).
  let xdp: ReturnType<typeof openReplicaXdp>;
  try {
    xdp = openReplicaXdp({ setting: c.xdp, iface: c.xdpIface, mode: c.xdpMode, ...(c.xdpRetransmitKeep !== null ? { retransmitKeep: c.xdpRetransmitKeep } : {}) }, { port: c.group.port, memberAddr: c.member.host, sequencers: c.sequencers.map((q) => q.sequencer) });
  } catch (e) {
    if (!(e instanceof ReplicaXdpError)) throw e;
    log.error({ event: 'xdp', code: e.code }, `${e.message} (xdp: on; use xdp: auto to run without it)`);
    console.error(`kv-replica: ${e.code}: ${e.message} (xdp: on; use xdp: auto to run without it)`);
    process.exit(3);
  }
  out({ event: 'xdp', ...xdp.outcome });

  const transport = await UdpReplicaTransport.open({
    xdp: xdp.xdp,
    groupId: c.groupId,
    group: c.group,
    member: c.member,
    sequencer: c.sequencer,
    repair: c.repair,
    sequencers: c.sequencers,
    ...(c.standby ? { standby: c.standby } : {}),
    self: c.id,
    peers: c.peers,
    // Followers' ACKs as long as the longest KV result, so the sequencer
    // never has to grow one into a REPLY (UdpReplicaOptions.ackPadding).
    // Clients counting ACKs themselves need no padding.
    ackPadding: c.acksTo === 'client' ? 0 : MAX_RESULT,
    acksTo: c.acksTo,
    key: c.key,
    sessionBound: c.sessionBound,
  });
  if (c.key) out({ event: 'auth', keyFile: c.keyFile, group: c.groupId });
  else {
    log.warn(
      { event: 'auth', code: 'WNOKEY', keyFile: null, group: c.groupId },
      `group ${c.groupId} has no key file (--key-file, keyFile): any host on the LAN can forge sequencer, repair and peer traffic to this replica; see docs/authentication.md`,
    );
  }
  // SIGHUP re-reads the key file; a bad file keeps the current key.
  process.on('SIGHUP', () => {
    if (!c.keyFile) return;
    try {
      transport.setKey(loadKeyFile(c.keyFile));
      out({ event: 'auth', reloaded: true, keyFile: c.keyFile });
    } catch (e) {
      log.error({ event: 'auth', reloaded: false, keyFile: c.keyFile, err: (e as Error).message }, `key not reloaded, the current one stays: ${(e as Error).message}`);
    }
  });
  const store = new KvStore();
  // Set once constructed: the constructor already sends (a recovering
  // replica asks its peers) and starts timers, through the two closures below.
  let replica: Replica | undefined;
  let acksWhileRecovering = 0;
  // The core promises no ACK before recovery completes; count any, so a
  // broken promise shows in the stopped line instead of passing unseen.
  const guarded: ReplicaTransport = {
    sendToReplica: (to, m) => transport.sendToReplica(to, m),
    sendAck: (m) => {
      if (replica?.status === 'recovering') acksWhileRecovering++;
      transport.sendAck(m);
    },
    sendRepairRequest: (m) => transport.sendRepairRequest(m),
    // Only with the XDP program to tell: without one the core then skips
    // its per-message report altogether.
    ...(xdp.xdp ? { delivered: (session: number, seq: number, sequencerId?: number) => transport.delivered(session, seq, sequencerId) } : {}),
    sendFlushSolicit: (m) => transport.sendFlushSolicit(m),
  };

  let committedLog: CommittedLog | null = null;
  let last = { status: '', leaderNum: -1, session: -1 };
  // When the leader last spoke to us: a status line says how long it had
  // been quiet, which tells a leader timeout from a view change we joined.
  let leaderHeardAt = Date.now();
  // Hydra: a line when the replicas end or start a sequencer's session.
  let reconfigs = 0;
  const afterEvent = (): void => {
    const r = replica;
    if (!r) return;
    committedLog?.catchUp();
    const fs = r.hydra?.failover.stats;
    if (fs && fs.removals + fs.rejoins !== reconfigs) {
      reconfigs = fs.removals + fs.rejoins;
      const m = hydraMetrics(r.hydra!);
      out({ event: 'sequencers', id: r.id, removals: m.removals, rejoins: m.rejoins, sequencers: m.sequencers, t: Date.now() }, `sequencers: ${m.sequencers.map((q) => `${q.sequencer}@${q.session}${q.ended ? ' ended' : ''}`).join(', ')}`);
    }
    if (r.status !== last.status || r.view.leaderNum !== last.leaderNum || r.view.session !== last.session) {
      last = { status: r.status, leaderNum: r.view.leaderNum, session: r.view.session };
      const t = Date.now();
      out({ event: 'status', id: r.id, status: r.status, view: r.view, leader: r.amLeader(), committed: r.committed, executed: r.exec.executed, leaderQuietMs: t - leaderHeardAt, t });
    }
  };
  const scheduler = new RealTimeScheduler(afterEvent);
  const WEIGHTS_REPORT_MS = 2_000;
  const nonce = recover ? randomRecoverNonce() : undefined;
  // The committed weight table goes to every sequencer's agent when it
  // changes, and again every WEIGHTS_REPORT_MS: an agent that restarted
  // (its kernel table back to its config) learns the ledger's again.
  let weightsReport: WeightsReport | null = null;
  const reportWeights = (): void => {
    if (weightsReport && replica?.status !== 'recovering') transport.sendWeightsReport(weightsReport);
  };
  setInterval(reportWeights, WEIGHTS_REPORT_MS).unref();
  const r = new Replica({
    id: c.id,
    n: c.peers.length,
    app: store,
    transport: guarded,
    scheduler,
    config: c.protocol,
    session: c.session,
    ...(c.sequencers.length > 1 ? { sequencers: c.sequencers.filter((q) => !q.joining).map((q) => q.id), joiningSequencers: c.sequencers.filter((q) => q.joining).map((q) => q.id) } : {}),
    ...(nonce !== undefined ? { recoverNonce: nonce } : {}),
    ...(c.weights ? { weights: c.weights } : {}),
    onCommittedWeights: (t, n) => {
      weightsReport = { version: t.version, weights: [...t.weights], f: t.f, applied: n.applied, refused: n.refused };
      out({ event: 'weights', id: c.id, version: t.version, weights: t.weights, f: t.f, applied: n.applied, refused: n.refused });
      // After the constructor returns: the first report comes from it.
      queueMicrotask(reportWeights);
    },
  });
  replica = r;
  if (c.logDump) committedLog = new CommittedLog(r);
  transport.attach((m) => {
    if ('from' in m && m.from === leaderOf(r.view, r.n)) leaderHeardAt = Date.now();
    r.receive(m);
  }, afterEvent);
  if (marker) {
    mkdirSync(c.stateDir!, { recursive: true });
    writeFileSync(marker, JSON.stringify({ group: c.groupId, id: c.id, startedAt: new Date().toISOString(), pid: process.pid }) + '\n');
  }
  out({
    event: 'listening',
    ...buildFields(),
    id: c.id,
    n: c.peers.length,
    group: `${c.groupId}:${formatHostPort(c.group)}`,
    member: formatHostPort(c.member),
    peer: formatHostPort(c.peers[c.id]!),
    recovering: recover,
    pid: process.pid,
  }, `replica ${c.id} of group ${c.groupId} listening${recover ? ', recovering from its peers first' : ''}`);
  afterEvent();

  // Streamed in chunks off the event loop's critical path (committed-log.ts
  // writeDump): the replica keeps serving while it dumps. One dump at a
  // time; a signal during one asks for one more after it.
  let dumping: Promise<void> | null = null;
  let again = false;
  const dumpOnce = async (): Promise<void> => {
    if (!c.logDump || !committedLog) return;
    committedLog.catchUp();
    const d = await committedLog.writeDump(c.logDump, store.digest());
    out({ event: 'dumped', path: c.logDump, ...d });
  };
  const dump = (): Promise<void> => {
    if (dumping) {
      again = true;
      return dumping;
    }
    dumping = (async () => {
      do {
        again = false;
        await dumpOnce().catch((e: unknown) => console.error(`kv-replica: log dump: ${String(e)}`));
      } while (again);
      dumping = null;
    })();
    return dumping;
  };
  const stats = () => ({
    id: c.id,
    status: r.status,
    view: r.view,
    committed: r.committed,
    executed: r.exec.executed,
    keys: store.size,
    acksWhileRecovering,
    ...(r.hydra ? { hydra: hydraMetrics(r.hydra) } : {}),
    transport: transport.counters(),
    ...(xdp.xdp ? { xdp: transport.xdpCounters() } : {}),
  });
  if (c.statsIntervalMs > 0) setInterval(() => out({ event: 'stats', ...stats() }), c.statsIntervalMs).unref();
  process.on('SIGUSR2', () => void dump());
  const stop = (signal: string) => async () => {
    r.stop();
    await dumping;
    await dump();
    out({ event: 'stopped', signal, ...stats() });
    await writeProfile?.(`kv-replica-${c.id}-${process.pid}`).catch((e: unknown) => console.error(`kv-replica: cpu profile: ${String(e)}`));
    await transport.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop('SIGTERM'));
  process.once('SIGINT', stop('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(`kv-replica: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});

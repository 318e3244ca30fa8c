// The daemon loop of `xseq-agent run`: take the interface's lock, find,
// adopt or create its pinned data path (agent/datapath.ts), retransmit and
// repair for aggregating groups, log counters and drop samples, serve
// metrics, and on SIGINT/SIGTERM release everything but the data path,
// which keeps stamping (or, with --detach-on-exit, is removed too).
import { WeightSwitch, weightGroups } from './weight-switch.ts';
import { createSocket, type Socket } from 'node:dgram';
import { type BpfProgram, ifindex, liveFramesSupport, programById } from '../bpf/libbpf/index.ts';
import { type Counters, PROG_SEQUENCER } from '../bpf/maps.ts';
import { type AgentConfig, ConfigError } from './config.ts';
import { type DataPath, openDataPath } from './datapath.ts';
import { type FlushGroup, FlushTimer, type FlushTransmit, interfaceAddress } from './flush.ts';
import { taiOffsetSeconds } from './clock.ts';
import { AgentError } from './errors.ts';
import { InstanceLock } from './instance.ts';
import { GroupKeys } from './keys.ts';
import { preflight } from './preflight.ts';
import { DropFeed } from './monitor.ts';
import { createLogger } from './logger.ts';
import { buildInfo } from './version.ts';
import { dataPathHealth, metricsSource, startMetrics } from './metrics-source.ts';
import type { Log as Logger } from './log.ts';
import { groupConfig } from './groups.ts';
import { pairSession } from './pair-session.ts';
import { listenForHeartbeats, StandbyWatch, takeoverMsOf, type WatchedGroup } from './standby.ts';
import { pinDirOf, removePins } from './pins.ts';
import { RepairService } from './repair.ts';
import { DEFAULT_MAX_RTO_MS, Retransmitter } from './retransmit.ts';
import { SessionStore } from './session.ts';
import { SlotWindow } from './window.ts';
import { SequenceTable } from '../bpf/sequences.ts';
import { MarkStore } from './marks.ts';
import { startSequenceControl } from './sequence-control.ts';
import { registerSequenceMetrics } from './sequence-metrics.ts';
import { defOf, SequenceService } from './sequences.ts';
import { GroupMarks } from './group-marks.ts';

/** Drop samples logged per second at most; the counters have the rest. */
const DROP_LOG_PER_SECOND = 10;
const EVENT_POLL_MS = 200;
/** How often a standby checks its active's heartbeat (a fraction of any sensible takeoverMs). */
const STANDBY_CHECK_MS = 5;

export interface RunOptions {
  replace: boolean;
  detachOnExit: boolean;
  /** The command line, for messages that suggest the fix. */
  argv: readonly string[];
  configFile?: string;
}

function plain(c: Counters): Record<string, string> {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v.toString()]));
}

/** Non-empty buckets of the stamp-to-quorum histogram, keyed by their
 * lower bound in nanoseconds (bucket i holds [2^i, 2^(i+1)) ns). */
function histogram(buckets: bigint[]): Record<string, string> {
  const out: Record<string, string> = {};
  buckets.forEach((n, i) => {
    if (n > 0n) out[String(i === 0 ? 0 : 2 ** i)] = n.toString();
  });
  return out;
}

function bindAny(): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** The socket generic-mode flushes and every retransmission leave from: the
 * sequencer's own address and port, as an XDP-sent FLUSH or SEQUENCED has,
 * multicast on that interface. Replicas take SEQUENCED and FLUSH only from
 * that address and port (docs/trust-model.md). */
function bindFlushSocket(addr: string, port: number): Promise<Socket> {
  // SO_REUSEADDR: a tool on the sequencer host can send from the same
  // port (tools/sequenced-sender.ts --src); nothing is received here.
  const s = createSocket({ type: 'udp4', reuseAddr: true });
  return new Promise((resolve, reject) => {
    s.once('error', (e) => {
      s.close();
      reject(new AgentError('EFLUSH_SOCKET', `cannot bind the flush socket to ${addr}:${port} (generic mode sends flushes from the sequencer's port): ${e.message}`));
    });
    s.bind({ address: addr, port, exclusive: true }, () => {
      s.removeAllListeners('error');
      s.setMulticastInterface(addr);
      s.setMulticastLoopback(false);
      s.setMulticastTTL(64);
      resolve(s);
    });
  });
}

function groupsLine(dp: DataPath, cfg: AgentConfig): Record<string, unknown> {
  return Object.fromEntries(
    dp.groups.map((g) => {
      const spec = cfg.groups.find((s) => s.id === g.id);
      return [
        g.id,
        {
          action: g.action,
          session: g.session,
          lastSeq: g.lastSeq.toString(),
          ...(spec ? { multicast: spec.multicast, members: spec.members.length, ...(spec.quorum ? { quorum: spec.quorum } : {}) } : {}),
          ...(g.window === undefined ? {} : { window: g.window }),
        },
      ];
    }),
  );
}

/**
 * Resolves with the first SIGINT or SIGTERM. Listening from the start of
 * `run` means a signal during startup (say, while maps are pinned but the
 * link not yet) waits for startup to finish and then stops cleanly, rather
 * than killing the process half-way and leaving partial pins.
 */
function signalLatch(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(signal);
    };
    const onInt = on('SIGINT');
    const onTerm = on('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}

/**
 * Standby groups still waiting (groups[].role standby, not on the data
 * path): watch the active's heartbeat and take over when it stops
 * (agent/standby.ts).
 */
async function startStandby(cfg: AgentConfig, dp: DataPath, store: SessionStore, log: Logger, refreshed: () => void, nextvalRefused: () => bigint): Promise<{ watch: StandbyWatch; stop(): void } | undefined> {
  const waiting = dp.groups.filter((g) => g.action === 'standby');
  if (!waiting.length) return undefined;
  const { seq } = dp;
  const watched: WatchedGroup[] = waiting.map((g) => {
    const spec = cfg.groups.find((s) => s.id === g.id)!;
    const [addr, port] = spec.multicast.split(':');
    return { id: g.id, addr: addr!, port: Number(port), sequencerId: spec.sequencerId ?? cfg.sequencerId, takeoverMs: takeoverMsOf(spec, cfg) };
  });
  const watch = new StandbyWatch(watched, Date.now());
  const socks = await listenForHeartbeats(watched, interfaceAddress(cfg.interface).addr, (b) => watch.heard(b, Date.now()));
  const takeOver = (id: number): void => {
    const spec = cfg.groups.find((s) => s.id === id)!;
    const plan = dp.groups.find((g) => g.id === id)!;
    const session = pairSession('standby', Date.now(), Math.max(store.get(id)?.session ?? 0, watch.observedSession(id)));
    // On disk before anything is stamped with it (session.ts).
    store.set(id, { session, interface: cfg.interface, dataPath: 'created', lastSeq: '0', role: 'standby' });
    store.save();
    seq.resetSeq(id);
    seq.setGroup(id, groupConfig(spec, spec.sequencerId ?? cfg.sequencerId, session), plan.window);
    refreshed();
    const quiet = Date.now() - (watch.lastHeard(id) ?? 0);
    log.warn({ event: 'takeover', group: id, session, quietMs: quiet, atMs: Date.now() }, `group ${id}: the active sequencer was silent for ${quiet} ms; this standby takes over in session ${session}`);
  };
  const timer = setInterval(() => {
    // A knock: a request for the group, or a NEXTVAL its replicated
    // sequences refused here (they refuse until this host stamps the group).
    watch.knocked(seq.counters().drop_unknown_group + nextvalRefused(), Date.now());
    for (const id of watch.due(Date.now())) {
      try {
        takeOver(id);
      } catch (e) {
        log.error({ event: 'takeover', group: id, err: (e as Error).message }, `group ${id}: could not take over: ${(e as Error).message}`);
      }
    }
  }, STANDBY_CHECK_MS);
  log.info(
    { event: 'standby', groups: watched.map((w) => ({ id: w.id, takeoverMs: w.takeoverMs })) },
    `standby for group${watched.length > 1 ? 's' : ''} ${watched.map((w) => w.id).join(', ')}: not stamping; takes over once the active has been silent for ${watched[0]!.takeoverMs} ms and clients come here`,
  );
  return {
    watch,
    stop() {
      clearInterval(timer);
      for (const s of socks) s.close();
    },
  };
}

export async function runAgent(cfg: AgentConfig, opts: RunOptions): Promise<void> {
  // Before any side effect: a typo must not leave a mount or a directory.
  preflight(cfg, opts.configFile ?? 'flags and environment');
  const stopSignal = signalLatch();
  const log = createLogger({ level: cfg.log.level, format: cfg.log.format, base: { iface: cfg.interface } });
  const store = SessionStore.open(cfg.stateDir);
  const lock = InstanceLock.acquire(cfg.stateDir, cfg.interface, pinDirOf(cfg.bpffs, cfg.interface));
  let dp: DataPath;
  try {
    dp = openDataPath(cfg, { replace: opts.replace, log, store, argv: opts.argv });
  } catch (e) {
    lock.release();
    throw e;
  }
  const { seq } = dp;
  let keys: GroupKeys;
  try {
    // Before the re-send and repair paths start: they seal with these.
    keys = new GroupKeys(cfg.groups, seq, log);
  } catch (e) {
    dp.link.close();
    seq.close();
    lock.release();
    throw new ConfigError('key files', [{ path: 'groups[].keyFile', message: `${(e as Error).message} (the file changed after the config was checked)` }]);
  }
  // SIGHUP re-reads the key files (a rotation: write the new file, then
  // SIGHUP the agent and every replica of the group).
  const onHup = () => keys.reload();
  process.on('SIGHUP', onHup);
  log.info({ event: 'attach', mode: dp.mode, reason: dp.modeReason }, `XDP ${dp.mode} mode: ${dp.modeReason}`);
  for (const g of dp.groups) {
    if (g.action === 'disabled') log.warn({ event: 'group', group: g.id, session: g.session }, `group ${g.id} is no longer configured: it stops stamping`);
    if (g.action === 'updated') log.info({ event: 'group', group: g.id, session: g.session }, `group ${g.id}: members, quorum or multicast updated; session ${g.session} and seq kept`);
  }
  // What the flush timer needs of each group comes from the data path
  // itself: an adopted group keeps its sequencer id and session.
  const flushGroups: FlushGroup[] = cfg.groups.flatMap((s) => {
    const g = seq.group(s.id);
    return g ? [{ id: s.id, sequencerId: g.sequencerId, session: g.session, draining: g.draining === true }] : [];
  });
  const taiOffset = taiOffsetSeconds();
  if (cfg.flushIntervalMs > 0 && taiOffset === 0) {
    log.warn(
      { event: 'clock', taiOffsetS: taiOffset },
      "the kernel's TAI offset is not set (CLOCK_TAI = UTC): every sequencer host of a group must agree on it, or the one behind delays all by the difference (37 s); set it (chrony: leapsectz right/UTC) on all of them, see README \"Several sequencers\"",
    );
  }
  for (const g of flushGroups.filter((x) => x.draining)) {
    log.warn(
      { event: 'drain', group: g.id, sequencerId: g.sequencerId, session: g.session, lastSeq: seq.lastSeq(g.id).toString() },
      `group ${g.id}: sequencer ${g.sequencerId} is draining: no more stamping in session ${g.session}, FINAL flushes at seq ${seq.lastSeq(g.id)}`,
    );
  }

  const aggregating = cfg.groups.filter((g) => g.members.length > 0).map((g) => g.id);
  let window: SlotWindow | undefined;
  let retransmitter: Retransmitter | undefined;
  let rtSocket: Socket | undefined;
  let repair: RepairService | undefined;
  let weightSwitch: WeightSwitch | undefined;
  let flushProgram: BpfProgram | undefined;
  let flusher: FlushTimer | undefined;
  let flushSocket: Socket | undefined;
  let seqControl: Awaited<ReturnType<typeof startSequenceControl>>;
  // Sequences (docs/sequences.md): marks from the state file, fsync'ed
  // before any is raised in the kernel.
  const nvTable = new SequenceTable(seq.nvMaps);
  const sequences = new SequenceService(nvTable, new MarkStore(cfg.stateDir), log, { keyed: (g) => keys.key(g) !== undefined, groups: new Set(cfg.groups.map((g) => g.id)) });
  let markProgram: BpfProgram | undefined;
  try {
    sequences.load();
    if (cfg.flushIntervalMs > 0 || flushGroups.some((g) => g.draining)) {
      const address = interfaceAddress(cfg.interface);
      let transmit: FlushTransmit = { kind: 'xdp' };
      // See agent/flush.ts: live frames leave only through a native driver,
      // and only where the kernel allows live test runs at all.
      const live = dp.mode === 'generic' ? undefined : liveFramesSupport();
      if (live && !live.ok) {
        log.warn(
          { event: 'flush', code: 'EFLUSH_LIVE_FRAMES', errno: live.errno },
          `flushes: ${live.reason}; they are built by a plain test run of the attached program and sent from a socket instead`,
        );
      }
      if (dp.mode === 'generic' || (live && !live.ok)) {
        flushSocket = await bindFlushSocket(address.addr, cfg.port);
        flushSocket.on('error', (e) => log.warn({ err: e.message }, 'flush socket error'));
        transmit = { kind: 'socket', socket: flushSocket };
      }
      // The program the pinned link runs, created or adopted alike.
      flushProgram = programById(dp.link.info().progId, PROG_SEQUENCER);
      flusher = new FlushTimer(flushProgram, { iface: cfg.interface, ifindex: ifindex(cfg.interface), port: cfg.port, intervalMs: cfg.flushIntervalMs, groups: flushGroups, log, transmit, address, keys });
      log.info(
        { event: 'flush', intervalMs: cfg.flushIntervalMs, transmit: transmit.kind },
        transmit.kind === 'xdp'
          ? `flushes: live-frames test run of the attached program, sent by its XDP_TX (native mode)`
          : `flushes: test run of the attached program, sent from ${address.addr}:${cfg.port} by a socket (${dp.mode === 'generic' ? 'generic mode has no XDP transmit for injected frames' : 'this kernel refuses live frames'})`,
      );
    }
    if (aggregating.length) {
      window = new SlotWindow(seq.slots, seq.windowSlots);
      // From the sequencer's address and port (see bindFlushSocket); an
      // interface without an IPv4 address leaves only an ephemeral port,
      // whose re-sends replicas then refuse as a stranger's.
      const address = (() => {
        try {
          return interfaceAddress(cfg.interface).addr;
        } catch {
          return null;
        }
      })();
      if (address === null) log.warn({ event: 'retransmit', iface: cfg.interface }, `${cfg.interface} has no IPv4 address: retransmissions leave from an ephemeral port, which replicas refuse`);
      rtSocket = flushSocket ?? (address !== null ? await bindFlushSocket(address, cfg.port) : await bindAny());
      rtSocket.on('error', (e) => log.warn({ err: e.message }, 'retransmit socket error'));
      retransmitter = new Retransmitter(seq, window, rtSocket, {
        groups: aggregating,
        rtoMs: cfg.retransmit.timeoutMs,
        // Adaptive from --rto-ms up: a loaded group is not re-sent to early.
        maxRtoMs: Math.max(cfg.retransmit.timeoutMs, DEFAULT_MAX_RTO_MS),
        retries: cfg.retransmit.retries,
        log,
        keys,
      });
      // Reassignment (docs/weights.md): the replicas' committed tables arrive at the repair port.
      weightSwitch = new WeightSwitch(seq, weightGroups(cfg), log, Date.now, () => retransmitter?.refresh());
      const ws = weightSwitch;
      if (cfg.repair.port) repair = await RepairService.start(seq, window, { port: cfg.repair.port, log, keys, onWeights: (g, r, w) => ws.report(g, r, w) });
    }
    // Replicated sequences reserve their marks through their group (the
    // config check made sure it aggregates): from the sequencer's address,
    // like the re-sends. Before reconcile, which may need a first range.
    if (cfg.sequences.some((q) => q.replicated) && rtSocket) {
      const address = interfaceAddress(cfg.interface);
      markProgram = flushProgram ?? programById(dp.link.info().progId, PROG_SEQUENCER);
      const program = markProgram;
      sequences.setReserver(new GroupMarks({ program, slot: (id, s) => seq.slot(id, s), serves: (id) => seq.group(id) !== undefined }, { mac: address.mac, addr: address.addr, port: cfg.port, socket: rtSocket, key: (g) => keys.key(g) }));
    }
    await sequences.reconcile(cfg.sequences.map(defOf));
    seqControl = await startSequenceControl(cfg.sequenceControl.listen, sequences, log);
  } catch (e) {
    // The data path stays as it is (pinned and stamping): only this
    // agent's own handles go.
    await sequences.stop();
    await seqControl?.close();
    if (rtSocket !== flushSocket) rtSocket?.close();
    flushSocket?.close();
    flushProgram?.close();
    if (markProgram !== flushProgram) markProgram?.close();
    dp.link.close();
    seq.close();
    lock.release();
    process.off('SIGHUP', onHup);
    throw e;
  }
  retransmitter?.start();
  flusher?.start();
  const roles = new Map(cfg.groups.flatMap((g) => (g.role ? [[g.id, g.role] as const] : [])));
  const pairs = cfg.groups.flatMap((g) => (g.role ? [{ id: g.id, role: g.role, sequencerId: g.sequencerId ?? cfg.sequencerId }] : []));
  const standby = await startStandby(cfg, dp, store, log, () => retransmitter?.refresh(), () => nvTable.counters().refused);
  sequences.start();
  // Drop samples for `xseq-agent monitor` (GET /drops on the metrics address).
  const drops = new DropFeed();
  const metrics = await startMetrics(
    cfg.metrics.listen,
    {
      ...metricsSource(seq, cfg.sequencerId, cfg.groups.map((g) => g.id), { ...(window ? { window } : {}), ...(retransmitter ? { retransmitter } : {}), ...(repair ? { repair } : {}), ...(flusher ? { flusher } : {}), ...(weightSwitch ? { weightSwitch } : {}), pairs }),
      register: (r) => registerSequenceMetrics(r, sequences, nvTable),
    },
    dataPathHealth(dp, cfg.interface),
    log,
    (req, res) => drops.route(req, res),
  );

  let logged = 0;
  let suppressed = 0;
  const events = seq.dropEvents((ev) => {
    drops.publish(ev);
    if (logged++ < DROP_LOG_PER_SECOND) log.warn({ drop: ev }, 'dropped xseq packet');
    else suppressed++;
  });
  const groupsSeq = () => Object.fromEntries(cfg.groups.map((g) => [g.id, seq.lastSeq(g.id).toString()]));
  const agentCounters = () => ({
    ...(retransmitter ? { retransmit: { ...retransmitter.counters(), rtoMs: retransmitter.rtoMs() } } : {}),
    ...(repair ? { repair: repair.counters() } : {}),
    ...(flusher ? { flush: flusher.counters() } : {}),
  });
  const timers: NodeJS.Timeout[] = [
    setInterval(() => events.consume(), EVENT_POLL_MS),
    setInterval(() => {
      if (suppressed) log.warn({ suppressed }, 'more drop samples suppressed; see the drop_* counters');
      logged = suppressed = 0;
    }, 1000),
  ];
  if (cfg.statsIntervalMs > 0) {
    timers.push(
      setInterval(
        () => log.info({ event: 'counters', counters: plain(seq.counters()), ...agentCounters(), lastSeq: groupsSeq() }, 'counters'),
        cfg.statsIntervalMs,
      ),
    );
  }
  const linkInfo = dp.link.info();
  const build = buildInfo();
  log.info(
    {
      event: 'ready',
      version: build.version,
      commit: build.commit,
      bpfObjectSha: build.bpfObjectSha,
      dataPath: dp.origin,
      mode: dp.mode,
      modeReason: dp.modeReason,
      pinDir: dp.pinDir,
      progId: linkInfo.progId,
      linkId: linkInfo.id,
      port: cfg.port,
      groups: groupsLine(dp, cfg),
      window: seq.windowSlots,
      windows: seq.windows,
      maxResult: seq.config.maxResult,
      policy: seq.config.policy,
      rtoMs: cfg.retransmit.timeoutMs,
      maxRtoMs: Math.max(cfg.retransmit.timeoutMs, DEFAULT_MAX_RTO_MS),
      retries: cfg.retransmit.retries,
      repairPort: repair ? repair.port : null,
      flushIntervalMs: cfg.flushIntervalMs,
      taiOffsetS: taiOffset,
      sequencerIds: Object.fromEntries(flushGroups.map((g) => [g.id, g.sequencerId])),
      draining: flushGroups.filter((g) => g.draining).map((g) => g.id),
      roles: Object.fromEntries(roles),
      sequences: Object.fromEntries(sequences.status().map((q) => [q.name, { id: q.id, next: q.next, mark: q.mark, cache: q.cache }])),
      sequenceControl: seqControl?.address ?? null,
      metrics: metrics?.address ?? null,
      counters: plain(seq.counters()),
      config: opts.configFile ?? null,
      pid: process.pid,
    },
    dp.origin === 'adopted'
      ? `adopted the data path of ${cfg.interface} (${dp.mode}): it kept stamping, sessions and seqs continue`
      : `sequencer attached to ${cfg.interface} (${dp.mode}), pinned in ${dp.pinDir}`,
  );

  const signal = await stopSignal;
  process.off('SIGHUP', onHup);
  log.info({ signal }, 'stopping');
  for (const t of timers) clearInterval(t);
  standby?.stop();
  retransmitter?.stop();
  weightSwitch?.stop();
  flusher?.stop();
  await sequences.stop();
  await seqControl?.close();
  flushSocket?.close();
  flushProgram?.close();
  if (markProgram !== flushProgram) markProgram?.close();
  drops.close();
  await metrics?.close();
  await repair?.close();
  if (rtSocket !== flushSocket) rtSocket?.close();
  events.consume();
  const final = seq.counters();
  const sequencedPerCpu = seq.counterPerCpu('sequenced').map(String);
  const quorumHist = histogram(seq.quorumHistogram());
  const lastSeq = groupsSeq();
  const agentFinal = agentCounters();
  for (const g of cfg.groups) {
    const s = store.get(g.id);
    if (s) store.set(g.id, { ...s, lastSeq: lastSeq[g.id]! });
  }
  let saveError: string | undefined;
  try {
    store.save();
  } catch (e) {
    saveError = (e as Error).message;
  }
  events.close();
  let removed: string[] = [];
  if (opts.detachOnExit) {
    dp.link.detach();
    seq.close();
    removed = removePins(cfg.bpffs, cfg.interface).removed;
  } else {
    dp.link.close();
    seq.close();
  }
  lock.release();
  if (saveError) log.error({ event: 'state', code: 'ESTATE', err: saveError }, 'could not record the last seqs in sessions.json');
  log.info(
    {
      event: 'stopped',
      dataPath: opts.detachOnExit ? 'detached' : 'left attached',
      counters: plain(final),
      ...agentFinal,
      quorumHist,
      sequencedPerCpu,
      lastSeq,
      ...(opts.detachOnExit ? { removedPins: removed } : { pinDir: dp.pinDir }),
    },
    opts.detachOnExit
      ? `detached from ${cfg.interface} and removed its pins`
      : `stopped; the data path of ${cfg.interface} stays attached and stamping (pinned in ${dp.pinDir}); the next run adopts it`,
  );
}

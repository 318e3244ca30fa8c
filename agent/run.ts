// The daemon loop of `xseq-agent run`: load, configure groups, attach,
// retransmit and repair for aggregating groups, log counters and drop
// samples, and detach on SIGINT/SIGTERM.
import { createSocket, type Socket } from 'node:dgram';
import pino from 'pino';
import { Sequencer } from '../bpf/sequencer.ts';
import type { Counters } from '../bpf/maps.ts';
import type { RunConfig } from './args.ts';
import { RepairService } from './repair.ts';
import { Retransmitter } from './retransmit.ts';
import { SlotWindow } from './window.ts';

/** Drop samples logged per second at most; the counters have the rest. */
const DROP_LOG_PER_SECOND = 10;
const EVENT_POLL_MS = 200;

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

export async function runAgent(cfg: RunConfig): Promise<void> {
  const log = pino({ level: cfg.logLevel, base: { iface: cfg.iface } }, pino.destination({ sync: true }));
  const seq = Sequencer.load({ port: cfg.port, windowSlots: cfg.windowSlots, windows: cfg.windows, maxResult: cfg.maxResult, policy: cfg.policy });
  const aggregating = [...cfg.groups].filter(([, g]) => g.members?.length).map(([id]) => id);
  let link;
  let retransmitter: Retransmitter | undefined;
  let rtSocket: Socket | undefined;
  let repair: RepairService | undefined;
  try {
    for (const [id, g] of cfg.groups) {
      seq.resetSeq(id);
      // Windows in the order the groups were given: Sequencer's default
      // (id modulo windows) would put groups 1 and 5 in one window.
      const w = aggregating.indexOf(id);
      seq.setGroup(id, g, w >= 0 ? w : undefined);
    }
    if (aggregating.length) {
      const window = new SlotWindow(seq.slots, seq.windowSlots);
      rtSocket = await bindAny();
      rtSocket.on('error', (e) => log.warn({ err: e.message }, 'retransmit socket error'));
      retransmitter = new Retransmitter(seq, window, rtSocket, { groups: aggregating, rtoMs: cfg.rtoMs, retries: cfg.retries, log });
      if (cfg.repairPort) repair = await RepairService.start(seq, window, { port: cfg.repairPort, log });
    }
    link = seq.attach(cfg.iface, cfg.mode);
  } catch (e) {
    rtSocket?.close();
    await repair?.close();
    seq.close();
    throw e;
  }
  retransmitter?.start();

  let logged = 0;
  let suppressed = 0;
  const events = seq.dropEvents((ev) => {
    if (logged++ < DROP_LOG_PER_SECOND) log.warn({ drop: ev }, 'dropped xseq packet');
    else suppressed++;
  });
  const groupsSeq = () => Object.fromEntries([...cfg.groups.keys()].map((id) => [id, seq.lastSeq(id).toString()]));
  const agentCounters = () => ({
    ...(retransmitter ? { retransmit: retransmitter.counters() } : {}),
    ...(repair ? { repair: repair.counters() } : {}),
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
  log.info(
    {
      event: 'ready',
      mode: cfg.mode,
      port: cfg.port,
      groups: Object.fromEntries(cfg.groups),
      window: cfg.windowSlots,
      windows: cfg.windows,
      maxResult: cfg.maxResult,
      policy: cfg.policy,
      rtoMs: cfg.rtoMs,
      retries: cfg.retries,
      repairPort: repair ? repair.port : null,
      pid: process.pid,
    },
    `sequencer attached to ${cfg.iface} (${cfg.mode})`,
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

  for (const t of timers) clearInterval(t);
  retransmitter?.stop();
  await repair?.close();
  rtSocket?.close();
  events.consume();
  const final = seq.counters();
  const sequencedPerCpu = seq.counterPerCpu('sequenced').map(String);
  const quorumHist = histogram(seq.quorumHistogram());
  const lastSeq = groupsSeq();
  const agentFinal = agentCounters();
  link.close();
  events.close();
  seq.close();
  log.info(
    { event: 'stopped', counters: plain(final), ...agentFinal, quorumHist, sequencedPerCpu, lastSeq },
    `detached from ${cfg.iface}`,
  );
}

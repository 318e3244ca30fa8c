// The daemon loop of `xseq-agent run`: load, configure groups, attach, log
// counters and drop samples, and detach on SIGINT/SIGTERM.
import pino from 'pino';
import { Sequencer } from '../bpf/sequencer.ts';
import type { Counters } from '../bpf/maps.ts';
import type { RunConfig } from './args.ts';

/** Drop samples logged per second at most; the counters have the rest. */
const DROP_LOG_PER_SECOND = 10;
const EVENT_POLL_MS = 200;

function plain(c: Counters): Record<string, string> {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v.toString()]));
}

export async function runAgent(cfg: RunConfig): Promise<void> {
  const log = pino({ level: cfg.logLevel, base: { iface: cfg.iface } }, pino.destination({ sync: true }));
  const seq = Sequencer.load({ port: cfg.port });
  let link;
  try {
    for (const [id, g] of cfg.groups) {
      seq.resetSeq(id);
      seq.setGroup(id, g);
    }
    link = seq.attach(cfg.iface, cfg.mode);
  } catch (e) {
    seq.close();
    throw e;
  }

  let logged = 0;
  let suppressed = 0;
  const events = seq.dropEvents((ev) => {
    if (logged++ < DROP_LOG_PER_SECOND) log.warn({ drop: ev }, 'dropped xseq packet');
    else suppressed++;
  });
  const groupsSeq = () => Object.fromEntries([...cfg.groups.keys()].map((id) => [id, seq.lastSeq(id).toString()]));
  const timers: NodeJS.Timeout[] = [
    setInterval(() => events.consume(), EVENT_POLL_MS),
    setInterval(() => {
      if (suppressed) log.warn({ suppressed }, 'more drop samples suppressed; see the drop_* counters');
      logged = suppressed = 0;
    }, 1000),
  ];
  if (cfg.statsIntervalMs > 0) {
    timers.push(setInterval(() => log.info({ event: 'counters', counters: plain(seq.counters()), lastSeq: groupsSeq() }, 'counters'), cfg.statsIntervalMs));
  }
  log.info(
    { event: 'ready', mode: cfg.mode, port: cfg.port, groups: Object.fromEntries(cfg.groups), pid: process.pid },
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
  events.consume();
  const final = seq.counters();
  const sequencedPerCpu = seq.counterPerCpu('sequenced').map(String);
  const lastSeq = groupsSeq();
  link.close();
  events.close();
  seq.close();
  log.info({ event: 'stopped', counters: plain(final), sequencedPerCpu, lastSeq }, `detached from ${cfg.iface}`);
}

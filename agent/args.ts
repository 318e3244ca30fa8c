// Command-line parsing for xseq-agent. One place turns argv into a validated
// RunConfig, so every mistake is reported with the flag and what is allowed.
import { parseArgs } from 'node:util';
import { checkGroupConfig, type AttachMode } from '../bpf/sequencer.ts';
import type { GroupConfig } from '../bpf/maps.ts';
import { XSEQ_DEFAULT_PORT } from '../bpf/wire.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'EUSAGE';
}

export interface RunConfig {
  iface: string;
  mode: AttachMode;
  port: number;
  groups: Map<number, GroupConfig>;
  statsIntervalMs: number;
  logLevel: string;
}

export const RUN_HELP = `Usage: xseq-agent run --iface IF --group ID:ADDR:PORT [options]

Loads the XDP sequencer, attaches it to IF and stamps every REQUEST sent to
UDP port --port on that interface for the configured groups, multicasting
it to the group's address. Logs JSON lines on stdout: "ready" once attached,
"counters" every --stats-interval, drop samples, and "stopped" with the
final counters. SIGINT or SIGTERM detaches the program and exits 0.

Options:
  --iface IF             interface to attach to (required)
  --mode native|generic  XDP attach mode (default native). Native on veth
                         needs an XDP program on the peer for XDP_TX to work.
  --port N               UDP port clients send requests to (default ${XSEQ_DEFAULT_PORT})
  --group ID:ADDR:PORT   group id (0-255), IPv4 multicast address and UDP port
                         at the receivers; repeat for several groups (required)
  --session N            session number stamped on every packet (default 1)
  --sequencer-id N       sequencer id stamped on every packet (default 1)
  --stats-interval MS    how often to log counters; 0 = only at exit (default 1000)
  --log-level LEVEL      fatal|error|warn|info|debug (default info)
  -h, --help             this text

Needs root (or CAP_BPF and CAP_NET_ADMIN) and the built object bpf/build/sequencer.bpf.o
(make -C bpf).`;

export const MAIN_HELP = `Usage: xseq-agent <command> [options]

Commands:
  run      attach the XDP sequencer to an interface and serve its counters
  help     this text; "xseq-agent <command> --help" for a command's options

The full daemon (config file, pinned data path, Prometheus metrics) is being
built; this version attaches for as long as it runs and detaches on exit.`;

function int(flag: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a whole number, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag} must be ${min}..${max}, got ${n}`);
  return n;
}

function parseGroup(spec: string, session: number, sequencerId: number): [number, GroupConfig] {
  const m = /^(\d+):(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(spec);
  if (!m) throw new UsageError(`--group must be ID:ADDR:PORT (e.g. 1:239.7.7.1:7500), got "${spec}"`);
  const id = Number(m[1]);
  const g: GroupConfig = { mcastAddr: m[2]!, mcastPort: Number(m[3]), sequencerId, session, enabled: true };
  try {
    checkGroupConfig(id, g);
  } catch (e) {
    throw new UsageError(`--group ${spec}: ${(e as Error).message}`);
  }
  return [id, g];
}

/** Returns null when --help was asked for. */
export function parseRunArgs(argv: string[]): RunConfig | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        iface: { type: 'string' },
        mode: { type: 'string' },
        port: { type: 'string' },
        group: { type: 'string', multiple: true },
        session: { type: 'string' },
        'sequencer-id': { type: 'string' },
        'stats-interval': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return null;
  if (!v.iface) throw new UsageError('--iface is required: the interface clients send requests to (see `ip link`)');
  const mode = v.mode ?? 'native';
  if (mode !== 'native' && mode !== 'generic') throw new UsageError(`--mode must be native or generic, got "${mode}"`);
  const session = int('--session', v.session, 1, 0, 0xffffffff);
  const sequencerId = int('--sequencer-id', v['sequencer-id'], 1, 0, 65535);
  if (!v.group?.length) throw new UsageError('at least one --group ID:ADDR:PORT is required');
  const groups = new Map<number, GroupConfig>();
  for (const spec of v.group) {
    const [id, g] = parseGroup(spec, session, sequencerId);
    if (groups.has(id)) throw new UsageError(`--group ${spec}: group ${id} is given twice`);
    groups.set(id, g);
  }
  const logLevel = v['log-level'] ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw new UsageError(`--log-level must be fatal, error, warn, info or debug, got "${logLevel}"`);
  }
  return {
    iface: v.iface,
    mode,
    port: int('--port', v.port, XSEQ_DEFAULT_PORT, 1, 65535),
    groups,
    statsIntervalMs: int('--stats-interval', v['stats-interval'], 1000, 0, 3_600_000),
    logLevel,
  };
}

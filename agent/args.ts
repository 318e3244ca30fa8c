// Command-line parsing for xseq-agent. One place turns argv into a validated
// RunConfig, so every mistake is reported with the flag and what is allowed.
import { parseArgs } from 'node:util';
import { checkGroupConfig, DEFAULT_WINDOW_SLOTS, DEFAULT_WINDOWS, type AttachMode } from '../bpf/sequencer.ts';
import { type GroupConfig, majority, type Member, SLOT, XSEQ_MAX_GROUPS, XSEQ_MAX_REPLICAS, XSEQ_RESULT_CAP } from '../bpf/maps.ts';
import { XSEQ_DEFAULT_PORT } from '../bpf/wire.ts';
import { DEFAULT_REPAIR_PORT } from './repair.ts';
import { MAX_RETRIES } from './retransmit.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'EUSAGE';
}

export type Policy = 'backpressure' | 'overwrite';

export interface RunConfig {
  iface: string;
  mode: AttachMode;
  port: number;
  /** Groups by id; those with members aggregate ACKs and keep a window. */
  groups: Map<number, GroupConfig>;
  statsIntervalMs: number;
  logLevel: string;
  windowSlots: number;
  windows: number;
  maxResult: number;
  policy: Policy;
  rtoMs: number;
  retries: number;
  /** 0 = no repair service. */
  repairPort: number;
}

export const DEFAULT_RTO_MS = 20;
export const DEFAULT_RETRIES = 5;
/** Window slots are unswappable kernel memory: a typo in --window or
 * --windows must not take the host's memory. */
const MAX_SLOT_BYTES = 2 ** 32;

export const RUN_HELP = `Usage: xseq-agent run --iface IF --group ID:ADDR:PORT [options]

Loads the XDP sequencer, attaches it to IF and stamps every REQUEST sent to
UDP port --port on that interface for the configured groups, multicasting
it to the group's address. A group with --member replicas also aggregates
their ACKs in the kernel (one REPLY to the client once a quorum including
the leader has the request), keeps each stamped request in its window until
every member acked it, re-sends it by unicast to members that did not ack
within --rto-ms, and serves repair requests on --repair-port.

Logs JSON lines on stdout: "ready" once attached, "counters" every
--stats-interval (kernel, retransmit and repair counters), drop samples,
and "stopped" with the final counters and the stamp-to-quorum histogram.
SIGINT or SIGTERM detaches the program and exits 0.

Options:
  --iface IF             interface to attach to (required)
  --mode native|generic  XDP attach mode (default native). Native on veth
                         needs an XDP program on the peer for XDP_TX to work.
  --port N               UDP port clients send requests to (default ${XSEQ_DEFAULT_PORT})
  --group ID:ADDR:PORT   group id (0-255), IPv4 multicast address and UDP port
                         at the receivers; repeat for several groups (required)
  --session N            session number stamped on every packet (default 1)
  --sequencer-id N       sequencer id stamped on every packet (default 1)
  --member GROUP:RID:ADDR:PORT
                         replica RID of GROUP sends its ACKs from ADDR:PORT
                         and gets retransmissions at ADDR and the group's
                         port; repeat for each replica; RIDs are 0..n-1
                         without holes, n at most ${XSEQ_MAX_REPLICAS}; replica 0 leads view 0
  --quorum GROUP:Q       ACKs that certify a request of GROUP, the leader's
                         included: a majority (default) up to all members
  --window N             slots per group window, a power of two 2..1048576
                         (default ${DEFAULT_WINDOW_SLOTS}); at most N requests of a group in flight
  --windows N            windows, one per group with members (default ${DEFAULT_WINDOWS})
  --max-result BYTES     largest leader result carried in a REPLY, 0..${XSEQ_RESULT_CAP}
                         (default ${XSEQ_RESULT_CAP})
  --policy backpressure|overwrite
                         a request whose window slot is not acked by every
                         member yet is dropped (backpressure, default; the
                         client retries) or overwrites it (overwrite)
  --rto-ms MS            re-send a request to members that have not acked it
                         MS after stamping, then 2x, 4x ... later; 1..60000
                         (default ${DEFAULT_RTO_MS})
  --retries N            re-sends per request before giving up, 0..${MAX_RETRIES}
                         (default ${DEFAULT_RETRIES})
  --repair-port PORT     UDP port of the repair service; 0 = off (default ${DEFAULT_REPAIR_PORT})
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

const IPV4 = String.raw`\d{1,3}(?:\.\d{1,3}){3}`;

function parseMember(spec: string, groups: Map<number, GroupConfig>): [number, number, Member] {
  const m = new RegExp(`^(\\d+):(\\d+):(${IPV4}):(\\d+)$`).exec(spec);
  if (!m) throw new UsageError(`--member must be GROUP:RID:ADDR:PORT (e.g. 1:0:10.0.0.11:7600), got "${spec}"`);
  const [gid, rid, addr, port] = [Number(m[1]), Number(m[2]), m[3]!, Number(m[4])];
  if (!groups.has(gid)) throw new UsageError(`--member ${spec}: group ${gid} has no --group`);
  if (rid >= XSEQ_MAX_REPLICAS) throw new UsageError(`--member ${spec}: replica id ${rid} is not 0..${XSEQ_MAX_REPLICAS - 1}`);
  if (addr.split('.').some((o) => Number(o) > 255)) throw new UsageError(`--member ${spec}: "${addr}" is not an IPv4 address`);
  const b0 = Number(addr.split('.')[0]);
  if (b0 >= 224 || b0 === 0) throw new UsageError(`--member ${spec}: ${addr} is not a unicast IPv4 address`);
  if (port < 1 || port > 65535) throw new UsageError(`--member ${spec}: port ${port} is not 1..65535`);
  return [gid, rid, { addr, port }];
}

/** Attaches --member and --quorum to their groups and checks them whole. */
function addMembers(groups: Map<number, GroupConfig>, memberSpecs: string[], quorumSpecs: string[]): void {
  const byGroup = new Map<number, Map<number, Member>>();
  for (const spec of memberSpecs) {
    const [gid, rid, member] = parseMember(spec, groups);
    const rids = byGroup.get(gid) ?? new Map<number, Member>();
    if (rids.has(rid)) throw new UsageError(`--member ${spec}: replica ${rid} of group ${gid} is given twice`);
    for (const [other, o] of rids) {
      if (o.addr === member.addr && o.port === member.port) {
        throw new UsageError(`--member ${spec}: replicas ${other} and ${rid} of group ${gid} both send from ${member.addr}:${member.port}`);
      }
    }
    rids.set(rid, member);
    byGroup.set(gid, rids);
  }
  for (const [gid, rids] of byGroup) {
    const n = rids.size;
    const holes = Array.from({ length: n }, (_, i) => i).filter((i) => !rids.has(i));
    if (holes.length) {
      throw new UsageError(
        `--member: group ${gid} has replicas ${[...rids.keys()].sort((a, b) => a - b).join(', ')}; ` +
          `replica ids must be 0..${n - 1} without holes (missing ${holes.join(', ')})`,
      );
    }
    groups.get(gid)!.members = Array.from({ length: n }, (_, i) => rids.get(i)!);
  }
  const quorumSeen = new Set<number>();
  for (const spec of quorumSpecs) {
    const m = /^(\d+):(\d+)$/.exec(spec);
    if (!m) throw new UsageError(`--quorum must be GROUP:Q (e.g. 1:2), got "${spec}"`);
    const [gid, q] = [Number(m[1]), Number(m[2])];
    const n = byGroup.get(gid)?.size ?? 0;
    if (!groups.has(gid)) throw new UsageError(`--quorum ${spec}: group ${gid} has no --group`);
    if (n === 0) throw new UsageError(`--quorum ${spec}: group ${gid} has no --member; a quorum needs members`);
    if (quorumSeen.has(gid)) throw new UsageError(`--quorum ${spec}: group ${gid} is given twice`);
    if (q < majority(n) || q > n) {
      throw new UsageError(`--quorum ${spec}: quorum must be ${majority(n)}..${n} for the ${n} members of group ${gid} (a majority, at most all)`);
    }
    quorumSeen.add(gid);
    groups.get(gid)!.quorum = q;
  }
  for (const [gid, g] of groups) {
    try {
      checkGroupConfig(gid, g);
    } catch (e) {
      throw new UsageError(`--member: ${(e as Error).message}`);
    }
  }
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
        member: { type: 'string', multiple: true },
        quorum: { type: 'string', multiple: true },
        window: { type: 'string' },
        windows: { type: 'string' },
        'max-result': { type: 'string' },
        policy: { type: 'string' },
        'rto-ms': { type: 'string' },
        retries: { type: 'string' },
        'repair-port': { type: 'string' },
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
  addMembers(groups, v.member ?? [], v.quorum ?? []);
  const windowSlots = int('--window', v.window, DEFAULT_WINDOW_SLOTS, 2, 1 << 20);
  if ((windowSlots & (windowSlots - 1)) !== 0) throw new UsageError(`--window must be a power of two (2, 4, ... 1048576), got ${windowSlots}`);
  const windows = int('--windows', v.windows, DEFAULT_WINDOWS, 1, XSEQ_MAX_GROUPS);
  const aggregating = [...groups.values()].filter((g) => g.members?.length).length;
  if (aggregating > windows) {
    throw new UsageError(`--windows ${windows} is fewer than the ${aggregating} groups with --member: each needs its own window`);
  }
  if (windowSlots * windows * SLOT.size > MAX_SLOT_BYTES) {
    throw new UsageError(
      `--window ${windowSlots} x --windows ${windows} x ${SLOT.size}-byte slots is ${windowSlots * windows * SLOT.size} bytes; ` +
        `at most 4 GiB of window slots (unswappable kernel memory) are allowed`,
    );
  }
  const policy = v.policy ?? 'backpressure';
  if (policy !== 'backpressure' && policy !== 'overwrite') {
    throw new UsageError(`--policy must be backpressure or overwrite, got "${policy}"`);
  }
  const logLevel = v['log-level'] ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw new UsageError(`--log-level must be fatal, error, warn, info or debug, got "${logLevel}"`);
  }
  const port = int('--port', v.port, XSEQ_DEFAULT_PORT, 1, 65535);
  const repairPort = int('--repair-port', v['repair-port'], DEFAULT_REPAIR_PORT, 0, 65535);
  if (repairPort === port) throw new UsageError(`--repair-port ${repairPort} is the sequencer's --port; choose another`);
  return {
    iface: v.iface,
    mode,
    port,
    groups,
    statsIntervalMs: int('--stats-interval', v['stats-interval'], 1000, 0, 3_600_000),
    logLevel,
    windowSlots,
    windows,
    maxResult: int('--max-result', v['max-result'], XSEQ_RESULT_CAP, 0, XSEQ_RESULT_CAP),
    policy,
    rtoMs: int('--rto-ms', v['rto-ms'], DEFAULT_RTO_MS, 1, 60_000),
    retries: int('--retries', v.retries, DEFAULT_RETRIES, 0, MAX_RETRIES),
    repairPort,
  };
}

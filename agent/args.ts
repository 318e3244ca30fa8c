// Command-line parsing for xseq-agent. Flags are one more source of the one
// configuration (agent/config.ts): each sets a config path, over the file
// and the environment, and the schema validates the result once. This
// layer only reports what it alone can see: unknown flags and values that
// do not have a flag's shape (ID:ADDR:PORT ...).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  type AgentConfig,
  type ConfigLocations,
  configFileFrom,
  loadLocations,
  numberOrString,
  type Override,
  parseConfig,
  readRawConfig,
  setPath,
} from './config.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'EUSAGE';
}

/** Flags that set one config field each: flag -> path in the file. */
export const RUN_FLAG_PATHS = {
  iface: ['interface'],
  mode: ['attachMode'],
  port: ['port'],
  'sequencer-id': ['sequencerId'],
  session: ['session'],
  'state-dir': ['stateDir'],
  bpffs: ['bpffs'],
  'stats-interval': ['statsIntervalMs'],
  'flush-interval': ['flushIntervalMs'],
  'log-level': ['log', 'level'],
  'log-format': ['log', 'format'],
  window: ['window', 'slots'],
  windows: ['window', 'windows'],
  'max-result': ['window', 'maxResult'],
  policy: ['window', 'policy'],
  'rto-ms': ['retransmit', 'timeoutMs'],
  retries: ['retransmit', 'retries'],
  'repair-port': ['repair', 'port'],
  'metrics-listen': ['metrics', 'listen'],
} as const satisfies Record<string, readonly string[]>;
type ScalarFlag = keyof typeof RUN_FLAG_PATHS;
/** Values that are strings in the file; every other flag's digits are a number. */
const STRING_FLAGS: ReadonlySet<ScalarFlag> = new Set(['iface', 'mode', 'state-dir', 'bpffs', 'log-level', 'log-format', 'policy', 'metrics-listen']);

export interface RunArgs {
  /** --config; undefined: $XSEQ_CONFIG or the default file if present. */
  config?: string;
  scalars: Override[];
  groups: string[];
  members: string[];
  quorums: string[];
  /** --weight GROUP:RID:W and --tolerate GROUP:F (weighted quorums). */
  weights: string[];
  tolerates: string[];
  /** --drain GROUP: groups this sequencer is removed from (Hydra). */
  drains: string[];
  /** --key-file GROUP:PATH: a group's MAC key file. */
  keyFiles: string[];
  /** Re-create the data path whatever is pinned. */
  replace: boolean;
  /** Detach and unpin on SIGINT/SIGTERM instead of leaving it stamping. */
  detachOnExit: boolean;
  /** The command line after `run`, for messages that suggest a fix. */
  argv: string[];
}

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Values } {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options: { ...options, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Returns null when --help was asked for. */
export function parseRunArgs(argv: string[]): RunArgs | null {
  const scalarOptions = Object.fromEntries(Object.keys(RUN_FLAG_PATHS).map((k) => [k, { type: 'string' as const }]));
  const { values: v } = parse(argv, {
    ...scalarOptions,
    config: { type: 'string' },
    group: { type: 'string', multiple: true },
    member: { type: 'string', multiple: true },
    quorum: { type: 'string', multiple: true },
    weight: { type: 'string', multiple: true },
    tolerate: { type: 'string', multiple: true },
    drain: { type: 'string', multiple: true },
    'key-file': { type: 'string', multiple: true },
    replace: { type: 'boolean' },
    'detach-on-exit': { type: 'boolean' },
  });
  if (v.help) return null;
  const scalars: Override[] = [];
  for (const flag of Object.keys(RUN_FLAG_PATHS) as ScalarFlag[]) {
    const raw = v[flag];
    if (typeof raw !== 'string') continue;
    scalars.push({ path: [...RUN_FLAG_PATHS[flag]], value: STRING_FLAGS.has(flag) ? raw : numberOrString(raw), origin: `--${flag} ${raw}` });
  }
  return {
    ...(typeof v.config === 'string' ? { config: v.config } : {}),
    scalars,
    groups: (v.group as string[] | undefined) ?? [],
    members: (v.member as string[] | undefined) ?? [],
    quorums: (v.quorum as string[] | undefined) ?? [],
    weights: (v.weight as string[] | undefined) ?? [],
    tolerates: (v.tolerate as string[] | undefined) ?? [],
    drains: (v.drain as string[] | undefined) ?? [],
    keyFiles: (v['key-file'] as string[] | undefined) ?? [],
    replace: v.replace === true,
    detachOnExit: v['detach-on-exit'] === true,
    argv: ['run', ...argv],
  };
}

const GROUP_RE = /^(\d+):([^:]+):(\d+)$/;
const MEMBER_RE = /^(\d+):(\d+):([^:]+):(\d+)$/;
const QUORUM_RE = /^(\d+):(\d+)$/;
const WEIGHT_RE = /^(\d+):(\d+):(\d+)$/;

/**
 * Group flags as overrides of the raw config: --group replaces the file's
 * groups; --member and --quorum apply to a group by id, from the flags or
 * the file, and a group's --member flags replace its members from the file.
 */
function groupOverrides(raw: Record<string, unknown>, args: RunArgs, file: string | undefined): Override[] {
  const out: Override[] = [];
  const apply = (o: Override) => {
    setPath(raw, o.path, o.value);
    out.push(o);
  };
  if (args.groups.length) {
    raw['groups'] = [];
    args.groups.forEach((spec, i) => {
      const m = GROUP_RE.exec(spec);
      if (!m) throw new UsageError(`--group must be ID:ADDR:PORT (e.g. 1:239.7.7.1:7500), got "${spec}"`);
      apply({ path: ['groups', i], value: { id: Number(m[1]), multicast: `${m[2]}:${m[3]}` }, origin: `--group ${spec}` });
    });
  }
  const indexOf = (gid: number, flag: string, spec: string): number => {
    const groups = raw['groups'];
    const i = Array.isArray(groups) ? groups.findIndex((g) => Number((g as { id?: unknown } | null)?.id) === gid) : -1;
    if (i < 0) throw new UsageError(`${flag} ${spec}: group ${gid} has no --group${file ? ` and is not in ${file}` : ''}`);
    return i;
  };
  const replaced = new Set<number>();
  for (const spec of args.members) {
    const m = MEMBER_RE.exec(spec);
    if (!m) throw new UsageError(`--member must be GROUP:RID:ADDR:PORT (e.g. 1:0:10.0.0.11:7600), got "${spec}"`);
    const i = indexOf(Number(m[1]), '--member', spec);
    const group = (raw['groups'] as Record<string, unknown>[])[i]!;
    if (!replaced.has(i)) {
      group['members'] = [];
      replaced.add(i);
    }
    const j = (group['members'] as unknown[]).length;
    apply({ path: ['groups', i, 'members', j], value: { id: Number(m[2]), address: `${m[3]}:${m[4]}` }, origin: `--member ${spec}` });
  }
  const quorumSeen = new Set<number>();
  for (const spec of args.quorums) {
    const m = QUORUM_RE.exec(spec);
    if (!m) throw new UsageError(`--quorum must be GROUP:Q (e.g. 1:2), got "${spec}"`);
    const i = indexOf(Number(m[1]), '--quorum', spec);
    if (quorumSeen.has(i)) throw new UsageError(`--quorum ${spec}: group ${m[1]} is given twice`);
    quorumSeen.add(i);
    apply({ path: ['groups', i, 'quorum'], value: Number(m[2]), origin: `--quorum ${spec}` });
  }
  for (const spec of args.weights) {
    const m = WEIGHT_RE.exec(spec);
    if (!m) throw new UsageError(`--weight must be GROUP:RID:W (e.g. 1:0:3), got "${spec}"`);
    const i = indexOf(Number(m[1]), '--weight', spec);
    const members = (raw['groups'] as Record<string, unknown>[])[i]!['members'];
    const j = Array.isArray(members) ? members.findIndex((x) => Number((x as { id?: unknown } | null)?.id) === Number(m[2])) : -1;
    if (j < 0) throw new UsageError(`--weight ${spec}: group ${m[1]} has no member ${m[2]} (--member ${m[1]}:${m[2]}:ADDR:PORT)`);
    apply({ path: ['groups', i, 'members', j, 'weight'], value: Number(m[3]), origin: `--weight ${spec}` });
  }
  for (const spec of args.tolerates) {
    const m = QUORUM_RE.exec(spec);
    if (!m) throw new UsageError(`--tolerate must be GROUP:F (e.g. 1:1), got "${spec}"`);
    apply({ path: ['groups', indexOf(Number(m[1]), '--tolerate', spec), 'f'], value: Number(m[2]), origin: `--tolerate ${spec}` });
  }
  for (const spec of args.drains) {
    if (!/^\d+$/.test(spec)) throw new UsageError(`--drain must be a group id (e.g. 1), got "${spec}"`);
    apply({ path: ['groups', indexOf(Number(spec), '--drain', spec), 'draining'], value: true, origin: `--drain ${spec}` });
  }
  for (const spec of args.keyFiles) {
    const m = /^(\d+):(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--key-file must be GROUP:PATH (e.g. 1:/etc/xseq/group1.key), got "${spec}"`);
    apply({ path: ['groups', indexOf(Number(m[1]), '--key-file', spec), 'keyFile'], value: m[2], origin: `--key-file ${spec}` });
  }
  return out;
}

/** The validated configuration of `run`: file, then environment, then
 * flags. Throws ConfigError naming every bad field, UsageError for flags. */
export function runConfig(args: RunArgs, env: NodeJS.ProcessEnv = process.env): AgentConfig & { configFile?: string } {
  const file = configFileFrom(args.config, env);
  const { raw, source, overrides } = readRawConfig({ ...(file ? { file } : {}), env });
  for (const o of args.scalars) setPath(raw, o.path, o.value);
  const groups = groupOverrides(raw, args, file);
  const flagged = [...args.scalars, ...groups];
  if (flagged.length) source.push('flags');
  const cfg = parseConfig(raw, source.join(' + '), [...overrides, ...flagged]);
  return file ? { ...cfg, configFile: file } : cfg;
}

export interface InspectArgs {
  locations: ConfigLocations;
  /** Interfaces to look at: the one asked for, or undefined for all. */
  iface?: string;
}

function locationsFrom(v: Values, env: NodeJS.ProcessEnv): ConfigLocations {
  const flags: Override[] = [];
  if (typeof v.bpffs === 'string') flags.push({ path: ['bpffs'], value: v.bpffs, origin: `--bpffs ${v.bpffs}` });
  if (typeof v['state-dir'] === 'string') flags.push({ path: ['stateDir'], value: v['state-dir'], origin: `--state-dir ${v['state-dir']}` });
  if (typeof v.iface === 'string') flags.push({ path: ['interface'], value: v.iface, origin: `--iface ${v.iface}` });
  const file = configFileFrom(typeof v.config === 'string' ? v.config : undefined, env);
  return loadLocations({ ...(file ? { file } : {}), env, flags });
}

const LOCATION_OPTIONS = {
  config: { type: 'string' },
  bpffs: { type: 'string' },
  'state-dir': { type: 'string' },
  iface: { type: 'string' },
} as const;

/** `status [--iface IF | --all] [--json]`; null for --help. Without either,
 * the configured interface if there is one, else all. */
export function parseStatusArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): (InspectArgs & { json: boolean }) | null {
  const { values: v } = parse(argv, { ...LOCATION_OPTIONS, all: { type: 'boolean' }, json: { type: 'boolean' } });
  if (v.help) return null;
  if (v.all && typeof v.iface === 'string') throw new UsageError('give --iface IF or --all, not both');
  const locations = locationsFrom(v, env);
  const iface = v.all ? undefined : locations.interface;
  return { locations, ...(iface ? { iface } : {}), json: v.json === true };
}

/** `detach --iface IF [--force]`; null for --help. */
export function parseDetachArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): (InspectArgs & { iface: string; force: boolean }) | null {
  const { values: v } = parse(argv, { ...LOCATION_OPTIONS, force: { type: 'boolean' } });
  if (v.help) return null;
  const locations = locationsFrom(v, env);
  if (!locations.interface) throw new UsageError('--iface is required: the interface whose data path to remove (see `xseq-agent status --all`)');
  return { locations, iface: locations.interface, force: v.force === true };
}

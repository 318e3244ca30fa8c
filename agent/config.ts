// The agent's one configuration schema. A file (YAML or JSON), then
// environment variables, then command-line flags, merged into one raw object
// and validated once at start; every mistake is reported with the field's
// path and what is allowed, all of them at once.
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SLOT, XSEQ_MAX_GROUPS, XSEQ_MAX_REPLICAS, XSEQ_RESULT_CAP } from '../bpf/maps.ts';
import { XSEQ_DEFAULT_PORT } from '../bpf/wire.ts';
import { NV_NAME_RE, XSEQ_NV_MAX_COUNT, XSEQ_NV_MAX_SEQS } from '../bpf/nextval.ts';
import { defaultTolerance, integrityIssue, majorityIssue } from '../bpf/quorum.ts';
import { KeyFileError, readKeyFile } from '../bpf/key-file.ts';

export const DEFAULT_CONFIG_PATH = '/etc/xseq/agent.yaml';
export const DEFAULT_BPFFS = '/sys/fs/bpf';
export const DEFAULT_STATE_DIR = '/var/lib/xseq';
/** Window slots are unswappable kernel memory: a typo in window.slots or
 * window.windows must not take the host's memory. */
const MAX_SLOT_BYTES = 2 ** 32;

export interface ConfigIssue {
  /** Dotted path of the field, e.g. groups[0].members[1].address. */
  path: string;
  message: string;
  /** The flag or environment variable that set the field, when one did. */
  origin?: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ECONFIG';
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  ${i.path || '(top level)'}: ${i.message}${i.origin ? ` (from ${i.origin})` : ''}`).join('\n')}`);
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const firstOctet = (a: string) => Number(a.split('.')[0]);

function hostPort(kind: 'multicast' | 'unicast' | 'listen') {
  const example = { multicast: '239.7.7.1:7500', unicast: '10.0.0.11:7600', listen: '127.0.0.1:9464' }[kind];
  return z.string({ error: `must be a string like "${example}"` }).superRefine((v, ctx) => {
    const m = /^([\d.]+):(\d{1,5})$/.exec(v);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !IPV4.test(m[1]!) || !(port >= (kind === 'listen' ? 0 : 1) && port <= 65535)) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not IPV4:PORT (e.g. "${example}")` });
      return;
    }
    const o = firstOctet(m[1]!);
    if (kind === 'multicast' && !(o >= 224 && o <= 239)) {
      ctx.addIssue({ code: 'custom', message: `"${v}": ${m[1]} is not an IPv4 multicast address (224.0.0.0-239.255.255.255)` });
    }
    if (kind === 'unicast' && (o >= 224 || o === 0)) {
      ctx.addIssue({ code: 'custom', message: `"${v}": ${m[1]} is not a unicast IPv4 address` });
    }
  });
}

const int = (min: number, max: number, what = '') =>
  z.number({ error: `must be a whole number ${min}..${max}${what}` }).int({ error: `must be a whole number ${min}..${max}${what}` }).min(min, { error: `must be at least ${min}${what}` }).max(max, { error: `must be at most ${max}${what}` });

const oneOf = <T extends string>(values: readonly [T, ...T[]]) => z.enum(values, { error: `must be one of ${values.map((v) => `"${v}"`).join(', ')}` });

const Member = z.strictObject({
  id: int(0, XSEQ_MAX_REPLICAS - 1, ' (replica id)'),
  address: hostPort('unicast'),
  /** Voting weight (default 1): a request is certified once the leader and
   * members holding more than half the group's total weight acked it. */
  weight: int(0, 255, ' (voting weight)').optional(),
});

const Group = z
  .strictObject({
    id: int(0, XSEQ_MAX_GROUPS - 1),
    multicast: hostPort('multicast'),
    quorum: int(1, XSEQ_MAX_REPLICAS).optional(),
    /** Failures the group tolerates (default a majority's, (n - 1) / 2):
     * with weights, the f heaviest must hold less than half the total. */
    f: int(0, XSEQ_MAX_REPLICAS - 1, ' (failures tolerated)').optional(),
    /** Overrides the agent's sequencerId for this group (Hydra: unique
     * per group, 0..N-1 among the group's sequencers). */
    sequencerId: int(0, 65535).optional(),
    /** Hydra removal: this sequencer stops stamping the group for good and
     * answers every flush solicit with a FINAL flush. */
    draining: z.boolean({ error: 'must be true or false' }).optional(),
    /** The group's MAC key file (docs/authentication.md): 16 raw bytes or
     * 32 hex digits, not readable by "other". Absent: no authentication
     * (a warning at start). Re-read on SIGHUP. */
    keyFile: z.string({ error: 'must be a file path' }).startsWith('/', { error: 'must be an absolute path' }).optional(),
    /** One-sequencer failover (agent/pair-session.ts): this agent is the
     * group's active sequencer or its standby on another host. Both take
     * sessions by the pair rule so the standby's is above the active's and
     * the two never share one. Absent: a group without a standby. */
    role: oneOf(['active', 'standby']).optional(),
    /** Standby: the active counts as dead after this long without a flush
     * or stamp of it on the group's multicast (default 50 flush intervals). */
    takeoverMs: int(1, 600_000).optional(),
    members: z.array(Member, { error: 'must be a list of {id, address}' }).max(XSEQ_MAX_REPLICAS, { error: `at most ${XSEQ_MAX_REPLICAS} members` }).default([]),
  })
  .superRefine((g, ctx) => {
    if (g.keyFile !== undefined) {
      try {
        readKeyFile(g.keyFile);
      } catch (e) {
        if (!(e instanceof KeyFileError)) throw e;
        ctx.addIssue({ code: 'custom', path: ['keyFile'], message: `${e.message} [${e.code}]` });
      }
    }
    const ids = g.members.map((m) => m.id).sort((a, b) => a - b);
    if (ids.some((id, i) => id !== i)) {
      ctx.addIssue({ code: 'custom', path: ['members'], message: `member ids must be 0..${g.members.length - 1}, each once (got ${ids.join(', ')})` });
    }
    const n = g.members.length;
    const weighted = g.f !== undefined || g.members.some((m) => m.weight !== undefined);
    if (g.quorum !== undefined && weighted) {
      ctx.addIssue({ code: 'custom', path: ['quorum'], message: 'counts ACKs and cannot be combined with member weights or f: drop quorum (weights certify by more than half the total weight) or drop the weights and f' });
    } else if (g.quorum === undefined && n > 0) {
      const issue = integrityIssue(g.members, g.f ?? defaultTolerance(n));
      if (issue) ctx.addIssue({ code: 'custom', path: [g.f !== undefined ? 'f' : 'members'], message: issue });
      // Replicas run view changes and recovery on a majority by count: a
      // table where fewer than a majority of members hold more than half the
      // weight lets them certify a write a view change never hears of. That
      // loses committed writes with no failure at all, so it is refused, not
      // warned about (docs/weights.md).
      const minority = !issue && weighted ? majorityIssue(g.members.map((m) => m.weight ?? 1)) : undefined;
      if (minority) ctx.addIssue({ code: 'custom', path: ['members'], message: `${minority}. Weights may make a quorum need more members, never fewer: lower the heavy members' weight or raise the others'` });
    }
    if (g.quorum !== undefined) {
      const maj = Math.floor(n / 2) + 1;
      if (n === 0) ctx.addIssue({ code: 'custom', path: ['quorum'], message: 'a quorum needs members' });
      else if (g.quorum < maj || g.quorum > n) ctx.addIssue({ code: 'custom', path: ['quorum'], message: `must be ${maj}..${n} for ${n} members (a majority, at most all)` });
    }
  });

/** A named sequence answered by the kernel (docs/sequences.md). */
const SequenceDecl = z
  .strictObject({
    name: z.string({ error: 'must be a string' }).regex(NV_NAME_RE, { error: 'must be 1..32 characters of A-Z a-z 0-9 _ . -' }),
    id: int(0, XSEQ_NV_MAX_SEQS - 1),
    start: int(0, Number.MAX_SAFE_INTEGER).default(1),
    increment: int(1, 0x7fffffff).default(1),
    cache: int(1, XSEQ_NV_MAX_COUNT, ' (values per block)').default(1),
    /** Values the durable mark runs ahead of the counter; default 262144 blocks. */
    markAhead: int(1, Number.MAX_SAFE_INTEGER).optional(),
    /** The group it belongs to: its key (if any) authenticates NEXTVAL. */
    group: int(0, 0xffffffff).optional(),
    /** The durable mark is also committed through the group's total order
     * (docs/sequences.md, "Replicated durability"). */
    replicated: z.boolean({ error: 'must be true or false' }).default(false),
  })
  .superRefine((q, ctx) => {
    if (q.markAhead !== undefined && q.markAhead < q.cache * q.increment) {
      ctx.addIssue({ code: 'custom', path: ['markAhead'], message: `must be at least one block (cache x increment = ${q.cache * q.increment})` });
    }
  });

const Fields = {
  interface: z
    .string({ error: (iss) => (iss.input === undefined ? 'is required: the interface clients send requests to (see `ip link`; --iface IF)' : 'must be an interface name (a string)') })
    .min(1, { error: 'must not be empty' })
    .max(15, { error: 'is longer than an interface name can be (15)' })
    // The kernel's own rule (dev_valid_name); it also keeps the name a
    // single directory under <bpffs>/xseq/.
    .refine((v) => v !== '.' && v !== '..' && !/[/:\s]/.test(v), { error: 'is not a valid interface name (no "/", ":" or spaces)' }),
  attachMode: oneOf(['native', 'generic', 'auto']).default('auto'),
  port: int(1, 65535).default(XSEQ_DEFAULT_PORT),
  sequencerId: int(0, 65535).default(1),
  stateDir: z.string({ error: 'must be a directory path' }).startsWith('/', { error: 'must be an absolute path' }).default(DEFAULT_STATE_DIR),
  bpffs: z.string({ error: 'must be a directory path' }).startsWith('/', { error: 'must be an absolute path' }).default(DEFAULT_BPFFS),
  statsIntervalMs: int(0, 3_600_000).default(10_000),
  /** Hydra: every flushIntervalMs the agent has the kernel send a FLUSH for
   * each group (0 = off; replicas can still solicit one). */
  flushIntervalMs: int(0, 60_000, ' (0 = off)').default(0),
  window: z
    .strictObject({
      slots: int(2, 1 << 20).refine((v) => (v & (v - 1)) === 0, { error: 'must be a power of two' }).default(1024),
      windows: int(1, XSEQ_MAX_GROUPS).default(4),
      policy: oneOf(['backpressure', 'overwrite']).default('backpressure'),
      maxResult: int(0, XSEQ_RESULT_CAP, ' bytes').default(XSEQ_RESULT_CAP),
    })
    .prefault({}),
  retransmit: z.strictObject({ timeoutMs: int(1, 60_000).default(20), retries: int(0, 100).default(5) }).prefault({}),
  repair: z.strictObject({ port: int(0, 65535, ' (0 = off)').default(7401) }).prefault({}),
  metrics: z.strictObject({ listen: z.union([z.literal(''), hostPort('listen')]).default('127.0.0.1:9464') }).prefault({}),
  log: z.strictObject({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug']).default('info'), format: oneOf(['json', 'pretty']).default('json') }).prefault({}),
  groups: z
    .array(Group, { error: (iss) => (iss.input === undefined ? 'is required: at least one group (`groups:` in the file, or --group ID:ADDR:PORT)' : 'must be a list of groups') })
    .min(1, { error: 'needs at least one group' }),
  sequences: z.array(SequenceDecl, { error: 'must be a list of {name, id, start, increment, cache}' }).default([]),
  /** Run-time create/drop/setval and the sequence list (HTTP, JSON); "" = off. */
  sequenceControl: z.strictObject({ listen: z.union([z.literal(''), hostPort('listen')]).default('127.0.0.1:9465') }).prefault({}),
  /** Forces the session of the groups of a data path this agent creates;
   * by default it is one more than the last one in stateDir. */
  session: int(1, 0xffffffff).optional(),
};

const Schema = z
  .strictObject(Fields)
  .superRefine((c, ctx) => {
    const seen = new Set<number>();
    c.groups.forEach((g, i) => {
      if (seen.has(g.id)) ctx.addIssue({ code: 'custom', path: ['groups', i, 'id'], message: `group ${g.id} is configured twice` });
      seen.add(g.id);
    });
    const aggregating = c.groups.filter((g) => g.members.length > 0).length;
    if (aggregating > c.window.windows) {
      ctx.addIssue({ code: 'custom', path: ['window', 'windows'], message: `${aggregating} groups have members but only ${c.window.windows} windows are configured` });
    }
    const slotBytes = c.window.slots * c.window.windows * SLOT.size;
    if (slotBytes > MAX_SLOT_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['window'],
        message: `${c.window.slots} slots x ${c.window.windows} windows x ${SLOT.size}-byte slots is ${slotBytes} bytes; at most 4 GiB of window slots (unswappable kernel memory) are allowed`,
      });
    }
    c.groups.forEach((g, i) => {
      if (g.role === undefined) return;
      if (g.draining) ctx.addIssue({ code: 'custom', path: ['groups', i, 'role'], message: 'a standby pair is for a group with one sequencer; draining is the removal of one of several (Hydra): drop one of the two' });
      if (c.session !== undefined) ctx.addIssue({ code: 'custom', path: ['session'], message: `cannot be forced while group ${g.id} has a role: the pair's sessions come from the pair rule, or the standby could fall below the active` });
      if (c.flushIntervalMs === 0) ctx.addIssue({ code: 'custom', path: ['flushIntervalMs'], message: `must be more than 0 for group ${g.id} with a role: the active's flushes are the standby's heartbeat (e.g. --flush-interval 2, on both hosts)` });
      if (g.takeoverMs !== undefined && g.role !== 'standby') ctx.addIssue({ code: 'custom', path: ['groups', i, 'takeoverMs'], message: 'is for the standby of a pair (role: standby)' });
      if (g.takeoverMs !== undefined && c.flushIntervalMs > 0 && g.takeoverMs <= 2 * c.flushIntervalMs) ctx.addIssue({ code: 'custom', path: ['groups', i, 'takeoverMs'], message: `must be more than 2 flush intervals (${2 * c.flushIntervalMs} ms), or one lost flush looks like a dead active` });
    });
    const names = new Map<string, number>();
    const ids = new Map<number, number>();
    c.sequences.forEach((q, i) => {
      if (names.has(q.name)) ctx.addIssue({ code: 'custom', path: ['sequences', i, 'name'], message: `"${q.name}" is also sequences[${names.get(q.name)}]` });
      if (ids.has(q.id)) ctx.addIssue({ code: 'custom', path: ['sequences', i, 'id'], message: `${q.id} is also the id of sequences[${ids.get(q.id)}]` });
      names.set(q.name, i);
      ids.set(q.id, i);
      const g = q.group === undefined ? undefined : c.groups.find((x) => x.id === q.group);
      if (q.group !== undefined && !g) ctx.addIssue({ code: 'custom', path: ['sequences', i, 'group'], message: `${q.group} is not a configured group (groups: ${c.groups.map((x) => x.id).join(', ') || 'none'})` });
      if (q.replicated && q.group === undefined) ctx.addIssue({ code: 'custom', path: ['sequences', i, 'replicated'], message: 'needs group: the replica group whose total order keeps the mark' });
      else if (q.replicated && g && g.members.length === 0) ctx.addIssue({ code: 'custom', path: ['sequences', i, 'replicated'], message: `group ${q.group} has no members: a replicated mark needs the kernel's quorum certificate (members with addresses)` });
    });
    if (c.repair.port !== 0 && c.repair.port === c.port) {
      ctx.addIssue({ code: 'custom', path: ['repair', 'port'], message: `${c.repair.port} is the sequencer's port; choose another (0 = off)` });
    }
    c.groups.forEach((g, i) => {
      const seenAt = new Map<string, number>();
      g.members.forEach((m) => {
        const other = seenAt.get(m.address);
        if (other !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['groups', i, 'members'], message: `replicas ${other} and ${m.id} both send from ${m.address}; only one replica's ACKs could count` });
        }
        seenAt.set(m.address, m.id);
      });
    });
  });

export type AgentConfig = z.infer<typeof Schema>;
export type GroupSpec = AgentConfig['groups'][number];
export type SequenceSpec = AgentConfig['sequences'][number];

type Key = string | number;

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/** A value set over the file's, and who set it (a flag or an environment
 * variable), so a mistake in it is reported against both. */
export interface Override {
  path: Key[];
  value: unknown;
  /** e.g. "--port 70000" or "XSEQ_PORT"; omitted: reported by path only. */
  origin?: string;
}

function isPrefix(prefix: readonly PropertyKey[], path: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((k, i) => k === path[i]);
}

/** Who set the field at `path`: the flags that set parts of it (a list
 * built from several --member flags), else the last override of the
 * longest prefix (the --group that made the group). */
function originOf(path: readonly PropertyKey[], overrides: readonly Override[]): string | undefined {
  const parts = overrides.filter((o) => o.origin && o.path.length > path.length && isPrefix(path, o.path));
  if (parts.length) return [...new Set(parts.map((o) => o.origin))].join(', ');
  let best: Override | undefined;
  for (const o of overrides) {
    if (o.origin && isPrefix(o.path, path) && (!best || o.path.length >= best.path.length)) best = o;
  }
  return best?.origin;
}

/** Validates a raw object; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, source: string, overrides: readonly Override[] = []): AgentConfig {
  const r = Schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.flatMap((i): ConfigIssue[] => {
    const paths =
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({ at: [...i.path, k], message: 'is not a known setting (check its spelling; see deploy/agent.example.yaml)' }))
        : [{ at: i.path, message: i.message }];
    return paths.map(({ at, message }) => {
      const origin = originOf(at, overrides);
      return { path: pathOf(at), message, ...(origin ? { origin } : {}) };
    });
  });
  throw new ConfigError(source, issues);
}

/** Environment variables that override the file, and the field each sets. */
export const ENV_OVERRIDES: Record<string, { path: string[]; type: 'string' | 'number' }> = {
  XSEQ_INTERFACE: { path: ['interface'], type: 'string' },
  XSEQ_ATTACH_MODE: { path: ['attachMode'], type: 'string' },
  XSEQ_PORT: { path: ['port'], type: 'number' },
  XSEQ_SEQUENCER_ID: { path: ['sequencerId'], type: 'number' },
  XSEQ_FLUSH_INTERVAL_MS: { path: ['flushIntervalMs'], type: 'number' },
  XSEQ_STATE_DIR: { path: ['stateDir'], type: 'string' },
  XSEQ_BPFFS: { path: ['bpffs'], type: 'string' },
  XSEQ_METRICS_LISTEN: { path: ['metrics', 'listen'], type: 'string' },
  XSEQ_LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
  XSEQ_LOG_FORMAT: { path: ['log', 'format'], type: 'string' },
};
/** Names the config file; set but empty: no file, not even the default. */
export const ENV_CONFIG_FILE = 'XSEQ_CONFIG';

type Raw = Record<string, unknown>;

/** Sets a value at a path, creating objects (or, before a numeric key,
 * lists) on the way. */
export function setPath(obj: Raw, path: readonly Key[], value: unknown): void {
  let o: Record<Key, unknown> = obj;
  path.slice(0, -1).forEach((k, i) => {
    const nextIsIndex = typeof path[i + 1] === 'number';
    if (typeof o[k] !== 'object' || o[k] === null || (nextIsIndex && !Array.isArray(o[k]))) o[k] = nextIsIndex ? [] : {};
    o = o[k] as Record<Key, unknown>;
  });
  o[path[path.length - 1]!] = value;
}

/** A number from the environment or a flag stays a string when it is not
 * one, so the schema reports it against the field instead of silently
 * dropping it. */
export function numberOrString(v: string): unknown {
  return /^-?\d+$/.test(v) ? Number(v) : v;
}

function envValue(v: string, type: 'string' | 'number'): unknown {
  return type === 'number' ? numberOrString(v) : v;
}

export interface ConfigSources {
  /** Config file path; omitted: none (everything from env and flags). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Already-parsed flag values as a partial raw config (paths as in the file). */
  flags?: Override[];
}

/**
 * The config file to read: --config, else $XSEQ_CONFIG (empty: none), else
 * /etc/xseq/agent.yaml when it exists.
 */
export function configFileFrom(explicit: string | undefined, env: NodeJS.ProcessEnv, defaultPath = DEFAULT_CONFIG_PATH): string | undefined {
  if (explicit !== undefined) return explicit;
  const fromEnv = env[ENV_CONFIG_FILE];
  if (fromEnv !== undefined) return fromEnv === '' ? undefined : fromEnv;
  return existsSync(defaultPath) ? defaultPath : undefined;
}

/** The file's settings with the environment applied over them, not yet
 * validated; `overrides` lists what the environment set. */
export function readRawConfig(src: { file?: string; env?: NodeJS.ProcessEnv }): { raw: Raw; source: string[]; overrides: Override[] } {
  let raw: Raw = {};
  const source = [src.file ?? 'no file'];
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (e) {
      throw new ConfigError(src.file, [{ path: '', message: `cannot read the file: ${(e as Error).message}` }]);
    }
    let doc: unknown;
    try {
      doc = src.file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    } catch (e) {
      throw new ConfigError(src.file, [{ path: '', message: `is not valid ${src.file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}` }]);
    }
    if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
      throw new ConfigError(src.file, [{ path: '', message: 'must be a mapping of settings' }]);
    }
    raw = (doc ?? {}) as Raw;
  }
  const overrides: Override[] = [];
  const env = src.env ?? {};
  for (const [name, o] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      const value = envValue(v, o.type);
      setPath(raw, o.path, value);
      overrides.push({ path: o.path, value, origin: name });
      source.push(name);
    }
  }
  return { raw, source, overrides };
}

/** Reads the file, applies env then flags, validates once. */
export function loadConfig(src: ConfigSources): AgentConfig {
  const { raw, source, overrides } = readRawConfig(src);
  for (const f of src.flags ?? []) setPath(raw, f.path, f.value);
  if (src.flags?.length) source.push('flags');
  return parseConfig(raw, source.join(' + '), [...overrides, ...(src.flags ?? [])]);
}

const Locations = z.object({ bpffs: Fields.bpffs, stateDir: Fields.stateDir, interface: Fields.interface.optional() });
export type ConfigLocations = z.infer<typeof Locations>;

/**
 * Only where the data path and the state live (and the interface, if set),
 * for commands that inspect rather than run: status and detach must work
 * even when the rest of the file is being edited and invalid.
 */
export function loadLocations(src: ConfigSources): ConfigLocations {
  const { raw, source, overrides } = readRawConfig(src);
  for (const f of src.flags ?? []) setPath(raw, f.path, f.value);
  const r = Locations.safeParse(raw);
  if (r.success) return r.data;
  const all = [...overrides, ...(src.flags ?? [])];
  throw new ConfigError(
    source.join(' + '),
    r.error.issues.map((i) => {
      const origin = originOf(i.path, all);
      return { path: pathOf(i.path), message: i.message, ...(origin ? { origin } : {}) };
    }),
  );
}

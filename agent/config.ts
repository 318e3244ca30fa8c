// The agent's one configuration schema. A file (YAML or JSON), then
// environment variables, then command-line flags, merged into one raw object
// and validated once at start; every mistake is reported with the field's
// path and what is allowed, all of them at once.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { XSEQ_MAX_GROUPS, XSEQ_MAX_REPLICAS, XSEQ_RESULT_CAP } from '../bpf/maps.ts';
import { XSEQ_DEFAULT_PORT } from '../bpf/wire.ts';

export const DEFAULT_CONFIG_PATH = '/etc/xseq/agent.yaml';

export interface ConfigIssue {
  /** Dotted path of the field, e.g. groups[0].members[1].address. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ECONFIG';
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  ${i.path || '(top level)'}: ${i.message}`).join('\n')}`);
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
});

const Group = z
  .strictObject({
    id: int(0, XSEQ_MAX_GROUPS - 1),
    multicast: hostPort('multicast'),
    quorum: int(1, XSEQ_MAX_REPLICAS).optional(),
    members: z.array(Member, { error: 'must be a list of {id, address}' }).max(XSEQ_MAX_REPLICAS, { error: `at most ${XSEQ_MAX_REPLICAS} members` }).default([]),
  })
  .superRefine((g, ctx) => {
    const ids = g.members.map((m) => m.id).sort((a, b) => a - b);
    if (ids.some((id, i) => id !== i)) {
      ctx.addIssue({ code: 'custom', path: ['members'], message: `member ids must be 0..${g.members.length - 1}, each once (got ${ids.join(', ')})` });
    }
    const n = g.members.length;
    if (g.quorum !== undefined) {
      const maj = Math.floor(n / 2) + 1;
      if (n === 0) ctx.addIssue({ code: 'custom', path: ['quorum'], message: 'a quorum needs members' });
      else if (g.quorum < maj || g.quorum > n) ctx.addIssue({ code: 'custom', path: ['quorum'], message: `must be ${maj}..${n} for ${n} members (a majority, at most all)` });
    }
  });

const Schema = z
  .strictObject({
    interface: z.string({ error: 'is required: the interface clients send requests to (see `ip link`)' }).min(1, { error: 'must not be empty' }).max(15, { error: 'is longer than an interface name can be (15)' }),
    attachMode: oneOf(['native', 'generic', 'auto']).default('auto'),
    port: int(1, 65535).default(XSEQ_DEFAULT_PORT),
    sequencerId: int(0, 65535).default(1),
    stateDir: z.string({ error: 'must be a directory path' }).startsWith('/', { error: 'must be an absolute path' }).default('/var/lib/xseq'),
    bpffs: z.string({ error: 'must be a directory path' }).startsWith('/', { error: 'must be an absolute path' }).default('/sys/fs/bpf'),
    statsIntervalMs: int(0, 3_600_000).default(10_000),
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
    log: z.strictObject({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug']).default('info') }).prefault({}),
    groups: z.array(Group, { error: 'must be a list of groups' }).min(1, { error: 'needs at least one group' }),
  })
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
  });

export type AgentConfig = z.infer<typeof Schema>;
export type GroupSpec = AgentConfig['groups'][number];

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/** Validates a raw object; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, source: string): AgentConfig {
  const r = Schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.flatMap((i): ConfigIssue[] => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((k) => ({ path: pathOf([...i.path, k]), message: 'is not a known setting (check its spelling; see deploy/agent.example.yaml)' }));
    }
    return [{ path: pathOf(i.path), message: i.message }];
  });
  throw new ConfigError(source, issues);
}

/** Environment variables that override the file, and the field each sets. */
export const ENV_OVERRIDES: Record<string, { path: string[]; type: 'string' | 'number' }> = {
  XSEQ_INTERFACE: { path: ['interface'], type: 'string' },
  XSEQ_ATTACH_MODE: { path: ['attachMode'], type: 'string' },
  XSEQ_PORT: { path: ['port'], type: 'number' },
  XSEQ_SEQUENCER_ID: { path: ['sequencerId'], type: 'number' },
  XSEQ_STATE_DIR: { path: ['stateDir'], type: 'string' },
  XSEQ_METRICS_LISTEN: { path: ['metrics', 'listen'], type: 'string' },
  XSEQ_LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
};

type Raw = Record<string, unknown>;

function setPath(obj: Raw, path: string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Raw;
  }
  o[path[path.length - 1]!] = value;
}

/** A number from the environment stays a string when it is not one, so the
 * schema reports it against the field instead of silently dropping it. */
function envValue(v: string, type: 'string' | 'number'): unknown {
  return type === 'number' && /^-?\d+$/.test(v) ? Number(v) : v;
}

export interface ConfigSources {
  /** Config file path; omitted: none (everything from env and flags). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Already-parsed flag values as a partial raw config (paths as in the file). */
  flags?: Array<{ path: string[]; value: unknown }>;
}

/** Reads the file, applies env then flags, validates once. */
export function loadConfig(src: ConfigSources): AgentConfig {
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
  const env = src.env ?? {};
  for (const [name, o] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      setPath(raw, o.path, envValue(v, o.type));
      source.push(name);
    }
  }
  for (const f of src.flags ?? []) setPath(raw, f.path, f.value);
  if (src.flags?.length) source.push('flags');
  return parseConfig(raw, source.join(' + '));
}

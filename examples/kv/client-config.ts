// Where the KV client sends: the group and its sequencers, the policy that
// spreads requests over them, and the timeouts. One zod schema; a YAML (or
// JSON) file (--config) and flags over it, flags winning. Every mistake is
// reported with the field it is in.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KeyFileError, readKeyFile } from '../../bpf/key-file.ts';
import { clientKeyOf, type GroupKey } from '../../bpf/mac.ts';
import { isIpv4, parseHostPort, type SequencerAddr } from '../../replica/udp/index.ts';

export const DEFAULT_SEQUENCER_PORT = 7400;

export class ClientConfigError extends Error {
  override readonly name = 'ClientConfigError';
  readonly code = 'EKVCONFIG';
}

export interface KvClientConfig {
  groupId: number;
  /** Ids unique; in the order given (the round-robin and key-hash order). */
  sequencers: SequencerAddr[];
  policy: 'round-robin' | 'key' | 'failover';
  retryMs: number;
  timeoutMs: number;
  backoffMs: number;
  bind: string | null;
  /** No aggregation: replicas ACK the client, which counts f+1 with the leader. */
  directAcks: boolean;
  /** The group size (directAcks only; 0 otherwise). */
  replicas: number;
  /** Keyed group: what REQUESTs are sealed with (from clientKeyFile, or derived from groupKeyFile). */
  clientKey: GroupKey | null;
  /** Keyed group, operator tools: the group key, which control ops need. */
  groupKey: GroupKey | null;
}

/**
 * One sequencer as written on a command line or in a file:
 * "ID:ADDR[:PORT]", or the single-sequencer form "ADDR[:PORT]" (id 0).
 * Port 7400 when left out.
 */
export function parseSequencer(s: string, what = 'sequencer'): SequencerAddr {
  const parts = s.split(':');
  if (isIpv4(parts[0]!)) {
    const a = parseHostPort(s, what, DEFAULT_SEQUENCER_PORT);
    return { id: 0, host: a.host, port: a.port };
  }
  if (parts.length < 2 || parts.length > 3 || !/^\d+$/.test(parts[0]!) || Number(parts[0]) > 0xffff)
    throw new RangeError(`${what}: "${s}" is not ID:ADDR[:PORT] (id 0..65535) or ADDR[:PORT]`);
  const a = parseHostPort(parts.slice(1).join(':'), what, DEFAULT_SEQUENCER_PORT);
  return { id: Number(parts[0]), host: a.host, port: a.port };
}

const ms = (max: number) => z.coerce.number().int().min(1).max(max);

const sequencerEntry = z.union([
  z.string().transform((s, ctx) => {
    try {
      return parseSequencer(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  }),
  z
    .object({
      id: z.number().int().min(0).max(0xffff),
      addr: z.string().refine(isIpv4, 'not an IPv4 address'),
      port: z.number().int().min(1).max(65535).default(DEFAULT_SEQUENCER_PORT),
    })
    .strict()
    .transform((o) => ({ id: o.id, host: o.addr, port: o.port })),
]);

/** The file's (and, merged over it, the flags') shape. */
export const ClientConfigSchema = z
  .object({
    group: z.coerce.number().int().min(0).max(0xffffffff).default(1),
    /** The single-sequencer form: ADDR[:PORT]. */
    sequencer: z.string().optional(),
    sequencers: z.array(sequencerEntry).min(1).optional(),
    policy: z.enum(['round-robin', 'key', 'failover']).default('round-robin'),
    retryMs: ms(3_600_000).default(200),
    timeoutMs: ms(86_400_000).default(10_000),
    backoffMs: ms(3_600_000).default(1_000),
    bind: z.string().refine(isIpv4, 'not an IPv4 address').optional(),
    directAcks: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(false),
    replicas: z.coerce.number().int().min(1).max(255).optional(),
    /** Keyed group: the client key file (`xseq-agent client-key`). */
    clientKeyFile: z.string().startsWith('/', 'not an absolute path').optional(),
    /** Keyed group, operator tools (control ops): the group key file itself. */
    groupKeyFile: z.string().startsWith('/', 'not an absolute path').optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.sequencer !== undefined && c.sequencers !== undefined) ctx.addIssue({ code: 'custom', path: ['sequencers'], message: 'give sequencer or sequencers, not both' });
    if (c.sequencer === undefined && c.sequencers === undefined) ctx.addIssue({ code: 'custom', path: ['sequencers'], message: 'required: --sequencer ADDR[:PORT], or --sequencer ID:ADDR[:PORT] once per sequencer' });
    const ids = (c.sequencers ?? []).map((s) => s.id);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup !== undefined) ctx.addIssue({ code: 'custom', path: ['sequencers'], message: `sequencer id ${dup} appears twice` });
    if (c.directAcks && (c.replicas === undefined || c.replicas % 2 === 0)) ctx.addIssue({ code: 'custom', path: ['replicas'], message: 'directAcks needs the group size, an odd number (--replicas N)' });
    if (c.clientKeyFile !== undefined && c.groupKeyFile !== undefined) ctx.addIssue({ code: 'custom', path: ['clientKeyFile'], message: 'give clientKeyFile or groupKeyFile, not both (the group key gives the client key)' });
  });

function keyFrom(path: string, field: string): GroupKey {
  try {
    return readKeyFile(path);
  } catch (e) {
    if (e instanceof KeyFileError) throw new ClientConfigError(`${field}: ${e.message} [${e.code}]`);
    throw e;
  }
}

/** Validates a merged raw config (file fields, flags over them). */
export function clientConfig(raw: Record<string, unknown>): KvClientConfig {
  const r = ClientConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ClientConfigError(`${i.path.join('.') || 'config'}: ${i.message}`);
  }
  const c = r.data;
  let sequencers = c.sequencers;
  if (!sequencers) {
    try {
      sequencers = [parseSequencer(c.sequencer!)];
    } catch (e) {
      throw new ClientConfigError((e as Error).message);
    }
  }
  return {
    groupId: c.group,
    sequencers,
    policy: c.policy,
    retryMs: c.retryMs,
    timeoutMs: c.timeoutMs,
    backoffMs: c.backoffMs,
    bind: c.bind ?? null,
    directAcks: c.directAcks,
    replicas: c.directAcks ? c.replicas! : 0,
    ...(() => {
      if (c.groupKeyFile !== undefined) {
        const groupKey = keyFrom(c.groupKeyFile, 'groupKeyFile');
        return { groupKey, clientKey: clientKeyOf(groupKey) };
      }
      return { groupKey: null, clientKey: c.clientKeyFile !== undefined ? keyFrom(c.clientKeyFile, 'clientKeyFile') : null };
    })(),
  };
}

/** A config file's fields (YAML 1.2 is a superset of JSON: one parser takes both). */
export function readClientConfigFile(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ClientConfigError(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ClientConfigError(`--config ${file}: expected a mapping of the fields in --help`);
  return raw as Record<string, unknown>;
}

/**
 * Flags over a file: repeated --sequencer values become `sequencers`
 * (replacing the file's list), and a single one in the ADDR[:PORT] form
 * stays the single-sequencer form.
 */
export function mergeClientFlags(
  file: Record<string, unknown>,
  flags: { sequencer?: string[]; group?: string; policy?: string; retryMs?: string; timeoutMs?: string; backoffMs?: string; bind?: string; directAcks?: boolean; replicas?: string; clientKeyFile?: string; groupKeyFile?: string },
): Record<string, unknown> {
  const raw: Record<string, unknown> = { ...file };
  if (flags.sequencer?.length) {
    delete raw['sequencer'];
    delete raw['sequencers'];
    if (flags.sequencer.length === 1 && isIpv4(flags.sequencer[0]!.split(':')[0]!)) raw['sequencer'] = flags.sequencer[0];
    else raw['sequencers'] = flags.sequencer;
  }
  for (const k of ['group', 'policy', 'retryMs', 'timeoutMs', 'backoffMs', 'bind', 'directAcks', 'replicas', 'clientKeyFile', 'groupKeyFile'] as const) if (flags[k] !== undefined) raw[k] = flags[k];
  return raw;
}

// Configuration of a KV replica process: a JSON file (--config), then
// flags over it. Every mistake is reported with the field it is in.
import { defaultTolerance, integrityIssue, majorityIssue } from '../../bpf/quorum.ts';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { configWith, DEFAULT_CONFIG, type ReplicaConfig } from '../../replica/index.ts';
import { type HostPort, isIpv4, parseHostPort, parseIdHostPort } from '../../replica/udp/index.ts';
import { XDP_MODES, XDP_SETTINGS, type XdpModeSetting, type XdpSetting } from '../../replica/xdp/setup.ts';
import type { HydraSequencer } from '../../replica/udp/replica-transport.ts';
import { KeyFileError, readKeyFile } from '../../bpf/key-file.ts';
import type { GroupKey } from '../../bpf/mac.ts';
import { DEFAULT_SESSION_BOUND, MAX_SESSION_BOUND } from '../../replica/udp/sources.ts';

export const USAGE = `Usage: tsx examples/kv/replica.ts [--config FILE] [options]

A KV store replica: NOPaxos over the xseq sequencer (multicast in, ACKs to
the sequencer host, repair from the agent) and TCP to its peers.

  --config FILE          YAML (or JSON) with the fields in brackets below;
                         flags win
  --group ID:ADDR:PORT   group id, multicast address, UDP port [group]
  --id R                 this replica's id, 0..n-1 [id]
  --member ADDR:PORT     the member address and ACK port the agent has for
                         this id (--member G:R:ADDR:PORT there); a bare
                         PORT takes this replica's address in the peers
                         [member]
  --peer ID:ADDR:PORT    slow-path (TCP) address of every replica, this one
                         included; repeat; n = how many [peers]
  --sequencer ADDR[:PORT] the sequencer host (default port 7400) [sequencer]
  --repair ADDR:PORT|none the agent's repair service (default sequencer
                         address, port 7401) [repair]
  --sequencers JSON      Hydra: the group's sequencers instead of the two
                         above, '[{"id":0,"addr":"10.0.0.1","port":7400,
                         "repairPort":7401}, ...]' (port default 7400,
                         repairPort default 7401, null: no repair); one
                         entry is the single-sequencer form. "joining":true
                         marks a sequencer that is not a member yet: its
                         traffic is held until an add op for it is merged
                         (cli.ts add-sequencer --id ID). "standby":true
                         marks the standby of a one-sequencer group (its
                         agent runs --role GROUP:standby with its own
                         sequencer id): two entries, one active, one
                         standby; ACKs and repairs of a session go to the
                         host that stamped it [sequencers]
  --key-file PATH        the group's key, the same file as the agent's
                         groups[].keyFile (16 raw bytes or 32 hex digits,
                         not readable by "other"): SEQUENCED, FLUSH and
                         repair answers must carry its MAC, ACKs and repair
                         requests do, peer frames carry a per-connection
                         MAC; SIGHUP re-reads it. Without it the replica
                         warns at start [keyFile]
  --session N            the group's session at creation (default 0: the
                         first traffic moves the replicas to the real one)
                         [session]
  --weights W0,W1,...    the group's starting voting weights by replica id,
                         as the agent has them (groups[].members[].weight;
                         default 1 each): the weight ledger starts here and
                         reassignments (kv weights) change it through the
                         log [weights]
  --tolerate F           the group's f, as the agent has it (groups[].f;
                         default (n - 1) / 2): reassignments that would break
                         integrity for F are refused [f]
  --session-bound N      a sequencer may move the group at most N sessions
                         past the last one heard from it (default 65536,
                         1..2^31-1; docs/trust-model.md) [sessionBound]
  --recover              start by recovering from the peers (a restart
                         after a crash: memory is gone) [recover]
  --state-dir DIR        remember in DIR that this replica has run, so a
                         later start recovers by itself [stateDir]
  --log-dump FILE        write the committed log (JSON) here on SIGUSR2 and
                         at exit [logDump]
  --stats-interval MS    log counters every MS (default 0: at exit only)
                         [statsIntervalMs]
  --acks-to sequencer|client
                         where ACKs go: the sequencer's aggregator (default),
                         or, for a group the agent runs without members (no
                         aggregation), each client's own address, which it
                         names in its REQUESTs (cli.ts --direct-acks) [acksTo]
  --xdp off|on|auto      the replica-side XDP program on the member
                         address's interface (default off): it drops older
                         sessions and delivered duplicates in the kernel and
                         posts gap events. auto: attach if possible, log why
                         not; on: exit 3 (EXDP_*) if it cannot [xdp]
  --xdp-iface IF         attach there instead [xdpIface]
  --xdp-mode auto|native|generic  XDP attach mode (default auto: native,
                         else generic) [xdpMode]
  --xdp-retransmit-keep N  retransmitted copies of delivered seqs at most N
                         below the newest pass for the re-ACK; at least the
                         agent's window.slots (default 1048576, its largest)
                         [xdpRetransmitKeep]
  --flush-interval MS    the agents' flushIntervalMs, as the replicas expect
                         it (default 2) [flushIntervalMs]
  --dead-sequencer-ms MS a sequencer that holds delivery back and has sent
                         nothing (no FLUSH, SEQUENCED, or answer to a
                         solicit) this long counts as dead and the replicas
                         remove it by agreement (default 50 flush
                         intervals: 100 ms). Longer than the longest stall
                         of a live agent plus a round trip; see
                         replica/README.md [deadSequencerMs]
  --protocol JSON        replica timeouts over the defaults (replica/config.ts,
                         with leaderTimeoutUs 500000, gapFindRetryUs and
                         gapCommitRetryUs 10000, viewChangeRetryUs 100000,
                         stateRetryUs 200000), e.g.
                         '{"leaderTimeoutUs":300000}' [protocol]
  --version              the version and commit
  -h, --help             this text`;

/**
 * Where the KV replica departs from the core's DEFAULT_CONFIG. Those suit
 * the simulation's ideal processes; real ones stall (GC, a busy machine,
 * a restarting neighbour compiling TypeScript), and a 100 ms leader timeout
 * then starts view changes for leaders that are alive. View changes and
 * state transfers carry whole logs and checkpoints over TCP, so their
 * retries are spaced out further than the small fast-path ones.
 */
export const KV_PROTOCOL_DEFAULTS: Partial<ReplicaConfig> = {
  leaderTimeoutUs: 500_000,
  // Over TCP a message is lost only with its connection: re-asking the
  // leader every 2 ms buys nothing, and each GAP_FIND for a slot the
  // leader already truncated is answered with its whole state.
  gapFindRetryUs: 10_000,
  gapCommitRetryUs: 10_000,
  viewChangeRetryUs: 100_000,
  stateRetryUs: 200_000,
};

export interface KvReplicaConfig {
  groupId: number;
  group: HostPort;
  id: number;
  member: HostPort;
  peers: HostPort[];
  /** Sequencer 0 (the only one without Hydra). */
  sequencer: HostPort;
  repair: HostPort | null;
  /** Every sequencer of the group by id; one entry without Hydra. The standby is not among them. */
  sequencers: HydraSequencer[];
  /** A one-sequencer group's standby (sequencers[].standby), or null. */
  standby: HydraSequencer | null;
  session: number;
  sessionBound: number;
  /** The weight ledger's starting table (null: weight 1 each, f = (n - 1) / 2). */
  weights: { weights: number[]; f?: number } | null;
  recover: boolean;
  stateDir: string | null;
  logDump: string | null;
  statsIntervalMs: number;
  protocol: Partial<ReplicaConfig>;
  acksTo: 'sequencer' | 'client';
  xdp: XdpSetting;
  xdpIface: string | null;
  xdpMode: XdpModeSetting;
  xdpRetransmitKeep: number | null;
  /** The group key file and its key; null: no authentication. */
  keyFile: string | null;
  key: GroupKey | null;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Raw = Record<string, unknown>;

function int(v: unknown, field: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${field}: ${JSON.stringify(v)} is not an integer in ${min}..${max}`);
  return n;
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${field}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
  // YAML reads a bare `off`/`on` as a string (1.2 core schema), but a
  // boolean from JSON or `xdp: false` means the same.
  const s = v === false ? 'off' : v === true ? 'on' : v;
  if (typeof s !== 'string' || !(allowed as readonly string[]).includes(s)) throw new ConfigError(`${field}: ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  return s as T;
}

function wrap<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof ConfigError ? e : new ConfigError(`${field}: ${(e as Error).message}`);
  }
}

function parseGroup(v: unknown): { groupId: number; group: HostPort } {
  const s = str(v, 'group');
  const [id, addr] = wrap('group', () => parseIdHostPort(s, 'group'));
  const first = Number(addr.host.split('.')[0]);
  if (first < 224 || first > 239) throw new ConfigError(`group: ${addr.host} is not an IPv4 multicast address`);
  return { groupId: id, group: addr };
}

function parsePeers(v: unknown): HostPort[] {
  const list: string[] = Array.isArray(v) ? v.map((x, i) => str(x, `peers[${i}]`)) : typeof v === 'object' && v ? Object.entries(v).map(([k, x]) => `${k}:${str(x, `peers.${k}`)}`) : [];
  if (!list.length) throw new ConfigError('peers: give every replica\'s slow-path address (--peer ID:ADDR:PORT, this one included)');
  const byId = new Map<number, HostPort>();
  for (const s of list) {
    const [id, a] = wrap('peers', () => parseIdHostPort(s, 'peer'));
    if (byId.has(id)) throw new ConfigError(`peers: replica ${id} given twice`);
    byId.set(id, a);
  }
  const n = byId.size;
  const out: HostPort[] = [];
  for (let i = 0; i < n; i++) {
    const a = byId.get(i);
    if (!a) throw new ConfigError(`peers: ids must be 0..${n - 1}, replica ${i} is missing`);
    out.push(a);
  }
  if (n % 2 === 0) throw new ConfigError(`peers: ${n} replicas; a group has an odd number (2f+1)`);
  return out;
}

/** Hydra: [{id, addr, port, repairPort, joining}] (a JSON string from the flag, or the config file's list). */
function parseSequencers(v: unknown): (HydraSequencer & { standby?: true })[] {
  const list: unknown = typeof v === 'string' ? wrap('sequencers', () => JSON.parse(v) as unknown) : v;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError('sequencers: expected a non-empty list of {id, addr, port, repairPort}');
  const seen = new Set<number>();
  const out = list.map((x: unknown, i): HydraSequencer & { standby?: true } => {
    const f = `sequencers[${i}]`;
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new ConfigError(`${f}: expected {id, addr, port, repairPort}`);
    const o = x as Raw;
    for (const k of Object.keys(o)) if (!['id', 'addr', 'port', 'repairPort', 'joining', 'standby'].includes(k)) throw new ConfigError(`${f}.${k}: unknown; known: id, addr, port, repairPort, joining, standby`);
    const id = int(o['id'], `${f}.id`, 0, 0xffff);
    if (seen.has(id)) throw new ConfigError(`${f}.id: sequencer ${id} given twice`);
    seen.add(id);
    const addr = str(o['addr'], `${f}.addr`);
    if (!isIpv4(addr)) throw new ConfigError(`${f}.addr: ${addr} is not an IPv4 address`);
    const port = o['port'] === undefined ? 7400 : int(o['port'], `${f}.port`, 1, 65535);
    const repair = o['repairPort'] === null || o['repairPort'] === 'none' ? null : { host: addr, port: o['repairPort'] === undefined ? 7401 : int(o['repairPort'], `${f}.repairPort`, 1, 65535) };
    for (const k of ['joining', 'standby']) if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new ConfigError(`${f}.${k}: ${JSON.stringify(o[k])} is not true or false`);
    return { id, sequencer: { host: addr, port }, repair, ...(o['joining'] === true ? { joining: true } : {}), ...(o['standby'] === true ? { standby: true } : {}) };
  });
  const standbys = out.filter((q) => q.standby);
  if (standbys.length > 0 && (standbys.length > 1 || out.length !== 2 || out.some((q) => q.joining))) {
    throw new ConfigError('sequencers: a standby is for a group with one sequencer: give exactly two entries, the active and one with "standby": true, none joining');
  }
  if (out.every((q) => q.joining)) throw new ConfigError('sequencers: every one is joining; at least one must be a member from the start (joining ones are added by cli.ts add-sequencer through a member)');
  return out.sort((a, b) => a.id - b.id);
}

function parseProtocol(v: unknown): Partial<ReplicaConfig> {
  const o: unknown = typeof v === 'string' ? wrap('protocol', () => JSON.parse(v) as unknown) : v;
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ConfigError('protocol: expected an object of replica timeouts');
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(o)) {
    if (!(k in DEFAULT_CONFIG)) throw new ConfigError(`protocol.${k}: unknown; known: ${Object.keys(DEFAULT_CONFIG).join(', ')}`);
    if (typeof x !== 'number' || !(x > 0)) throw new ConfigError(`protocol.${k}: ${JSON.stringify(x)} is not a positive number`);
    out[k] = x;
  }
  return out as Partial<ReplicaConfig>;
}

/**
 * flushIntervalMs / deadSequencerMs onto the protocol's microseconds (a
 * value in --protocol for the same key is overridden by the named field),
 * checked by the core's own rule so the message names the field.
 */
function deadSequencerProtocol(raw: Raw, protocol: Partial<ReplicaConfig>): Partial<ReplicaConfig> {
  const out = { ...protocol };
  if (raw['flushIntervalMs'] !== undefined) out.flushIntervalUs = int(raw['flushIntervalMs'], 'flushIntervalMs', 1, 60_000) * 1000;
  if (raw['deadSequencerMs'] !== undefined) out.deadSequencerUs = int(raw['deadSequencerMs'], 'deadSequencerMs', 1, 3_600_000) * 1000;
  try {
    configWith(out);
  } catch (e) {
    const m = (e as Error).message.replace(/^replica config /, '');
    const field = /^deadSequencerUs/.test(m) ? (raw['deadSequencerMs'] !== undefined ? 'deadSequencerMs' : 'protocol.deadSequencerUs') : 'protocol';
    throw new ConfigError(`${field}: ${m}`);
  }
  return out;
}

/** The fields a --config file may have, each also a flag. */
const FILE_FIELDS = ['group', 'id', 'member', 'peers', 'sequencer', 'repair', 'sequencers', 'session', 'sessionBound', 'recover', 'stateDir', 'logDump', 'statsIntervalMs', 'protocol', 'acksTo', 'xdp', 'xdpIface', 'xdpMode', 'xdpRetransmitKeep', 'keyFile', 'flushIntervalMs', 'deadSequencerMs', 'weights', 'f'];

/** Reads the key file; its problems are ConfigErrors naming the field and the stable EKEY_ code. */
export function loadKeyFile(path: string): GroupKey {
  try {
    return readKeyFile(path);
  } catch (e) {
    if (e instanceof KeyFileError) throw new ConfigError(`keyFile: ${e.message} [${e.code}]`);
    throw e;
  }
}

/** weights: "2,2,1" or [2, 2, 1], one per peer, 0..255; f: 0..n-1. The ledger checks integrity. */
function parseWeights(w: unknown, f: unknown, n: number): { weights: number[]; f?: number } | null {
  if (w === undefined && f === undefined) return null;
  const list = w === undefined ? Array<unknown>(n).fill(1) : typeof w === 'string' ? w.split(',').map((x) => (/^\d+$/.test(x.trim()) ? Number(x) : x)) : w;
  if (!Array.isArray(list) || list.length !== n) throw new ConfigError(`weights: expected ${n} weights (one per peer, by replica id), got ${JSON.stringify(w)}`);
  const weights = list.map((x, i) => int(x, `weights[${i}]`, 0, 255));
  const out = { weights, ...(f !== undefined ? { f: int(typeof f === 'string' && /^\d+$/.test(f) ? Number(f) : f, 'f', 0, n - 1) } : {}) };
  const issue = integrityIssue(weights.map((weight, id) => ({ id, weight })), out.f ?? defaultTolerance(n)) ?? majorityIssue(weights);
  if (issue) throw new ConfigError(`weights: ${issue}`);
  return out;
}

function parseAcksTo(v: unknown): 'sequencer' | 'client' {
  if (v === undefined || v === 'sequencer' || v === 'client') return v ?? 'sequencer';
  throw new ConfigError(`acksTo: ${JSON.stringify(v)} is not sequencer or client`);
}

/** Returns null for --help. Throws ConfigError for anything wrong. */
export function parseReplicaArgs(argv: string[]): KvReplicaConfig | null {
  let v: Record<string, string | boolean | string[] | undefined>;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      options: {
        config: { type: 'string' },
        group: { type: 'string' },
        id: { type: 'string' },
        member: { type: 'string' },
        peer: { type: 'string', multiple: true },
        sequencer: { type: 'string' },
        repair: { type: 'string' },
        sequencers: { type: 'string' },
        session: { type: 'string' },
        'session-bound': { type: 'string' },
        recover: { type: 'boolean' },
        'state-dir': { type: 'string' },
        'log-dump': { type: 'string' },
        'stats-interval': { type: 'string' },
        protocol: { type: 'string' },
        'flush-interval': { type: 'string' },
        'dead-sequencer-ms': { type: 'string' },
        'acks-to': { type: 'string' },
        xdp: { type: 'string' },
        'xdp-iface': { type: 'string' },
        'xdp-mode': { type: 'string' },
        'xdp-retransmit-keep': { type: 'string' },
        'key-file': { type: 'string' },
        weights: { type: 'string' },
        tolerate: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (v.help) return null;
  let raw: Raw = {};
  if (typeof v.config === 'string') {
    const file = v.config;
    try {
      // YAML 1.2 is a superset of JSON: one parser takes both.
      raw = parseYaml(readFileSync(file, 'utf8')) as Raw;
    } catch (e) {
      throw new ConfigError(`--config ${file}: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`--config ${file}: expected a mapping of the fields in --help`);
    // A misspelt optional field would otherwise be ignored without a word.
    for (const k of Object.keys(raw)) {
      if (!FILE_FIELDS.includes(k)) throw new ConfigError(`${k}: not a known setting (--config ${file}); known: ${FILE_FIELDS.join(', ')}`);
    }
  }
  const flag = (name: string, field: string) => {
    if (v[name] !== undefined) raw[field] = v[name];
  };
  flag('group', 'group');
  flag('id', 'id');
  flag('member', 'member');
  flag('peer', 'peers');
  flag('sequencer', 'sequencer');
  flag('repair', 'repair');
  flag('sequencers', 'sequencers');
  flag('session', 'session');
  flag('session-bound', 'sessionBound');
  flag('recover', 'recover');
  flag('state-dir', 'stateDir');
  flag('log-dump', 'logDump');
  flag('stats-interval', 'statsIntervalMs');
  flag('protocol', 'protocol');
  flag('flush-interval', 'flushIntervalMs');
  flag('dead-sequencer-ms', 'deadSequencerMs');
  flag('acks-to', 'acksTo');
  flag('xdp', 'xdp');
  flag('xdp-iface', 'xdpIface');
  flag('xdp-mode', 'xdpMode');
  flag('xdp-retransmit-keep', 'xdpRetransmitKeep');
  flag('key-file', 'keyFile');
  flag('weights', 'weights');
  flag('tolerate', 'f');

  for (const f of ['group', 'id', 'member', 'peers']) {
    if (raw[f] === undefined) throw new ConfigError(`${f}: required (see --help)`);
  }
  if (raw['sequencers'] !== undefined && (raw['sequencer'] !== undefined || raw['repair'] !== undefined)) {
    throw new ConfigError('sequencers: give either sequencers (every sequencer by id) or sequencer/repair (one sequencer), not both');
  }
  if (raw['sequencers'] === undefined && raw['sequencer'] === undefined) throw new ConfigError('sequencer: required (or sequencers, see --help)');
  const { groupId, group } = parseGroup(raw['group']);
  const peers = parsePeers(raw['peers']);
  const id = int(raw['id'], 'id', 0, peers.length - 1);
  // A bare port: one config file per host can then differ only in the id.
  const rawMember = typeof raw['member'] === 'number' ? String(raw['member']) : str(raw['member'], 'member');
  const member = wrap('member', () => parseHostPort(/^\d+$/.test(rawMember) ? `${peers[id]!.host}:${rawMember}` : rawMember, 'member'));
  let sequencers: HydraSequencer[];
  let standby: HydraSequencer | null = null;
  if (raw['sequencers'] !== undefined) {
    const all = parseSequencers(raw['sequencers']);
    const sb = all.find((q) => q.standby);
    if (sb) {
      const { standby: _, ...rest } = sb;
      standby = rest;
    }
    sequencers = all.filter((q) => !q.standby);
  } else {
    const seq0 = wrap('sequencer', () => parseHostPort(str(raw['sequencer'], 'sequencer'), 'sequencer', 7400));
    const repairRaw = raw['repair'] ?? `${seq0.host}:7401`;
    sequencers = [{ id: 0, sequencer: seq0, repair: repairRaw === 'none' ? null : wrap('repair', () => parseHostPort(str(repairRaw, 'repair'), 'repair')) }];
  }
  const { sequencer, repair } = sequencers.find((q) => q.id === 0 && !q.joining) ?? sequencers.find((q) => !q.joining)!;
  if (!isIpv4(peers[id]!.host)) throw new ConfigError(`peers: ${peers[id]!.host} is not an IPv4 address`);
  const keyFile = raw['keyFile'] === undefined ? null : str(raw['keyFile'], 'keyFile');
  if (keyFile !== null && !keyFile.startsWith('/')) throw new ConfigError(`keyFile: ${keyFile} is not an absolute path`);
  return {
    groupId,
    group,
    id,
    member,
    peers,
    sequencer,
    repair,
    sequencers,
    standby,
    session: raw['session'] === undefined ? 0 : int(raw['session'], 'session', 0, 0xffffffff),
    sessionBound: raw['sessionBound'] === undefined ? DEFAULT_SESSION_BOUND : int(raw['sessionBound'], 'sessionBound', 1, MAX_SESSION_BOUND),
    weights: parseWeights(raw['weights'], raw['f'], peers.length),
    recover: raw['recover'] === true,
    stateDir: raw['stateDir'] === undefined ? null : str(raw['stateDir'], 'stateDir'),
    logDump: raw['logDump'] === undefined ? null : str(raw['logDump'], 'logDump'),
    statsIntervalMs: raw['statsIntervalMs'] === undefined ? 0 : int(raw['statsIntervalMs'], 'statsIntervalMs', 0, 3_600_000),
    protocol: deadSequencerProtocol(raw, { ...KV_PROTOCOL_DEFAULTS, ...parseProtocol(raw['protocol']) }),
    acksTo: parseAcksTo(raw['acksTo']),
    xdp: oneOf(raw['xdp'] ?? 'off', 'xdp', XDP_SETTINGS),
    xdpIface: raw['xdpIface'] === undefined ? null : str(raw['xdpIface'], 'xdpIface'),
    xdpMode: oneOf(raw['xdpMode'] ?? 'auto', 'xdpMode', XDP_MODES),
    xdpRetransmitKeep: raw['xdpRetransmitKeep'] === undefined ? null : int(raw['xdpRetransmitKeep'], 'xdpRetransmitKeep', 0, Number.MAX_SAFE_INTEGER),
    keyFile,
    key: keyFile === null ? null : loadKeyFile(keyFile),
  };
}

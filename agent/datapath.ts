// The data path of one interface, as `run` finds or makes it:
//   - nothing pinned, nothing attached: load, configure, pin, attach (a
//     fresh data path, new sessions);
//   - a complete pin set of ours, attached here, able to serve the
//     configuration: adopt it. Stamping never stopped; seqs and counters
//     continue;
//   - anything else is refused with what was found and the command that
//     fixes it.
// --replace re-creates the data path whatever is pinned (also how a new
// build of the program replaces a running one); a foreign XDP program is
// never removed.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, ifindex, XdpLink } from '../bpf/libbpf/index.ts';
import { LINK_PIN, type LoadedConfig, Sequencer } from '../bpf/sequencer.ts';
import { PROG_SEQUENCER } from '../bpf/maps.ts';
import { ensureBpffs } from './bpffs.ts';
import { type AgentConfig, DEFAULT_BPFFS, DEFAULT_STATE_DIR } from './config.ts';
import { AgentError, shellCommand } from './errors.ts';
import { applyGroups, enabledGroups, type GroupOutcome, planGroups } from './groups.ts';
import type { Log } from './log.ts';
import { inspectPins, type PinInspection, pinDirOf, removePins } from './pins.ts';
import type { SessionStore } from './session.ts';

export interface DataPath {
  seq: Sequencer;
  link: XdpLink;
  origin: 'created' | 'adopted';
  mode: 'native' | 'generic';
  /** Why this mode (auto's choice, or "configured"). */
  modeReason: string;
  pinDir: string;
  groups: GroupOutcome[];
}

export interface OpenOptions {
  /** Re-create a stale or incompatible data path instead of refusing. */
  replace: boolean;
  log: Log;
  store: SessionStore;
  /** The run command line as given (for the --replace suggestion). */
  argv: readonly string[];
}

/** The `detach` command that targets the same pins as `cfg`. */
export function detachCommand(cfg: Pick<AgentConfig, 'interface' | 'bpffs' | 'stateDir'>): string {
  const args = ['xseq-agent', 'detach', '--iface', cfg.interface];
  if (cfg.bpffs !== DEFAULT_BPFFS) args.push('--bpffs', cfg.bpffs);
  if (cfg.stateDir !== DEFAULT_STATE_DIR) args.push('--state-dir', cfg.stateDir);
  return shellCommand(args);
}

function replaceCommand(argv: readonly string[]): string {
  return shellCommand(['xseq-agent', ...argv.filter((a) => a !== '--replace'), '--replace']);
}

/** What the configuration asks that the pinned program cannot serve: these
 * are fixed at load (.rodata, map sizes) or by the attachment. */
export function incompatibilities(
  loaded: LoadedConfig,
  attachedMode: 'native' | 'generic' | undefined,
  cfg: Pick<AgentConfig, 'port' | 'window' | 'attachMode' | 'sequencerId' | 'groups'>,
  groupsOnPath: ReadonlyMap<number, { sequencerId: number; session?: number; draining?: boolean }>,
): string[] {
  const out: string[] = [];
  const cmp = (field: string, pinned: unknown, wanted: unknown) => {
    if (pinned !== wanted) out.push(`${field}: the pinned program has ${String(pinned)}, the configuration says ${String(wanted)}`);
  };
  cmp('port', loaded.port, cfg.port);
  cmp('window.slots', loaded.windowSlots, cfg.window.slots);
  cmp('window.windows', loaded.windows, cfg.window.windows);
  cmp('window.policy', loaded.policy, cfg.window.policy);
  cmp('window.maxResult', loaded.maxResult, cfg.window.maxResult);
  if (cfg.attachMode !== 'auto' && attachedMode && attachedMode !== cfg.attachMode) {
    out.push(`attachMode: the data path is attached in ${attachedMode} mode, the configuration says ${cfg.attachMode}`);
  }
  for (const g of cfg.groups) {
    const on = groupsOnPath.get(g.id);
    const wanted = g.sequencerId ?? cfg.sequencerId;
    if (on && on.sequencerId !== wanted) {
      out.push(`sequencerId: group ${g.id} is stamped with sequencer id ${on.sequencerId}, the configuration says ${wanted} (replicas order by it within a session)`);
    }
    // Replicas dropped this sequencer at its FINAL flush; stamping again in
    // the same session would send seqs they no longer take.
    if (on?.draining && !g.draining) {
      out.push(`groups[].draining: group ${g.id} was drained (this sequencer sent its FINAL flush in session ${on.session}); it cannot stamp again in that session: keep draining: true, or re-create the data path (new session) and add the sequencer back`);
    }
  }
  return out;
}

function describeFound(ins: PinInspection): string {
  const found = ins.entries.map((e) => `${e.name} (${e.kind})`).join(', ');
  return `found in ${ins.dir}: ${found || 'nothing'}`;
}

function foreignError(ins: PinInspection, cfg: AgentConfig): AgentError {
  const progs = ins.foreign.map((f) => `program ${f.name ? `'${f.name}' ` : ''}id ${f.progId} (${f.mode})`).join(', ');
  const ifc = cfg.interface;
  const xseq = ins.foreign.some((f) => f.name === PROG_SEQUENCER);
  const why = xseq
    ? `It is an xseq sequencer, but not the data path pinned in ${ins.dir}: an agent with another \`bpffs\` (or in another mount namespace) owns it; ` +
      `stop that agent and run \`xseq-agent detach --iface ${ifc} --bpffs <its bpffs>\`.`
    : `It is not xseq's and is left alone.`;
  return new AgentError(
    'EXDP_FOREIGN',
    `${ifc} already runs another XDP program: ${progs}. ${why} ` +
      `See how it is attached with \`bpftool net show dev ${ifc}\`; a netlink attachment is removed with ` +
      `\`ip link set dev ${ifc} xdp off\` (or xdpgeneric off), a link with \`bpftool link detach id <link id>\`. Then start again.`,
    { foreign: ins.foreign },
  );
}

function staleError(ins: PinInspection, cfg: AgentConfig, argv: readonly string[]): AgentError {
  return new AgentError(
    'EPIN_STALE',
    `the pinned data path of ${cfg.interface} is not usable:\n` +
      ins.problems.map((p) => `  - ${p}\n`).join('') +
      `  (${describeFound(ins)})\n` +
      `Remove it with \`${detachCommand(cfg)}\` and start again (a new data path, new session), ` +
      `or re-create it in one step with \`${replaceCommand(argv)}\`.`,
    { problems: ins.problems, dir: ins.dir },
  );
}

function configError(diffs: string[], cfg: AgentConfig, dir: string, argv: readonly string[]): AgentError {
  return new AgentError(
    'EPIN_CONFIG',
    `the data path pinned in ${dir} is running and stamping, but cannot serve this configuration:\n` +
      diffs.map((d) => `  - ${d}\n`).join('') +
      `Either put those settings back (the running data path is then adopted: same session, no gap), or re-create it ` +
      `with \`${replaceCommand(argv)}\` (replicas see a new session), or remove it with \`${detachCommand(cfg)}\`.`,
    { differences: diffs, dir },
  );
}

/** Sessions of a data path about to be replaced, so the new ones exceed them. */
function sessionsOf(dir: string): Map<number, number> {
  try {
    const old = Sequencer.adopt(dir);
    try {
      return new Map([...enabledGroups(old)].map(([id, g]) => [id, g.session]));
    } finally {
      old.close();
    }
  } catch {
    return new Map();
  }
}

/** Whether `iface` is a veth, from `ip -d link` (best effort). */
function isVeth(iface: string): boolean {
  const r = spawnSync('ip', ['-j', '-d', 'link', 'show', 'dev', iface], { encoding: 'utf8', timeout: 5000 });
  try {
    return (JSON.parse(r.stdout) as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind === 'veth';
  } catch {
    return false;
  }
}

function attach(seq: Sequencer, iface: string, mode: AgentConfig['attachMode']): { link: XdpLink; mode: 'native' | 'generic'; reason: string } {
  if (mode !== 'auto') return { link: seq.attach(iface, mode), mode, reason: `configured (attachMode: ${mode})` };
  if (isVeth(iface)) {
    return {
      link: seq.attach(iface, 'generic'),
      mode: 'generic',
      reason: `auto: ${iface} is a veth, where native XDP_TX works only if the peer has an XDP program too, which cannot be seen from here; set attachMode: native if it has one`,
    };
  }
  try {
    return { link: seq.attach(iface, 'native'), mode: 'native', reason: 'auto: the driver supports native XDP' };
  } catch (e) {
    const busy = e instanceof BpfError && (e.errnoName === 'EBUSY' || e.errnoName === 'EEXIST');
    if (!(e instanceof BpfError) || e.code !== 'EBPF_ATTACH' || busy) throw e;
    return { link: seq.attach(iface, 'generic'), mode: 'generic', reason: `auto: native XDP was refused (${e.message.split('\n')[0]}); generic works on any driver, slower` };
  }
}

function create(cfg: AgentConfig, opts: OpenOptions, dir: string, previous: Map<number, number>): DataPath {
  const seq = Sequencer.load({ port: cfg.port, windowSlots: cfg.window.slots, windows: cfg.window.windows, maxResult: cfg.window.maxResult, policy: cfg.window.policy });
  let link: XdpLink | undefined;
  let pinned = false;
  try {
    const plans = planGroups(seq, cfg, opts.store, false, previous);
    // On disk before anything stamps with them.
    opts.store.save();
    const groups = applyGroups(seq, plans);
    mkdirSync(dir, { recursive: true });
    pinned = true;
    seq.pinMaps(dir);
    const a = attach(seq, cfg.interface, cfg.attachMode);
    link = a.link;
    link.pin(join(dir, LINK_PIN));
    return { seq, link, origin: 'created', mode: a.mode, modeReason: a.reason, pinDir: dir, groups };
  } catch (e) {
    link?.close();
    if (pinned) removePins(cfg.bpffs, cfg.interface);
    seq.close();
    throw e;
  }
}

function adopt(cfg: AgentConfig, opts: OpenOptions, ins: PinInspection): DataPath | { incompatible: string[] } {
  let seq: Sequencer;
  try {
    seq = Sequencer.adopt(ins.dir);
  } catch (e) {
    const msg = e instanceof BpfError && e.code === 'EBPF_MAP_SIZE' ? `the pinned maps have another layout (an older build?): ${e.message}` : (e as Error).message;
    throw staleError({ ...ins, problems: [msg] }, cfg, opts.argv);
  }
  let link: XdpLink | undefined;
  try {
    const diffs = incompatibilities(seq.config, ins.attachedMode, cfg, enabledGroups(seq));
    if (diffs.length) {
      seq.close();
      return { incompatible: diffs };
    }
    link = XdpLink.fromPin(join(ins.dir, LINK_PIN));
    const plans = planGroups(seq, cfg, opts.store, true);
    opts.store.save();
    const groups = applyGroups(seq, plans);
    return { seq, link, origin: 'adopted', mode: ins.attachedMode!, modeReason: `adopted: attached in ${ins.attachedMode} mode by an earlier agent`, pinDir: ins.dir, groups };
  } catch (e) {
    // Only our handles: the pinned data path stays as it was found.
    link?.close();
    seq.close();
    throw e;
  }
}

/** Finds, adopts or creates the data path `cfg` describes (see the top). */
export function openDataPath(cfg: AgentConfig, opts: OpenOptions): DataPath {
  const { log } = opts;
  const fs = ensureBpffs(cfg.bpffs);
  if (fs.warning) log.warn({ event: 'bpffs', bpffs: cfg.bpffs, mounted: fs.mounted }, fs.warning);
  else if (fs.mounted) log.info({ event: 'bpffs', bpffs: cfg.bpffs, mounted: true }, `mounted a BPF filesystem at ${cfg.bpffs}`);
  ifindex(cfg.interface); // EBPF_NO_INTERFACE, with the interface named, before anything else
  const dir = pinDirOf(cfg.bpffs, cfg.interface);
  const ins = inspectPins(cfg.bpffs, cfg.interface);
  if (ins.foreign.length) throw foreignError(ins, cfg);

  if (ins.verdict === 'ours' && opts.replace) {
    log.warn({ event: 'replace', dir }, `re-creating the data path of ${cfg.interface} as asked (--replace): replicas see a new session`);
  } else if (ins.verdict === 'ours') {
    const r = adopt(cfg, opts, ins);
    if ('seq' in r) return r;
    throw configError(r.incompatible, cfg, ins.dir, opts.argv);
  } else if (ins.verdict === 'stale') {
    if (!opts.replace) throw staleError(ins, cfg, opts.argv);
    log.warn({ event: 'replace', dir, problems: ins.problems }, `re-creating the data path of ${cfg.interface}: the pinned one is not usable`);
  }
  let previous = new Map<number, number>();
  if (ins.verdict !== 'none') {
    previous = sessionsOf(dir);
    const removed = removePins(cfg.bpffs, cfg.interface);
    log.info({ event: 'replaced', removed: removed.removed, detachedLink: removed.detachedLink ?? null }, `removed the old data path of ${cfg.interface}`);
  }
  return create(cfg, opts, dir, previous);
}

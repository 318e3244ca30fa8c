// `xseq-agent status`: everything about the pinned data paths, read from
// the pins, the interfaces and the state directory, so it answers the same
// whether an agent runs or not. It only opens and reads.
import { Sequencer } from '../bpf/sequencer.ts';
import type { ConfigLocations } from './config.ts';
import { detachCommand } from './datapath.ts';
import { enabledGroups } from './groups.ts';
import { runningAgent } from './instance.ts';
import { inspectPins, MAP_PIN_NAMES, type PinInspection, pinnedInterfaces } from './pins.ts';
import { type GroupSession, SessionStore } from './session.ts';

export interface GroupStatus {
  id: number;
  session: number;
  lastSeq: string;
  multicast: string;
  sequencerId: number;
  members: string[];
  quorum?: number;
  /** Weighted quorums: weight by replica id, and the table's version. */
  weights?: number[];
  weightsVersion?: number;
  window?: number;
  /** Hydra: removed from the group, FINAL flushes only. */
  draining?: true;
}

export interface InterfaceStatus extends Omit<PinInspection, 'verdict'> {
  state: 'attached' | 'stale' | 'none';
  /** The command that clears a stale data path. */
  fix?: string;
  agent: { running: false } | { running: true; pid: number; startedAt: string };
  load?: Sequencer['config'];
  groups?: GroupStatus[];
  counters?: Record<string, string>;
  /** Why the maps could not be read, when they could not. */
  mapsError?: string;
}

export interface StatusReport {
  bpffs: string;
  stateDir: string;
  interfaces: InterfaceStatus[];
  sessionsFile: string;
  sessions: Record<string, GroupSession>;
  sessionsError?: string;
}

function readMaps(dir: string): Pick<InterfaceStatus, 'load' | 'groups' | 'counters' | 'mapsError'> {
  let seq: Sequencer;
  try {
    seq = Sequencer.adopt(dir);
  } catch (e) {
    return { mapsError: (e as Error).message };
  }
  try {
    const groups = [...enabledGroups(seq)].map(([id, g]): GroupStatus => {
      const members = g.members ?? [];
      return {
        id,
        session: g.session,
        lastSeq: seq.lastSeq(id).toString(),
        multicast: `${g.mcastAddr}:${g.mcastPort}`,
        sequencerId: g.sequencerId,
        members: members.map((m) => `${m.addr}:${m.port}`),
        ...(members.length ? { ...(g.weights ? { weights: g.weights, weightsVersion: g.weightsVersion ?? 0 } : { quorum: g.quorum ?? 0 }), window: Math.floor((g.windowBase ?? 0) / seq.windowSlots) } : {}),
        ...(g.draining ? { draining: true as const } : {}),
      };
    });
    const counters = Object.fromEntries(Object.entries(seq.counters()).map(([k, v]) => [k, v.toString()]));
    return { load: seq.config, groups, counters };
  } finally {
    seq.close();
  }
}

function interfaceStatus(loc: ConfigLocations, iface: string): InterfaceStatus {
  const { verdict, ...ins } = inspectPins(loc.bpffs, iface);
  const state = verdict === 'ours' ? 'attached' : verdict;
  const agent = runningAgent(loc.stateDir, iface);
  const mapsPresent = MAP_PIN_NAMES.every((n) => ins.entries.some((e) => e.name === n && e.kind === 'map'));
  return {
    ...ins,
    state,
    ...(state === 'stale' ? { fix: detachCommand({ interface: iface, bpffs: loc.bpffs, stateDir: loc.stateDir }) } : {}),
    agent: agent ? { running: true, pid: agent.pid, startedAt: agent.startedAt } : { running: false },
    ...(mapsPresent ? readMaps(ins.dir) : {}),
  };
}

export function gatherStatus(loc: ConfigLocations, iface?: string): StatusReport {
  const names = iface ? [iface] : pinnedInterfaces(loc.bpffs);
  let sessions: Record<string, GroupSession> = {};
  let sessionsError: string | undefined;
  try {
    sessions = SessionStore.open(loc.stateDir).all();
  } catch (e) {
    sessionsError = (e as Error).message;
  }
  return {
    bpffs: loc.bpffs,
    stateDir: loc.stateDir,
    interfaces: names.map((n) => interfaceStatus(loc, n)),
    sessionsFile: `${loc.stateDir}/sessions.json`,
    sessions,
    ...(sessionsError ? { sessionsError } : {}),
  };
}

/** 0: all attached and ours (or nothing pinned with --all); 1: something
 * stale or foreign; 3: the interface asked for has no data path. */
export function statusExitCode(r: StatusReport, asked: boolean): number {
  if (r.interfaces.some((i) => i.state === 'stale' || i.foreign.length > 0)) return 1;
  if (asked && r.interfaces.every((i) => i.state === 'none')) return 3;
  return 0;
}

function nonZeroCounters(c: Record<string, string>): string {
  const shown = Object.entries(c).filter(([, v]) => v !== '0');
  return shown.length ? `${shown.map(([k, v]) => `${k} ${v}`).join(', ')} (others 0)` : 'all 0';
}

function renderInterface(s: InterfaceStatus): string[] {
  const out: string[] = [];
  const prog = s.program ? `program ${s.program.id} '${s.program.name}'` : '';
  if (s.state === 'attached') {
    out.push(`${s.iface}: attached (${s.attachedMode} mode, ${prog}, link ${s.link!.id}), pinned in ${s.dir}`);
  } else if (s.state === 'stale') {
    out.push(`${s.iface}: STALE pins in ${s.dir}, not a working data path:`);
    for (const p of s.problems) out.push(`  - ${p}`);
    out.push(`  fix: ${s.fix}  (then start the agent again), or run the agent with --replace`);
  } else {
    out.push(`${s.iface}: no data path pinned in ${s.dir}${s.bpffsMounted ? '' : ' (no BPF filesystem mounted there)'}`);
  }
  if (!s.ifaceState.exists) out.push(`  interface: ${s.iface} does not exist in this network namespace`);
  for (const f of s.foreign) {
    out.push(`  foreign XDP: program ${f.progId}${f.name ? ` '${f.name}'` : ''} (${f.mode}) on ${s.iface} is not this data path; see \`bpftool net show dev ${s.iface}\``);
  }
  if (s.state !== 'none') {
    out.push(
      s.agent.running
        ? `  agent: running (pid ${s.agent.pid}, since ${s.agent.startedAt})`
        : s.state === 'attached'
          ? '  agent: not running; the data path stamps on, retransmission and repair wait for `xseq-agent run` to adopt it'
          : '  agent: not running',
    );
  }
  if (s.load) {
    out.push(`  program: port ${s.load.port}, window ${s.load.windowSlots} slots x ${s.load.windows} windows, policy ${s.load.policy}, maxResult ${s.load.maxResult}`);
  }
  for (const g of s.groups ?? []) {
    const rule = g.weights ? `weights ${g.weights.join('/')} table v${g.weightsVersion}, more than half of ${g.weights.reduce((a, b) => a + b, 0)}` : `quorum ${g.quorum}`;
    const members = g.members.length ? `${g.members.length} members (${rule}, window ${g.window}): ${g.members.join(' ')}` : 'no members';
    out.push(`  group ${g.id}: session ${g.session}, last seq ${g.lastSeq}, multicast ${g.multicast}, sequencer id ${g.sequencerId}${g.draining ? ' (draining: no stamping, FINAL flushes)' : ''}, ${members}`);
  }
  if (s.counters) out.push(`  counters: ${nonZeroCounters(s.counters)}`);
  if (s.mapsError) out.push(`  maps: cannot be read: ${s.mapsError}`);
  if (s.entries.length) out.push(`  pins: ${s.entries.map((e) => (e.kind === (e.name === 'link' ? 'link' : 'map') ? e.name : `${e.name} (${e.kind})`)).join(' ')}`);
  if (s.missing.length && s.state !== 'none') out.push(`  missing pins: ${s.missing.join(' ')}`);
  if (s.unknown.length) out.push(`  other names in ${s.dir} (not ours, left alone): ${s.unknown.join(' ')}`);
  return out;
}

export function renderStatus(r: StatusReport): string {
  const out: string[] = [];
  if (r.interfaces.length === 0) out.push(`no data paths pinned under ${r.bpffs}/xseq`);
  for (const s of r.interfaces) out.push(...renderInterface(s));
  if (r.sessionsError) {
    out.push(`sessions: ${r.sessionsError}`);
  } else {
    const entries = Object.entries(r.sessions);
    out.push(entries.length ? `sessions (${r.sessionsFile}):` : `sessions: none recorded in ${r.sessionsFile}`);
    for (const [id, g] of entries) {
      out.push(`  group ${id}: session ${g.session} (${g.dataPath} on ${g.interface}${g.lastSeq !== undefined ? `, last seq ${g.lastSeq}` : ''}, ${g.updatedAt})`);
    }
  }
  return out.join('\n');
}

// Groups from the configuration onto the data path's group map. A fresh
// data path gets every group with a new session and seq 1. An adopted one
// keeps what the replicas already see: a group that stays keeps its
// session, its seq and its window (moving a window would orphan every
// request in flight in it); its members, quorum and multicast address may
// change. A group that is new gets a new session; one no longer configured
// stops stamping.
import { encodeGroup, type GroupConfig, XSEQ_MAX_GROUPS } from '../bpf/maps.ts';
import type { AgentConfig, GroupSpec } from './config.ts';
import type { SessionStore } from './session.ts';

/** What `configureGroups` reads and writes of the sequencer. */
export interface GroupMap {
  readonly windowSlots: number;
  readonly windows: number;
  group(id: number): GroupConfig | undefined;
  setGroup(id: number, g: GroupConfig, window?: number): void;
  disableGroup(id: number): void;
  resetSeq(id: number): void;
  lastSeq(id: number): bigint;
}

export type GroupAction =
  /** Fresh data path, or a group added to an adopted one: new session, seq from 1. */
  | 'created'
  /** Adopted, nothing to write. */
  | 'kept'
  /** Adopted, members/quorum/multicast rewritten; session and seq kept. */
  | 'updated'
  /** On the adopted data path but no longer configured: stamping stopped. */
  | 'disabled';

export interface GroupOutcome {
  id: number;
  action: GroupAction;
  session: number;
  /** Seq stamped last when the agent took over (0: none yet). */
  lastSeq: bigint;
  /** Window index, for groups with members. */
  window?: number;
}

export function groupConfig(spec: GroupSpec, sequencerId: number, session: number): GroupConfig {
  const [addr, port] = spec.multicast.split(':');
  const members = [...spec.members].sort((a, b) => a.id - b.id).map((m) => {
    const [maddr, mport] = m.address.split(':');
    return { addr: maddr!, port: Number(mport) };
  });
  return {
    mcastAddr: addr!,
    mcastPort: Number(port),
    sequencerId,
    session,
    enabled: true,
    ...(spec.draining ? { draining: true } : {}),
    ...(members.length ? { members } : {}),
    // A count quorum, else weights (default 1 each: the same majority).
    ...(spec.quorum !== undefined ? { quorum: spec.quorum } : members.length ? { weights: [...spec.members].sort((a, b) => a.id - b.id).map((m) => m.weight ?? 1) } : {}),
  };
}

/** Enabled groups on the data path, by id. */
export function enabledGroups(map: Pick<GroupMap, 'group'>): Map<number, GroupConfig> {
  const out = new Map<number, GroupConfig>();
  for (let id = 0; id < XSEQ_MAX_GROUPS; id++) {
    const g = map.group(id);
    if (g) out.set(id, g);
  }
  return out;
}

/** Windows for the groups with members: kept ones stay put, the others
 * take the lowest free window in configuration order. */
export function assignWindows(specs: readonly GroupSpec[], kept: ReadonlyMap<number, number>, windows: number): Map<number, number> {
  const out = new Map<number, number>();
  const used = new Set<number>();
  for (const s of specs) {
    const w = kept.get(s.id);
    if (s.members.length && w !== undefined && w < windows && !used.has(w)) {
      out.set(s.id, w);
      used.add(w);
    }
  }
  for (const s of specs) {
    if (!s.members.length || out.has(s.id)) continue;
    let w = 0;
    while (used.has(w)) w++;
    // The schema guarantees no more groups with members than windows.
    out.set(s.id, w);
    used.add(w);
  }
  return out;
}

export interface GroupPlan extends GroupOutcome {
  /** What to write to the group map (absent: nothing, or disable). */
  write?: GroupConfig;
}

/**
 * Decides what each group gets. `adopted`: the data path was running
 * before this agent, so its groups keep session and seq. Sessions handed
 * out are recorded in `store`; the caller saves it before applyGroups, so
 * no session is stamped before it is on disk.
 */
export function planGroups(
  map: GroupMap,
  cfg: Pick<AgentConfig, 'groups' | 'sequencerId' | 'interface' | 'session'>,
  store: SessionStore,
  adopted: boolean,
  /** Sessions a replaced data path had, so the new ones are above them. */
  previous: ReadonlyMap<number, number> = new Map(),
): GroupPlan[] {
  const before = adopted ? enabledGroups(map) : new Map<number, GroupConfig>();
  const kept = new Map<number, number>();
  for (const [id, g] of before) {
    if (g.members?.length) kept.set(id, Math.floor((g.windowBase ?? 0) / map.windowSlots));
  }
  const windows = assignWindows(cfg.groups, kept, map.windows);
  const out: GroupPlan[] = [];
  for (const spec of cfg.groups) {
    const old = before.get(spec.id);
    const window = windows.get(spec.id);
    const win = window === undefined ? {} : { window };
    if (old) {
      const next = groupConfig(spec, old.sequencerId, old.session);
      const windowBase = window === undefined ? 0 : window * map.windowSlots;
      // Identical bytes are not rewritten: an array map update is a copy
      // the XDP program may read half-done.
      // The same weights keep the table version they are stamped under.
      const weightsVersion = JSON.stringify(next.weights) === JSON.stringify(old.weights) ? old.weightsVersion : undefined;
      const same = Buffer.from(encodeGroup({ ...next, windowBase, ...(weightsVersion ? { weightsVersion } : {}) })).equals(Buffer.from(encodeGroup(old)));
      const lastSeq = map.lastSeq(spec.id);
      store.set(spec.id, { session: old.session, interface: cfg.interface, dataPath: 'adopted', lastSeq: String(lastSeq) });
      out.push({ id: spec.id, action: same ? 'kept' : 'updated', session: old.session, lastSeq, ...win, ...(same ? {} : { write: next }) });
      continue;
    }
    const session = cfg.session ?? store.next(spec.id, previous.get(spec.id) ?? 0);
    store.set(spec.id, { session, interface: cfg.interface, dataPath: 'created', lastSeq: '0' });
    out.push({ id: spec.id, action: 'created', session, lastSeq: 0n, ...win, write: groupConfig(spec, spec.sequencerId ?? cfg.sequencerId, session) });
  }
  for (const [id, g] of before) {
    if (!cfg.groups.some((s) => s.id === id)) out.push({ id, action: 'disabled', session: g.session, lastSeq: map.lastSeq(id) });
  }
  return out;
}

/** Writes a plan to the group map. A created group starts from seq 1. */
export function applyGroups(map: GroupMap, plans: readonly GroupPlan[]): GroupOutcome[] {
  return plans.map(({ write, ...outcome }) => {
    if (outcome.action === 'disabled') map.disableGroup(outcome.id);
    if (outcome.action === 'created') map.resetSeq(outcome.id);
    if (write) map.setGroup(outcome.id, write, outcome.window);
    return outcome;
  });
}

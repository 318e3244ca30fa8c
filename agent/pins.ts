// The pinned data path of one interface: <bpffs>/xseq/<interface>/ holds
// every map of the sequencer (Sequencer.pinMaps) and the XDP link. This
// module says what is there and whether it is a working data path of this
// interface, and removes exactly the pins the agent creates.
//
// "Ours" needs every piece to hold: each known name present and of the
// right kind, the link attached to this interface (same ifindex, and the
// interface's XDP program is the link's: an ifindex alone repeats across
// network namespaces), the program named xseq_sequencer, and the pinned
// maps being maps of that program. Anything less is stale: adopting it
// would stamp with one set of maps while the agent reads another.
import { closeSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BpfError, ifindex, queryXdp, XdpLink } from '../bpf/libbpf/index.ts';
import { fdKind, objGet } from '../bpf/libbpf/pin.ts';
import { PROG_SEQUENCER } from '../bpf/maps.ts';
import { LINK_PIN, Sequencer } from '../bpf/sequencer.ts';
import { isBpffs } from './bpffs.ts';
import { mapIdOfFd, progInfo } from '../bpf/libbpf/proginfo.ts';

export const PIN_NAMES: readonly string[] = Sequencer.pinNames();
export const MAP_PIN_NAMES: readonly string[] = PIN_NAMES.filter((n) => n !== LINK_PIN);

export function pinDirOf(bpffs: string, iface: string): string {
  return join(bpffs, 'xseq', iface);
}

export type PinKind = 'map' | 'link' | 'prog' | 'other' | 'directory';

export interface PinEntry {
  name: string;
  kind: PinKind;
  mapId?: number;
}

export interface PinnedLink {
  id: number;
  progId: number;
  /** 0: attached to nothing (its interface was deleted). */
  ifindex: number;
}

export interface ForeignProgram {
  mode: 'native' | 'generic' | 'hw';
  progId: number;
  name?: string;
}

export type Verdict = 'none' | 'ours' | 'stale';

export interface PinInspection {
  iface: string;
  dir: string;
  /** Whether the bpffs path exists as a BPF filesystem at all. */
  bpffsMounted: boolean;
  /** Known pin names present, with what they hold. */
  entries: PinEntry[];
  /** Known pin names absent. */
  missing: string[];
  /** Other names in the directory: not ours, never touched. */
  unknown: string[];
  link?: PinnedLink;
  /** Program of the pinned link, when the kernel still has it. */
  program?: { id: number; name: string; tag: string };
  /** The interface in this network namespace and what XDP runs on it. */
  ifaceState: { exists: boolean; ifindex?: number; nativeProgId: number; genericProgId: number; hwProgId: number };
  /** Mode of the pinned link's attachment, when it is attached here. */
  attachedMode?: 'native' | 'generic';
  /** XDP programs on the interface that are not the pinned link's. */
  foreign: ForeignProgram[];
  verdict: Verdict;
  /** Why a stale pin set is not a data path, one finding each. */
  problems: string[];
}

function kindAt(path: string): PinEntry {
  const name = path.slice(path.lastIndexOf('/') + 1);
  try {
    if (statSync(path).isDirectory()) return { name, kind: 'directory' };
  } catch {
    /* raced away: reported as missing by the caller's next look */
  }
  let fd: number;
  try {
    fd = objGet(path, 'object');
  } catch {
    return { name, kind: 'other' };
  }
  try {
    const kind = fdKind(fd);
    return kind === 'map' ? { name, kind, ...optional('mapId', mapIdOfFd(fd)) } : { name, kind };
  } finally {
    closeSync(fd);
  }
}

function optional<K extends string, V>(key: K, v: V | undefined): Partial<Record<K, V>> {
  return v === undefined ? {} : ({ [key]: v } as Record<K, V>);
}

function listDir(dir: string): string[] | undefined {
  try {
    return readdirSync(dir);
  } catch {
    return undefined;
  }
}

function describeIfaceState(iface: string): PinInspection['ifaceState'] {
  let index: number;
  try {
    index = ifindex(iface);
  } catch (e) {
    if (e instanceof BpfError && e.code === 'EBPF_NO_INTERFACE') return { exists: false, nativeProgId: 0, genericProgId: 0, hwProgId: 0 };
    throw e;
  }
  const q = queryXdp(index);
  return { exists: true, ifindex: index, nativeProgId: q.nativeProgId, genericProgId: q.genericProgId, hwProgId: q.hwProgId };
}

/** Looks at the pins of `iface` under `bpffs` and at the interface. Opens
 * and closes every object; changes nothing. */
export function inspectPins(bpffs: string, iface: string): PinInspection {
  const dir = pinDirOf(bpffs, iface);
  const names = listDir(dir) ?? [];
  const entries: PinEntry[] = [];
  const missing: string[] = [];
  for (const name of PIN_NAMES) {
    if (names.includes(name)) entries.push(kindAt(join(dir, name)));
    else missing.push(name);
  }
  const unknown = names.filter((n) => !PIN_NAMES.includes(n));
  const ifaceState = describeIfaceState(iface);
  const problems: string[] = [];

  let link: PinnedLink | undefined;
  const linkEntry = entries.find((e) => e.name === LINK_PIN);
  if (linkEntry?.kind === 'link') {
    try {
      const l = XdpLink.fromPin(join(dir, LINK_PIN));
      try {
        link = l.info();
      } finally {
        l.close();
      }
    } catch (e) {
      problems.push(`${LINK_PIN}: ${(e as Error).message}`);
    }
  }
  const prog = link ? progInfo(link.progId) : undefined;
  const attachedMode =
    link && ifaceState.exists && link.ifindex === ifaceState.ifindex
      ? ifaceState.nativeProgId === link.progId
        ? 'native'
        : ifaceState.genericProgId === link.progId
          ? 'generic'
          : undefined
      : undefined;
  const ours = attachedMode ? link?.progId : undefined;
  const foreign: ForeignProgram[] = (
    [
      ['native', ifaceState.nativeProgId],
      ['generic', ifaceState.genericProgId],
      ['hw', ifaceState.hwProgId],
    ] as const
  )
    .filter(([, id]) => id !== 0 && id !== ours)
    .map(([mode, progId]) => ({ mode, progId, ...optional('name', progInfo(progId)?.name) }));

  if (entries.length > 0) {
    const missingMaps = missing.filter((n) => n !== LINK_PIN);
    if (missingMaps.length) problems.push(`maps missing: ${missingMaps.join(', ')}`);
    if (missing.includes(LINK_PIN)) problems.push(`no link pin (${LINK_PIN}): the XDP attachment was never pinned or was removed, so nothing stamps with these maps`);
    for (const e of entries) {
      const want = e.name === LINK_PIN ? 'link' : 'map';
      if (e.kind !== want) problems.push(`${e.name} is ${e.kind === 'other' ? 'not a BPF object' : `a pinned ${e.kind}`}, not a ${want}`);
    }
    if (link) {
      if (!ifaceState.exists) {
        problems.push(`${iface} does not exist in this network namespace`);
      } else if (link.ifindex === 0) {
        problems.push(`the pinned link (id ${link.id}) is attached to no interface: ${iface} was deleted or re-created since it was pinned`);
      } else if (!attachedMode) {
        problems.push(
          link.ifindex === ifaceState.ifindex
            ? `the pinned link (id ${link.id}, program ${link.progId}) is not what runs on ${iface} (ifindex ${link.ifindex}): its interface is a same-numbered one, probably in another network namespace`
            : `the pinned link (id ${link.id}) is attached to ifindex ${link.ifindex}, not to ${iface} (ifindex ${ifaceState.ifindex})`,
        );
      }
      if (prog && prog.name !== PROG_SEQUENCER) problems.push(`the pinned link runs program '${prog.name}' (id ${prog.id}), not ${PROG_SEQUENCER}`);
      const mapIds = entries.filter((e) => e.kind === 'map' && e.mapId !== undefined).map((e) => e.mapId!);
      const strangers = prog ? mapIds.filter((id) => !prog.mapIds.includes(id)) : [];
      if (strangers.length) {
        problems.push(`pinned maps (ids ${strangers.join(', ')}) are not maps of the linked program ${prog!.id} (it uses ${prog!.mapIds.join(', ')}): pins of two different data paths are mixed`);
      }
    }
  }
  const verdict: Verdict = entries.length === 0 ? 'none' : problems.length === 0 ? 'ours' : 'stale';
  return {
    iface,
    dir,
    bpffsMounted: isBpffs(bpffs),
    entries,
    missing,
    unknown,
    ...(link ? { link } : {}),
    ...(prog ? { program: { id: prog.id, name: prog.name, tag: prog.tag } } : {}),
    ifaceState,
    ...(attachedMode ? { attachedMode } : {}),
    foreign,
    verdict,
    problems,
  };
}

/** Interfaces that have a pin directory under `bpffs`. */
export function pinnedInterfaces(bpffs: string): string[] {
  return (listDir(join(bpffs, 'xseq')) ?? []).filter((n) => {
    try {
      return statSync(join(bpffs, 'xseq', n)).isDirectory();
    } catch {
      return false;
    }
  });
}

export interface Removal {
  /** The XDP link detached, if one was pinned and still attached. */
  detachedLink?: PinnedLink;
  /** Pin names removed, in order. */
  removed: string[];
  /** Directories removed because they were left empty. */
  removedDirs: string[];
  /** Names left because they are not ours. */
  kept: string[];
}

/**
 * Detaches the pinned XDP link (wherever it is attached) and removes every
 * pin the agent creates, then the directories it made if they are empty.
 * Idempotent; touches no other name.
 */
export function removePins(bpffs: string, iface: string): Removal {
  const dir = pinDirOf(bpffs, iface);
  const out: Removal = { removed: [], removedDirs: [], kept: [] };
  const names = listDir(dir);
  if (!names) return out;
  if (names.includes(LINK_PIN)) {
    try {
      const link = XdpLink.fromPin(join(dir, LINK_PIN));
      const info = link.info();
      link.detach(); // also unpins
      out.detachedLink = info;
      out.removed.push(LINK_PIN);
    } catch {
      /* not an XDP link after all: unlinked below like any other pin */
    }
  }
  for (const name of PIN_NAMES) {
    if (!names.includes(name) || out.removed.includes(name)) continue;
    if (kindAt(join(dir, name)).kind === 'directory') {
      out.kept.push(name);
      continue;
    }
    try {
      unlinkSync(join(dir, name));
      out.removed.push(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  out.kept.push(...names.filter((n) => !PIN_NAMES.includes(n)));
  for (const d of [dir, dirname(dir)]) {
    try {
      rmdirSync(d);
      out.removedDirs.push(d);
    } catch {
      break; // not empty (someone else's pins), or already gone
    }
  }
  return out;
}

// `xseq-agent detach`: removes one interface's data path, the XDP link and
// the pins the agent made, and says exactly what it removed. Repeating it
// is harmless; another program's XDP attachment, other names in the pin
// directory and the session record are never touched.
import type { ConfigLocations } from './config.ts';
import { AgentError } from './errors.ts';
import { isBpffs } from './bpffs.ts';
import { runningAgent } from './instance.ts';
import { inspectPins, pinDirOf, type Removal, removePins } from './pins.ts';

export interface DetachResult {
  removal: Removal;
  lines: string[];
}

export function detachDataPath(loc: ConfigLocations, iface: string, force: boolean): DetachResult {
  const dir = pinDirOf(loc.bpffs, iface);
  const agent = runningAgent(loc.stateDir, iface);
  if (agent && !force) {
    throw new AgentError(
      'EAGENT_RUNNING',
      `an agent (pid ${agent.pid}) runs the data path of ${iface}: stop it first (\`kill -TERM ${agent.pid}\` or \`systemctl stop xseq-agent\`; ` +
        `it leaves the data path pinned), then detach; or pass --force to pull the data path from under it`,
      { pid: agent.pid },
    );
  }
  if (!isBpffs(loc.bpffs)) {
    return { removal: { removed: [], removedDirs: [], kept: [] }, lines: [`nothing to detach for ${iface}: no BPF filesystem at ${loc.bpffs}`] };
  }
  const before = inspectPins(loc.bpffs, iface);
  const removal = removePins(loc.bpffs, iface);
  const lines: string[] = [];
  const l = removal.detachedLink;
  if (l) {
    lines.push(
      l.ifindex === 0
        ? `detached XDP link ${l.id} (program ${l.progId}); it was attached to no interface any more`
        : `detached XDP link ${l.id} (program ${l.progId}) from ${iface}${before.ifaceState.ifindex === l.ifindex ? '' : ` (ifindex ${l.ifindex})`}: stamping stopped`,
    );
  }
  if (removal.removed.length) lines.push(`removed pins from ${dir}: ${removal.removed.join(' ')}`);
  if (removal.removedDirs.length) lines.push(`removed empty directories: ${removal.removedDirs.join(' ')}`);
  if (removal.kept.length) lines.push(`left in ${dir} (not the agent's): ${removal.kept.join(' ')}`);
  if (!lines.length) lines.push(`nothing to detach for ${iface}: no pins in ${dir}`);
  for (const f of before.foreign) {
    if (f.progId !== l?.progId) lines.push(`left alone: XDP program ${f.progId}${f.name ? ` '${f.name}'` : ''} (${f.mode}) on ${iface} is not this data path`);
  }
  return { removal, lines };
}

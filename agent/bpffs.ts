// The BPF filesystem the data path is pinned in. Pins live as long as the
// bpffs instance that holds them, which lives as long as some mount
// namespace mounts it: that is what decides whether a data path survives
// its agent.
import { mkdirSync, statfsSync, statSync } from 'node:fs';
import koffi from 'koffi';
import { AgentError } from './errors.ts';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Whether `dir` exists and is inside a bpffs mount. */
export function isBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Whether this process has a mount namespace of its own (as under
 * `ip netns exec`, which also remounts /sys): a bpffs mounted here then
 * disappears, with everything pinned in it, when the last process in the
 * namespace exits.
 */
export function privateMountNamespace(): boolean {
  try {
    return statSync('/proc/self/ns/mnt').ino !== statSync('/proc/1/ns/mnt').ino;
  } catch {
    return false;
  }
}

type MountFn = (source: string, target: string, type: string, flags: number, data: null) => number;
let mountFn: MountFn | undefined;

export interface BpffsState {
  /** A bpffs had to be mounted at the path. */
  mounted: boolean;
  /** Set when pins there end with this process (see privateMountNamespace). */
  warning?: string;
}

/** Makes sure `dir` is in a bpffs, mounting one there if it is not. */
export function ensureBpffs(dir: string): BpffsState {
  if (isBpffs(dir)) return { mounted: false };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new AgentError('EBPFFS', `cannot create ${dir} for the BPF filesystem: ${(e as Error).message}`);
  }
  if (isBpffs(dir)) return { mounted: false };
  mountFn ??= koffi.load('libc.so.6').func('int mount(const char *source, const char *target, const char *type, unsigned long flags, void *data)') as MountFn;
  if (mountFn('bpf', dir, 'bpf', 0, null) !== 0) {
    const errno = koffi.errno();
    throw new AgentError(
      'EBPFFS',
      `${dir} is not on a BPF filesystem and mounting one there failed (errno ${errno}); ` +
        `mount it yourself (\`mount -t bpf bpf ${dir}\`) or set \`bpffs\` to a directory inside one`,
    );
  }
  if (!privateMountNamespace()) return { mounted: true };
  return {
    mounted: true,
    warning:
      `mounted a BPF filesystem at ${dir}, but this process has a mount namespace of its own (e.g. under \`ip netns exec\`): ` +
      `that mount, and the data path pinned in it, ends when this agent exits. To keep stamping across restarts, ` +
      `mount bpffs in the host's mount namespace first and point \`bpffs\` at it`,
  };
}

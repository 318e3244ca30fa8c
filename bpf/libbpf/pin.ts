// bpffs pins and fd introspection shared by maps, programs and links.

import { readFileSync } from 'node:fs';
import { BpfError, EEXIST, ENOENT, errnoText, isPermission, syscallError } from './errors.ts';
import { ffi, logMark, logSince } from './ffi.ts';

export type FdKind = 'map' | 'prog' | 'link' | 'other';

/**
 * What kind of BPF object an fd refers to. bpf_obj_get_info_by_fd fills
 * whatever info struct matches the fd's real type, so it cannot tell a map
 * from a link by itself; the fdinfo file names the type unambiguously.
 */
export function fdKind(fd: number): FdKind {
  const text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  if (/^map_type:/m.test(text)) return 'map';
  if (/^prog_type:/m.test(text)) return 'prog';
  if (/^link_type:/m.test(text)) return 'link';
  return 'other';
}

/** bpf_obj_get: an fd for the object pinned at `path`. */
export function objGet(path: string, what: string): number {
  const mark = logMark();
  const fd = ffi().bpf.bpf_obj_get(path);
  if (fd >= 0) return fd;
  const errno = -fd;
  if (errno === ENOENT) {
    throw new BpfError('EBPF_PIN_MISSING', `no pinned ${what} at ${path}`, { errno });
  }
  throw syscallError(`opening pinned ${what} ${path}`, errno, logSince(mark));
}

/** bpf_obj_pin with messages that say what to fix. */
export function pinFd(fd: number, path: string, what: string): void {
  const ret = ffi().bpf.bpf_obj_pin(fd, path);
  if (ret === 0) return;
  const errno = -ret;
  if (errno === EEXIST) {
    throw new BpfError('EBPF_SYSCALL', `pinning ${what} at ${path}: the path already exists; unpin it first`, {
      errno,
    });
  }
  if (errno === ENOENT) {
    throw new BpfError(
      'EBPF_SYSCALL',
      `pinning ${what} at ${path}: ${errnoText(errno)}; create the directory first (inside a bpffs mount such as /sys/fs/bpf)`,
      { errno },
    );
  }
  if (isPermission(errno)) {
    // The kernel also answers EPERM for a path outside bpffs.
    const err = syscallError(`pinning ${what} at ${path}`, errno);
    throw new BpfError(err.code, `${err.message}; also check that ${path} is inside a bpffs mount`, { errno });
  }
  throw syscallError(`pinning ${what} at ${path}`, errno);
}

// Errors of the libbpf binding. Every failure in bpf/libbpf/ surfaces as a
// BpfError whose `code` is stable, so the agent can branch on it (and print
// a fix) without parsing messages; the message is for the operator and says
// what to do next.

import { getSystemErrorMap } from 'node:util';

export type BpfErrorCode =
  /** libbpf.so.1 could not be loaded. */
  | 'EBPF_LIBBPF_MISSING'
  /** The .bpf.o file does not exist (not built yet). */
  | 'EBPF_OBJECT_MISSING'
  /** libbpf could not parse the object file. */
  | 'EBPF_OPEN'
  /** Load failed before or outside the verifier (map creation, BTF...). */
  | 'EBPF_LOAD'
  /** The verifier rejected a program; `log` holds the verifier log. */
  | 'EBPF_VERIFIER'
  /** The kernel said EPERM/EACCES. */
  | 'EBPF_PERMISSION'
  /** No network interface with that name or index. */
  | 'EBPF_NO_INTERFACE'
  /** The object has no program of that name. */
  | 'EBPF_PROG_MISSING'
  /** The object has no map of that name (or no .rodata). */
  | 'EBPF_MAP_MISSING'
  /** Key or value size differs from what the caller expects or passed. */
  | 'EBPF_MAP_SIZE'
  /** The operation does not fit the object's type: lookup() on a per-CPU
   * map, a ring buffer on another map type, a pin holding another kind. */
  | 'EBPF_WRONG_TYPE'
  /** Nothing is pinned at that path. */
  | 'EBPF_PIN_MISSING'
  /** XDP attach/detach refused, typically because something is attached. */
  | 'EBPF_ATTACH'
  /** Any other failed bpf()/libbpf call; `errno` says why. */
  | 'EBPF_SYSCALL'
  /** A handle was used after close() (or a spec after load()). */
  | 'EBPF_CLOSED'
  /** The caller passed something the binding refuses before any syscall. */
  | 'EBPF_ARGUMENT';

export interface BpfErrorDetails {
  errno?: number;
  /** Full verifier log (EBPF_VERIFIER). */
  log?: string;
  /** What libbpf printed through its print callback during the operation. */
  libbpfLog?: string[];
  cause?: unknown;
}

export class BpfError extends Error {
  override readonly name = 'BpfError';
  readonly code: BpfErrorCode;
  /** Positive errno of the failed call, when there was one. */
  readonly errno: number | undefined;
  /** Symbolic errno (e.g. 'EBUSY'), when there was one. */
  readonly errnoName: string | undefined;
  readonly log: string | undefined;
  readonly libbpfLog: string[];

  constructor(code: BpfErrorCode, message: string, details: BpfErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.errno = details.errno;
    this.errnoName = details.errno === undefined ? undefined : errnoName(details.errno);
    this.log = details.log;
    this.libbpfLog = details.libbpfLog ?? [];
  }
}

// Node's own table (libuv names and messages) avoids a libc strerror call
// and works even when libbpf could not be loaded.
const systemErrors = getSystemErrorMap();

export function errnoName(errno: number): string {
  return systemErrors.get(-Math.abs(errno))?.[0] ?? `errno ${Math.abs(errno)}`;
}

export function errnoText(errno: number): string {
  const entry = systemErrors.get(-Math.abs(errno));
  return entry ? `${entry[0]} (${entry[1]})` : `errno ${Math.abs(errno)}`;
}

export const ENOENT = 2;
export const EPERM = 1;
export const EACCES = 13;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EBUSY = 16;
export const ENOSPC = 28;
export const EINTR = 4;
export const ENXIO = 6;
export const EOPNOTSUPP = 95;
export const ENOLINK = 67;

export function isPermission(errno: number): boolean {
  return errno === EPERM || errno === EACCES;
}

/** The advice attached to every EBPF_PERMISSION error. */
export function permissionHint(): string {
  const root = process.getuid?.() === 0;
  return root
    ? 'the kernel refused although this process runs as root: check kernel lockdown, seccomp, or ' +
        'whether the object is read-only'
    : 'run as root or with CAP_BPF+CAP_NET_ADMIN (CAP_PERFMON too for some programs)';
}

/** Appends the last lines libbpf printed, which often name the real cause. */
export function withLibbpfLog(message: string, lines: readonly string[]): string {
  if (lines.length === 0) return message;
  const tail = lines.slice(-8).map((l) => `  ${l.trimEnd()}`);
  return `${message}\nlibbpf said:\n${tail.join('\n')}`;
}

/**
 * The generic errno -> BpfError mapping used where a call has no more
 * specific meaning: permission problems get their own code so the fix
 * (capabilities) is obvious, anything else is EBPF_SYSCALL.
 */
export function syscallError(what: string, errno: number, libbpfLog: string[] = []): BpfError {
  if (isPermission(errno)) {
    return new BpfError(
      'EBPF_PERMISSION',
      withLibbpfLog(`${what}: ${errnoText(errno)}; ${permissionHint()}`, libbpfLog),
      { errno, libbpfLog },
    );
  }
  return new BpfError('EBPF_SYSCALL', withLibbpfLog(`${what}: ${errnoText(errno)}`, libbpfLog), {
    errno,
    libbpfLog,
  });
}

export function closedError(what: string): BpfError {
  return new BpfError('EBPF_CLOSED', `${what} is closed`);
}

// Running code inside a named network namespace from this process.
//
// setns(2) moves only the calling thread, which for synchronous JS is the
// thread that runs it; so fn must be synchronous: anything it leaves to
// the event loop or the libuv thread pool runs in the original namespace.
// Everything that resolves interfaces or opens netlink/BPF attachments
// (ifindex, attachXdp, queryXdp, testRun with an ingress ifindex) acts in
// the namespace current at the call.

import { closeSync, openSync } from 'node:fs';
import { BpfError, errnoText } from './errors.ts';
import { ffi } from './ffi.ts';

const CLONE_NEWNET = 0x40000000;

function enter(fd: number, what: string): void {
  const { c, errno } = ffi();
  if (c.setns(fd, CLONE_NEWNET) !== 0) {
    const e = errno();
    throw new BpfError('EBPF_SYSCALL', `setns into ${what}: ${errnoText(e)}`, { errno: e });
  }
}

/**
 * Runs fn in network namespace `name` (as made by `ip netns add`, i.e.
 * /run/netns/NAME; a path containing '/' is used as is) and always returns
 * the thread to its original namespace, also when fn throws.
 */
export function withNetns<T>(name: string, fn: () => T): T {
  const path = name.includes('/') ? name : `/run/netns/${name}`;
  // The current thread's namespace, opened before leaving it. thread-self,
  // not self: only this thread moves.
  const original = openSync('/proc/thread-self/ns/net', 'r');
  try {
    let target: number;
    try {
      target = openSync(path, 'r');
    } catch (e) {
      throw new BpfError(
        'EBPF_SYSCALL',
        `cannot open network namespace ${path} (${(e as Error).message}); list them with \`ip netns list\``,
        { cause: e },
      );
    }
    try {
      enter(target, path);
    } finally {
      closeSync(target);
    }
    let result: T;
    try {
      result = fn();
    } finally {
      // Failing to return would leave the whole JS thread in the test
      // namespace; that must never pass silently.
      enter(original, 'the original network namespace');
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new BpfError('EBPF_ARGUMENT', 'withNetns: fn must be synchronous; its async part would run outside the namespace');
    }
    return result;
  } finally {
    closeSync(original);
  }
}

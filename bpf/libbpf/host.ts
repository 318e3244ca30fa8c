// Facts about the host the binding needs: CPU count for per-CPU maps and
// interface indexes for XDP.

import { BpfError } from './errors.ts';
import { ffi } from './ffi.ts';

let cpus = 0;

/**
 * Number of possible CPUs (not online ones): the kernel sizes per-CPU map
 * values by it. Cached, since it cannot change while the process runs.
 */
export function possibleCpus(): number {
  if (cpus === 0) {
    const n = ffi().bpf.libbpf_num_possible_cpus();
    if (n <= 0) throw new BpfError('EBPF_SYSCALL', `libbpf_num_possible_cpus failed: ${n}`, { errno: -n });
    cpus = n;
  }
  return cpus;
}

/**
 * The ifindex of an interface in the calling thread's network namespace
 * (see withNetns). A number is taken as an ifindex already.
 */
export function ifindex(name: string | number): number {
  const { c, errno } = ffi();
  if (typeof name === 'number') {
    // Checked here because the kernel answers a bad ifindex with a bare
    // EINVAL from bpf_link_create, indistinguishable from other misuse.
    if (!Number.isInteger(name) || name <= 0 || name > 0xffffffff || c.if_indextoname(name, new Uint8Array(16)) === null) {
      throw new BpfError(
        'EBPF_NO_INTERFACE',
        `no network interface with index ${name} in this network namespace; list interfaces with \`ip link\``,
      );
    }
    return name;
  }
  const index = c.if_nametoindex(name);
  if (index === 0) {
    throw new BpfError(
      'EBPF_NO_INTERFACE',
      `no network interface '${name}' in this network namespace; list interfaces with \`ip link\``,
      { errno: errno() },
    );
  }
  return index;
}

// A program by kernel id (bpf_prog_get_fd_by_id): how a process that
// adopted a pinned XDP link reaches the program the link runs, e.g. to run
// it with BPF_PROG_TEST_RUN.
import { closeSync } from 'node:fs';
import { syscallError } from './errors.ts';
import { ffi } from './ffi.ts';
import { BpfProgram } from './program.ts';

/**
 * Opens the program with kernel id `id`. The returned program owns its
 * fd: close() releases it (the program itself stays loaded while attached).
 */
export function programById(id: number, name: string): BpfProgram {
  const fd = ffi().bpf.bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw syscallError(`opening program id ${id} ('${name}')`, -fd);
  return new BpfProgram(fd, name, 'xdp', () => closeSync(fd));
}

// A program by kernel id (bpf_prog_get_fd_by_id): how a process that
// adopted a pinned XDP link reaches the program the link runs, e.g. to run
// it with BPF_PROG_TEST_RUN. Its own layer so the core declarations in
// ffi.ts stay those of loading and attaching.
import { closeSync } from 'node:fs';
import koffi from 'koffi';
import { syscallError } from './errors.ts';
import { ffi } from './ffi.ts';
import { BpfProgram } from './program.ts';

type GetFdById = (id: number) => number;
let getFdById: GetFdById | undefined;

/**
 * Opens the program with kernel id `id`. The returned program owns its
 * fd: close() releases it (the program itself stays loaded while attached).
 */
export function programById(id: number, name: string): BpfProgram {
  ffi(); // loads libbpf (and reports a missing library) first
  getFdById ??= koffi.load(process.env.XSEQ_LIBBPF_PATH || 'libbpf.so.1').func('int bpf_prog_get_fd_by_id(uint32_t id)') as GetFdById;
  const fd = getFdById(id);
  if (fd < 0) throw syscallError(`opening program id ${id} ('${name}')`, -fd);
  return new BpfProgram(fd, name, 'xdp', () => closeSync(fd));
}

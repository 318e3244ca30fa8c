// BpfProgram: a loaded program of a BpfObject (the object owns the fd).

import { BpfError, syscallError } from './errors.ts';
import { ffi } from './ffi.ts';
import { XdpLink, type XdpMode } from './link.ts';
import { testRunXdp, type TestRunOptions, type TestRunResult } from './testrun.ts';

const PROG_INFO_SIZE = 232; // sizeof(struct bpf_prog_info)

export class BpfProgram {
  readonly name: string;
  /** ELF section, e.g. "xdp". */
  readonly sectionName: string;
  #fd: number;
  #onClose: (() => void) | undefined;

  /** @internal Use BpfObject.program(). */
  constructor(fd: number, name: string, sectionName: string, onClose?: () => void) {
    this.#fd = fd;
    this.name = name;
    this.sectionName = sectionName;
    this.#onClose = onClose;
  }

  get fd(): number {
    this.#check();
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Kernel program id, as queryXdp() and `bpftool prog` report it. */
  get id(): number {
    this.#check();
    const buf = new Uint8Array(PROG_INFO_SIZE);
    const len: [number] = [buf.byteLength];
    const ret = ffi().bpf.bpf_obj_get_info_by_fd(this.#fd, buf, len);
    if (ret !== 0) throw syscallError(`reading info of program '${this.name}'`, -ret);
    return new DataView(buf.buffer).getUint32(4, true);
  }

  /**
   * Attaches as an XDP link (bpf_link_create). The link detaches when it is
   * closed unless pinned first; it outlives this program handle and object.
   */
  attachXdp(ifname: string | number, mode: XdpMode): XdpLink {
    this.#check();
    return XdpLink.create(this.#fd, ifname, mode, this.name);
  }

  /** Runs the program in the kernel on one frame (BPF_PROG_TEST_RUN). */
  testRun(opts: TestRunOptions): TestRunResult {
    this.#check();
    return testRunXdp(this.#fd, this.name, opts);
  }

  /** Idempotent; the fd itself is released when the object closes. */
  close(): void {
    if (this.#fd < 0) return;
    this.#fd = -1;
    const cb = this.#onClose;
    this.#onClose = undefined;
    cb?.();
  }

  #check(): void {
    if (this.#fd < 0) throw new BpfError('EBPF_CLOSED', `program '${this.name}' is closed`);
  }
}

// RingBuffer: consumer of a BPF_MAP_TYPE_RINGBUF map (libbpf ring_buffer).
// libbpf calls our koffi-registered callback for each record during
// poll()/consume(); the record memory is the kernel's mmap and is reused as
// soon as the callback returns, so every record is copied out first.

import koffi from 'koffi';
import { BpfError, EINTR, syscallError } from './errors.ts';
import { ffi, logMark, logSince, type Pointer } from './ffi.ts';
import { type BpfMap, MapType, mapTypeName } from './map.ts';

export class RingBuffer {
  readonly mapName: string;
  #rb: Pointer | null;
  #cb: Pointer | null;
  #pending: unknown;
  #poller: ReturnType<typeof koffi.node.poll> | undefined;

  constructor(map: BpfMap, onSample: (data: Uint8Array) => void) {
    if (map.type !== MapType.RingBuf) {
      throw new BpfError('EBPF_WRONG_TYPE', `map '${map.name}' is ${mapTypeName(map.type)}, not a ring buffer`);
    }
    this.mapName = map.name;
    const f = ffi();
    const sample = (_ctx: Pointer | null, data: Pointer, size: number | bigint): number => {
      try {
        onSample(new Uint8Array(koffi.view(data, Number(size))).slice());
        return 0;
      } catch (e) {
        // A negative return stops libbpf's loop; poll() rethrows this.
        this.#pending = e;
        return -1;
      }
    };
    this.#cb = koffi.register(sample, koffi.pointer(f.ringBufferSampleFn));
    const mark = logMark();
    const rb = f.bpf.ring_buffer__new(map.fd, this.#cb, null, null);
    if (rb === null) {
      const errno = f.errno();
      koffi.unregister(this.#cb);
      this.#cb = null;
      throw syscallError(`creating ring buffer on map '${map.name}'`, errno, logSince(mark));
    }
    this.#rb = rb;
  }

  /**
   * Waits up to timeoutMs (-1: forever) for records and delivers them.
   * Blocks the JS thread; prefer watch() in a long-running process.
   * Returns the number of records delivered.
   */
  poll(timeoutMs: number): number {
    return this.#run(ffi().bpf.ring_buffer__poll(this.#live(), timeoutMs), 'poll');
  }

  /** Delivers whatever records are ready, without waiting. */
  consume(): number {
    return this.#run(ffi().bpf.ring_buffer__consume(this.#live()), 'consume');
  }

  /** An epoll fd that turns readable when records are ready. */
  get epollFd(): number {
    return ffi().bpf.ring_buffer__epoll_fd(this.#live());
  }

  /**
   * Delivers records from the Node event loop as they arrive (no blocking
   * poll). Errors thrown by the callback go to onError (default: rethrown
   * as an uncaught exception). Stopped by unwatch() or close().
   */
  watch(onError: (err: unknown) => void = (e) => { throw e; }): void {
    if (this.#poller) return;
    this.#poller = koffi.node.poll(this.epollFd, { readable: true }, () => {
      if (this.#rb === null) return;
      try {
        this.consume();
      } catch (e) {
        onError(e);
      }
    });
  }

  unwatch(): void {
    this.#poller?.close();
    this.#poller = undefined;
  }

  get closed(): boolean {
    return this.#rb === null;
  }

  /** Idempotent. Frees libbpf's ring buffer and the callback slot. */
  close(): void {
    this.unwatch();
    if (this.#rb !== null) ffi().bpf.ring_buffer__free(this.#rb);
    this.#rb = null;
    // Only after ring_buffer__free: libbpf may not call it any more.
    if (this.#cb !== null) koffi.unregister(this.#cb);
    this.#cb = null;
  }

  #run(ret: number, op: string): number {
    const err = this.#pending;
    if (err !== undefined) {
      this.#pending = undefined;
      throw err;
    }
    if (ret >= 0) return ret;
    // A signal (Node uses several) interrupting epoll_wait is not an error.
    if (-ret === EINTR) return 0;
    throw syscallError(`ring buffer ${op} on map '${this.mapName}'`, -ret);
  }

  #live(): Pointer {
    if (this.#rb === null) throw new BpfError('EBPF_CLOSED', `ring buffer on map '${this.mapName}' is closed`);
    return this.#rb;
  }
}

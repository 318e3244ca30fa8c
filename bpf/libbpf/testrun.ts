// BPF_PROG_TEST_RUN for XDP programs: runs a program on a frame in the
// kernel without any interface (unit tests, per-packet cost), or, with
// BPF_F_TEST_XDP_LIVE_FRAMES, pushes `repeat` real frames through the XDP
// actions (XDP_TX leaves through ctx.ingressIfindex): a traffic generator.

import koffi from 'koffi';
import { BpfError, ENOSPC, syscallError } from './errors.ts';
import { ffi, logMark, logSince, type Pointer, type TestRunOpts } from './ffi.ts';

/** Frames take real XDP actions (TX/REDIRECT/PASS) instead of being reported. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

const TEST_RUN_OPTS_SIZE = 80; // sizeof(struct bpf_test_run_opts)
const XDP_MD_SIZE = 24; // struct xdp_md: 6 x u32
const ETH_HLEN = 14; // the kernel refuses shorter test frames

export interface TestRunOptions {
  /** The frame, starting at the Ethernet header. */
  data: Uint8Array;
  /** Runs (default 1). durationNs is the average over them. */
  repeat?: number;
  /**
   * struct xdp_md seen by the program. ingressIfindex makes the kernel run
   * the program as if the frame came in on that device (resolved in the
   * calling thread's network namespace) and is where XDP_TX leaves in live
   * mode.
   */
  ctx?: { ingressIfindex?: number; rxQueueIndex?: number };
  /** Room for the output frame (default max(4096, data.length + 512)). */
  dataOutSize?: number;
  /** BPF_F_TEST_XDP_LIVE_FRAMES or 0. */
  flags?: number;
  /** Frames per batch in live mode (kernel default 64, max 256). */
  batchSize?: number;
}

export interface TestRunResult {
  /** The XDP action (XDP_PASS = 2, ...). */
  retval: number;
  /** The frame as the program left it; empty in live mode. */
  data: Uint8Array;
  /** Average nanoseconds per run, as the kernel measured it. */
  durationNs: number;
}

function checkCount(name: string, v: number | undefined, max: number): number {
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new BpfError('EBPF_ARGUMENT', `testRun: ${name} must be an integer 0..${max}, got ${v}`);
  }
  return v;
}

export function testRunXdp(progFd: number, progName: string, opts: TestRunOptions): TestRunResult {
  const { data } = opts;
  if (data.byteLength < ETH_HLEN) {
    throw new BpfError('EBPF_ARGUMENT', `testRun: XDP frames must be at least ${ETH_HLEN} bytes, got ${data.byteLength}`);
  }
  const flags = checkCount('flags', opts.flags, 0xffffffff);
  const live = (flags & BPF_F_TEST_XDP_LIVE_FRAMES) !== 0;
  const repeat = checkCount('repeat', opts.repeat, 0x7fffffff);
  const batchSize = checkCount('batchSize', opts.batchSize, 0xffffffff);
  const outSize = live ? 0 : checkCount('dataOutSize', opts.dataOutSize ?? Math.max(4096, data.byteLength + 512), 0xffffffff);

  // Native memory, not JS buffers: the kernel gets raw addresses inside the
  // options struct, and a small V8 typed array may live on the JS heap where
  // the GC can move it.
  const allocs: Pointer[] = [];
  const alloc = (n: number): Pointer => {
    const p = koffi.alloc('uint8_t', Math.max(n, 1)) as Pointer;
    allocs.push(p);
    return p;
  };
  try {
    const dataIn = alloc(data.byteLength);
    new Uint8Array(koffi.view(dataIn, data.byteLength)).set(data);
    const dataOut = outSize > 0 ? alloc(outSize) : null;
    let ctxIn: Pointer | null = null;
    if (opts.ctx) {
      ctxIn = alloc(XDP_MD_SIZE);
      const md = new DataView(koffi.view(ctxIn, XDP_MD_SIZE));
      // data and data_end are offsets into the frame here, and the kernel
      // insists that data_end equals the frame length.
      md.setUint32(0, 0, true);
      md.setUint32(4, data.byteLength, true);
      md.setUint32(8, 0, true);
      md.setUint32(12, opts.ctx.ingressIfindex ?? 0, true);
      md.setUint32(16, opts.ctx.rxQueueIndex ?? 0, true);
      md.setUint32(20, 0, true); // egress_ifindex must be 0 on input
    }
    const o: TestRunOpts = {
      sz: TEST_RUN_OPTS_SIZE,
      data_in: dataIn,
      data_out: dataOut,
      data_size_in: data.byteLength,
      data_size_out: outSize,
      ctx_in: ctxIn,
      ctx_out: null,
      ctx_size_in: ctxIn === null ? 0 : XDP_MD_SIZE,
      ctx_size_out: 0,
      retval: 0,
      repeat,
      duration: 0,
      flags,
      cpu: 0,
      batch_size: batchSize,
    };
    const mark = logMark();
    const ret = ffi().bpf.bpf_prog_test_run_opts(progFd, o);
    if (ret !== 0) {
      const errno = -ret;
      if (errno === ENOSPC && !live) {
        throw new BpfError(
          'EBPF_SYSCALL',
          `testRun of '${progName}': the output frame is ${o.data_size_out} bytes, more than dataOutSize ${outSize}`,
          { errno },
        );
      }
      throw syscallError(`testRun of '${progName}'`, errno, logSince(mark));
    }
    const outLen = Math.min(o.data_size_out, outSize);
    const out = dataOut === null || outLen === 0 ? new Uint8Array(0) : new Uint8Array(koffi.view(dataOut, outLen)).slice();
    return { retval: o.retval, data: out, durationNs: o.duration };
  } finally {
    for (const p of allocs) koffi.free(p);
  }
}

// Whether this kernel lets BPF_PROG_TEST_RUN push live frames
// (BPF_F_TEST_XDP_LIVE_FRAMES). Upstream allows it to CAP_NET_ADMIN, but
// hardened kernels refuse it with EPERM even to root (seen on a 6.18 VM
// kernel where every other BPF operation works), and a caller that relies
// on live frames to put packets on the wire must know before it does, not
// find out by silently missing packets.
//
// The probe loads a two-instruction XDP program that drops everything
// (so nothing is transmitted, counted or passed up the stack) and runs it
// once in live mode on the loopback device of the calling thread's
// network namespace.
import { closeSync } from 'node:fs';
import { errnoName } from './errors.ts';
import { ffi } from './ffi.ts';
import { BPF_F_TEST_XDP_LIVE_FRAMES, testRunXdp } from './testrun.ts';

const BPF_PROG_TYPE_XDP = 6;
const LOOPBACK_IFINDEX = 1; // every network namespace's lo
/** r0 = XDP_DROP (1); exit. struct bpf_insn: code, regs, off (le16), imm (le32). */
const DROP_ALL = new Uint8Array([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);

export type LiveFramesSupport = { ok: true } | { ok: false; errno: number; reason: string };

let cached: LiveFramesSupport | undefined;

/** Probed once per process; the answer is a property of the kernel. */
export function liveFramesSupport(): LiveFramesSupport {
  cached ??= probe();
  return cached;
}

function probe(): LiveFramesSupport {
  const fd = ffi().bpf.bpf_prog_load(BPF_PROG_TYPE_XDP, 'xseq_live_probe', 'GPL', DROP_ALL, 2, null);
  if (fd < 0) {
    return { ok: false, errno: -fd, reason: `loading a probe XDP program failed: ${errnoName(-fd)}` };
  }
  try {
    testRunXdp(fd, 'xseq_live_probe', {
      data: new Uint8Array(64),
      repeat: 1,
      flags: BPF_F_TEST_XDP_LIVE_FRAMES,
      ctx: { ingressIfindex: LOOPBACK_IFINDEX },
    });
    return { ok: true };
  } catch (e) {
    const errno = (e as { errno?: number }).errno ?? 0;
    return { ok: false, errno, reason: `the kernel refuses BPF_PROG_TEST_RUN with live frames: ${errno ? errnoName(errno) : (e as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

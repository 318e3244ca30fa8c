// CLOCK_TAI, the clock the sequencer stamps slots and headers with
// (bpf_ktime_get_tai_ns). Node has no binding for it, so it is read through
// libc; comparing a stamp with any other clock would be off by the TAI-UTC
// offset (37 s) or by the boot time.
import koffi from 'koffi';

const CLOCK_TAI = 11;

type ClockGettime = (clock: number, ts: BigInt64Array) => number;
let gettime: ClockGettime | undefined;
// One struct timespec { int64 tv_sec; int64 tv_nsec; } reused by every call:
// a typed array is passed as a pointer to its bytes, so no koffi struct type
// (whose name would have to be unique per process) is needed.
const ts = new BigInt64Array(2);

/** TAI now, in nanoseconds. */
export function taiNowNs(): bigint {
  gettime ??= koffi.load('libc.so.6').func('int clock_gettime(int clock, void *ts)') as ClockGettime;
  if (gettime(CLOCK_TAI, ts) !== 0) throw new Error(`clock_gettime(CLOCK_TAI) failed: errno ${koffi.errno()}`);
  return ts[0]! * 1_000_000_000n + ts[1]!;
}

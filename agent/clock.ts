// CLOCK_TAI, the clock the sequencer stamps slots and headers with
// (bpf_ktime_get_tai_ns). Node has no binding for it, so it is read through
// libc; comparing a stamp with any other clock would be off by the TAI-UTC
// offset (37 s) or by the boot time.
import koffi from 'koffi';

const CLOCK_REALTIME = 0;
const CLOCK_TAI = 11;

type ClockGettime = (clock: number, ts: BigInt64Array) => number;
let gettime: ClockGettime | undefined;
// One struct timespec { int64 tv_sec; int64 tv_nsec; } reused by every call:
// a typed array is passed as a pointer to its bytes, so no koffi struct type
// (whose name would have to be unique per process) is needed.
const ts = new BigInt64Array(2);

function readClock(clock: number, name: string): bigint {
  gettime ??= koffi.load('libc.so.6').func('int clock_gettime(int clock, void *ts)') as ClockGettime;
  if (gettime(clock, ts) !== 0) throw new Error(`clock_gettime(${name}) failed: errno ${koffi.errno()}`);
  return ts[0]! * 1_000_000_000n + ts[1]!;
}

/** TAI now, in nanoseconds. */
export function taiNowNs(): bigint {
  return readClock(CLOCK_TAI, 'CLOCK_TAI');
}

/**
 * The kernel's TAI-UTC offset in whole seconds (37 since 2017 when set,
 * 0 when nothing set it: CLOCK_TAI is then UTC). Several sequencers compare
 * stamps across hosts, so they must all agree on it (README, Hydra).
 */
export function taiOffsetSeconds(): number {
  const tai = readClock(CLOCK_TAI, 'CLOCK_TAI');
  const utc = readClock(CLOCK_REALTIME, 'CLOCK_REALTIME');
  return Math.round(Number(tai - utc) / 1e9);
}

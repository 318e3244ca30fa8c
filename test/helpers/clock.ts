// CLOCK_TAI in nanoseconds, the clock the sequencer stamps with; Node has no
// binding for it, so read it through libc.
import koffi from 'koffi';

const CLOCK_TAI = 11;
const libc = koffi.load('libc.so.6');
const Timespec = koffi.struct('xseq_test_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });
const clockGettime = libc.func('int clock_gettime(int, _Out_ xseq_test_timespec *)');

export function taiNowNs(): bigint {
  const ts = { tv_sec: 0, tv_nsec: 0 };
  if (clockGettime(CLOCK_TAI, ts) !== 0) throw new Error('clock_gettime(CLOCK_TAI) failed');
  return BigInt(ts.tv_sec) * 1_000_000_000n + BigInt(ts.tv_nsec);
}

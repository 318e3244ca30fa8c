// The protocol's Scheduler on the real clock. Times are microseconds on
// the monotonic clock; timers round up to Node's millisecond resolution,
// because a timeout that fires early (a reorder wait, a leader timeout)
// would call a gap or a failure that has not happened yet.
//
// A due timer runs after one more turn of the event loop's I/O phase, not
// straight from the timer phase. Node runs expired timers before it reads
// sockets, so after the process was descheduled for a while (GC, a busy
// shared machine) a leader timeout would fire while the leader's
// heartbeat sits unread in the socket: a view change for a leader that
// is alive. Deferring by one poll lets what already arrived count first.
import { performance } from 'node:perf_hooks';
import type { Scheduler, TimerHandle } from '../transport.ts';

export class RealTimeScheduler implements Scheduler {
  /**
   * @param afterEvent runs after every timer callback, as the transport
   *   runs it after every delivered message: the place for a process to
   *   look at what the replica did (commit point, status, view).
   */
  constructor(private readonly afterEvent: () => void = () => {}) {}

  now(): number {
    return performance.now() * 1000;
  }

  setTimer(delayUs: number, fn: () => void): TimerHandle {
    let immediate: NodeJS.Immediate | null = null;
    const run = (): void => {
      immediate = null;
      fn();
      this.afterEvent();
    };
    const t = setTimeout(
      () => {
        immediate = setImmediate(run);
      },
      Math.max(1, Math.ceil(delayUs / 1000)),
    );
    return {
      cancel: () => {
        clearTimeout(t);
        if (immediate) clearImmediate(immediate);
        immediate = null;
      },
    };
  }
}

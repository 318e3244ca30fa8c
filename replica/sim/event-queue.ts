// Virtual time: a priority queue of callbacks ordered by (time, insertion),
// so equal times run in a fixed order and a run is a pure function of its
// seed. Nothing here ever waits for real time.
import type { Scheduler, TimerHandle } from '../transport.ts';

interface SimEvent {
  readonly at: number;
  readonly id: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class EventQueue {
  now = 0;
  private heap: SimEvent[] = [];
  private nextId = 0;

  get size(): number {
    return this.heap.length;
  }

  at(time: number, fn: () => void): TimerHandle {
    const e: SimEvent = { at: Math.max(time, this.now), id: this.nextId++, fn, cancelled: false };
    this.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  after(delayUs: number, fn: () => void): TimerHandle {
    return this.at(this.now + delayUs, fn);
  }

  /** Runs the next live event; false when nothing is left. */
  step(): boolean {
    for (;;) {
      const e = this.pop();
      if (!e) return false;
      if (e.cancelled) continue;
      this.now = e.at;
      e.fn();
      return true;
    }
  }

  /** A Scheduler whose timers die with `alive()` (a crashed process's timers never fire). */
  scheduler(alive: () => boolean = () => true): Scheduler {
    return {
      now: () => this.now,
      setTimer: (d, fn) => this.after(d, () => alive() && fn()),
    };
  }

  private less(a: SimEvent, b: SimEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  private push(e: SimEvent): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || !last) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }
}

// A latency histogram that merges across processes: log-spaced buckets,
// 16 per doubling (about 4.4 % wide), so a quantile read from merged
// buckets is within that of the exact one.
const PER_DOUBLING = 16;

function bucketOf(us: number): number {
  return us < 1 ? 0 : Math.floor(Math.log2(us) * PER_DOUBLING) + 1;
}

/** Upper bound of a bucket in microseconds. */
function upperOf(b: number): number {
  return b === 0 ? 1 : 2 ** (b / PER_DOUBLING);
}

export type HistJson = [bucket: number, count: number][];

export class LatencyHist {
  private readonly counts = new Map<number, number>();
  private n = 0;
  private sum = 0;
  private max = 0;

  record(us: number): void {
    const b = bucketOf(us);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.n++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  get count(): number {
    return this.n;
  }

  get meanUs(): number {
    return this.n ? this.sum / this.n : 0;
  }

  get maxUs(): number {
    return this.max;
  }

  toJSON(): HistJson {
    return [...this.counts.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** The upper bound of the bucket holding quantile q (0..1) of the merged histograms. */
  static quantile(hists: readonly HistJson[], q: number): number {
    const merged = new Map<number, number>();
    let total = 0;
    for (const h of hists) {
      for (const [b, c] of h) {
        merged.set(b, (merged.get(b) ?? 0) + c);
        total += c;
      }
    }
    if (total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (const b of [...merged.keys()].sort((x, y) => x - y)) {
      seen += merged.get(b)!;
      if (seen >= rank) return upperOf(b);
    }
    return 0;
  }
}

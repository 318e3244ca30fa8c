// The retransmission timeout, adapted to what replicas actually take (RFC
// 6298's estimator): a loaded group whose ACKs come back in 40 ms must not
// be re-sent to at the configured 20 ms, and an idle one keeps the
// configured floor.
//
// Samples are the stamp-to-every-member times of the requests completed
// since the last read of the kernel's histogram (xseq_quorum_hist's second
// half, log2 buckets; bpf/xseq.h): each one sample at its bucket's middle
// (feedHistogram). Every member, not the quorum: a re-send goes to each
// member that has not acked, and fed the quorum's time the RTO sat below
// the slowest member's lag under load, so most re-sends were spurious. Karn's rule (no
// sample from a re-sent request) cannot pick requests out of a histogram,
// and without it the estimate runs away under loss: a request whose copy
// was lost gets its quorum after at least one RTO, which raises the RTO,
// which delays the next repair further (measured: 20 % loss drove it to the
// ceiling and p99 from 0.09 to 4 s). So the slowest samples are dropped,
// as many as the re-sends since the last read that were needed: re-sends
// minus the duplicate ACKs the kernel counted (a member that already had
// the request acks it twice: that re-send was spurious, and its request's
// time is a true, slow sample). Under load re-sends are spurious and every
// sample counts, so the RTO rises; under loss they are needed and the
// RTO stays near what unharmed requests take.

/** RFC 6298 gains and variance factor. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;

export class RtoEstimator {
  readonly minNs: number;
  readonly maxNs: number;
  /** The clock granularity G of RFC 6298 (the agent's timers: 1 ms). */
  readonly granularityNs: number;
  #srtt: number | undefined;
  #rttvar = 0;
  #rto: number;

  constructor(minNs: number, maxNs: number, granularityNs = 1_000_000) {
    if (!(minNs > 0) || !(maxNs >= minNs)) throw new RangeError(`RTO bounds must be 0 < min <= max, got ${minNs}..${maxNs} ns`);
    this.minNs = minNs;
    this.maxNs = maxNs;
    this.granularityNs = granularityNs;
    this.#rto = minNs;
  }

  /** Feeds one round-trip sample (ns); ignores what is not a finite time. */
  sample(rttNs: number): void {
    if (!Number.isFinite(rttNs) || rttNs < 0) return;
    if (this.#srtt === undefined) {
      this.#srtt = rttNs;
      this.#rttvar = rttNs / 2;
    } else {
      this.#rttvar = (1 - BETA) * this.#rttvar + BETA * Math.abs(this.#srtt - rttNs);
      this.#srtt = (1 - ALPHA) * this.#srtt + ALPHA * rttNs;
    }
    const rto = this.#srtt + Math.max(this.granularityNs, K * this.#rttvar);
    this.#rto = Math.round(Math.min(this.maxNs, Math.max(this.minNs, rto)));
  }

  /** The current RTO, ns: the minimum until the first sample. */
  get rtoNs(): number {
    return this.#rto;
  }

  /** Smoothed RTT and its variation, ns (undefined before a sample). */
  get srttNs(): number | undefined {
    return this.#srtt;
  }

  get rttvarNs(): number {
    return this.#rttvar;
  }
}

/** Samples fed per histogram read at most: the estimator converges on the
 * interval's spread well before that, and a busy interval costs no more. */
export const MAX_SAMPLES_PER_READ = 256;

/**
 * Feeds the REPLYs counted between two reads of the stamp-to-every-member (or -quorum)
 * histogram (bucket i: [2^i, 2^(i+1)) ns) as single samples at each
 * bucket's middle, spread evenly through the sequence so that the EWMA
 * ends on no particular end of the spread, and scaled down to
 * MAX_SAMPLES_PER_READ.
 * The `dropSlowest` slowest are left out (Karn, see the top). Returns how
 * many requests the interval held.
 */
export function feedHistogram(est: RtoEstimator, prev: readonly bigint[], now: readonly bigint[], dropSlowest = 0): number {
  const counts = now.map((c, i) => Number(c - (prev[i] ?? 0n)));
  if (counts.some((c) => c < 0)) return 0; // a reset map: the next read is the baseline
  const total = counts.reduce((a, b) => a + b, 0);
  // Karn, approximately (see the top): the slowest go first.
  for (let i = counts.length - 1, drop = Math.min(dropSlowest, total); i >= 0 && drop > 0; i--) {
    const d = Math.min(drop, counts[i]!);
    counts[i]! -= d;
    drop -= d;
  }
  if (total === 0 || dropSlowest >= total) return total;
  const kept = counts.reduce((a, b) => a + b, 0);
  const scale = Math.min(1, MAX_SAMPLES_PER_READ / kept);
  // Each bucket's samples spread evenly over the sequence (bucket with c
  // of n at (j + 1/2) n / c), so the EWMA sees the mix all along.
  const order: { at: number; ns: number }[] = [];
  counts.forEach((c, i) => {
    const k = c > 0 ? Math.max(1, Math.round(c * scale)) : 0;
    for (let j = 0; j < k; j++) order.push({ at: (j + 0.5) / k, ns: i === 0 ? 1 : 1.5 * 2 ** i });
  });
  order.sort((x, y) => x.at - y.at);
  for (const o of order) est.sample(o.ns);
  return total;
}

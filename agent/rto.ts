// The retransmission timeout, adapted to what replicas actually take (RFC
// 6298's estimator): a loaded group whose ACKs come back in 40 ms must not
// be re-sent to at the configured 20 ms, and an idle one keeps the
// configured floor.
//
// A sample is the mean stamp-to-quorum time of the REPLYs since the last
// sample, from the kernel's histogram (xseq_quorum_hist: a count and a sum
// of nanoseconds). A mean is what the kernel can give without a per-request
// record; RTTVAR then follows how much those means move, not the spread of
// single requests, which the K x RTTVAR term and the floor cover. Quorums
// that came after a re-send are in it too (Karn's rule cannot be applied
// to an aggregate): they pull the estimate up, towards fewer re-sends,
// which is the safe direction, and they are few unless loss is heavy.

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
 * Feeds the REPLYs counted between two reads of the stamp-to-quorum
 * histogram (bucket i: [2^i, 2^(i+1)) ns) as single samples at each
 * bucket's middle, interleaved across buckets so that the EWMA ends on no
 * particular end of the spread, and scaled down to MAX_SAMPLES_PER_READ.
 * Returns how many requests the interval held.
 */
export function feedHistogram(est: RtoEstimator, prev: readonly bigint[], now: readonly bigint[]): number {
  const counts = now.map((c, i) => Number(c - (prev[i] ?? 0n)));
  if (counts.some((c) => c < 0)) return 0; // a reset map: the next read is the baseline
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const scale = Math.min(1, MAX_SAMPLES_PER_READ / total);
  const left = counts.map((c) => (c > 0 ? Math.max(1, Math.round(c * scale)) : 0));
  for (let fed = true; fed; ) {
    fed = false;
    for (let i = 0; i < left.length; i++) {
      if (left[i]! <= 0) continue;
      left[i]!--;
      est.sample(i === 0 ? 1 : 1.5 * 2 ** i);
      fed = true;
    }
  }
  return total;
}

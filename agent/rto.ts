// The retransmission timeout, adapted to what replicas actually take (RFC
// 6298's estimator): a loaded group whose ACKs come back in 40 ms must not
// be re-sent to at the configured 20 ms, and an idle one keeps the
// configured floor.
//
// Samples are stamp-to-every-member times, taken by the retransmitter's
// own window scan (agent/retransmit.ts, top): every member because a
// re-send goes to each member that has not acked. Karn's rule holds
// exactly there, since the scan knows which seqs it re-sent. (It was fed
// the kernel's stamp-to-quorum histogram before, which cannot tell a
// re-sent request from another; Karn was approximated by dropping the
// slowest samples, as many as the re-sends that drew no duplicate ACK.
// Under load most re-sends drew none (the member had dropped the entry
// from its log, or its ACK was in flight), so the tail was dropped, the
// RTO stayed at its floor and re-sends were 10-50 % of stamped requests
// with nothing lost.)

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

// Weighted quorum rules shared by the agent (config check, release) and
// the replicas (weight reassignment): the kernel's certification rule is in
// bpf/aggregator.h, integrity is checked here before a table reaches it.

/** Failures a group tolerates by default: what a majority of n survives. */
export const defaultTolerance = (n: number) => Math.floor((n - 1) / 2);

/**
 * Integrity of a weighted group (weight reassignment literature): the f
 * heaviest members together hold less than half the total weight, so the
 * n - f that survive any f failures still hold more than half and can
 * certify. Returns the complaint, or undefined when it holds.
 */
export function integrityIssue(members: readonly { id: number; weight?: number | undefined }[], f: number): string | undefined {
  const w = members.map((m) => ({ id: m.id, weight: m.weight ?? 1 }));
  const total = w.reduce((a, m) => a + m.weight, 0);
  if (total === 0) return 'every member has weight 0; no request could ever be certified';
  if (f >= w.length) return `f = ${f} tolerates losing all ${w.length} members; at most ${w.length - 1}`;
  const heaviest = [...w].sort((a, b) => b.weight - a.weight || a.id - b.id).slice(0, f);
  const held = heaviest.reduce((a, m) => a + m.weight, 0);
  if (2 * held < total) return undefined;
  const who = heaviest.map((m) => `${m.id} (weight ${m.weight})`).join(', ');
  return (
    `integrity: the f = ${f} heaviest members ${who} hold ${held} of the total weight ${total}, not less than half (${total / 2}); ` +
    `if they failed the others (${total - held}) could not certify. Lower their weight, raise the others', or lower f`
  );
}

/** Whether `acked` (bitmap by replica id) certifies a request: the
 * leader's bit and, weighted, more than half the total weight, else at
 * least `quorum` members. The kernel's rule (aggregator.h), for the agent. */
export function certifies(acked: number, leader: number, g: { weights?: readonly number[]; quorum: number }): boolean {
  if (!(acked & (1 << leader))) return false;
  if (!g.weights) {
    let n = 0;
    for (let a = acked; a; a &= a - 1) n++;
    return n >= g.quorum;
  }
  let total = 0;
  let got = 0;
  g.weights.forEach((w, i) => {
    total += w;
    if (acked & (1 << i)) got += w;
  });
  return 2 * got > total;
}

/**
 * Whether every certifying quorum meets every majority by count. The
 * replicas' view change and recovery wait for a majority of members (any
 * (n - 1) / 2 + 1 of them, weights unknown to them), so a request certified
 * by weight must have reached at least one replica of each such majority:
 * no (n - 1) / 2 members may hold more than half the total weight, or they
 * alone could certify a write a view change then never hears of. Weights
 * can make a quorum need more members (leave a slow one out), never fewer.
 * Returns the complaint, or undefined when it holds.
 */
export function majorityIssue(weights: readonly number[]): string | undefined {
  const total = weights.reduce((a, w) => a + w, 0);
  const k = Math.floor((weights.length - 1) / 2);
  const heaviest = weights.map((weight, id) => ({ id, weight })).sort((a, b) => b.weight - a.weight || a.id - b.id).slice(0, k);
  const held = heaviest.reduce((a, m) => a + m.weight, 0);
  if (2 * held <= total) return undefined;
  const who = heaviest.map((m) => `${m.id} (weight ${m.weight})`).join(', ');
  return `quorum intersection: the ${k} heaviest members ${who} hold ${held} of the total weight ${total}, more than half, so they could certify a write that a view change among the other ${weights.length - k} (a majority by count) never hears of`;
}
